"""Open-loop traffic: Poisson arrivals and equal-length client timeouts.

``PoissonArrivals`` calls ``on_arrival()`` at exponential gaps of mean
1000 / rate_rps virtual ms, drawn from the owner's own random stream (after
each arrival, so whatever the arrival draws from the same stream comes first).
Changing the rate takes effect at once: Poisson arrivals are memoryless, so the
next gap is simply drawn fresh.

``Deadlines`` times out requests that all wait the same ``timeout_ms``, so
their deadlines come in sending order: one deque and one timer for its head
replace a timer per request. A request that ended already (no longer in
``pending``) is skipped.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from typing import Any

from .sim import Simulator, Timer


class PoissonArrivals:
    def __init__(self, sim: Simulator, rng: random.Random, on_arrival: Callable[[], None]) -> None:
        self.sim, self.rng, self.on_arrival = sim, rng, on_arrival
        self.rate_rps = 0.0
        self._timer: Timer | None = None

    def set_rate(self, rate_rps: float) -> None:
        self.rate_rps = rate_rps
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._schedule()

    def _schedule(self) -> None:
        if self.rate_rps > 0:
            self._timer = self.sim.schedule(self.rng.expovariate(self.rate_rps / 1000.0), self._arrive)

    def _arrive(self) -> None:
        self._timer = None
        self.on_arrival()
        self._schedule()


class Deadlines:
    def __init__(
        self, sim: Simulator, timeout_ms: float, pending: dict[int, Any], on_timeout: Callable[[int, Any], None]
    ) -> None:
        """``pending`` maps each open request to its record; ``on_timeout(req, record)``
        is called (with the record already removed) when a request times out."""
        self.sim, self.timeout_ms, self.pending, self.on_timeout = sim, timeout_ms, pending, on_timeout
        self._queue: deque[tuple[float, int]] = deque()

    def add(self, req: int) -> None:
        """Start ``req``'s timeout now (it must already be in ``pending``)."""
        queue = self._queue
        if not queue:
            self.sim.schedule(self.timeout_ms, self._expire)
        queue.append((self.sim.now + self.timeout_ms, req))

    def _expire(self) -> None:
        queue, pending = self._queue, self.pending
        now = self.sim.now
        while queue and queue[0][0] <= now:
            _, req = queue.popleft()
            record = pending.pop(req, None)
            if record is not None:
                self.on_timeout(req, record)
        while queue and queue[0][1] not in pending:
            queue.popleft()
        if queue:
            self.sim.schedule(queue[0][0] - now, self._expire)
