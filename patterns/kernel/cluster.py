"""Engines made of nodes on the simulated network.

A node's protocol code (for example ``RaftNode``) never touches the simulator or
the network directly. It talks to its ``Host``: ``send``, named timers, its own
random stream, and ``emit`` for facts the engine narrates and checks. The host
owns what a crash takes away: timers die, the endpoint goes down.

``ClusterEngine`` carries the commands every engine with nodes accepts:
crash, restart, crash_lose_disk, partition, heal, cut, uncut, network.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from ..engine import Engine
from ..errors import InvalidCommand, InvalidParameter
from ..validate import number, number_pair, only_keys
from .network import Message, Network
from .rng import derive_rng
from .sim import Timer

LATENCY_LIMIT_MS = 10_000.0


class Host:
    """What a node can touch: the clock, its rng, the wire, its timers, the narrator."""

    def __init__(self, engine: ClusterEngine, node_id: str, rng: random.Random) -> None:
        self.engine = engine
        self.id = node_id
        self.rng = rng
        self.alive = True
        self._timers: dict[str, Timer] = {}
        self._sim = engine.sim
        self._net = engine.net
        self._on_fire = self._fire  # one bound method for every timer, not one each

    @property
    def now(self) -> float:
        return self._sim.now

    def send(self, dst: str, type: str, body: Mapping[str, Any]) -> None:
        assert self.alive, f"{self.id} is down and cannot send"
        self._net.send(self.id, dst, type, body)

    def set_timer(self, name: str, delay_ms: float, fn: Callable[[], None]) -> None:
        """(Re)arm the timer called ``name``; an earlier one of that name is cancelled."""
        old = self._timers.get(name)
        if old is not None:
            if self._sim.reschedule(old, delay_ms, self._on_fire, name, fn):
                return  # moved later in place: no new timer, no stale heap entry
            old.cancel()
        self._timers[name] = self._sim.schedule(delay_ms, self._on_fire, name, fn, owner=self.id)

    def _fire(self, name: str, fn: Callable[[], None]) -> None:
        self._timers.pop(name, None)
        fn()

    def cancel_timer(self, name: str) -> None:
        timer = self._timers.pop(name, None)
        if timer is not None:
            timer.cancel()

    def timer_due(self, name: str) -> float | None:
        timer = self._timers.get(name)
        return None if timer is None else timer.at

    def cancel_all_timers(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers = {}

    def emit(self, event: str, **fields: Any) -> None:
        self.engine.on_node_event(self.id, event, fields)


class ClusterNode:
    """The protocol side of a node. Subclasses implement the algorithm."""

    def __init__(self, host: Host) -> None:
        self.host = host
        self.id = host.id

    def start(self) -> None:
        """Called at boot and after every restart, with volatile state fresh."""

    def on_message(self, msg: Message) -> None:
        raise AssertionError(f"{type(self).__name__} must handle messages")

    def on_crash(self) -> None:
        """Drop volatile state. Persistent state stays."""

    def on_lose_disk(self) -> None:
        """Drop persistent state too (called after on_crash)."""


class ClusterEngine(Engine):
    COMMANDS: ClassVar[dict[str, str]] = {
        "crash": "cmd_crash",
        "crash_lose_disk": "cmd_crash_lose_disk",
        "restart": "cmd_restart",
        "partition": "cmd_partition",
        "heal": "cmd_heal",
        "cut": "cmd_cut",
        "uncut": "cmd_uncut",
        "network": "cmd_network",
    }
    #: the common commands for engines whose nodes keep nothing on disk
    DISKLESS_COMMANDS: ClassVar[dict[str, str]] = {
        op: name for op, name in COMMANDS.items() if op != "crash_lose_disk"
    }

    def __init__(self, *, seed: int, params: Mapping[str, Any], network: Mapping[str, Any]) -> None:
        """``network`` is what ``network_params()`` returned for this engine."""
        super().__init__(seed=seed, params=params)
        latency = network["latency_ms"]
        self.net = Network(
            self.sim,
            derive_rng(seed, "network"),
            latency_ms=(latency[0], latency[1]),
            drop_rate=network["drop_rate"],
            duplicate_rate=network["duplicate_rate"],
            reorder_rate=network["reorder_rate"],
        )
        self.hosts: dict[str, Host] = {}
        self.nodes: dict[str, ClusterNode] = {}

    @staticmethod
    def network_params(params: Mapping[str, Any], *, default_latency_ms: tuple[float, float]) -> dict[str, Any]:
        """The network parameters every engine with nodes takes, checked and
        normalized (JSON-ready, in this order): latency_ms, drop_rate,
        duplicate_rate, reorder_rate."""
        err = InvalidParameter
        latency = number_pair(params, "latency_ms", lo=0, hi=LATENCY_LIMIT_MS, default=default_latency_ms, error=err)
        return {
            "latency_ms": list(latency),
            "drop_rate": number(params, "drop_rate", lo=0, hi=1, default=0.0, error=err),
            "duplicate_rate": number(params, "duplicate_rate", lo=0, hi=1, default=0.0, error=err),
            "reorder_rate": number(params, "reorder_rate", lo=0, hi=1, default=0.0, error=err),
        }

    # -- building --------------------------------------------------------
    def add_node(self, node_id: str, factory: Callable[[Host], ClusterNode]) -> ClusterNode:
        host = Host(self, node_id, derive_rng(self.seed, "node", node_id))
        node = factory(host)
        self.hosts[node_id] = host
        self.nodes[node_id] = node
        self.net.attach(node_id, self._deliver_to(node_id))
        return node

    def _deliver_to(self, node_id: str) -> Callable[[Message], None]:
        node = self.nodes[node_id]
        return node.on_message

    def on_node_event(self, node_id: str, event: str, fields: dict[str, Any]) -> None:
        """Facts emitted by node code; subclasses narrate and check them."""

    # -- validation helpers ------------------------------------------------
    def node_arg(self, cmd: Mapping[str, Any], key: str = "node") -> str:
        value = cmd.get(key)
        if value is None:
            raise InvalidCommand(f"'{cmd.get('op')}' needs '{key}', one of {', '.join(self.nodes)}")
        if not isinstance(value, str) or value not in self.nodes:
            raise InvalidCommand(f"unknown node {value!r}; the nodes are {', '.join(self.nodes)}")
        return value

    def alive_node_arg(self, cmd: Mapping[str, Any], key: str = "node") -> str:
        node_id = self.node_arg(cmd, key)
        if not self.hosts[node_id].alive:
            raise InvalidCommand(f"{node_id} is down; restart it first")
        return node_id

    # -- the common commands -------------------------------------------------
    def cmd_crash(self, cmd: Mapping[str, Any]) -> None:
        only_keys(cmd, ["node"])
        node_id = self.alive_node_arg(cmd)
        self.crash(node_id, lose_disk=False)

    def cmd_crash_lose_disk(self, cmd: Mapping[str, Any]) -> None:
        only_keys(cmd, ["node"])
        node_id = self.node_arg(cmd)
        self.crash(node_id, lose_disk=True)

    def cmd_restart(self, cmd: Mapping[str, Any]) -> None:
        only_keys(cmd, ["node"])
        node_id = self.node_arg(cmd)
        if self.hosts[node_id].alive:
            raise InvalidCommand(f"{node_id} is already up; only a crashed node can restart")
        self.restart(node_id)

    def crash(self, node_id: str, *, lose_disk: bool) -> None:
        host, node = self.hosts[node_id], self.nodes[node_id]
        if host.alive:
            host.alive = False
            host.cancel_all_timers()
            self.net.set_up(node_id, False)
            node.on_crash()
        if lose_disk:
            node.on_lose_disk()
        self.on_node_event(node_id, "crashed", {"lose_disk": lose_disk})

    def restart(self, node_id: str) -> None:
        host, node = self.hosts[node_id], self.nodes[node_id]
        host.alive = True
        self.net.set_up(node_id, True)
        node.start()
        self.on_node_event(node_id, "restarted", {})

    def cmd_partition(self, cmd: Mapping[str, Any]) -> None:
        only_keys(cmd, ["groups"])
        groups = cmd.get("groups")
        if not isinstance(groups, list) or not groups or not all(isinstance(g, list) and g for g in groups):
            raise InvalidCommand("'groups' must be a list of non-empty lists of node ids, e.g. [[\"n1\",\"n2\"],[\"n3\"]]")
        seen: dict[str, int] = {}
        for index, group in enumerate(groups):
            for node_id in group:
                if not isinstance(node_id, str) or node_id not in self.nodes:
                    raise InvalidCommand(f"unknown node {node_id!r} in 'groups'; the nodes are {', '.join(self.nodes)}")
                if node_id in seen:
                    raise InvalidCommand(f"{node_id} is in more than one group")
                seen[node_id] = index
        rest = [node_id for node_id in self.nodes if node_id not in seen]
        full = [list(group) for group in groups] + ([rest] if rest else [])
        if len(full) < 2:
            raise InvalidCommand("a partition needs at least two groups")
        self.net.partition(full)
        self.narrate(
            "the network split into " + " | ".join("{" + ", ".join(g) + "}" for g in full), "fault"
        )

    def cmd_heal(self, cmd: Mapping[str, Any]) -> None:
        only_keys(cmd, [])
        self.net.heal()
        self.narrate("the network healed: every node can reach every other", "fault")

    def cmd_cut(self, cmd: Mapping[str, Any]) -> None:
        src, dst = self._link_args(cmd)
        self.net.cut(src, dst)
        self.narrate(f"the link from {src} to {dst} is cut (one way: {dst} can still reach {src})", "fault")

    def cmd_uncut(self, cmd: Mapping[str, Any]) -> None:
        src, dst = self._link_args(cmd)
        self.net.uncut(src, dst)
        self.narrate(f"the link from {src} to {dst} is back", "fault")

    def _link_args(self, cmd: Mapping[str, Any]) -> tuple[str, str]:
        only_keys(cmd, ["from", "to"])
        src, dst = self.node_arg(cmd, "from"), self.node_arg(cmd, "to")
        if src == dst:
            raise InvalidCommand("'from' and 'to' must be different nodes")
        return src, dst

    def cmd_network(self, cmd: Mapping[str, Any]) -> None:
        only_keys(cmd, ["latency_ms", "drop_rate", "duplicate_rate", "reorder_rate"])
        net = self.net
        latency = number_pair(cmd, "latency_ms", lo=0, hi=LATENCY_LIMIT_MS, default=net.latency_ms)
        drop = number(cmd, "drop_rate", lo=0, hi=1, default=net.drop_rate)
        dup = number(cmd, "duplicate_rate", lo=0, hi=1, default=net.duplicate_rate)
        reorder = number(cmd, "reorder_rate", lo=0, hi=1, default=net.reorder_rate)
        net.latency_ms, net.drop_rate, net.duplicate_rate, net.reorder_rate = latency, drop, dup, reorder
        self.narrate(
            f"network: latency {latency[0]:g}-{latency[1]:g} ms, {drop:.0%} loss"
            + (f", {dup:.0%} duplicated" if dup else "")
            + (f", {reorder:.0%} reordered" if reorder else ""),
            "fault",
        )

    # -- shared view parts --------------------------------------------------
    def network_view(self) -> dict[str, Any]:
        net = self.net
        return {
            "latency_ms": list(net.latency_ms),
            "drop_rate": net.drop_rate,
            "duplicate_rate": net.duplicate_rate,
            "reorder_rate": net.reorder_rate,
            "partition": net.partition_groups(),
            "cuts": net.cuts(),
            "counts": dict(net.counts),
        }
