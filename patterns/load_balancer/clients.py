"""The client pool: Poisson arrivals from many client addresses, timeouts, latency.

Each client is a network endpoint named by its address ("10.0.0.17"), so
ip_hash has something to hash and the page can draw where requests come from.
Arrivals form a Poisson process of ``rate_rps`` (exponential gaps from the
pool's own random stream); each picks a client uniformly.

A request is sent to the VIP: the pool asks the switch (``resolve_vip``) which
balancer the VIP's address points at right now. A request ends exactly once:
at the first Response, or as a timeout after ``timeout_ms``. Late responses
are counted and ignored. Latency is measured here, at the client.

The arrivals and the timeouts are the kernel's (``kernel.arrivals``).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import NamedTuple

from ..kernel.arrivals import Deadlines, PoissonArrivals
from ..kernel.network import Message, Network
from ..kernel.sim import Simulator


class Pending(NamedTuple):
    req: int
    client: str
    sent_ms: float
    to: str | None  # where the switch sent it


class Done(NamedTuple):
    req: int
    client: str
    sent_ms: float
    done_ms: float
    ok: bool
    status: int | None  # HTTP status, None for a client-side timeout
    why: str
    backend: str | None  # as the response says; None when the client never heard


def client_addresses(count: int, rng: random.Random) -> list[str]:
    """``count`` distinct addresses in 10.0.0.0/16, sorted, from a seeded stream."""
    picks = sorted(rng.sample(range(10, 10 + 250 * ((count + 124) // 125 + 1)), count))
    return [f"10.0.{n // 250}.{n % 250 + 2}" for n in picks]


class ClientPool:
    def __init__(
        self,
        *,
        sim: Simulator,
        net: Network,
        rng: random.Random,
        addresses: list[str],
        timeout_ms: float,
        resolve_vip: Callable[[], str | None],
        on_sent: Callable[[Pending], None],
        on_done: Callable[[Done], None],
    ) -> None:
        self.sim, self.net, self.rng = sim, net, rng
        self.addresses = addresses
        self.resolve_vip = resolve_vip
        self.on_sent, self.on_done = on_sent, on_done
        self.next_req = 0
        self.pending: dict[int, Pending] = {}
        self.late = 0
        self.arrivals = PoissonArrivals(sim, rng, self._arrive)
        self.deadlines = Deadlines(sim, timeout_ms, self.pending, self._timed_out)
        for address in addresses:
            net.attach(address, self.on_message)

    # -- arrivals ------------------------------------------------------------------
    @property
    def rate_rps(self) -> float:
        return self.arrivals.rate_rps

    def set_rate(self, rate_rps: float) -> None:
        """Change the arrival rate now. Poisson arrivals are memoryless, so the next gap is fresh."""
        self.arrivals.set_rate(rate_rps)

    def _arrive(self) -> None:
        addresses = self.addresses
        self.send(addresses[int(self.rng.random() * len(addresses))])

    def send(self, client: str) -> int:
        self.next_req += 1
        req = self.next_req
        target = self.resolve_vip()
        record = Pending(req, client, self.sim.now, target)
        self.pending[req] = record
        self.on_sent(record)
        # With no balancer ever announced, the VIP resolves nowhere: the packet is lost.
        self.net.send(client, target or "vip", "Request", {"req": req, "client": client})
        self.deadlines.add(req)
        return req

    # -- endings ------------------------------------------------------------------------
    def on_message(self, msg: Message) -> None:
        if msg.type != "Response":
            return
        body = msg.body
        record = self.pending.pop(body["req"], None)
        if record is None:
            self.late += 1
            return
        status = body["status"]
        self.on_done(
            Done(record.req, record.client, record.sent_ms, self.sim.now, status == 200, status, body["why"], body["backend"])
        )

    def _timed_out(self, req: int, record: Pending) -> None:
        self.on_done(Done(req, record.client, record.sent_ms, self.sim.now, False, None, "timeout", None))
