"""The circuit breaker engine: clients -> front -> downstreams d1..dK, through a resilience pipeline.

Node ids are ``front`` and the downstreams ``d1``..``dK``; the clients are one
network endpoint, ``clients``. Every call is real messages: Request (client ->
front), Call (front -> downstream), Reply (downstream -> front), Response
(front -> client).

The engine is the operator (commands change the shared ``Config`` the front
reads live, and the downstreams' fault settings), the narrator (node facts
become events) and the observer (counters in 100 ms buckets for the stats
window and the series). Nothing it observes feeds back into the run.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from typing import Any, ClassVar

from ..errors import InvalidCommand, InvalidParameter
from ..kernel.cluster import ClusterEngine
from ..kernel.network import Message
from ..kernel.rng import derive_rng
from ..text import and_list
from ..validate import flag, number, number_pair, only_keys, text
from .breaker import STATE_NUMBER, STATES, BreakerSettings
from .checker import CircuitBreakerChecker
from .clients import CLIENT, ClientPool, Done
from .downstream import DownstreamNode, DownstreamSpec
from .front import POLICIES, Config, FrontNode, RetrySettings

MAX_DOWNSTREAMS = 4
MAX_RATE_RPS = 1000.0
BUCKET_MS = 100.0
STATS_BUCKETS = 20  # 2 s window
SERIES_POINTS = 300
SERIES_WINDOW_MS = 1000.0
MESSAGES_IN_VIEW = 300
EVENTS_IN_VIEW = 60
TRANSITIONS_KEPT = 20
PIPELINE_ORDER = ["fallback", "retry", "breaker", "bulkhead", "timeout"]
PIPELINE_KEYS = ["breaker", "retry", "bulkhead", "fallback"]
FALLBACK_MODES = ("default", "cached")
WINDOW_TYPES = ("count", "time")
BREAKER_KEYS = [
    "window_type", "window_size", "window_ms", "failure_rate_threshold", "slow_call_rate_threshold",
    "slow_call_ms", "minimum_calls", "wait_open_ms", "half_open_calls",
]
RETRY_KEYS = ["policy", "max_attempts", "base_ms", "cap_ms", "budget", "budget_ratio", "budget_min_per_s"]
DOWNSTREAM_KEYS = ["error_rate", "latency_ms", "hang_rate", "gray"]
COUNTERS = [
    "requests", "calls_needed", "client_done", "client_errors", "attempts", "first_attempts", "retries",
    "successes", "failures", "timeouts", "short_circuited", "bulkhead_rejected", "fallbacks",
    "front_rejected", "budget_exhausted",
]
PARAMS = [
    "downstreams", "front_workers", "front_queue", "rate_rps", "fanout", "client_timeout_ms", "timeout_ms",
    "downstream_capacity", "downstream_queue", "downstream_latency_ms", "error_rate",
    "retry_policy", "max_attempts", "base_ms", "cap_ms", "budget", "budget_ratio", "budget_min_per_s",
    *BREAKER_KEYS, "bulkhead_limit", "fallback_mode", *PIPELINE_KEYS,
    "latency_ms", "drop_rate", "duplicate_rate", "reorder_rate",
]


def percentile(ordered: list[float], fraction: float) -> float | None:
    if not ordered:
        return None
    return ordered[max(1, math.ceil(fraction * len(ordered))) - 1]


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def breaker_values(src: Mapping[str, Any], base: BreakerSettings, error: type[ValueError]) -> dict[str, Any]:
    """Validated breaker settings from ``src`` over ``base`` (nothing is changed here)."""
    v = {
        "window_type": text(src, "window_type", choices=WINDOW_TYPES, default=base.window_type, error=error),
        "window_size": number(src, "window_size", lo=1, hi=1000, integer=True, default=base.window_size, error=error),
        "window_ms": number(src, "window_ms", lo=100, hi=60_000, default=base.window_ms, error=error),
        "failure_rate_threshold": number(
            src, "failure_rate_threshold", lo=1, hi=100, default=base.failure_rate_threshold, error=error
        ),
        "slow_call_rate_threshold": number(
            src, "slow_call_rate_threshold", lo=1, hi=100, default=base.slow_call_rate_threshold, error=error
        ),
        "slow_call_ms": number(src, "slow_call_ms", lo=1, hi=60_000, default=base.slow_call_ms, error=error),
        "minimum_calls": number(src, "minimum_calls", lo=1, hi=1000, integer=True, default=base.minimum_calls, error=error),
        "wait_open_ms": number(src, "wait_open_ms", lo=10, hi=60_000, default=base.wait_open_ms, error=error),
        "half_open_calls": number(
            src, "half_open_calls", lo=1, hi=100, integer=True, default=base.half_open_calls, error=error
        ),
    }
    # As in resilience4j, a count-based window judges at min(minimum_calls, window_size) calls.
    return v


def retry_values(src: Mapping[str, Any], base: RetrySettings, error: type[ValueError], prefix: str = "") -> dict[str, Any]:
    policy_key = prefix + "policy" if prefix else "policy"
    v = {
        "policy": text(src, policy_key, choices=POLICIES, default=base.policy, error=error),
        "max_attempts": number(src, "max_attempts", lo=1, hi=10, integer=True, default=base.max_attempts, error=error),
        "base_ms": number(src, "base_ms", lo=1, hi=10_000, default=base.base_ms, error=error),
        "cap_ms": number(src, "cap_ms", lo=1, hi=60_000, default=base.cap_ms, error=error),
        "budget": flag(src, "budget", default=base.budget, error=error),
        "budget_ratio": number(src, "budget_ratio", lo=0, hi=10, default=base.budget_ratio, error=error),
        "budget_min_per_s": number(src, "budget_min_per_s", lo=0, hi=1000, default=base.budget_min_per_s, error=error),
    }
    if v["cap_ms"] < v["base_ms"]:
        raise error(f"'cap_ms' ({v['cap_ms']:g}) must be at least 'base_ms' ({v['base_ms']:g})")
    return v


def _message_info(msg: Message) -> dict[str, Any]:
    body = msg.body
    if msg.type == "Request":
        return {"req": body["req"]}
    if msg.type == "Call":
        return {"call": body["call"], "attempt": body["attempt"], "probe": body["probe"]}
    if msg.type == "Reply":
        return {"ok": body["ok"], **({"why": body["why"]} if body["why"] else {})}
    if msg.type == "Response":
        return {"req": body["req"], "status": body["status"]}
    return {}


class CircuitBreakerEngine(ClusterEngine):
    kind = "circuit_breaker"
    title = "Circuit breaker, retries and bulkheads"
    COMMANDS: ClassVar[dict[str, str]] = {
        **ClusterEngine.DISKLESS_COMMANDS,
        "traffic": "cmd_traffic",
        "downstream": "cmd_downstream",
        "breaker": "cmd_breaker",
        "retry": "cmd_retry",
        "bulkhead": "cmd_bulkhead",
        "fallback": "cmd_fallback",
        "pipeline": "cmd_pipeline",
        "timeout": "cmd_timeout",
        "force": "cmd_force",
        "front": "cmd_front",
    }

    def __init__(self, *, seed: int = 1, **params: Any) -> None:
        only_keys(params, PARAMS, error=InvalidParameter)
        err = InvalidParameter
        count = number(params, "downstreams", lo=1, hi=MAX_DOWNSTREAMS, integer=True, default=2, error=err)
        ids = [f"d{i}" for i in range(1, count + 1)]
        workers = number(params, "front_workers", lo=1, hi=1000, integer=True, default=20, error=err)
        front_queue = number(params, "front_queue", lo=0, hi=10_000, integer=True, default=50, error=err)
        rate = number(params, "rate_rps", lo=0, hi=MAX_RATE_RPS, default=50.0, error=err)
        fanout = self._fanout_arg(params, ids, list(ids), err)
        client_timeout = number(params, "client_timeout_ms", lo=10, hi=120_000, default=5000.0, error=err)
        timeout = number(params, "timeout_ms", lo=1, hi=60_000, default=500.0, error=err)
        d_capacity = number(params, "downstream_capacity", lo=1, hi=1000, integer=True, default=100, error=err)
        d_queue = number(params, "downstream_queue", lo=0, hi=10_000, integer=True, default=1000, error=err)
        d_latency = number_pair(params, "downstream_latency_ms", lo=0, hi=10_000, default=(10.0, 30.0), error=err)
        error_rate = number(params, "error_rate", lo=0, hi=1, default=0.0, error=err)
        retry = retry_values(params, RetrySettings(), err, prefix="retry_")
        breaker = breaker_values(params, BreakerSettings(), err)
        bulkhead = number(params, "bulkhead_limit", lo=1, hi=1000, integer=True, default=10, error=err)
        fallback_mode = text(params, "fallback_mode", choices=FALLBACK_MODES, default="default", error=err)
        pipeline = {
            "breaker": flag(params, "breaker", default=True, error=err),
            "retry": flag(params, "retry", default=True, error=err),
            "bulkhead": flag(params, "bulkhead", default=True, error=err),
            "fallback": flag(params, "fallback", default=False, error=err),
        }
        network = self.network_params(params, default_latency_ms=(1.0, 3.0))
        normalized = {
            "downstreams": count, "front_workers": workers, "front_queue": front_queue, "rate_rps": rate,
            "fanout": list(fanout), "client_timeout_ms": client_timeout, "timeout_ms": timeout,
            "downstream_capacity": d_capacity, "downstream_queue": d_queue, "downstream_latency_ms": list(d_latency),
            "error_rate": error_rate, "retry_policy": retry["policy"],
            **{k: retry[k] for k in RETRY_KEYS if k != "policy"},
            **breaker, "bulkhead_limit": bulkhead, "fallback_mode": fallback_mode, **pipeline,
            **network,
        }
        super().__init__(seed=seed, params=normalized, network=network)
        self.config = Config(
            workers=workers,
            queue_limit=front_queue,
            timeout_ms=timeout,
            bulkhead_limit=bulkhead,
            fallback_mode=fallback_mode,
            breaker=BreakerSettings(**breaker),
            retry=RetrySettings(**retry),
            pipeline=pipeline,
        )
        self.fanout = list(fanout)
        self.downstream_ids = ids
        self.front: FrontNode = self.add_node("front", lambda host: FrontNode(host, self.config, ids))  # type: ignore[assignment]
        self.downstreams: dict[str, DownstreamNode] = {}
        for d in ids:
            spec = DownstreamSpec(d_capacity, d_queue, d_latency, error_rate)
            self.downstreams[d] = self.add_node(d, lambda host, s=spec: DownstreamNode(host, s))  # type: ignore[assignment]
        self.checker = CircuitBreakerChecker(self.front, self.config)
        # Observation only.
        self.transitions: dict[str, deque[dict[str, Any]]] = {d: deque(maxlen=TRANSITIONS_KEPT) for d in ids}
        self.known_state = {d: "closed" for d in ids}
        self.totals = dict.fromkeys(COUNTERS, 0)
        self.current = dict.fromkeys(COUNTERS, 0)
        self.buckets: deque[dict[str, int]] = deque(maxlen=STATS_BUCKETS)
        self.latencies: deque[tuple[float, float, bool]] = deque()
        self.series: deque[tuple] = deque(maxlen=SERIES_POINTS)
        self.recorder: list[Done] | None = None
        self.error_reasons: dict[str, int] = {}
        self.call_results: dict[str, dict[str, int]] = {d: {} for d in ids}  # how each call ended, after retries
        self.pool = ClientPool(
            sim=self.sim,
            net=self.net,
            rng=derive_rng(seed, "clients", "traffic"),
            timeout_ms=client_timeout,
            fanout=lambda: self.fanout,
            on_sent=self._on_sent,
            on_done=self._on_done,
        )
        for node in self.nodes.values():
            node.start() if node is not self.front else None
        self.sim.schedule(BUCKET_MS, self._sample)
        self.pool.set_rate(rate)

    # -- validation helpers --------------------------------------------------------------
    def _fanout_arg(self, src: Mapping[str, Any], ids: list[str], default: list[str], error) -> list[str]:
        if "fanout" not in src:
            return default
        value = src["fanout"]
        if isinstance(value, str) and value in ids:
            value = [value]  # one downstream may be named alone
        if (
            not isinstance(value, list) or not value or not all(isinstance(v, str) and v in ids for v in value)
            or len(set(value)) != len(value)
        ):
            raise error(f"'fanout' must be a non-empty list of distinct downstreams from {', '.join(ids)}, not {value!r}")
        return [d for d in ids if d in value]

    def downstream_arg(self, cmd: Mapping[str, Any], what: str) -> str:
        node_id = self.node_arg(cmd)
        if node_id not in self.downstreams:
            raise InvalidCommand(f"{node_id} is the front service; only downstreams ({', '.join(self.downstreams)}) {what}")
        return node_id

    def _front_alive(self, what: str) -> None:
        if not self.hosts["front"].alive:
            raise InvalidCommand(f"the front is down and its breakers with it; restart it before you {what}")

    # -- commands --------------------------------------------------------------------------------
    def cmd_traffic(self, cmd: Mapping[str, Any]) -> None:
        only_keys(cmd, ["rate_rps", "fanout"])
        rate = number(cmd, "rate_rps", lo=0, hi=MAX_RATE_RPS, default=self.pool.rate_rps)
        fanout = self._fanout_arg(cmd, self.downstream_ids, self.fanout, InvalidCommand)
        if "rate_rps" not in cmd and "fanout" not in cmd:
            raise InvalidCommand("'traffic' needs 'rate_rps' (0 to 1000) and/or 'fanout' (a list of downstreams)")
        self.fanout = fanout
        self.pool.set_rate(rate)
        if rate:
            self.narrate(f"clients now send {rate:g} requests a second; each needs a call to {and_list(fanout)}", "config")
        else:
            self.narrate("clients stopped sending", "config")

    def cmd_downstream(self, cmd: Mapping[str, Any]) -> None:
        only_keys(cmd, ["node", *DOWNSTREAM_KEYS])
        d = self.downstream_arg(cmd, "take 'downstream' settings")
        spec = self.downstreams[d].spec
        if not any(k in cmd for k in DOWNSTREAM_KEYS):
            raise InvalidCommand(f"'downstream' needs at least one of {', '.join(DOWNSTREAM_KEYS)}")
        error_rate = number(cmd, "error_rate", lo=0, hi=1, default=spec.error_rate)
        latency = number_pair(cmd, "latency_ms", lo=0, hi=60_000, default=spec.latency_ms)
        hang = number(cmd, "hang_rate", lo=0, hi=1, default=spec.hang_rate)
        gray = flag(cmd, "gray", default=spec.gray)
        spec.error_rate, spec.latency_ms, spec.hang_rate, spec.gray = error_rate, latency, hang, gray
        parts = [f"{latency[0]:g}-{latency[1]:g} ms a call", f"{error_rate:.0%} errors"]
        if hang:
            parts.append(f"{hang:.0%} of calls hang (never answered)")
        text_ = f"{d}: " + ", ".join(parts)
        if gray:
            text_ += (
                "; gray failure: calls are 8x slower and some hang, yet it is up and would pass a health check"
            )
        self.narrate(text_, "fault", node=d)

    def cmd_breaker(self, cmd: Mapping[str, Any]) -> None:
        only_keys(cmd, BREAKER_KEYS)
        if not any(k in cmd for k in BREAKER_KEYS):
            raise InvalidCommand(f"'breaker' needs at least one of {', '.join(BREAKER_KEYS)}")
        settings = self.config.breaker
        values = breaker_values(cmd, settings, InvalidCommand)
        for key, value in values.items():
            setattr(settings, key, value)
        changed = ", ".join(f"{k}={cmd[k]}" for k in BREAKER_KEYS if k in cmd)
        self.narrate(f"breaker settings: {changed}", "config")
        self.front.rejudge()

    def cmd_retry(self, cmd: Mapping[str, Any]) -> None:
        only_keys(cmd, RETRY_KEYS)
        if not any(k in cmd for k in RETRY_KEYS):
            raise InvalidCommand(f"'retry' needs at least one of {', '.join(RETRY_KEYS)}")
        settings = self.config.retry
        values = retry_values(cmd, settings, InvalidCommand)
        for key, value in values.items():
            setattr(settings, key, value)
        s = settings
        budget = f", budget {s.budget_ratio:g} x first attempts + {s.budget_min_per_s:g}/s" if s.budget else ", no budget"
        self.narrate(
            f"retry: {s.policy}, up to {s.max_attempts} attempts, base {s.base_ms:g} ms, cap {s.cap_ms:g} ms{budget}",
            "config",
        )

    def cmd_bulkhead(self, cmd: Mapping[str, Any]) -> None:
        only_keys(cmd, ["limit"])
        limit = number(cmd, "limit", lo=1, hi=1000, integer=True)
        self.config.bulkhead_limit = limit
        self.narrate(f"bulkhead: at most {limit} calls in flight to each downstream", "config")

    def cmd_fallback(self, cmd: Mapping[str, Any]) -> None:
        only_keys(cmd, ["mode"])
        mode = text(cmd, "mode", choices=FALLBACK_MODES)
        self.config.fallback_mode = mode
        self.narrate(f"fallback answers with the {'last good response' if mode == 'cached' else 'default response'}", "config")

    def cmd_pipeline(self, cmd: Mapping[str, Any]) -> None:
        only_keys(cmd, PIPELINE_KEYS)
        if not any(k in cmd for k in PIPELINE_KEYS):
            raise InvalidCommand(f"'pipeline' needs at least one of {', '.join(PIPELINE_KEYS)} (true or false)")
        values = {k: flag(cmd, k, default=self.config.pipeline[k]) for k in PIPELINE_KEYS}
        self.config.pipeline.update(values)
        on = [k for k in PIPELINE_ORDER if k == "timeout" or self.config.pipeline[k]]
        self.narrate(f"pipeline: {' -> '.join(on)}", "config")
        if self.hosts["front"].alive:
            self.front.rejudge()

    def cmd_timeout(self, cmd: Mapping[str, Any]) -> None:
        only_keys(cmd, ["timeout_ms"])
        self.config.timeout_ms = number(cmd, "timeout_ms", lo=1, hi=60_000)
        self.narrate(f"each call times out after {self.config.timeout_ms:g} ms", "config")

    def cmd_front(self, cmd: Mapping[str, Any]) -> None:
        only_keys(cmd, ["workers", "queue_limit"])
        if "workers" not in cmd and "queue_limit" not in cmd:
            raise InvalidCommand("'front' needs 'workers' and/or 'queue_limit'")
        workers = number(cmd, "workers", lo=1, hi=1000, integer=True, default=self.config.workers)
        queue = number(cmd, "queue_limit", lo=0, hi=10_000, integer=True, default=self.config.queue_limit)
        self.config.workers, self.config.queue_limit = workers, queue
        self.narrate(f"the front has {workers} workers and a queue of {queue}", "config")

    def cmd_force(self, cmd: Mapping[str, Any]) -> None:
        only_keys(cmd, ["state", "node"])
        state = text(cmd, "state", choices=STATES)
        targets = [self.downstream_arg(cmd, "have breakers")] if "node" in cmd else list(self.downstreams)
        self._front_alive("force a breaker")
        for d in targets:
            self.front.transition(d, state, f"forced {state.replace('_', '-')} by the learner", forced=True)

    # -- facts from the nodes ---------------------------------------------------------------------
    def on_node_event(self, node_id: str, event: str, fields: dict[str, Any]) -> None:
        cur, tot = self.current, self.totals
        checker = self.checker
        checker.now = self.sim.now
        if event == "attempt":
            checker.on_attempt(fields["downstream"], fields["probe"], fields["guarded"], fields["in_flight"])
            key = "first_attempts" if fields["attempt"] == 1 else "retries"
            for k in ("attempts", key):
                cur[k] += 1
                tot[k] += 1
            dk = "att:" + fields["downstream"]
            cur[dk] = cur.get(dk, 0) + 1
        elif event == "attempt_done":
            key = "successes" if fields["ok"] else "failures"
            cur[key] += 1
            tot[key] += 1
            if fields["why"] == "timeout":
                cur["timeouts"] += 1
                tot["timeouts"] += 1
        elif event in ("short_circuited", "bulkhead_rejected", "front_rejected", "budget_exhausted"):
            cur[event] += 1
            tot[event] += 1
        elif event == "fallback":
            cur["fallbacks"] += 1
            tot["fallbacks"] += 1
        elif event == "call_done":
            results = self.call_results[fields["downstream"]]
            results[fields["result"]] = results.get(fields["result"], 0) + 1
        elif event == "worker_started":
            checker.on_worker_started(fields["busy"])
        elif event == "transition":
            self._on_transition(fields["downstream"], fields["frm"], fields["to"], fields["why"], fields["forced"])
        elif event == "breaker_reset":
            d = fields["downstream"]
            if self.known_state[d] != "closed":
                self._on_transition(
                    d, self.known_state[d], "closed", "the front restarted: breakers live in its memory and start closed", True
                )
        elif event == "crashed":
            if node_id == "front":
                self.narrate(
                    "front crashed: requests in its workers and queue are lost (clients time out), and its breakers, "
                    "retry budget and cache with them",
                    "fault",
                    node=node_id,
                )
            else:
                self.narrate(f"{node_id} crashed: the front's calls to it go unanswered until they time out", "fault", node=node_id)
        elif event == "restarted":
            self.narrate(f"{node_id} restarted", "fault", node=node_id)

    def _on_transition(self, d: str, frm: str, to: str, why: str, forced: bool) -> None:
        self.checker.on_transition(d, frm, to, forced)
        self.known_state[d] = to
        self.transitions[d].append({"from": frm, "to": to, "at_ms": round(self.sim.now, 3), "why": why, "forced": forced})
        verb = {"open": "opened", "closed": "closed", "half_open": "went half-open", "disabled": "was disabled"}[to]
        self.narrate(f"{d}'s breaker {verb}: {why}", "breaker", node=d, frm=frm, to=to)

    def _on_sent(self, req: int) -> None:
        self.checker.now = self.sim.now
        self.checker.on_sent(req)
        for k, n in (("requests", 1), ("calls_needed", len(self.fanout))):
            self.current[k] += n
            self.totals[k] += n

    def _on_done(self, done: Done) -> None:
        self.checker.now = self.sim.now
        self.checker.on_done(done.req)
        self.current["client_done"] += 1
        self.totals["client_done"] += 1
        if not done.ok:
            self.current["client_errors"] += 1
            self.totals["client_errors"] += 1
            reason = done.why or str(done.status)
            self.error_reasons[reason] = self.error_reasons.get(reason, 0) + 1
        self.latencies.append((done.done_ms, done.done_ms - done.sent_ms, done.ok))
        if self.recorder is not None:
            self.recorder.append(done)

    # -- statistics ---------------------------------------------------------------------------
    def _latency_window(self, span_ms: float) -> tuple[int, int, list[float]]:
        horizon_all = self.sim.now - STATS_BUCKETS * BUCKET_MS
        lat = self.latencies
        while lat and lat[0][0] <= horizon_all:
            lat.popleft()
        horizon = self.sim.now - span_ms
        count = errors = 0
        oks = []
        for done_ms, latency, ok in reversed(lat):
            if done_ms <= horizon:
                break
            count += 1
            if ok:
                oks.append(latency)
            else:
                errors += 1
        oks.sort()
        return count, errors, oks

    def _sample(self) -> None:
        now = self.sim.now
        cur = self.current
        count, errors, oks = self._latency_window(SERIES_WINDOW_MS)
        scale = 1000.0 / BUCKET_MS
        needed = cur["calls_needed"]
        front_alive = self.hosts["front"].alive
        self.series.append(
            (
                now,
                round(cur["requests"] * scale, 2),
                round(cur["attempts"] * scale, 2),
                round(cur["attempts"] / needed, 3) if needed else None,
                _round(percentile(oks, 0.99)),
                round(errors / count, 4) if count else 0.0,
                {d: (self.front.breakers[d].state if front_alive else "closed") for d in self.downstream_ids},
                {d: (self.front.in_flight[d] if front_alive else 0) for d in self.downstream_ids},
                {d: cur.get("att:" + d, 0) * scale for d in self.downstream_ids},
                len(self.front.busy) if front_alive else 0,
            )
        )
        self.buckets.append(cur)
        self.current = dict.fromkeys(COUNTERS, 0)
        self.sim.schedule(BUCKET_MS, self._sample)

    def stats(self) -> dict[str, Any]:
        sums = dict.fromkeys(COUNTERS, 0)
        for bucket in [*self.buckets, self.current]:
            for k in COUNTERS:
                sums[k] += bucket[k]
        span = min(STATS_BUCKETS * BUCKET_MS, self.sim.now) or STATS_BUCKETS * BUCKET_MS
        count, errors, oks = self._latency_window(span)
        per_s = 1000.0 / span
        return {
            "window_ms": span,
            "requests": sums["requests"],
            "attempts": sums["attempts"],
            "first_attempts": sums["first_attempts"],
            "retries": sums["retries"],
            "successes": sums["successes"],
            "failures": sums["failures"],
            "timeouts": sums["timeouts"],
            "short_circuited": sums["short_circuited"],
            "fallbacks": sums["fallbacks"],
            "bulkhead_rejected": sums["bulkhead_rejected"],
            "front_rejected": sums["front_rejected"],
            "budget_exhausted": sums["budget_exhausted"],
            "client_done": count,
            "client_errors": errors,
            "error_rate": round(errors / count, 4) if count else 0.0,
            "p50_ms": _round(percentile(oks, 0.5)),
            "p99_ms": _round(percentile(oks, 0.99)),
            "client_rps": round(sums["requests"] * per_s, 2),
            "downstream_rps": round(sums["attempts"] * per_s, 2),
            "amplification": round(sums["attempts"] / sums["calls_needed"], 3) if sums["calls_needed"] else None,
        }

    # -- the view ---------------------------------------------------------------------------------
    def violations(self) -> list[dict[str, Any]]:
        return self.checker.violations()

    def breaker_view(self, d: str) -> dict[str, Any]:
        front_alive = self.hosts["front"].alive
        if front_alive:
            out = self.front.breakers[d].view(self.sim.now)
        else:
            out = {"state": "closed", "failure_rate": 0.0, "slow_rate": 0.0, "calls_in_window": 0,
                   "failed_in_window": 0, "slow_in_window": 0, "since_ms": None, "probes_permitted": 0}
        out["front_alive"] = front_alive
        out["transitions"] = list(self.transitions[d])
        return out

    def downstream_view(self, d: str) -> dict[str, Any]:
        node = self.downstreams[d]
        spec = node.spec
        return {
            "id": d,
            "alive": self.hosts[d].alive,
            "in_flight": node.in_flight,
            "in_service": len(node.in_service),
            "queued": len(node.queue),
            "capacity": spec.capacity,
            "received": node.received,
            "served": node.served,
            "errors": node.errors,
            "hung": node.hung,
            "lost": node.lost,
            "error_rate": spec.error_rate,
            "latency_ms": list(spec.latency_ms),
            "hang_rate": spec.hang_rate,
            "gray": spec.gray,
            "front_in_flight": self.front.in_flight[d] if self.hosts["front"].alive else 0,
            "call_results": dict(sorted(self.call_results[d].items())),
        }

    def pipeline_view(self) -> dict[str, Any]:
        cfg = self.config
        return {
            "order": [k for k in PIPELINE_ORDER if k == "timeout" or cfg.pipeline[k]],
            **{k: cfg.pipeline[k] for k in PIPELINE_KEYS},
            "timeout": True,
            "timeout_ms": cfg.timeout_ms,
            "retry_settings": cfg.retry.as_dict(),
            "breaker_settings": cfg.breaker.as_dict(),
            "bulkhead_limit": cfg.bulkhead_limit,
            "fallback_mode": cfg.fallback_mode,
            "fanout": list(self.fanout),
        }

    def series_view(self) -> dict[str, Any]:
        points = list(self.series)
        ids = self.downstream_ids
        return {
            "interval_ms": BUCKET_MS,
            "latency_window_ms": SERIES_WINDOW_MS,
            "state_numbers": dict(STATE_NUMBER),
            "t": [p[0] for p in points],
            "client_rps": [p[1] for p in points],
            "downstream_rps": [p[2] for p in points],
            "amplification": [p[3] for p in points],
            "p99_ms": [p[4] for p in points],
            "error_rate": [p[5] for p in points],
            "breaker_state": {d: [p[6][d] for p in points] for d in ids},
            "breaker_level": {d: [STATE_NUMBER[p[6][d]] for p in points] for d in ids},
            "in_flight": {d: [p[7][d] for p in points] for d in ids},
            "downstream_rps_by": {d: [p[8][d] for p in points] for d in ids},
            "front_busy": [p[9] for p in points],
        }

    def view(self) -> dict[str, Any]:
        in_flight = self.net.in_flight
        messages = list(in_flight.values())[-MESSAGES_IN_VIEW:]
        front_alive = self.hosts["front"].alive
        breakers = {d: self.breaker_view(d) for d in self.downstream_ids}
        return {
            "kind": self.kind,
            "seed": self.seed,
            "now": self.sim.now,
            "params": dict(self.params),
            "breakers": breakers,
            "breaker": breakers[self.downstream_ids[0]],
            "downstream": [self.downstream_view(d) for d in self.downstream_ids],
            "front": {
                "alive": front_alive,
                "workers": self.config.workers,
                "busy": len(self.front.busy) if front_alive else 0,
                "queued": len(self.front.queue) if front_alive else 0,
                "queue_limit": self.config.queue_limit,
            },
            "pipeline": self.pipeline_view(),
            "traffic": {"rate_rps": self.pool.rate_rps, "fanout": list(self.fanout), "client": CLIENT},
            "stats": self.stats(),
            "totals": {
                **self.totals,
                "pending": len(self.pool.pending),
                "late": self.pool.late,
                "errors_by_reason": dict(sorted(self.error_reasons.items())),
            },
            "series": self.series_view(),
            "messages": [
                {
                    "id": msg.id, "from": msg.src, "to": msg.dst, "type": msg.type,
                    "send_ms": round(msg.send_ms, 3), "deliver_ms": round(msg.deliver_ms, 3), "lost": msg.lost,
                    **_message_info(msg),
                }
                for msg in messages
            ],
            "messages_total": len(in_flight),
            "events": self._recent_events(EVENTS_IN_VIEW),
            "invariants": self.checker.summary(),
            "network": self.network_view(),
        }
