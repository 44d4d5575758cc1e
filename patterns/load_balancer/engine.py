"""The load balancer engine: backends, two balancers sharing a VIP, clients, checker, view.

Node ids are the backends ``b1``..``bN`` and the balancers ``lb1`` (the initial
active, priority 200) and ``lb2`` (standby, priority 100). Clients are network
endpoints named by address. The engine plays three parts besides wiring:

- the operator: commands push configuration (algorithm, pool, weights, health
  settings) to both balancers, as a config-management tool would;
- the switch: it learns which balancer answers for the VIP from gratuitous
  ARPs (a balancer becoming active) and heartbeats, and the clients' requests
  go there, even when that balancer has since died (the entry is stale until
  another balancer claims the address);
- the narrator and observer: it turns node facts into events, and keeps the
  client-side statistics and the time series.
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
from ..validate import number, only_keys, text
from .algorithms import ALGORITHMS
from .backend import BackendNode, BackendSpec
from .balancer import BalancerConfig, BalancerNode, HealthSettings
from .checker import LoadBalancerChecker
from .clients import ClientPool, Done, Pending, client_addresses

MAX_BACKENDS = 12
MAX_RATE_RPS = 2000.0
MAX_WEIGHT = 100
MAX_SLOW = 50.0
VIP_ADDRESS = "10.0.0.1"
BALANCERS = (("lb1", 200, True), ("lb2", 100, False))  # id, VRRP priority, initial master
STATS_WINDOW_MS = 2000.0
SERIES_EVERY_MS = 100.0
SERIES_POINTS = 300
SERIES_LATENCY_WINDOW_MS = 1000.0
MESSAGES_IN_VIEW = 300
RECENT_IN_VIEW = 30
EVENTS_IN_VIEW = 60
DISTRIBUTIONS = ("lognormal", "uniform")
PARAMS = [
    "backends",
    "weights",
    "capacity",
    "queue_limit",
    "service_ms",
    "service_dist",
    "algorithm",
    "rate_rps",
    "clients",
    "request_timeout_ms",
    "health_interval_ms",
    "health_timeout_ms",
    "unhealthy_threshold",
    "healthy_threshold",
    "lb_heartbeat_ms",
    "lb_dead_after",
    "latency_ms",
    "drop_rate",
    "duplicate_rate",
    "reorder_rate",
]
HEALTH_KEYS = ["interval_ms", "timeout_ms", "unhealthy_threshold", "healthy_threshold"]


def percentile(ordered: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile of an already sorted list; None when it is empty."""
    if not ordered:
        return None
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def _message_info(msg: Message) -> dict[str, Any]:
    body = msg.body
    kind = msg.type
    if kind == "Request":
        return {"req": body["req"]}
    if kind == "Forward":
        return {"req": body["req"], "client": body["client"], "conn": body["conn"]}
    if kind == "Response":
        info: dict[str, Any] = {"status": body["status"]}
        if "req" in body:  # balancer -> client
            info["req"] = body["req"]
        else:  # backend -> balancer
            info["conn"] = body["conn"]
        if body.get("why"):
            info["why"] = body["why"]
        return info
    if kind in ("HealthCheck", "HealthReply"):
        info = {"probe": body["probe"]}
        if kind == "HealthReply":
            info["ok"] = body["ok"]
        return info
    if kind == "Heartbeat":
        return {"priority": body["priority"], "seq": body["seq"]}
    return {}


