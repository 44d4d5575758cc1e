"""One backend server: a pool of workers, a bounded queue and a service-time distribution.

A backend serves at most ``capacity`` jobs at once. A job is a forwarded
request or a health probe (the health endpoint is served by the same workers,
so a saturated backend answers its probes late, as real ones do). Jobs beyond
capacity wait in a FIFO queue of at most ``queue_limit``; beyond that the
backend answers 503 at once.

Service times are drawn from the backend's own random stream: log-normal with
the configured mean (sigma 0.5, a long right tail), or uniform on
[0.5, 1.5] x mean. ``slow_factor`` multiplies every draw.

The node talks only to its ``Host``. It emits ``started`` (with how many jobs it
serves now, for the capacity invariant) and ``rejected`` (a 503 for a full
queue); the engine narrates and checks them.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any, NamedTuple

from ..kernel.cluster import ClusterNode, Host
from ..kernel.network import Message

SIGMA = 0.5
PROBE_MS = 2.0  # mean work of one health-check request, before the slow factor

REQUEST, PROBE = "request", "probe"


class BackendSpec(NamedTuple):
    capacity: int
    queue_limit: int
    service_ms: float
    distribution: str  # "lognormal" | "uniform"


class Job(NamedTuple):
    kind: str  # REQUEST | PROBE
    src: str  # the balancer that sent it
    ref: int  # the balancer's connection id, or the probe id
    received_ms: float


class BackendNode(ClusterNode):
    def __init__(self, host: Host, spec: BackendSpec) -> None:
        super().__init__(host)
        self.spec = spec
        # The machine's properties and its exported metrics survive a crash.
        self.slow_factor = 1.0
        self.served = 0  # requests answered 200
        self.rejected = 0  # requests answered 503 (queue full)
        self.lost = 0  # jobs in service or queued when it crashed
        self._job_seq = 0
        self._reset_volatile()

    def _reset_volatile(self) -> None:
        self.in_service: dict[int, Job] = {}
        self.queue: deque[Job] = deque()

    # -- lifecycle -------------------------------------------------------------
    def start(self) -> None:
        self._reset_volatile()

    def on_crash(self) -> None:
        self.lost += len(self.in_service) + len(self.queue)
        self._reset_volatile()

    # -- work ----------------------------------------------------------------------
    def on_message(self, msg: Message) -> None:
        kind = msg.type
        if kind == "Forward":
            self._admit(Job(REQUEST, msg.src, msg.body["conn"], self.host.now))
        elif kind == "HealthCheck":
            self._admit(Job(PROBE, msg.src, msg.body["probe"], self.host.now))
        # Anything else is not for a backend; ignore it.

    def _admit(self, job: Job) -> None:
        spec = self.spec
        if len(self.in_service) < spec.capacity:
            self._start(job)
        elif len(self.queue) < spec.queue_limit:
            self.queue.append(job)
        else:
            self._reply(job, 503, "queue full")
            if job.kind == REQUEST:
                self.rejected += 1
                self.host.emit("rejected", src=job.src)

    def _start(self, job: Job) -> None:
        self._job_seq += 1
        key = self._job_seq
        self.in_service[key] = job
        mean = self.spec.service_ms if job.kind == REQUEST else PROBE_MS
        self.host.set_timer(f"job{key}", self._draw(mean), lambda: self._finish(key))
        self.host.emit("started", active=len(self.in_service))

    def _draw(self, mean: float) -> float:
        rng = self.host.rng
        if self.spec.distribution == "uniform":
            base = rng.uniform(0.5 * mean, 1.5 * mean)
        else:
            base = rng.lognormvariate(math.log(mean) - SIGMA * SIGMA / 2.0, SIGMA)
        return base * self.slow_factor

    def _finish(self, key: int) -> None:
        job = self.in_service.pop(key)
        if job.kind == REQUEST:
            self.served += 1
        self._reply(job, 200, "")
        if self.queue:
            self._start(self.queue.popleft())

    def _reply(self, job: Job, status: int, why: str) -> None:
        if job.kind == REQUEST:
            self.host.send(job.src, "Response", {"conn": job.ref, "status": status, "why": why})
        else:
            self.host.send(job.src, "HealthReply", {"probe": job.ref, "ok": status == 200})

    def snapshot(self) -> dict[str, Any]:
        return {"active": len(self.in_service), "queued": len(self.queue)}
