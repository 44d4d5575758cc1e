"""One circuit breaker (resilience4j semantics, scaled to simulation time).

States: ``closed`` (calls flow, outcomes fill a sliding window), ``open``
(calls are refused until ``wait_open_ms`` has passed), ``half_open`` (at most
``half_open_calls`` probe calls go through; their outcomes decide: back to
closed, or open again), and ``disabled`` (only by force: calls flow, nothing
is recorded).

The sliding window is count-based (the last ``window_size`` outcomes) or
time-based (outcomes of the last ``window_ms``). It is judged only once it
holds ``minimum_calls`` outcomes (capped at ``window_size`` for a count-based
window, as resilience4j does): the breaker opens when the failure rate is
at least ``failure_rate_threshold`` percent, or the slow-call rate (calls that
took ``slow_call_ms`` or more) at least ``slow_call_rate_threshold`` percent.

Every state change bumps ``generation``. A call carries the generation it was
permitted in, and an outcome from an older generation is not recorded: a call
sent while closed that ends during half-open is not a probe.

The class is pure: the caller passes the time and carries out a transition it
returns (``(to, why)``).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

STATES = ("closed", "open", "half_open", "disabled")
STATE_NUMBER = {"closed": 0, "half_open": 1, "open": 2, "disabled": 3}
LEGAL = {("closed", "open"), ("open", "half_open"), ("half_open", "closed"), ("half_open", "open")}


@dataclass
class BreakerSettings:
    window_type: str = "count"  # "count" | "time"
    window_size: int = 20
    window_ms: float = 2000.0
    failure_rate_threshold: float = 50.0  # percent
    slow_call_rate_threshold: float = 100.0  # percent
    slow_call_ms: float = 300.0
    minimum_calls: int = 10
    wait_open_ms: float = 2000.0
    half_open_calls: int = 3

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def _pct(part: int, whole: int) -> float:
    return 100.0 * part / whole if whole else 0.0


class Breaker:
    def __init__(self, downstream: str, settings: BreakerSettings) -> None:
        self.downstream = downstream
        self.settings = settings
        self.state = "closed"
        self.generation = 0
        self.since_ms = 0.0
        self.window: deque[tuple[float, bool, bool]] = deque()  # (at, failed, slow)
        self.probes_permitted = 0
        self.probe_results: list[tuple[bool, bool]] = []

    # -- permission ----------------------------------------------------------------
    def try_acquire(self) -> tuple[bool, bool]:
        """(permitted, is_probe)."""
        state = self.state
        if state in ("closed", "disabled"):
            return True, False
        if state == "half_open" and self.probes_permitted < self.settings.half_open_calls:
            self.probes_permitted += 1
            return True, True
        return False, False

    def release(self, probe: bool, generation: int) -> None:
        """A permitted call was not made after all (a full bulkhead): give the probe slot back."""
        if probe and generation == self.generation and self.state == "half_open":
            self.probes_permitted -= 1

    # -- outcomes --------------------------------------------------------------------
    def _trim(self, now: float) -> None:
        s = self.settings
        window = self.window
        if s.window_type == "time":
            while window and window[0][0] <= now - s.window_ms:
                window.popleft()
        else:
            while len(window) > s.window_size:
                window.popleft()

    def rates(self, now: float) -> tuple[int, int, int]:
        """(calls, failed, slow) in the window now."""
        self._trim(now)
        calls = len(self.window)
        failed = sum(1 for _, f, _ in self.window if f)
        slow = sum(1 for _, _, sl in self.window if sl)
        return calls, failed, slow

    def record(self, now: float, generation: int, failed: bool, slow: bool) -> tuple[str, str] | None:
        """Record one outcome; returns the transition it causes, if any."""
        if generation != self.generation:
            return None
        if self.state == "closed":
            self.window.append((now, failed, slow))
            return self.judge(now)
        if self.state == "half_open":
            self.probe_results.append((failed, slow))
            return self.settle()
        return None

    def settle(self) -> tuple[str, str] | None:
        """Half-open: once ``half_open_calls`` probes have ended, their outcomes decide."""
        s = self.settings
        if self.state == "half_open":
            if len(self.probe_results) >= s.half_open_calls:
                n = len(self.probe_results)
                nf = sum(1 for f, _ in self.probe_results if f)
                ns = sum(1 for _, sl in self.probe_results if sl)
                fr, sr = _pct(nf, n), _pct(ns, n)
                if fr >= s.failure_rate_threshold:
                    return "open", f"{nf} of {n} probe calls failed ({fr:.0f}% >= {s.failure_rate_threshold:g}%)"
                if sr >= s.slow_call_rate_threshold:
                    return "open", (
                        f"{ns} of {n} probe calls were slow (>= {s.slow_call_ms:g} ms; "
                        f"{sr:.0f}% >= {s.slow_call_rate_threshold:g}%)"
                    )
                return "closed", f"{n - nf} of {n} probe calls succeeded ({fr:.0f}% failed < {s.failure_rate_threshold:g}%)"
        return None

    def minimum_calls(self) -> int:
        """A count-based window never holds more than window_size calls: resilience4j caps the minimum there."""
        s = self.settings
        return min(s.minimum_calls, s.window_size) if s.window_type == "count" else s.minimum_calls

    def judge(self, now: float) -> tuple[str, str] | None:
        """Closed: does the window now say open?"""
        if self.state != "closed":
            return None
        s = self.settings
        calls, failed, slow = self.rates(now)
        if calls < self.minimum_calls():
            return None
        fr, sr = _pct(failed, calls), _pct(slow, calls)
        if fr >= s.failure_rate_threshold:
            return "open", f"{failed} of {calls} calls in the window failed ({fr:.0f}% >= {s.failure_rate_threshold:g}%)"
        if sr >= s.slow_call_rate_threshold:
            return "open", (
                f"{slow} of {calls} calls in the window were slow (>= {s.slow_call_ms:g} ms; "
                f"{sr:.0f}% >= {s.slow_call_rate_threshold:g}%)"
            )
        return None

    def move(self, to: str, now: float) -> str:
        """Enter ``to``; returns the state left."""
        old = self.state
        self.state = to
        self.generation += 1
        self.since_ms = now
        self.window.clear()
        self.probes_permitted = 0
        self.probe_results = []
        return old

    def view(self, now: float) -> dict:
        calls, failed, slow = self.rates(now)
        if self.state == "half_open":
            calls = len(self.probe_results)
            failed = sum(1 for f, _ in self.probe_results if f)
            slow = sum(1 for _, sl in self.probe_results if sl)
        return {
            "state": self.state,
            "failure_rate": round(_pct(failed, calls), 2),
            "slow_rate": round(_pct(slow, calls), 2),
            "calls_in_window": calls,
            "failed_in_window": failed,
            "slow_in_window": slow,
            "since_ms": round(self.since_ms, 3),
            "probes_permitted": self.probes_permitted,
        }
