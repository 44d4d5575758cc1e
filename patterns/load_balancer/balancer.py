"""One load balancer: the request path, active health checks and VRRP-like failover.

Two balancers, ``lb1`` and ``lb2``, share a virtual IP (the VIP). The one in the
``active`` role holds it; the other is ``standby``.

Request path (active only)::

    client --Request--> VIP (this balancer) --Forward--> backend
    client <--Response-- balancer <--Response-- backend

The balancer picks a backend among those it considers healthy, opens a
connection (``conns`` per backend is what least_connections and power_of_two
read), and relays the backend's answer. With no healthy backend it answers 503
at once. A backend that has not answered within ``backend_timeout_ms`` is given
up on: 504 to the client. A standby that receives VIP traffic (the switch still
points at it) drops it, as a host without that address would.

Health checks (active only): every ``interval_ms`` one HealthCheck per backend,
unless one is still outstanding. No HealthReply within ``timeout_ms``, or a
reply that says 503, is a failure. Per backend::

    healthy --(unhealthy_threshold failures in a row)--> ejected
    ejected --(healthy_threshold successes in a row)--> healthy

Failover (VRRP-like, no preemption): the active sends Heartbeat to its peer
every ``heartbeat_ms``. A standby that hears none for ``dead_after`` beats plus
a skew of ``(256 - priority) / 256`` beats takes over: it claims the VIP (a
gratuitous ARP: the switch sends VIP traffic to it from then on) and starts
with every backend healthy. A balancer that boots or restarts is a standby,
so a returning old active does not take the VIP back. If both are active and
one hears the other's heartbeat, the lower priority steps down (VRRP's rule).
Heartbeats also refresh the switch's entry, so in a split brain VIP traffic
flips between the two at every beat.

Facts emitted for the engine (which narrates and checks them): ``became_active``,
``became_standby``, ``advert`` (refresh the switch), ``forwarded``, ``ejected``,
``readmitted``, ``gateway_timeout``, ``no_backend``, ``dropped_not_vip``.
"""

from __future__ import annotations

from collections import deque
from typing import Any, NamedTuple

from ..kernel.cluster import ClusterNode, Host
from ..kernel.network import Message
from .algorithms import Picker

ACTIVE, STANDBY = "active", "standby"


class HealthSettings(NamedTuple):
    interval_ms: float
    timeout_ms: float
    unhealthy_threshold: int
    healthy_threshold: int


class BalancerConfig:
    """What an operator configures: survives a crash (it is on disk)."""

    def __init__(
        self,
        *,
        peer: str,
        priority: int,
        initial_active: bool,
        algorithm: str,
        pool: list[str],
        weights: dict[str, int],
        health: HealthSettings,
        backend_timeout_ms: float,
        heartbeat_ms: float,
        dead_after: int,
    ) -> None:
        self.peer = peer
        self.priority = priority
        self.initial_active = initial_active
        self.algorithm = algorithm
        self.pool = list(pool)
        self.weights = dict(weights)
        self.health = health
        self.backend_timeout_ms = backend_timeout_ms
        self.heartbeat_ms = heartbeat_ms
        self.dead_after = dead_after

    @property
    def master_down_ms(self) -> float:
        skew = (256 - self.priority) / 256.0 * self.heartbeat_ms
        return self.dead_after * self.heartbeat_ms + skew


class BackendHealth:
    __slots__ = ("healthy", "fails", "oks", "last_failure")

    def __init__(self) -> None:
        self.healthy = True
        self.fails = 0  # consecutive failures while healthy
        self.oks = 0  # consecutive successes while ejected
        self.last_failure = ""


class Conn(NamedTuple):
    req: int
    client: str
    backend: str
    forwarded_ms: float


