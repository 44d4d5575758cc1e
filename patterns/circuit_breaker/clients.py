"""The clients: Poisson arrivals from one client endpoint, a timeout per request.

A request ends exactly once: at the first Response, or as a timeout after
``timeout_ms``. Late responses are counted and ignored. The arrivals and the
timeouts are the kernel's (``kernel.arrivals``).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import NamedTuple

from ..kernel.arrivals import Deadlines, PoissonArrivals
from ..kernel.network import Message, Network
from ..kernel.sim import Simulator

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
        self.sim, self.net = sim, net
        self.fanout = fanout
        self.on_sent, self.on_done = on_sent, on_done
        self.next_req = 0
        self.pending: dict[int, float] = {}  # req -> sent at
        self.late = 0
        self.arrivals = PoissonArrivals(sim, rng, self._arrive)
        self.deadlines = Deadlines(sim, timeout_ms, self.pending, self._timed_out)
        net.attach(CLIENT, self.on_message)

    @property
    def rate_rps(self) -> float:
        return self.arrivals.rate_rps

    def set_rate(self, rate_rps: float) -> None:
        self.arrivals.set_rate(rate_rps)

    def _arrive(self) -> None:
        self.next_req += 1
        req = self.next_req
        self.pending[req] = self.sim.now
        self.on_sent(req)
        self.net.send(CLIENT, "front", "Request", {"req": req, "fanout": self.fanout()})
        self.deadlines.add(req)

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

    def _timed_out(self, req: int, sent: float) -> None:
        self.on_done(Done(req, sent, self.sim.now, False, None, "timeout", 0))
