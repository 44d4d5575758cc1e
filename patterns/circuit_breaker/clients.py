"""The clients: Poisson arrivals from one client endpoint, a timeout per request.

A request ends exactly once: at the first Response, or as a timeout after
``timeout_ms``. Late responses are counted and ignored. Timeouts are all the
same length, so deadlines come in sending order (one deque, one timer).
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from typing import NamedTuple

from ..kernel.network import Message, Network
from ..kernel.sim import Simulator, Timer

CLIENT = "clients"


class Done(NamedTuple):
    req: int
    sent_ms: float
    done_ms: float
    ok: bool
    status: int | None  # None: the client timed out
    why: str
    fallbacks: int


class ClientPool:
    def __init__(
        self,
        *,
        sim: Simulator,
        net: Network,
        rng: random.Random,
        timeout_ms: float,
        fanout: Callable[[], list[str]],
        on_sent: Callable[[int], None],
        on_done: Callable[[Done], None],
    ) -> None:
        self.sim, self.net, self.rng = sim, net, rng
        self.timeout_ms = timeout_ms
        self.fanout = fanout
        self.on_sent, self.on_done = on_sent, on_done
        self.rate_rps = 0.0
        self.next_req = 0
        self.pending: dict[int, float] = {}
        self.late = 0
        self._deadlines: deque[tuple[float, int]] = deque()
        self._arrival: Timer | None = None
        net.attach(CLIENT, self.on_message)

    def set_rate(self, rate_rps: float) -> None:
        self.rate_rps = rate_rps
        if self._arrival is not None:
            self._arrival.cancel()
            self._arrival = None
        self._schedule()

    def _schedule(self) -> None:
        if self.rate_rps > 0:
            self._arrival = self.sim.schedule(self.rng.expovariate(self.rate_rps / 1000.0), self._arrive)

    def _arrive(self) -> None:
        self._arrival = None
        self.next_req += 1
        req = self.next_req
        now = self.sim.now
        self.pending[req] = now
        self.on_sent(req)
        self.net.send(CLIENT, "front", "Request", {"req": req, "fanout": self.fanout()})
        if not self._deadlines:
            self.sim.schedule(self.timeout_ms, self._expire)
        self._deadlines.append((now + self.timeout_ms, req))
        self._schedule()

    def on_message(self, msg: Message) -> None:
        if msg.type != "Response":
            return
        body = msg.body
        sent = self.pending.pop(body["req"], None)
        if sent is None:
            self.late += 1
            return
        status = body["status"]
        self.on_done(Done(body["req"], sent, self.sim.now, status == 200, status, body["why"], body.get("fallbacks", 0)))

    def _expire(self) -> None:
        deadlines = self._deadlines
        now = self.sim.now
        while deadlines and deadlines[0][0] <= now:
            _, req = deadlines.popleft()
            sent = self.pending.pop(req, None)
            if sent is not None:
                self.on_done(Done(req, sent, now, False, None, "timeout", 0))
        while deadlines and deadlines[0][1] not in self.pending:
            deadlines.popleft()
        if deadlines:
            self.sim.schedule(deadlines[0][0] - now, self._expire)