class LoadBalancerEngine(ClusterEngine):
    kind = "load_balancer"
    title = "Load balancer"
    COMMANDS: ClassVar[dict[str, str]] = {
        **ClusterEngine.DISKLESS_COMMANDS,
        "set_algorithm": "cmd_set_algorithm",
        "slow": "cmd_slow",
        "add_backend": "cmd_add_backend",
        "remove_backend": "cmd_remove_backend",
        "set_weight": "cmd_set_weight",
        "traffic": "cmd_traffic",
        "health": "cmd_health",
    }

    def __init__(self, *, seed: int = 1, **params: Any) -> None:
        only_keys(params, PARAMS, error=InvalidParameter)
        err = InvalidParameter
        size = number(params, "backends", lo=1, hi=MAX_BACKENDS, integer=True, default=4, error=err)
        weights = self._weights_param(params.get("weights"), size)
        capacity = number(params, "capacity", lo=1, hi=1000, integer=True, default=16, error=err)
        queue_limit = number(params, "queue_limit", lo=0, hi=10_000, integer=True, default=64, error=err)
        service_ms = number(params, "service_ms", lo=0.1, hi=10_000, default=20.0, error=err)
        dist = text(params, "service_dist", choices=DISTRIBUTIONS, default="lognormal", error=err)
        algorithm = text(params, "algorithm", choices=list(ALGORITHMS), default="round_robin", error=err)
        rate = number(params, "rate_rps", lo=0, hi=MAX_RATE_RPS, default=50.0, error=err)
        clients = number(params, "clients", lo=1, hi=250, integer=True, default=32, error=err)
        timeout = number(params, "request_timeout_ms", lo=1, hi=60_000, default=1000.0, error=err)
        interval = number(params, "health_interval_ms", lo=10, hi=60_000, default=500.0, error=err)
        probe_timeout = number(params, "health_timeout_ms", lo=1, hi=60_000, default=min(250.0, interval), error=err)
        unhealthy = number(params, "unhealthy_threshold", lo=1, hi=20, integer=True, default=3, error=err)
        healthy = number(params, "healthy_threshold", lo=1, hi=20, integer=True, default=2, error=err)
        heartbeat = number(params, "lb_heartbeat_ms", lo=10, hi=10_000, default=100.0, error=err)
        dead_after = number(params, "lb_dead_after", lo=1, hi=20, integer=True, default=3, error=err)
        network = self.network_params(params, default_latency_ms=(1.0, 3.0))
        if probe_timeout > interval:
            raise InvalidParameter(
                f"'health_timeout_ms' ({probe_timeout:g}) must not exceed 'health_interval_ms' ({interval:g}): "
                "a probe must time out before the next one is due"
            )
        normalized = {
            "backends": size,
            "weights": list(weights),
            "capacity": capacity,
            "queue_limit": queue_limit,
            "service_ms": service_ms,
            "service_dist": dist,
            "algorithm": algorithm,
            "rate_rps": rate,
            "clients": clients,
            "request_timeout_ms": timeout,
            "health_interval_ms": interval,
            "health_timeout_ms": probe_timeout,
            "unhealthy_threshold": unhealthy,
            "healthy_threshold": healthy,
            "lb_heartbeat_ms": heartbeat,
            "lb_dead_after": dead_after,
            **network,
        }
        super().__init__(seed=seed, params=normalized, network=network)
        self.spec = BackendSpec(capacity, queue_limit, service_ms, dist)
        self.backends: dict[str, BackendNode] = {}
        self.balancers: dict[str, BalancerNode] = {}
        self.next_backend = 1
        self.algorithm = algorithm
        self.health_settings = HealthSettings(interval, probe_timeout, unhealthy, healthy)
        pool = [f"b{i}" for i in range(1, size + 1)]
        for backend_id in pool:
            self._add_backend_node()
        for lb_id, priority, initial in BALANCERS:
            peer = "lb2" if lb_id == "lb1" else "lb1"
            config = BalancerConfig(
                peer=peer,
                priority=priority,
                initial_active=initial,
                algorithm=algorithm,
                pool=pool,
                weights=dict(zip(pool, weights)),
                health=self.health_settings,
                backend_timeout_ms=timeout,
                heartbeat_ms=heartbeat,
                dead_after=dead_after,
            )
            self.balancers[lb_id] = self.add_node(lb_id, lambda host, c=config: BalancerNode(host, c))  # type: ignore[assignment]
        self.checker = LoadBalancerChecker(self.balancers, self.backends, timeout_ms=timeout, grace_ms=2 * heartbeat)
        self.vip_owner: str | None = None  # where the switch sends VIP traffic
        self.vip_dead_since: float | None = None  # when the balancer the switch points at died
        # Observation: nothing below feeds back into the run.
        self.recorder: list[Done] | None = None  # set to a list to keep every completion (scenario tools)
        self.totals = {"sent": 0, "ok": 0, "errors": 0}
        self.error_reasons: dict[str, int] = {}
        self.window: deque[tuple[float, float, bool]] = deque()  # (done_ms, latency, ok)
        self.recent: deque[Done] = deque(maxlen=RECENT_IN_VIEW)
        self.series: deque[tuple[float, int, float | None, float | None, float, dict[str, int], dict[str, int]]] = deque(
            maxlen=SERIES_POINTS
        )
        self._interval_done = 0
        self._served_at_sample: dict[str, int] = {}
        self.gateway_errors: dict[str, int] = {}  # backend -> 502/504 the balancers gave up with
        self.down_since: dict[str, float] = {}
        self.slowed_since: dict[str, float] = {}
        self.changed_at: dict[str, float] = {}  # backend -> last crash/restart/slow/add
        self.readmitted_at: dict[tuple[str, str], float] = {}  # (balancer, backend) -> when
        self.ejections: dict[str, int] = {}
        self.readmissions: dict[str, int] = {}
        self.flaps: dict[str, int] = {}
        self.pool = ClientPool(
            sim=self.sim,
            net=self.net,
            rng=derive_rng(seed, "clients", "traffic"),
            addresses=client_addresses(clients, derive_rng(seed, "clients", "addresses")),
            timeout_ms=timeout,
            resolve_vip=lambda: self.vip_owner,
            on_sent=self._on_sent,
            on_done=self._on_done,
        )
        for backend in self.backends.values():
            backend.start()
        for balancer in self.balancers.values():
            balancer.start()
        self.sim.schedule(SERIES_EVERY_MS, self._sample)
        self.pool.set_rate(rate)

    @staticmethod
    def _weights_param(value: Any, size: int) -> list[int]:
        if value is None:
            return [1] * size
        if (
            not isinstance(value, list)
            or len(value) != size
            or not all(isinstance(w, int) and not isinstance(w, bool) and 1 <= w <= MAX_WEIGHT for w in value)
        ):
            raise InvalidParameter(
                f"'weights' must be a list of {size} whole numbers from 1 to {MAX_WEIGHT}, one per backend, not {value!r}"
            )
        return list(value)

    def _add_backend_node(self) -> str:
        backend_id = f"b{self.next_backend}"
        self.next_backend += 1
        node = self.add_node(backend_id, lambda host: BackendNode(host, self.spec))
        self.backends[backend_id] = node  # type: ignore[assignment]
        return backend_id

    # -- validation helpers --------------------------------------------------------------
    def backend_arg(self, cmd: Mapping[str, Any], what: str) -> str:
        node_id = self.node_arg(cmd)
        if node_id not in self.backends:
            raise InvalidCommand(
                f"{node_id} is a balancer; only backends ({', '.join(self.backends)}) can {what}"
            )
        return node_id

    @staticmethod
    def weight_arg(cmd: Mapping[str, Any], default: int | None = None) -> int:
        return number(cmd, "weight", lo=1, hi=MAX_WEIGHT, integer=True, default=default)

    # -- commands ----------------------------------------------------------------------------
    def cmd_set_algorithm(self, cmd: Mapping[str, Any]) -> None:
        only_keys(cmd, ["algorithm"])
        name = text(cmd, "algorithm", choices=list(ALGORITHMS))
        old = self.algorithm
        self.algorithm = name
        for balancer in self.balancers.values():
            balancer.cfg.algorithm = name
        verb = "stays" if old == name else f"switched from {old} to"
        self.narrate(f"algorithm {verb} {name}: {ALGORITHMS[name]}", "config", algorithm=name)

    def cmd_slow(self, cmd: Mapping[str, Any]) -> None:
        only_keys(cmd, ["node", "factor"])
        backend_id = self.backend_arg(cmd, "be slowed")
        factor = number(cmd, "factor", lo=1, hi=MAX_SLOW)
        node = self.backends[backend_id]
        node.slow_factor = factor
        self.changed_at[backend_id] = self.sim.now
        mean = self.spec.service_ms
        if factor == 1:
            self.slowed_since.pop(backend_id, None)
            self.narrate(f"{backend_id} is back to normal speed (about {mean:g} ms a request)", "fault", node=backend_id)
        else:
            self.slowed_since[backend_id] = self.sim.now
            self.narrate(
                f"{backend_id} is now {factor:g}x slower: a request takes about {mean * factor:g} ms instead of "
                f"{mean:g} ms, and it still answers health checks, only later",
                "fault",
                node=backend_id,
            )

    def cmd_add_backend(self, cmd: Mapping[str, Any]) -> dict[str, Any]:
        only_keys(cmd, ["weight"])
        weight = self.weight_arg(cmd, default=1)
        if len(self.backends) >= MAX_BACKENDS:
            raise InvalidCommand(f"there are already {MAX_BACKENDS} backends, the most this lab runs")
        backend_id = self._add_backend_node()
        self.backends[backend_id].start()
        self.changed_at[backend_id] = self.sim.now
        for balancer in self.balancers.values():
            balancer.add_backend(backend_id, weight)
        self.narrate(
            f"{backend_id} joined the pool with weight {weight}; the balancers send it traffic at once",
            "config",
            node=backend_id,
        )
        return {"node": backend_id}

    def cmd_remove_backend(self, cmd: Mapping[str, Any]) -> None:
        only_keys(cmd, ["node"])
        backend_id = self.backend_arg(cmd, "be removed")
        if len(self.backends) == 1:
            raise InvalidCommand(f"{backend_id} is the last backend; add another before removing it")
        dropped = 0
        for balancer in self.balancers.values():
            dropped += balancer.remove_backend(backend_id)
        host = self.hosts.pop(backend_id)
        node = self.backends.pop(backend_id)
        del self.nodes[backend_id]
        if host.alive:
            host.alive = False
            host.cancel_all_timers()
            self.net.set_up(backend_id, False)
            node.on_crash()
        self.gateway_errors[backend_id] = self.gateway_errors.get(backend_id, 0) + dropped
        for table in (self.down_since, self.slowed_since, self.changed_at, self._served_at_sample):
            table.pop(backend_id, None)
        what = f"; its {dropped} open request{'s' if dropped != 1 else ''} failed with 502" if dropped else ""
        self.narrate(f"{backend_id} was removed from the pool{what}", "config", node=backend_id)

    def cmd_set_weight(self, cmd: Mapping[str, Any]) -> None:
        only_keys(cmd, ["node", "weight"])
        backend_id = self.backend_arg(cmd, "have a weight")
        weight = self.weight_arg(cmd)
        for balancer in self.balancers.values():
            balancer.set_weight(backend_id, weight)
        weights = self.weights()
        total = sum(weights.values())
        self.narrate(
            f"{backend_id}'s weight is now {weight} of {total} in all: weighted algorithms give it about "
            f"{weight / total:.0%} of the requests",
            "config",
            node=backend_id,
        )

    def cmd_traffic(self, cmd: Mapping[str, Any]) -> None:
        only_keys(cmd, ["rate_rps"])
        rate = number(cmd, "rate_rps", lo=0, hi=MAX_RATE_RPS)
        self.pool.set_rate(rate)
        if rate:
            self.narrate(f"clients now send {rate:g} requests a second (Poisson arrivals from {len(self.pool.addresses)} addresses)", "config")
        else:
            self.narrate("clients stopped sending", "config")

    def cmd_health(self, cmd: Mapping[str, Any]) -> None:
        only_keys(cmd, HEALTH_KEYS)
        if not any(key in cmd for key in HEALTH_KEYS):
            raise InvalidCommand(f"'health' needs at least one of {', '.join(HEALTH_KEYS)}")
        old = self.health_settings
        interval = number(cmd, "interval_ms", lo=10, hi=60_000, default=old.interval_ms)
        timeout = number(cmd, "timeout_ms", lo=1, hi=60_000, default=old.timeout_ms)
        unhealthy = number(cmd, "unhealthy_threshold", lo=1, hi=20, integer=True, default=old.unhealthy_threshold)
        healthy = number(cmd, "healthy_threshold", lo=1, hi=20, integer=True, default=old.healthy_threshold)
        if timeout > interval:
            raise InvalidCommand(
                f"'timeout_ms' ({timeout:g}) must not exceed 'interval_ms' ({interval:g}): "
                "a probe must time out before the next one is due"
            )
        settings = HealthSettings(interval, timeout, unhealthy, healthy)
        self.health_settings = settings
        for balancer in self.balancers.values():
            balancer.set_health(settings)
        worst = unhealthy * interval + timeout
        self.narrate(
            f"health checks every {interval:g} ms, {timeout:g} ms to answer; eject after {unhealthy} failure"
            f"{'s' if unhealthy != 1 else ''} in a row, re-admit after {healthy} success{'es' if healthy != 1 else ''}: "
            f"a dead backend is found within about {worst:g} ms",
            "config",
        )

    # -- facts from nodes and clients ------------------------------------------------------
    def on_node_event(self, node_id: str, event: str, fields: dict[str, Any]) -> None:
        checker = self.checker
        if event == "forwarded":
            checker.now = self.sim.now
            checker.on_forward(node_id, fields["backend"])
        elif event == "started":
            checker.now = self.sim.now
            checker.on_started(node_id, fields["active"])
        elif event == "advert":
            self.vip_owner = node_id
        elif event == "rejected":
            pass  # counted by the backend
        elif event == "gateway_timeout":
            backend = fields["backend"]
            self.gateway_errors[backend] = self.gateway_errors.get(backend, 0) + 1
        else:
            self._on_rare_event(node_id, event, fields)

    def _on_rare_event(self, node_id: str, event: str, fields: dict[str, Any]) -> None:
        now = self.sim.now
        self.checker.now = now
        if event == "became_active":
            previous = self.vip_owner
            self.vip_owner = node_id
            for key in [k for k in self.readmitted_at if k[0] == node_id]:
                del self.readmitted_at[key]
            took = f"took the VIP from {previous}" if previous and previous != node_id else "holds the VIP"
            gap = ""
            if self.vip_dead_since is not None:
                gap = f"; VIP traffic had gone to a dead balancer for {now - self.vip_dead_since:.0f} ms"
                self.vip_dead_since = None
            self.narrate(
                f"{node_id} became active and {took}: {fields['reason']}{gap}. It counts every backend healthy "
                "until its own health checks say otherwise",
                "failover",
                node=node_id,
            )
            self.checker.on_vip_change()
            if self.checker.split_since == now:
                self.narrate(
                    f"split brain: {' and '.join(self.checker.vip_holders)} both hold the VIP; the switch sends "
                    "VIP traffic to whichever announced itself last",
                    "warning",
                )
        elif event == "became_standby":
            was_split = self.checker.split_since is not None
            self.checker.on_vip_change()
            if fields["was_active"] or now > 0:
                self.narrate(f"{node_id} is standby: {fields['reason']}", "failover", node=node_id)
            if was_split and self.checker.split_since is None:
                self.narrate("the split brain is over: one balancer holds the VIP again", "failover")
        elif event == "ejected":
            self._on_ejected(node_id, fields)
        elif event == "readmitted":
            backend = fields["backend"]
            self.readmitted_at[(node_id, backend)] = now
            self.readmissions[backend] = self.readmissions.get(backend, 0) + 1
            self.narrate(
                f"{node_id} re-admitted {backend} after {fields['successes']} good health check"
                f"{'s' if fields['successes'] != 1 else ''} in a row",
                "health",
                node=backend,
            )
        elif event == "no_backend":
            self.narrate(f"{node_id} has no healthy backend: it answers every request with 503", "warning", node=node_id)
        elif event == "dropped_not_vip":
            self.narrate(
                f"{node_id} is standby but the switch still sends it VIP traffic: it drops those requests",
                "warning",
                node=node_id,
            )
        elif event == "crashed":
            self._on_crashed(node_id)
        elif event == "restarted":
            if node_id in self.backends:
                self.down_since.pop(node_id, None)
                self.changed_at[node_id] = now
                needed = self.health_settings.healthy_threshold
                self.narrate(
                    f"{node_id} restarted with nothing in service; the active balancer re-admits it after "
                    f"{needed} good health check{'s' if needed != 1 else ''} in a row",
                    "fault",
                    node=node_id,
                )
            else:
                self.checker.on_vip_change()

    def _on_ejected(self, balancer_id: str, fields: dict[str, Any]) -> None:
        now = self.sim.now
        backend = fields["backend"]
        self.ejections[backend] = self.ejections.get(backend, 0) + 1
        readmitted = self.readmitted_at.get((balancer_id, backend))
        flap = readmitted is not None and readmitted > self.changed_at.get(backend, -1.0)
        if flap:
            self.flaps[backend] = self.flaps.get(backend, 0) + 1
        if backend in self.down_since:
            since = f"; {backend} went down {(now - self.down_since[backend]) / 1000:.2f} s earlier"
        elif backend in self.slowed_since:
            since = (
                f"; {backend} has been {self.backends[backend].slow_factor:g}x slow for "
                f"{(now - self.slowed_since[backend]) / 1000:.2f} s"
            )
        else:
            since = ""
        failures = fields["failures"]
        text_ = (
            f"{balancer_id} ejected {backend} after {failures} failed health check{'s' if failures != 1 else ''} "
            f"in a row (last: {fields['why']}){since}"
        )
        if flap:
            text_ += f". Flap #{self.flaps[backend]}: it was re-admitted {(now - readmitted) / 1000:.2f} s ago and nothing about it changed"
        self.narrate(text_, "health", node=backend, flap=flap)

    def _on_crashed(self, node_id: str) -> None:
        now = self.sim.now
        if node_id in self.backends:
            self.down_since[node_id] = now
            self.changed_at[node_id] = now
            self.narrate(
                f"{node_id} crashed; what it was serving or queueing is lost, and the balancer keeps sending it "
                "requests until health checks eject it",
                "fault",
                node=node_id,
            )
        else:
            owner = ""
            if self.vip_owner == node_id:
                owner = " (the switch still sends VIP traffic to it)"
                self.vip_dead_since = now
            self.narrate(f"{node_id} crashed{owner}", "fault", node=node_id)
            self.checker.on_vip_change()

    def _on_sent(self, record: Pending) -> None:
        self.totals["sent"] += 1
        checker = self.checker
        checker.now = record.sent_ms
        checker.on_sent(record.req)

    def _on_done(self, done: Done) -> None:
        checker = self.checker
        checker.now = done.done_ms
        checker.on_done(done.req)
        if done.ok:
            self.totals["ok"] += 1
        else:
            self.totals["errors"] += 1
            reason = done.why or str(done.status)
            self.error_reasons[reason] = self.error_reasons.get(reason, 0) + 1
        self.window.append((done.done_ms, done.done_ms - done.sent_ms, done.ok))
        self.recent.append(done)
        self._interval_done += 1
        if self.recorder is not None:
            self.recorder.append(done)

    # -- statistics ---------------------------------------------------------------------------
    def _trim_window(self) -> None:
        window = self.window
        horizon = self.sim.now - STATS_WINDOW_MS
        while window and window[0][0] <= horizon:
            window.popleft()

    def _window_stats(self, span_ms: float) -> tuple[int, int, list[float]]:
        """(requests, errors, sorted ok latencies) that ended in the last ``span_ms``."""
        self._trim_window()
        horizon = self.sim.now - span_ms
        count = errors = 0
        latencies = []
        for done_ms, latency, ok in reversed(self.window):
            if done_ms <= horizon:
                break
            count += 1
            if ok:
                latencies.append(latency)
            else:
                errors += 1
        latencies.sort()
        return count, errors, latencies

    def _sample(self) -> None:
        now = self.sim.now
        count, errors, latencies = self._window_stats(SERIES_LATENCY_WINDOW_MS)
        per_backend = {}
        active = {}
        for backend_id, node in self.backends.items():
            per_backend[backend_id] = node.served - self._served_at_sample.get(backend_id, 0)
            self._served_at_sample[backend_id] = node.served
            active[backend_id] = len(node.in_service) if self.hosts[backend_id].alive else 0
        rps = self._interval_done * (1000.0 / SERIES_EVERY_MS)
        self._interval_done = 0
        self.series.append(
            (now, round(rps), _round(percentile(latencies, 0.5)), _round(percentile(latencies, 0.99)),
             round(errors / count, 4) if count else 0.0, per_backend, active)
        )
        self.sim.schedule(SERIES_EVERY_MS, self._sample)

    def stats(self) -> dict[str, Any]:
        span = min(STATS_WINDOW_MS, self.sim.now) or STATS_WINDOW_MS
        count, errors, latencies = self._window_stats(span)
        return {
            "window_ms": span,
            "requests": count,
            "errors": errors,
            "rps": round(count * 1000.0 / span, 2),
            "p50_ms": _round(percentile(latencies, 0.5)),
            "p99_ms": _round(percentile(latencies, 0.99)),
            "error_rate": round(errors / count, 4) if count else 0.0,
        }

    # -- queries --------------------------------------------------------------------------------
    def weights(self) -> dict[str, int]:
        return dict(self.balancers["lb1"].cfg.weights)

    def active_balancer(self) -> BalancerNode | None:
        """The live active balancer (the switch's choice if there are two), or None."""
        actives = [b for b in self.balancers.values() if b.holds_vip]
        for balancer in actives:
            if balancer.id == self.vip_owner:
                return balancer
        return actives[0] if actives else None

    def warnings(self) -> list[str]:
        out = []
        holders = [b.id for b in self.balancers.values() if b.holds_vip]
        if len(holders) > 1:
            out.append(f"split brain: {' and '.join(holders)} both hold the VIP")
        elif not holders:
            out.append("no balancer holds the VIP: every request fails")
        owner = self.vip_owner
        if owner is not None and owner not in holders:
            state = "down" if not self.hosts[owner].alive else "standby"
            out.append(f"the switch sends VIP traffic to {owner}, which is {state}")
        active = self.active_balancer()
        if active is not None and not active.healthy:
            out.append(f"{active.id} has no healthy backend")
        return out

    # -- the view ---------------------------------------------------------------------------------
    def _after_run(self) -> None:
        self.checker.check(self.sim.now)

    def violations(self) -> list[dict[str, Any]]:
        self.checker.check(self.sim.now)
        return self.checker.violations()

    def backend_view(self, backend_id: str, active: BalancerNode | None, weights: dict[str, int]) -> dict[str, Any]:
        node = self.backends[backend_id]
        alive = self.hosts[backend_id].alive
        health = active.health_of(backend_id) if active is not None else None
        return {
            "id": backend_id,
            "alive": alive,
            "healthy": None if health is None else health["healthy"],
            "health": health,
            "weight": weights[backend_id],
            "active": len(node.in_service),
            "queued": len(node.queue),
            "capacity": node.spec.capacity,
            "queue_limit": node.spec.queue_limit,
            "conns": active.conns.get(backend_id, 0) if active is not None else 0,
            "served": node.served,
            "errors": node.rejected + self.gateway_errors.get(backend_id, 0),
            "rejected": node.rejected,
            "lost": node.lost,
            "slow_factor": node.slow_factor,
            "service_ms": node.spec.service_ms,
            "ejections": self.ejections.get(backend_id, 0),
            "flaps": self.flaps.get(backend_id, 0),
        }

    def balancer_view(self, balancer: BalancerNode) -> dict[str, Any]:
        host = self.hosts[balancer.id]
        return {
            "id": balancer.id,
            "alive": host.alive,
            "role": balancer.role,
            "holds_vip": balancer.holds_vip,
            "switch_points_here": self.vip_owner == balancer.id,
            "priority": balancer.cfg.priority,
            "open": len(balancer.open),
            "forwarded": balancer.forwarded,
            "dropped": balancer.dropped,
            "active_since_ms": balancer.active_since,
            "takeover_deadline_ms": host.timer_due("master_down") if host.alive else None,
        }

    def series_view(self) -> dict[str, Any]:
        points = list(self.series)
        backends = list(self.backends)
        return {
            "interval_ms": SERIES_EVERY_MS,
            "latency_window_ms": SERIES_LATENCY_WINDOW_MS,
            "t": [p[0] for p in points],
            "rps": [p[1] for p in points],
            "p50_ms": [p[2] for p in points],
            "p99_ms": [p[3] for p in points],
            "error_rate": [p[4] for p in points],
            "per_backend": {b: [p[5].get(b) for p in points] for b in backends},
            "active": {b: [p[6].get(b) for p in points] for b in backends},
        }

    def view(self) -> dict[str, Any]:
        self.checker.check(self.sim.now)
        active = self.active_balancer()
        in_flight = self.net.in_flight
        messages = list(in_flight.values())[-MESSAGES_IN_VIEW:] if len(in_flight) > MESSAGES_IN_VIEW else in_flight.values()
        settings = self.health_settings
        weights = self.weights()
        return {
            "kind": self.kind,
            "seed": self.seed,
            "now": self.sim.now,
            "params": dict(self.params),
            "algorithm": self.algorithm,
            "algorithm_info": ALGORITHMS[self.algorithm],
            "vip": {
                "address": VIP_ADDRESS,
                "switch_to": self.vip_owner,
                "holders": [b.id for b in self.balancers.values() if b.holds_vip],
            },
            "backends": [self.backend_view(b, active, weights) for b in self.backends],
            "balancers": [self.balancer_view(b) for b in self.balancers.values()],
            "health": {
                "interval_ms": settings.interval_ms,
                "timeout_ms": settings.timeout_ms,
                "unhealthy_threshold": settings.unhealthy_threshold,
                "healthy_threshold": settings.healthy_threshold,
                "checked_by": active.id if active is not None else None,
                "ejections": sum(self.ejections.values()),
                "readmissions": sum(self.readmissions.values()),
                "flaps": sum(self.flaps.values()),
            },
            "traffic": {"rate_rps": self.pool.rate_rps, "clients": list(self.pool.addresses)},
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
                    "id": msg.id,
                    "from": msg.src,
                    "to": msg.dst,
                    "type": msg.type,
                    "send_ms": round(msg.send_ms, 3),
                    "deliver_ms": round(msg.deliver_ms, 3),
                    "lost": msg.lost,
                    **_message_info(msg),
                }
                for msg in messages
            ],
            "messages_total": len(in_flight),
            "recent": [
                {
                    "id": d.req,
                    "client": d.client,
                    "backend": d.backend,
                    "latency_ms": round(d.done_ms - d.sent_ms, 2),
                    "status": "ok" if d.ok else "error",
                    "code": d.status,
                    "why": d.why,
                    "done_ms": round(d.done_ms, 3),
                }
                for d in self.recent
            ],
            "events": self._recent_events(EVENTS_IN_VIEW),
            "invariants": self.checker.summary(),
            "warnings": self.warnings(),
            "network": self.network_view(),
        }
