"""The engine contract shared by every pattern.

    eng = patterns.create(kind, seed=7, **params)
    eng.apply(cmd)      # a JSON dict, as the browser sends; bad input -> ValueError subclass
    eng.advance(ms)     # run virtual time forward
    eng.step()          # run to the next event (for pausing and stepping)
    eng.now             # virtual ms since start
    eng.view()          # JSON-ready dict of everything a page draws
    eng.violations()    # safety invariants broken so far; [] when healthy

Behaviour depends only on the seed, the parameters and the commands with the
virtual times they were applied at. ``command_log`` records those, so
``patterns.replay()`` rebuilds any run exactly.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Mapping
from itertools import islice
from typing import Any, ClassVar

from .errors import InvalidCommand, InvalidParameter
from .kernel.sim import Simulator
from .validate import number

MAX_ADVANCE_MS = 24 * 3600 * 1000.0


class Engine(ABC):
    """Base class: virtual time, command dispatch, narration and the command log."""

    kind: ClassVar[str] = ""
    title: ClassVar[str] = ""
    #: op name -> method name, filled by subclasses
    COMMANDS: ClassVar[dict[str, str]] = {}

    def __init__(self, *, seed: int, params: Mapping[str, Any]) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
            raise InvalidParameter(f"'seed' must be a whole number from 0 to 2^63-1, not {seed!r}")
        self.seed = seed
        self.params: dict[str, Any] = dict(params)
        self.sim = Simulator()
        self.command_log: list[dict[str, Any]] = []
        self._events: deque[dict[str, Any]] = deque(maxlen=200)
        self._event_seq = 0

    # -- the contract ------------------------------------------------------
    @property
    def now(self) -> float:
        return self.sim.now

    def apply(self, cmd: Any) -> dict[str, Any] | None:
        """Apply one command. Raises InvalidCommand and changes nothing when it is bad."""
        if not isinstance(cmd, Mapping):
            raise InvalidCommand(f"a command must be a JSON object, not {type(cmd).__name__}")
        op = cmd.get("op")
        if not isinstance(op, str):
            raise InvalidCommand("a command needs an 'op', for example {\"op\": \"crash\", \"node\": \"n1\"}")
        method_name = self.COMMANDS.get(op)
        if method_name is None:
            known = ", ".join(sorted(self.COMMANDS))
            raise InvalidCommand(f"unknown op {op!r} for {self.kind}; known ops: {known}")
        method: Callable[[Mapping[str, Any]], dict[str, Any] | None] = getattr(self, method_name)
        result = method(cmd)
        self.command_log.append({"at_ms": self.sim.now, "cmd": dict(cmd)})
        # Run what the command made due at this very instant (a message on a
        # zero-latency network). After apply(), as after advance() and step(),
        # no event at or before `now` is left waiting, so replay() -- which runs
        # every event up to a command's time before applying it -- rebuilds the
        # same run even when several commands share one virtual time.
        events_before = self.sim.events_run
        self.sim.run_until(self.sim.now)
        if self.sim.events_run != events_before:
            self._after_run()
        return result

    def advance(self, ms: float) -> None:
        if (type(ms) is float or type(ms) is int) and 0 <= ms <= MAX_ADVANCE_MS:
            ms = float(ms)  # what number() returns for a valid ms, without building its argument
        else:
            ms = number({"ms": ms}, "ms", lo=0, hi=MAX_ADVANCE_MS)  # raises, saying why
        self.sim.run_until(self.sim.now + ms)
        self._after_run()

    def advance_to(self, at_ms: float) -> None:
        if at_ms > self.sim.now:
            self.sim.run_until(at_ms)
        self._after_run()

    def step(self) -> bool:
        """Run every event due at the next event time. False when nothing is scheduled."""
        ran = self.sim.run_next()
        self._after_run()
        return ran

    def next_event_ms(self) -> float | None:
        return self.sim.next_time()

    @abstractmethod
    def view(self) -> dict[str, Any]:
        """Everything a page draws, as plain JSON-ready data."""

    def violations(self) -> list[dict[str, Any]]:
        return []

    # -- helpers for subclasses --------------------------------------------
    def _after_run(self) -> None:
        """Hook: called after time moves, for checkers that run between events."""

    def narrate(self, text: str, kind: str = "info", **fields: Any) -> None:
        self._event_seq += 1
        self._events.append({"seq": self._event_seq, "at_ms": round(self.sim.now, 3), "kind": kind, "text": text, **fields})

    def events(self, since: int = 0) -> list[dict[str, Any]]:
        return [event for event in self._events if event["seq"] > since]

    def _recent_events(self, count: int) -> list[dict[str, Any]]:
        """The newest ``count`` narration events, oldest first."""
        events = self._events
        return list(islice(events, max(0, len(events) - count), None))
