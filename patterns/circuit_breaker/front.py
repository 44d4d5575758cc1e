"""The front service and its resilience pipeline.

A client request takes one of ``workers`` front workers (or waits in a queue
of ``queue_limit``; beyond that it is refused with 503). The worker calls each
downstream in the request's fan-out in parallel and is held until every call
has ended; then the client gets 200 (every call ok or fell back) or 502.

Each call goes through the pipeline, outermost first (resilience4j's
recommended order)::

    fallback( retry( breaker( bulkhead( timeout( call ) ) ) ) )

- breaker: one per downstream; an open breaker refuses the attempt at once
  ("short-circuited"), half-open lets ``half_open_calls`` probes through;
- bulkhead: at most ``bulkhead_limit`` attempts in flight to each downstream;
  a full bulkhead refuses the attempt at once;
- timeout: an attempt that has no reply after ``timeout_ms`` fails;
- retry: a failed or timed-out attempt is retried after a backoff (fixed,
  exponential, or exponential with full jitter), up to ``max_attempts``,
  within the retry budget (retries in the last second at most
  ``budget_ratio`` x first attempts in the last second + ``budget_min_per_s``).
  Refusals (short-circuit, full bulkhead) are not retried: retrying them only
  adds load where the pipeline already decided to shed it;
- fallback: a call that finally failed returns a default answer, or the last
  good answer from that downstream (``cached``).

The node reads its settings from the shared ``Config`` (the operator pushes
changes live) and emits facts for the engine to count, narrate and check.
Its breakers, budget and cache are volatile: a crash loses them.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from ..kernel.cluster import ClusterNode, Host
from ..kernel.network import Message
from .breaker import Breaker, BreakerSettings

POLICIES = ("none", "fixed", "exponential", "exponential_jitter")
BUDGET_WINDOW_MS = 1000.0


@dataclass
class RetrySettings:
    policy: str = "exponential_jitter"
    max_attempts: int = 3
    base_ms: float = 50.0
    cap_ms: float = 1000.0
    budget: bool = True
    budget_ratio: float = 0.2
    budget_min_per_s: float = 5.0

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class Config:
    workers: int
    queue_limit: int
    timeout_ms: float
    bulkhead_limit: int
    fallback_mode: str  # "default" | "cached"
    breaker: BreakerSettings
    retry: RetrySettings
    pipeline: dict[str, bool] = field(default_factory=dict)  # breaker, retry, bulkhead, fallback


class Job:
    __slots__ = ("req", "client", "fanout", "results", "pending", "started_ms")

    def __init__(self, req: int, client: str, fanout: list[str]) -> None:
        self.req = req
        self.client = client
        self.fanout = fanout
        self.results: dict[str, str] = {}
        self.pending = len(fanout)
        self.started_ms = 0.0


class Call:
    __slots__ = ("id", "job", "downstream", "attempt")

    def __init__(self, call_id: int, job: Job, downstream: str) -> None:
        self.id = call_id
        self.job = job
        self.downstream = downstream
        self.attempt = 0


class Attempt:
    __slots__ = ("key", "call", "sent_ms", "generation", "probe", "guarded")

    def __init__(self, key: int, call: Call, sent_ms: float, generation: int, probe: bool, guarded: bool) -> None:
        self.key = key
        self.call = call
        self.sent_ms = sent_ms
        self.generation = generation
        self.probe = probe
        self.guarded = guarded  # sent through the breaker: its outcome is recorded even if the breaker is off by then


def backoff_ms(settings: RetrySettings, attempt: int, rng) -> float:
    """The wait before attempt ``attempt + 1`` (``attempt`` has just failed)."""
    if settings.policy == "fixed":
        return settings.base_ms
    ceiling = min(settings.cap_ms, settings.base_ms * (2 ** (attempt - 1)))
    if settings.policy == "exponential":
        return ceiling
    return ceiling * rng.random()  # full jitter: uniform in [0, ceiling)


class FrontNode(ClusterNode):
    def __init__(self, host: Host, config: Config, downstreams: list[str]) -> None:
        super().__init__(host)
        self.cfg = config
        self.downstreams = downstreams
        self._reset()

    def _reset(self) -> None:
        self.busy: dict[int, Job] = {}
        self.queue: deque[Job] = deque()
        self.breakers = {d: Breaker(d, self.cfg.breaker) for d in self.downstreams}
        self.in_flight = {d: 0 for d in self.downstreams}
        self.attempts: dict[int, Attempt] = {}
        self.firsts: dict[str, deque[float]] = {d: deque() for d in self.downstreams}
        self.retries: dict[str, deque[float]] = {d: deque() for d in self.downstreams}
        self.cache: dict[str, int] = {}
        self._next_call = 0
        self._next_key = 0

    def start(self) -> None:
        self._reset()
        for d in self.downstreams:
            self.host.emit("breaker_reset", downstream=d)

    def on_crash(self) -> None:
        self._reset()

    # -- requests ----------------------------------------------------------------------
    def on_message(self, msg: Message) -> None:
        if msg.type == "Request":
            body = msg.body
            job = Job(body["req"], msg.src, list(body["fanout"]))
            cfg = self.cfg
            if len(self.busy) < cfg.workers:
                self._start(job)
            elif len(self.queue) < cfg.queue_limit:
                self.queue.append(job)
            else:
                self.host.emit("front_rejected", req=job.req)
                self.host.send(job.client, "Response", {"req": job.req, "status": 503, "why": "front overloaded"})
        elif msg.type == "Reply":
            self._on_reply(msg.body)

    def _start(self, job: Job) -> None:
        job.started_ms = self.host.now
        self.busy[job.req] = job
        self.host.emit("worker_started", busy=len(self.busy))
        for d in job.fanout:
            self._next_call += 1
            call = Call(self._next_call, job, d)
            self.firsts[d].append(self.host.now)
            self._attempt(call)

    def _finish(self, job: Job) -> None:
        del self.busy[job.req]
        failed = [f"{d} {why}" for d, why in job.results.items() if why not in ("ok", "fallback")]
        status = 502 if failed else 200
        self.host.send(
            job.client,
            "Response",
            {"req": job.req, "status": status, "why": " + ".join(failed),
             "fallbacks": sum(1 for why in job.results.values() if why == "fallback")},
        )
        while self.queue and len(self.busy) < self.cfg.workers:
            self._start(self.queue.popleft())

    # -- one attempt ---------------------------------------------------------------------------
    def _attempt(self, call: Call) -> None:
        cfg = self.cfg
        d = call.downstream
        call.attempt += 1
        breaker = self.breakers[d]
        probe = False
        if cfg.pipeline["breaker"]:
            permitted, probe = breaker.try_acquire()
            if not permitted:
                self.host.emit("short_circuited", downstream=d)
                self._failed(call, "short-circuited", retryable=False)
                return
        if cfg.pipeline["bulkhead"] and self.in_flight[d] >= cfg.bulkhead_limit:
            breaker.release(probe, breaker.generation)
            self.host.emit("bulkhead_rejected", downstream=d)
            self._failed(call, "bulkhead full", retryable=False)
            return
        self._next_key += 1
        key = self._next_key
        now = self.host.now
        self.attempts[key] = Attempt(key, call, now, breaker.generation, probe, cfg.pipeline["breaker"])
        self.in_flight[d] += 1
        self.host.emit(
            "attempt", downstream=d, attempt=call.attempt, probe=probe, guarded=cfg.pipeline["breaker"],
            in_flight=self.in_flight[d],
        )
        self.host.send(d, "Call", {"key": key, "call": call.id, "attempt": call.attempt, "probe": probe})
        self.host.set_timer(f"t{key}", cfg.timeout_ms, lambda: self._timed_out(key))

    def _on_reply(self, body: Any) -> None:
        att = self.attempts.pop(body["key"], None)
        if att is None:
            self.host.emit("late_reply")
            return
        self.host.cancel_timer(f"t{att.key}")
        ok = body["ok"]
        self._ended(att, ok, body["why"])

    def _timed_out(self, key: int) -> None:
        att = self.attempts.pop(key)
        self._ended(att, False, "timeout")

    def _ended(self, att: Attempt, ok: bool, why: str) -> None:
        call = att.call
        d = call.downstream
        self.in_flight[d] -= 1
        now = self.host.now
        duration = now - att.sent_ms
        self.host.emit("attempt_done", downstream=d, ok=ok, why=why, ms=duration)
        if att.guarded:
            breaker = self.breakers[d]
            slow = duration >= breaker.settings.slow_call_ms
            change = breaker.record(now, att.generation, not ok, slow)
            if change is not None:
                self.transition(d, change[0], change[1])
        if ok:
            self.cache[d] = self.cache.get(d, 0) + 1
            self._call_done(call, "ok")
        else:
            self._failed(call, why, retryable=True)

    # -- retry and fallback ---------------------------------------------------------------------
    def _budget_allows(self, d: str) -> bool:
        r = self.cfg.retry
        if not r.budget:
            return True
        horizon = self.host.now - BUDGET_WINDOW_MS
        firsts, retries = self.firsts[d], self.retries[d]
        while firsts and firsts[0] <= horizon:
            firsts.popleft()
        while retries and retries[0] <= horizon:
            retries.popleft()
        return len(retries) < r.budget_ratio * len(firsts) + r.budget_min_per_s

    def _failed(self, call: Call, why: str, *, retryable: bool) -> None:
        cfg = self.cfg
        r = cfg.retry
        d = call.downstream
        if retryable and cfg.pipeline["retry"] and r.policy != "none" and call.attempt < r.max_attempts:
            if self._budget_allows(d):
                self.retries[d].append(self.host.now)
                delay = backoff_ms(r, call.attempt, self.host.rng)
                self.host.emit("retry", downstream=d, attempt=call.attempt + 1, delay=delay)
                self.host.set_timer(f"r{call.id}", delay, lambda: self._attempt(call))
                return
            self.host.emit("budget_exhausted", downstream=d)
        if cfg.pipeline["fallback"]:
            cached = cfg.fallback_mode == "cached" and d in self.cache
            self.host.emit("fallback", downstream=d, why=why, cached=cached)
            self._call_done(call, "fallback")
            return
        self._call_done(call, why)

    def _call_done(self, call: Call, result: str) -> None:
        job = call.job
        job.results[call.downstream] = result
        self.host.emit("call_done", downstream=call.downstream, result=result)
        job.pending -= 1
        if job.pending == 0 and job.req in self.busy:
            self._finish(job)

    # -- the breaker's own clock -----------------------------------------------------------------
    def transition(self, d: str, to: str, why: str, *, forced: bool = False) -> None:
        breaker = self.breakers[d]
        old = breaker.move(to, self.host.now)
        self.host.cancel_timer(f"half_open_{d}")
        if to == "open":
            self.host.set_timer(f"half_open_{d}", breaker.settings.wait_open_ms, lambda: self._wait_over(d))
        self.host.emit("transition", downstream=d, frm=old, to=to, why=why, forced=forced)

    def _wait_over(self, d: str) -> None:
        wait = self.breakers[d].settings.wait_open_ms
        self.transition(
            d, "half_open",
            f"{wait:g} ms in open have passed; letting {self.breakers[d].settings.half_open_calls} probe calls through",
        )

    def rejudge(self) -> None:
        """Settings changed: a closed breaker whose window now crosses a threshold opens."""
        if not self.host.alive or not self.cfg.pipeline["breaker"]:
            return
        for d, breaker in self.breakers.items():
            change = breaker.judge(self.host.now) or breaker.settle()
            if change is not None:
                self.transition(d, change[0], change[1] + " (under the new settings)")
