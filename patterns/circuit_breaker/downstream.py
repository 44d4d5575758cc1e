"""A downstream service: workers, a queue, a latency range, an error rate, hangs.

It serves at most ``capacity`` calls at once; more wait in a FIFO queue of at
most ``queue_limit``; beyond that it answers an error at once ("overloaded").
A call takes a uniform draw from ``latency_ms`` (times ``GRAY_SLOWDOWN`` when
the service is gray), then answers an error with probability ``error_rate``.
With probability ``hang_rate`` (``GRAY_HANG`` when gray and no hang rate is
set) it never answers at all: the caller's timeout is the only way out. A hung
call does not hold a worker. Work the caller has given up on is still done:
the downstream cannot know.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from ..kernel.cluster import ClusterNode, Host
from ..kernel.network import Message

GRAY_SLOWDOWN = 8.0
GRAY_HANG = 0.2


@dataclass
class DownstreamSpec:
    capacity: int
    queue_limit: int
    latency_ms: tuple[float, float]
    error_rate: float = 0.0
    hang_rate: float = 0.0
    gray: bool = False


class DownstreamNode(ClusterNode):
    def __init__(self, host: Host, spec: DownstreamSpec) -> None:
        super().__init__(host)
        self.spec = spec
        self.received = 0
        self.served = 0
        self.errors = 0
        self.hung = 0
        self.lost = 0
        self._seq = 0
        self._reset()

    def _reset(self) -> None:
        self.in_service: dict[int, tuple[str, int]] = {}
        self.queue: deque[tuple[str, int]] = deque()

    def start(self) -> None:
        self._reset()

    def on_crash(self) -> None:
        self.lost += len(self.in_service) + len(self.queue)
        self._reset()

    @property
    def in_flight(self) -> int:
        return len(self.in_service) + len(self.queue)

    def on_message(self, msg: Message) -> None:
        if msg.type != "Call":
            return
        self.received += 1
        job = (msg.src, msg.body["key"])
        spec = self.spec
        if len(self.in_service) < spec.capacity:
            self._start(job)
        elif len(self.queue) < spec.queue_limit:
            self.queue.append(job)
        else:
            self.errors += 1
            self.host.send(job[0], "Reply", {"key": job[1], "ok": False, "why": "overloaded"})

    def _start(self, job: tuple[str, int]) -> None:
        spec = self.spec
        rng = self.host.rng
        hang = spec.hang_rate if spec.hang_rate or not spec.gray else GRAY_HANG
        if hang and rng.random() < hang:
            self.hung += 1
            if self.queue:
                self._start(self.queue.popleft())
            return
        lo, hi = spec.latency_ms
        delay = lo + (hi - lo) * rng.random()
        if spec.gray:
            delay *= GRAY_SLOWDOWN
        self._seq += 1
        key = self._seq
        self.in_service[key] = job
        self.host.set_timer(f"job{key}", delay, lambda: self._finish(key))

    def _finish(self, key: int) -> None:
        src, call_key = self.in_service.pop(key)
        spec = self.spec
        ok = not (spec.error_rate and self.host.rng.random() < spec.error_rate)
        if ok:
            self.served += 1
        else:
            self.errors += 1
        self.host.send(src, "Reply", {"key": call_key, "ok": ok, "why": "" if ok else "error"})
        if self.queue:
            self._start(self.queue.popleft())

    def snapshot(self) -> dict[str, Any]:
        return {"in_service": len(self.in_service), "queued": len(self.queue)}
