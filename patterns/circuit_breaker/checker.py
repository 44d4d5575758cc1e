"""The circuit breaker lab's invariants, checked from outside the node code.

- legal_transitions: a breaker only moves closed->open, open->half_open,
  half_open->closed or half_open->open; a forced change (the learner's
  ``force``) or a reset (the front restarted) is recorded as such and allowed.
- open_blocks_calls: while a guarding breaker is open, no attempt is sent to
  its downstream; while half-open, only probes, at most ``half_open_calls``.
  Read from the breaker at the instant the front sends the attempt.
- bulkhead: with the bulkhead on, attempts in flight to one downstream never
  exceed ``bulkhead_limit``.
- front_workers: the front never works on more requests than it has workers.
- exactly_once: every client request ends exactly once (ok, error or timeout).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..checkers.base import InvariantChecker
from .breaker import LEGAL

if TYPE_CHECKING:  # pragma: no cover
    from .front import Config, FrontNode

INVARIANTS = {
    "legal_transitions": "A breaker only makes legal transitions (or forced ones)",
    "open_blocks_calls": "No call reaches a downstream whose breaker is open (half-open: only probes)",
    "bulkhead": "Calls in flight to one downstream never exceed the bulkhead limit",
    "front_workers": "The front never serves more requests at once than it has workers",
    "exactly_once": "Every client request ends exactly once",
}


class CircuitBreakerChecker(InvariantChecker):
    INVARIANTS = INVARIANTS

    def __init__(self, front: FrontNode, config: Config) -> None:
        super().__init__()
        self.front = front
        self.cfg = config
        self.now = 0.0
        self.open_requests: dict[int, bool] = {}
        self.last_sent = 0

    def clock_ms(self) -> float:
        return self.now

    def on_transition(self, d: str, frm: str, to: str, forced: bool) -> None:
        if not forced and (frm, to) not in LEGAL:
            self._report("legal_transitions", f"{d}'s breaker moved {frm} -> {to}, which is not a legal transition")

    def on_attempt(self, d: str, probe: bool, guarded: bool, in_flight: int) -> None:
        if guarded:
            breaker = self.front.breakers[d]
            state = breaker.state
            if state == "open":
                self._report("open_blocks_calls", f"a call was sent to {d} while its breaker was open")
            elif state == "half_open":
                if not probe:
                    self._report("open_blocks_calls", f"a non-probe call was sent to {d} while its breaker was half-open")
                elif breaker.probes_permitted > breaker.settings.half_open_calls:
                    self._report(
                        "open_blocks_calls",
                        f"{breaker.probes_permitted} probes were let through to {d}; the limit is "
                        f"{breaker.settings.half_open_calls}",
                    )
        if self.cfg.pipeline["bulkhead"] and in_flight > self.cfg.bulkhead_limit:
            self._report(
                "bulkhead", f"{in_flight} calls were in flight to {d}; the bulkhead limit is {self.cfg.bulkhead_limit}"
            )

    def on_worker_started(self, busy: int) -> None:
        if busy > self.cfg.workers:
            self._report("front_workers", f"the front served {busy} requests at once with {self.cfg.workers} workers")

    def on_sent(self, req: int) -> None:
        if req <= self.last_sent:
            self._report("exactly_once", f"request #{req} was sent twice")
        self.last_sent = max(self.last_sent, req)
        self.open_requests[req] = True

    def on_done(self, req: int) -> None:
        if self.open_requests.pop(req, None) is None:
            self._report("exactly_once", f"request #{req} ended twice (or was never sent)")

    def summary_now(self) -> list[dict[str, Any]]:
        return self.summary()