class BalancerNode(ClusterNode):
    def __init__(self, host: Host, config: BalancerConfig) -> None:
        super().__init__(host)
        self.cfg = config
        self.booted = False
        # Counters a monitoring system would keep: they survive a crash.
        self.forwarded = 0
        self.dropped = 0
        self._reset_volatile()

    def _reset_volatile(self) -> None:
        self.role = STANDBY
        self.health: dict[str, BackendHealth] = {}
        self.healthy: list[str] = []  # healthy backends in pool order: the candidates
        self.conns: dict[str, int] = {}
        self.open: dict[int, Conn] = {}
        self.expiry: deque[tuple[float, int]] = deque()  # (deadline, conn), in forwarding order
        self.next_conn = 0
        self.probes: dict[str, int] = {}  # backend -> id of the outstanding probe
        self.probe_seq = 0
        self.heartbeat_seq = 0
        self.picker = Picker(self.host.rng)
        self.active_since: float | None = None
        self.last_heartbeat_heard: float | None = None
        self.warned_no_backend = False
        self.warned_not_vip = False

    # -- lifecycle -------------------------------------------------------------
    def start(self) -> None:
        self._reset_volatile()
        first_boot = not self.booted
        self.booted = True
        if first_boot and self.cfg.initial_active:
            self.become_active("it is configured as the initial master")
        else:
            self.become_standby("it " + ("booted" if first_boot else "restarted") + " as a backup")

    def on_crash(self) -> None:
        self._reset_volatile()

    @property
    def holds_vip(self) -> bool:
        return self.host.alive and self.role == ACTIVE

    # -- roles -------------------------------------------------------------------
    def become_active(self, reason: str) -> None:
        self.role = ACTIVE
        self.active_since = self.host.now
        self.health = {backend: BackendHealth() for backend in self.cfg.pool}
        self.probes = {}
        self._refresh_healthy()
        self.warned_no_backend = False
        self.host.cancel_timer("master_down")
        self.host.emit("became_active", reason=reason)
        self._send_heartbeat()
        self._probe_round()

    def become_standby(self, reason: str) -> None:
        was_active = self.role == ACTIVE
        self.role = STANDBY
        self.active_since = None
        self.warned_not_vip = False
        host = self.host
        host.cancel_timer("heartbeat")
        host.cancel_timer("health")
        for backend in self.probes:
            host.cancel_timer("probe:" + backend)
        self.probes = {}
        self.health = {}
        self.healthy = []
        host.set_timer("master_down", self.cfg.master_down_ms, self._on_master_down)
        host.emit("became_standby", reason=reason, was_active=was_active)

    def _on_master_down(self) -> None:
        cfg = self.cfg
        heard = self.last_heartbeat_heard
        silent = self.host.now - heard if heard is not None else cfg.master_down_ms
        self.become_active(
            f"it heard no heartbeat from {cfg.peer} for {silent:.0f} ms "
            f"({cfg.dead_after} beats of {cfg.heartbeat_ms:g} ms plus its skew)"
        )

    def _send_heartbeat(self) -> None:
        self.heartbeat_seq += 1
        self.host.send(self.cfg.peer, "Heartbeat", {"priority": self.cfg.priority, "seq": self.heartbeat_seq})
        self.host.emit("advert")
        self.host.set_timer("heartbeat", self.cfg.heartbeat_ms, self._send_heartbeat)

    def _on_heartbeat(self, msg: Message) -> None:
        self.last_heartbeat_heard = self.host.now
        if self.role == STANDBY:
            self.host.set_timer("master_down", self.cfg.master_down_ms, self._on_master_down)
        elif msg.body["priority"] > self.cfg.priority:
            self.become_standby(f"it heard {msg.src}, which is active too and has a higher priority")
            self.last_heartbeat_heard = self.host.now

    # -- the request path --------------------------------------------------------------
    def on_message(self, msg: Message) -> None:
        kind = msg.type
        if kind == "Request":
            self._on_request(msg)
        elif kind == "Response":
            self._on_response(msg)
        elif kind == "HealthReply":
            self._on_health_reply(msg)
        elif kind == "Heartbeat":
            self._on_heartbeat(msg)

    def _on_request(self, msg: Message) -> None:
        body = msg.body
        if self.role != ACTIVE:
            self.dropped += 1
            if not self.warned_not_vip:
                self.warned_not_vip = True
                self.host.emit("dropped_not_vip")
            return
        healthy = self.healthy
        if not healthy:
            self.host.send(msg.src, "Response", {"req": body["req"], "status": 503, "why": "no healthy backend", "backend": None})
            if not self.warned_no_backend:
                self.warned_no_backend = True
                self.host.emit("no_backend")
            return
        cfg = self.cfg
        backend = self.picker.pick(cfg.algorithm, healthy, cfg.weights, self.conns, body["client"])
        self.next_conn += 1
        conn = self.next_conn
        now = self.host.now
        self.open[conn] = Conn(body["req"], msg.src, backend, now)
        self.conns[backend] = self.conns.get(backend, 0) + 1
        self.forwarded += 1
        self.host.send(backend, "Forward", {"conn": conn, "req": body["req"], "client": msg.src})
        self.host.emit("forwarded", backend=backend)
        expiry = self.expiry
        if not expiry:
            self.host.set_timer("expiry", cfg.backend_timeout_ms, self._expire)
        expiry.append((now + cfg.backend_timeout_ms, conn))

    def _on_response(self, msg: Message) -> None:
        body = msg.body
        conn = self.open.pop(body["conn"], None)
        if conn is None:
            return  # given up on already, or a duplicate
        self._release(conn.backend)
        self.host.send(
            conn.client,
            "Response",
            {"req": conn.req, "status": body["status"], "why": body["why"], "backend": conn.backend},
        )

    def _release(self, backend: str) -> None:
        left = self.conns[backend] - 1
        if left:
            self.conns[backend] = left
        else:
            del self.conns[backend]

    def _expire(self) -> None:
        expiry = self.expiry
        now = self.host.now
        while expiry and expiry[0][0] <= now:
            _, conn_id = expiry.popleft()
            conn = self.open.pop(conn_id, None)
            if conn is None:
                continue
            self._release(conn.backend)
            self.host.send(
                conn.client, "Response", {"req": conn.req, "status": 504, "why": "backend timeout", "backend": conn.backend}
            )
            self.host.emit("gateway_timeout", backend=conn.backend)
        while expiry and expiry[0][1] not in self.open:
            expiry.popleft()
        if expiry:
            self.host.set_timer("expiry", expiry[0][0] - now, self._expire)

    # -- health checks ------------------------------------------------------------------
    def _probe_round(self) -> None:
        host = self.host
        settings = self.cfg.health
        for backend in self.cfg.pool:
            if backend in self.probes:
                continue
            self.probe_seq += 1
            probe = self.probe_seq
            self.probes[backend] = probe
            host.send(backend, "HealthCheck", {"probe": probe})
            host.set_timer("probe:" + backend, settings.timeout_ms, lambda b=backend, p=probe: self._probe_timeout(b, p))
        host.set_timer("health", settings.interval_ms, self._probe_round)

    def _probe_timeout(self, backend: str, probe: int) -> None:
        if self.probes.get(backend) == probe:
            del self.probes[backend]
            self._record(backend, False, f"no reply within {self.cfg.health.timeout_ms:g} ms")

    def _on_health_reply(self, msg: Message) -> None:
        backend = msg.src
        if self.probes.get(backend) != msg.body["probe"]:
            return  # late: that probe already timed out
        del self.probes[backend]
        self.host.cancel_timer("probe:" + backend)
        ok = msg.body["ok"]
        self._record(backend, ok, "" if ok else "it answered 503 (queue full)")

    def _record(self, backend: str, ok: bool, why: str) -> None:
        state = self.health.get(backend)
        if state is None:
            return
        settings = self.cfg.health
        if ok:
            state.fails = 0
            if not state.healthy:
                state.oks += 1
                if state.oks >= settings.healthy_threshold:
                    state.healthy = True
                    state.oks = 0
                    self._refresh_healthy()
                    self.warned_no_backend = False
                    self.host.emit("readmitted", backend=backend, successes=settings.healthy_threshold)
        else:
            state.oks = 0
            state.last_failure = why
            if state.healthy:
                state.fails += 1
                if state.fails >= settings.unhealthy_threshold:
                    state.healthy = False
                    state.fails = 0
                    self._refresh_healthy()
                    self.host.emit("ejected", backend=backend, failures=settings.unhealthy_threshold, why=why)

    def _refresh_healthy(self) -> None:
        health = self.health
        self.healthy = [b for b in self.cfg.pool if b in health and health[b].healthy]

    # -- configuration pushed by the operator (the engine) -----------------------------
    def set_health(self, settings: HealthSettings) -> None:
        self.cfg.health = settings
        if self.host.alive and self.role == ACTIVE:
            self.host.set_timer("health", settings.interval_ms, self._probe_round)

    def add_backend(self, backend: str, weight: int) -> None:
        self.cfg.pool.append(backend)
        self.cfg.weights[backend] = weight
        if self.host.alive and self.role == ACTIVE:
            self.health[backend] = BackendHealth()
            self._refresh_healthy()

    def remove_backend(self, backend: str) -> int:
        """Take a backend out of the pool. Its open connections fail at once (502). Returns how many."""
        self.cfg.pool.remove(backend)
        del self.cfg.weights[backend]
        self.picker.forget(backend)
        if not self.host.alive:
            return 0
        self.health.pop(backend, None)
        if self.probes.pop(backend, None) is not None:
            self.host.cancel_timer("probe:" + backend)
        self._refresh_healthy()
        dropped = [conn_id for conn_id, conn in self.open.items() if conn.backend == backend]
        for conn_id in dropped:
            conn = self.open.pop(conn_id)
            self._release(backend)
            self.host.send(conn.client, "Response", {"req": conn.req, "status": 502, "why": "backend removed", "backend": backend})
        return len(dropped)

    def set_weight(self, backend: str, weight: int) -> None:
        self.cfg.weights[backend] = weight

    # -- for the view ---------------------------------------------------------------------
    def health_of(self, backend: str) -> dict[str, Any] | None:
        state = self.health.get(backend)
        if state is None:
            return None
        return {
            "healthy": state.healthy,
            "fails": state.fails,
            "oks": state.oks,
            "probing": backend in self.probes,
        }
