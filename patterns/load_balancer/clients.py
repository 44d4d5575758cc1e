"""The client pool: Poisson arrivals from many client addresses, timeouts, latency.

Each client is a network endpoint named by its address ("10.0.0.17"), so
ip_hash has something to hash and the page can draw where requests come from.
Arrivals form a Poisson process of ``rate_rps`` (exponential gaps from the
pool's own random stream); each picks a client uniformly.

A request is sent to the VIP: the pool asks the switch (``resolve_vip``) which
balancer the VIP's address points at right now. A request ends exactly once:
at the first Response, or as a timeout after ``timeout_ms``. Late responses
are counted and ignored. Latency is measured here, at the client.

Timeouts are all the same length, so deadlines come in sending order: one
deque and one timer for its head replace a timer per request.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from typing import NamedTuple

from ..kernel.network import Message, Network
from ..kernel.sim import Simulator, Timer


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
        self.timeout_ms = timeout_ms
        self.resolve_vip = resolve_vip
        self.on_sent, self.on_done = on_sent, on_done
        self.rate_rps = 0.0
        self.next_req = 0
        self.pending: dict[int, Pending] = {}
        self.late = 0
        self._deadlines: deque[tuple[float, int]] = deque()
        self._timeout_timer: Timer | None = None
        self._arrival: Timer | None = None
        for address in addresses:
            net.attach(address, self.on_message)

    # -- arrivals ------------------------------------------------------------------
    def set_rate(self, rate_rps: float) -> None:
        """Change the arrival rate now. Poisson arrivals are memoryless, so the next gap is fresh."""
        self.rate_rps = rate_rps
        if self._arrival is not None:
            self._arrival.cancel()
            self._arrival = None
        self._schedule_arrival()

    def _schedule_arrival(self) -> None:
        if self.rate_rps > 0:
            gap = self.rng.expovariate(self.rate_rps / 1000.0)
            self._arrival = self.sim.schedule(gap, self._arrive)

    def _arrive(self) -> None:
        self._arrival = None
        addresses = self.addresses
        client = addresses[int(self.rng.random() * len(addresses))]
        self.send(client)
        self._schedule_arrival()

    def send(self, client: str) -> int:
        self.next_req += 1
        req = self.next_req
        now = self.sim.now
        target = self.resolve_vip()
        record = Pending(req, client, now, target)
        self.pending[req] = record
        self.on_sent(record)
        # With no balancer ever announced, the VIP resolves nowhere: the packet is lost.
        self.net.send(client, target or "vip", "Request", {"req": req, "client": client})
        deadlines = self._deadlines
        if not deadlines:
            self._timeout_timer = self.sim.schedule(self.timeout_ms, self._expire)
        deadlines.append((now + self.timeout_ms, req))
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

    def _expire(self) -> None:
        deadlines = self._deadlines
        now = self.sim.now
        pending = self.pending
        while deadlines and deadlines[0][0] <= now:
            _, req = deadlines.popleft()
            record = pending.pop(req, None)
            if record is not None:
                self.on_done(Done(req, record.client, record.sent_ms, now, False, None, "timeout", None))
        while deadlines and deadlines[0][1] not in pending:
            deadlines.popleft()
        self._timeout_timer = self.sim.schedule(deadlines[0][0] - now, self._expire) if deadlines else None
