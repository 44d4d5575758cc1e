"""The sharded, replicated key-value store behind the engine contract.

The engine wires nodes, clients, the cluster map and the checker together,
validates and applies commands, narrates node facts, and builds the view. It
is also the control plane: it changes the cluster map (membership, placement,
quorums) and follows the moves the nodes report. It never moves data itself,
except for ``load``, a bulk import written straight to the replicas' disks.

Every node handles messages one at a time at ``capacity_rps`` messages per
second. When messages arrive faster they queue; a message that would wait more
than ``MAX_QUEUE_MS`` is shed. That is how a hot key melts one node while the
others idle.

Everything that changes state runs inside simulation events, so a run does not
depend on how a caller slices ``advance()``.
"""

from __future__ import annotations

import math
from bisect import insort
from collections import deque
from collections.abc import Mapping
from typing import Any, ClassVar

from ..errors import InvalidCommand, InvalidParameter
from ..kernel.cluster import ClusterEngine
from ..kernel.network import Message
from ..kernel.rng import derive_rng
from ..validate import number, only_keys, text
from ..text import and_list
from .checker import AckedPut, ShardChecker, fmt_version
from .client import ShardClient
from .cluster_map import ClusterMap
from .node import NodeConfig, ShardNode
from .placement import (
    STRATEGIES,
    ConsistentPlacement,
    ModuloPlacement,
    Placement,
    RangePlacement,
    build,
    estimate_moved_fraction,
)

MAX_NODES = 12
MAX_KEYS = 10_000
MAX_LOAD = 5_000
MAX_HOT_KEYS = 4
MAX_HOT_RPS = 500
HOT_WRITE_FRACTION = 0.2
MAX_PENDING_OPS = 500
MAX_QUEUE_MS = 1_000.0
SAMPLE_MS = 100.0
LOAD_WINDOW = 10  # samples in the load average: one second
SERIES_POINTS = 300
HISTORY_IN_VIEW = 60
EVENTS_IN_VIEW = 60
MESSAGES_IN_VIEW = 300
BATCH_KEYS = 25
TICK_MS = 50.0
PARAMS = [
    "nodes",
    "strategy",
    "vnodes",
    "replicas",
    "write_quorum",
    "read_quorum",
    "latency_ms",
    "drop_rate",
    "duplicate_rate",
    "reorder_rate",
    "range_split_keys",
    "clients",
    "capacity_rps",
    "request_timeout_ms",
    "client_timeout_ms",
]
INTERNAL_FIELDS = ("seq", "unanswered")


def _fmt_value(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def _version_json(version: tuple[int, str] | None) -> list[Any] | None:
    return None if version is None else [version[0], version[1]]


class _Queue:
    """One node's inbox: when it is busy, when it is free, what it handled."""

    __slots__ = ("busy_until", "gen", "arrivals", "window", "shed", "overloaded")

    def __init__(self) -> None:
        self.busy_until = 0.0
        self.gen = 0  # bumps on a crash: queued messages die with the process
        self.arrivals = 0  # in the current sample
        self.window: deque[int] = deque(maxlen=LOAD_WINDOW)
        self.shed = 0
        self.overloaded = False

    def rps(self) -> int:
        return int(sum(self.window) * 1000.0 / (SAMPLE_MS * LOAD_WINDOW))


class _HotKey:
    __slots__ = ("key", "rate", "token", "started_ms", "coordinator", "sent", "ok", "failed")

    def __init__(self, key: str, rate: float, started_ms: float) -> None:
        self.key = key
        self.rate = rate
        self.token = 0
        self.started_ms = started_ms
        self.coordinator = ""  # where the load generator sends this key's requests now
        self.sent = 0
        self.ok = 0
        self.failed = 0  # no answer, a timeout, or a failure


class ShardingEngine(ClusterEngine):
    kind = "sharding"
    title = "Sharded key-value store"
    COMMANDS: ClassVar[dict[str, str]] = {
        **ClusterEngine.COMMANDS,
        "put": "cmd_put",
        "get": "cmd_get",
        "load": "cmd_load",
        "hot_key": "cmd_hot_key",
        "add_node": "cmd_add_node",
        "remove_node": "cmd_remove_node",
        "set_strategy": "cmd_set_strategy",
        "set_quorum": "cmd_set_quorum",
    }

    def __init__(self, *, seed: int = 1, **params: Any) -> None:
        only_keys(params, PARAMS, error=InvalidParameter)
        err = InvalidParameter
        size = number(params, "nodes", lo=3, hi=MAX_NODES, integer=True, default=5, error=err)
        strategy = text(params, "strategy", default="consistent", choices=STRATEGIES, error=err)
        vnodes = number(params, "vnodes", lo=1, hi=256, integer=True, default=16, error=err)
        replicas = number(params, "replicas", lo=1, hi=5, integer=True, default=3, error=err)
        if replicas > size:
            raise InvalidParameter(f"'replicas' ({replicas}) cannot exceed 'nodes' ({size}): each copy needs its own node")
        majority = replicas // 2 + 1
        w = number(params, "write_quorum", lo=1, hi=5, integer=True, default=majority, error=err)
        r = number(params, "read_quorum", lo=1, hi=5, integer=True, default=majority, error=err)
        for name, value in (("write_quorum", w), ("read_quorum", r)):
            if value > replicas:
                raise InvalidParameter(f"'{name}' ({value}) cannot exceed 'replicas' ({replicas})")
        network = self.network_params(params, default_latency_ms=(10.0, 15.0))
        split = number(params, "range_split_keys", lo=100, hi=MAX_KEYS, integer=True, default=250, error=err)
        clients = number(params, "clients", lo=1, hi=9, integer=True, default=3, error=err)
        capacity = number(params, "capacity_rps", lo=10, hi=1_000_000, default=1000.0, error=err)
        request_timeout = number(params, "request_timeout_ms", lo=1, hi=60_000, default=300.0, error=err)
        client_timeout = number(params, "client_timeout_ms", lo=1, hi=120_000, default=1000.0, error=err)
        normalized = {
            "nodes": size,
            "strategy": strategy,
            "vnodes": vnodes,
            "replicas": replicas,
            "write_quorum": w,
            "read_quorum": r,
            **network,
            "range_split_keys": split,
            "clients": clients,
            "capacity_rps": capacity,
            "request_timeout_ms": request_timeout,
            "client_timeout_ms": client_timeout,
        }
        super().__init__(seed=seed, params=normalized, network=network)
        self.strategy = strategy
        self.vnodes = vnodes
        self.range_split_keys = split
        self.capacity_rps = capacity
        self.service_ms = 1000.0 / capacity
        self.node_config = NodeConfig(
            request_timeout_ms=request_timeout,
            retry_ms=max(250.0, 4.0 * network["latency_ms"][1]),
            batch=BATCH_KEYS,
            tick_ms=TICK_MS,
        )
        ids = [f"n{i}" for i in range(1, size + 1)]
        self.next_id = size + 1
        self.catalog: dict[str, None] = {}  # every key ever written or loaded, in order of arrival
        self.keys_sorted: list[str] = []
        self.map = ClusterMap(
            build(strategy, ids, replicas, vnodes=vnodes, keys_sorted=[], range_limit=split), replicas, w, r
        )
        self.shard_nodes: dict[str, ShardNode] = {}
        self.queues: dict[str, _Queue] = {}
        self.leaving: dict[str, None] = {}
        self.departed: list[str] = []
        self.lost_disks = 0
        self.loaded = 0
        self.checker = ShardChecker(self)
        self.history: list[dict[str, Any]] = []
        self._meta: dict[int, tuple[Any, tuple[int, int]]] = {}  # op id -> (checker snapshot, generation at invoke)
        self.placement_change: dict[str, Any] | None = None
        self.rebalance: dict[str, Any] = {"moved": 0, "total": 0, "started_ms": None, "done_ms": None, "cleanup_ms": None}
        self.series: deque[dict[str, Any]] = deque(maxlen=SERIES_POINTS)
        self.ops_done = 0
        self._ops_window: deque[int] = deque(maxlen=LOAD_WINDOW)
        self._ops_bucket = 0
        self.hot: dict[str, _HotKey] = {}
        self._hot_rng = derive_rng(seed, "hot")
        self._hot_stale_narrated = -math.inf
        self._departure_scheduled = False
        self._convergence_scheduled = False
        for node_id in ids:
            self._create_node(node_id)
        self.clients = {
            f"c{i}": self._make_client(f"c{i}", client_timeout, 2) for i in range(1, clients + 1)
        }
        self.hot_client = self._make_client("load", client_timeout, 1)
        for node in self.shard_nodes.values():
            node.start()
        self.sim.schedule(SAMPLE_MS, self._sample)

    def _make_client(self, client_id: str, timeout: float, attempts: int) -> ShardClient:
        return ShardClient(
            client_id,
            sim=self.sim,
            net=self.net,
            cmap=self.map,
            timeout_ms=timeout,
            max_attempts=attempts,
            on_reply=self._on_reply,
            on_give_up=self._on_give_up,
            on_retry=self._on_retry,
        )

    def _create_node(self, node_id: str) -> ShardNode:
        self.queues[node_id] = _Queue()
        node = self.add_node(node_id, lambda host: ShardNode(host, self.node_config, self.map))
        self.shard_nodes[node_id] = node  # type: ignore[assignment]
        return node  # type: ignore[return-value]

    # -- the inbox of each node ----------------------------------------------------------------
    def _deliver_to(self, node_id: str):  # type: ignore[override]
        def deliver(msg: Message) -> None:
            self._arrive(node_id, msg)

        return deliver

    def _arrive(self, node_id: str, msg: Message) -> None:
        queue = self.queues[node_id]
        queue.arrivals += 1
        now = self.sim.now
        if queue.busy_until <= now:
            queue.busy_until = now + self.service_ms
            self.shard_nodes[node_id].on_message(msg)
            return
        wait = queue.busy_until - now
        if wait > MAX_QUEUE_MS:
            queue.shed += 1
            if not queue.overloaded:
                queue.overloaded = True
                self.narrate(
                    f"{node_id} is overloaded: messages arrive faster than its {self.capacity_rps:g}/s and wait "
                    f"over {MAX_QUEUE_MS:g} ms, so it sheds them; requests through it time out",
                    "overload",
                    node=node_id,
                )
            return
        queue.busy_until += self.service_ms
        self.sim.schedule(wait, self._dequeue, node_id, queue.gen, msg, owner=node_id)

    def _dequeue(self, node_id: str, gen: int, msg: Message) -> None:
        queue = self.queues.get(node_id)
        if queue is None or queue.gen != gen or not self.hosts[node_id].alive:
            return
        self.shard_nodes[node_id].on_message(msg)

    def crash(self, node_id: str, *, lose_disk: bool) -> None:
        queue = self.queues[node_id]
        queue.gen += 1
        queue.busy_until = 0.0
        super().crash(node_id, lose_disk=lose_disk)

    # -- sampling for the charts ---------------------------------------------------------------------
    def _sample(self) -> None:
        load: dict[str, int] = {}
        for node_id, queue in self.queues.items():
            queue.window.append(queue.arrivals)
            queue.arrivals = 0
            rps = queue.rps()
            if rps:
                load[node_id] = rps
            if queue.overloaded and queue.busy_until <= self.sim.now:
                queue.overloaded = False
                self.narrate(f"{node_id}'s queue has drained", "overload", node=node_id)
        self._ops_window.append(self._ops_bucket)
        self._ops_bucket = 0
        self.series.append(
            {
                "t": round(self.sim.now),
                "load": load,
                "ops_rps": int(sum(self._ops_window) * 1000.0 / (SAMPLE_MS * LOAD_WINDOW)),
                "stale_reads": self.checker.stale_reads,
            }
        )
        self.sim.schedule(SAMPLE_MS, self._sample)

    # -- helpers -----------------------------------------------------------------------------------------
    def _alive(self, node_id: str) -> bool:
        host = self.hosts.get(node_id)
        return host is not None and host.alive

    def node_arg(self, cmd: Mapping[str, Any], key: str = "node") -> str:
        value = cmd.get(key)
        if isinstance(value, str) and value in self.departed:
            raise InvalidCommand(f"{value} was removed and has left the cluster; the nodes are {', '.join(self.nodes)}")
        return super().node_arg(cmd, key)

    def _key_arg(self, cmd: Mapping[str, Any]) -> str:
        return text(cmd, "key", max_len=32)

    def _add_keys(self, keys: list[str]) -> list[str]:
        """Enter new keys in the catalog; with ranges, split what grew too big. Returns the new ones."""
        fresh = [key for key in dict.fromkeys(keys) if key not in self.catalog]
        if not fresh:
            return fresh
        existing = list(self.catalog)
        for key in fresh:
            self.catalog[key] = None
        if len(fresh) > 16:
            self.keys_sorted.extend(fresh)
            self.keys_sorted.sort()
        else:
            for key in fresh:
                insort(self.keys_sorted, key)
        placement = self.map.placement
        if isinstance(placement, RangePlacement):
            split, notes = placement.split_oversized(self.keys_sorted, self.range_split_keys)
            if notes:
                for note in notes[:5]:
                    self.narrate(note, "placement")
                if len(notes) > 5:
                    self.narrate(f"... and {len(notes) - 5} more splits", "placement")
                count = len(split.ranges)
                self._apply_placement(
                    split,
                    f"{len(notes)} range{'s' if len(notes) != 1 else ''} split ({count} ranges now)",
                    keys=existing,
                )
        return fresh

    def _generation(self) -> tuple[int, int]:
        return self.checker.generation()

    # -- commands: clients ---------------------------------------------------------------------------------
    def cmd_put(self, cmd: Mapping[str, Any]) -> dict[str, Any]:
        only_keys(cmd, ["key", "value", "client", "via"])
        key = self._key_arg(cmd)
        if "value" not in cmd:
            raise InvalidCommand("'put' needs a 'value'")
        value = cmd["value"]
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise InvalidCommand(f"'value' must be text or a whole number, not {value!r}")
        if isinstance(value, str) and len(value) > 64:
            raise InvalidCommand("'value' must be at most 64 characters long")
        if isinstance(value, int) and abs(value) > 2**53:
            raise InvalidCommand("'value' is too large; use at most 2^53")
        client, via = self._client_args(cmd)
        if key not in self.catalog and len(self.catalog) >= MAX_KEYS:
            raise InvalidCommand(f"the store already holds {MAX_KEYS} keys; write to an existing key")
        self._add_keys([key])
        return self._submit(client, via, {"op": "put", "key": key, "value": value})

    def cmd_get(self, cmd: Mapping[str, Any]) -> dict[str, Any]:
        only_keys(cmd, ["key", "client", "via"])
        key = self._key_arg(cmd)
        client, via = self._client_args(cmd)
        return self._submit(client, via, {"op": "get", "key": key, "result": None, "stale": False})

    def _client_args(self, cmd: Mapping[str, Any]) -> tuple[ShardClient, str | None]:
        client_id = text(cmd, "client", default="c1", max_len=8)
        if client_id not in self.clients:
            raise InvalidCommand(f"unknown client {client_id!r}; the clients are {', '.join(self.clients)}")
        via = self.node_arg(cmd, "via") if "via" in cmd else None
        if sum(len(c.outstanding) for c in self.clients.values()) >= MAX_PENDING_OPS:
            raise InvalidCommand(f"{MAX_PENDING_OPS} operations are already pending; wait for some to finish")
        return self.clients[client_id], via

    def _submit(self, client: ShardClient, via: str | None, fields: dict[str, Any]) -> dict[str, Any]:
        record = {
            "id": len(self.history) + 1,
            "client": client.id,
            **fields,
            "invoke": self.sim.now,
            "complete": None,
            "status": "pending",
            "version": None,
            "attempts": 0,
            "node": None,
        }
        if via is not None:
            record["via"] = via
        self.history.append(record)
        self._meta[record["id"]] = (self.checker.snapshot(record["key"]), self._generation())
        client.submit(record, via)
        return {"op_id": record["id"]}

    def cmd_load(self, cmd: Mapping[str, Any]) -> dict[str, Any]:
        only_keys(cmd, ["keys"])
        count = number(cmd, "keys", lo=1, hi=MAX_LOAD, integer=True)
        if len(self.catalog) + count > MAX_KEYS:
            raise InvalidCommand(
                f"the store holds {len(self.catalog)} keys; loading {count} more would pass the limit of {MAX_KEYS}"
            )
        down = [node_id for node_id, host in self.hosts.items() if not host.alive]
        if down:
            raise InvalidCommand(f"'load' writes every replica directly; {and_list(down)} {'is' if len(down) == 1 else 'are'} down, restart first")
        names = []
        index = self.loaded
        while len(names) < count:
            index += 1
            name = f"k{index:04d}"
            if name not in self.catalog:
                names.append(name)
        self.loaded = index
        self._add_keys(names)
        gen = self._generation()
        n = self.map.replicas
        for name in names:
            value = int(name[1:])
            holders = self.map.serving(name) + self.map.targets(name)
            for node_id in holders:
                self.shard_nodes[node_id].import_item(name, value, (1, ""))
            self.checker.on_put_acked(name, AckedPut((1, ""), value, self.map.serving(name), "load", n, gen), gen)
        self.narrate(
            f"loaded {count} keys ({names[0]}..{names[-1]}) straight onto their replicas: "
            f"{len(self.catalog)} keys, {len(self.catalog) * n} copies in all",
            "load",
        )
        self._schedule_convergence()
        return {"keys": len(self.catalog)}

    def cmd_hot_key(self, cmd: Mapping[str, Any]) -> None:
        only_keys(cmd, ["key", "rate_rps"])
        key = self._key_arg(cmd)
        rate = number(cmd, "rate_rps", lo=0, hi=MAX_HOT_RPS)
        hot = self.hot.get(key)
        if rate == 0:
            if hot is None:
                raise InvalidCommand(f"{key!r} is not hot; the hot keys are {', '.join(self.hot) or 'none'}")
            del self.hot[key]
            self.narrate(f"the stream of requests on {key} stopped", "load")
            return
        if hot is None and len(self.hot) >= MAX_HOT_KEYS:
            raise InvalidCommand(f"at most {MAX_HOT_KEYS} keys can be hot at once; stop one with rate_rps 0")
        if key not in self.catalog and len(self.catalog) >= MAX_KEYS:
            raise InvalidCommand(f"the store already holds {MAX_KEYS} keys; heat an existing key")
        self._add_keys([key])
        if hot is None:
            hot = self.hot[key] = _HotKey(key, rate, self.sim.now)
        hot.rate = rate
        hot.token += 1
        self.sim.schedule(1000.0 / rate, self._hot_fire, key, hot.token)
        serving = self.map.serving(key)
        self.narrate(
            f"{key} is hot: {rate:g} requests/s ({1 - HOT_WRITE_FRACTION:.0%} gets, {HOT_WRITE_FRACTION:.0%} puts), "
            f"all to its replicas {and_list(list(serving))}; {serving[0]} coordinates them. No hash spreads one key",
            "load",
        )

    def _hot_fire(self, key: str, token: int) -> None:
        hot = self.hot.get(key)
        if hot is None or hot.token != token:
            return
        rng = self._hot_rng
        client = self.hot_client
        target = client.choose(key, ())
        if target != hot.coordinator:
            if hot.coordinator:
                self.narrate(
                    f"requests for {key} now go to {target}: the load generator stopped getting answers from "
                    f"{hot.coordinator} in time and suspects it",
                    "load",
                    node=target,
                )
            hot.coordinator = target
        if len(client.outstanding) < 2 * MAX_HOT_RPS:
            hot.sent += 1
            if rng.random() < HOT_WRITE_FRACTION:
                record: dict[str, Any] = {"op": "put", "key": key, "value": rng.randrange(1_000_000)}
            else:
                record = {"op": "get", "key": key, "result": None}
            record.update({"client": "the hot-key stream", "invoke": self.sim.now, "attempts": 0, "node": None, "hot": True})
            record["meta"] = (self.checker.snapshot(key), self._generation())
            client.submit(record)
        self.sim.schedule(1000.0 / hot.rate, self._hot_fire, key, token)

    # -- commands: membership, placement, quorums ----------------------------------------------------------
    def cmd_add_node(self, cmd: Mapping[str, Any]) -> dict[str, Any]:
        only_keys(cmd, [])
        members = list(self.map.members)
        if len(members) >= MAX_NODES:
            raise InvalidCommand(f"the cluster already has {MAX_NODES} nodes, the most this lab runs")
        node_id = f"n{self.next_id}"
        self.next_id += 1
        node = self._create_node(node_id)
        node.start()
        new_members = members + [node_id]
        placement = self._placement_for(self.strategy, new_members, self.vnodes)
        m = len(new_members)
        if self.strategy == "modulo":
            expected = estimate_moved_fraction(self.map.placement, placement)
            basis = (
                f"hash mod {m} instead of mod {m - 1} changes the replica set of almost every key; "
                f"for uniform keys about {expected:.0%} of the copies move"
            )
        else:
            expected = 1 / m
            basis = f"a new node should take its fair share, 1/{m} of the copies, and no more"
        self.narrate(f"{node_id} joined the cluster", "membership", node=node_id)
        self._apply_placement(placement, f"{node_id} joined", expected=expected, basis=basis)
        return {"node": node_id}

    def cmd_remove_node(self, cmd: Mapping[str, Any]) -> None:
        only_keys(cmd, ["node"])
        node_id = self.node_arg(cmd)
        if node_id in self.leaving:
            raise InvalidCommand(f"{node_id} is already leaving; it goes once it has handed its keys over")
        members = list(self.map.members)
        n = self.map.replicas
        if len(members) - 1 < n:
            raise InvalidCommand(
                f"removing {node_id} would leave {len(members) - 1} nodes, fewer than the {n} replicas each key needs"
            )
        new_members = [m for m in members if m != node_id]
        placement = self._placement_for(self.strategy, new_members, self.vnodes)
        m = len(members)
        if self.strategy == "modulo":
            expected = estimate_moved_fraction(self.map.placement, placement)
            basis = (
                f"hash mod {m - 1} instead of mod {m} changes the replica set of almost every key; "
                f"for uniform keys about {expected:.0%} of the copies move"
            )
        else:
            expected = 1 / m
            basis = f"only the leaving node's share, 1/{m} of the copies, has to move"
        self.leaving[node_id] = None
        down = "" if self.hosts[node_id].alive else " It is down, so the other replicas send its keys instead."
        self.narrate(
            f"{node_id} is leaving: it keeps serving its keys until their new replicas hold them, then hands off and goes.{down}",
            "membership",
            node=node_id,
        )
        self._apply_placement(placement, f"{node_id} was removed", expected=expected, basis=basis)

    def cmd_set_strategy(self, cmd: Mapping[str, Any]) -> None:
        only_keys(cmd, ["strategy", "vnodes"])
        strategy = text(cmd, "strategy", choices=STRATEGIES)
        if "vnodes" in cmd and strategy != "consistent":
            raise InvalidCommand("'vnodes' applies to the consistent strategy only")
        vnodes = number(cmd, "vnodes", lo=1, hi=256, integer=True, default=self.vnodes)
        if strategy == self.strategy and (strategy != "consistent" or vnodes == self.vnodes):
            what = f"{strategy} with {vnodes} vnodes" if strategy == "consistent" else strategy
            raise InvalidCommand(f"the strategy is already {what}")
        members = list(self.map.members)
        placement = self._placement_for(strategy, members, vnodes)
        n, m = self.map.replicas, len(members)
        expected = estimate_moved_fraction(self.map.placement, placement) if strategy != "range" else 1 - n / m
        old = f"{self.strategy}" + (f" ({self.vnodes} vnodes)" if self.strategy == "consistent" else "")
        new = f"{strategy}" + (f" ({vnodes} vnodes)" if strategy == "consistent" else "")
        self.strategy, self.vnodes = strategy, vnodes
        self._apply_placement(
            placement,
            f"strategy {old} -> {new}",
            expected=expected,
            basis=(
                f"the two placements are unrelated: a copy stays only where they happen to agree "
                f"(for uniform keys about {1 - expected:.0%} of the time)"
            ),
        )

    def _placement_for(self, strategy: str, members: list[str], vnodes: int) -> Placement:
        n = self.map.replicas
        if strategy == "consistent":
            return ConsistentPlacement(members, n, vnodes)
        if strategy == "modulo":
            return ModuloPlacement(members, n)
        current = self.map.placement
        if isinstance(current, RangePlacement):
            return current.with_members(members, self.keys_sorted)
        return RangePlacement.build(members, n, self.keys_sorted, self.range_split_keys)

    def cmd_set_quorum(self, cmd: Mapping[str, Any]) -> None:
        only_keys(cmd, ["w", "r"])
        if "w" not in cmd and "r" not in cmd:
            raise InvalidCommand("'set_quorum' needs 'w', 'r' or both, e.g. {\"op\": \"set_quorum\", \"w\": 2, \"r\": 2}")
        n = self.map.replicas
        w = number(cmd, "w", lo=1, hi=n, integer=True, default=self.map.write_quorum)
        r = number(cmd, "r", lo=1, hi=n, integer=True, default=self.map.read_quorum)
        self.map.write_quorum, self.map.read_quorum = w, r
        if r + w > n:
            why = f"R + W = {r + w} > N = {n}: every read quorum overlaps every write quorum, so a read sees the latest acknowledged write"
        else:
            why = f"R + W = {r + w} <= N = {n}: a read quorum can miss the newest write entirely, so reads may be stale"
        self.narrate(f"quorums set to W = {w}, R = {r}. {why}", "quorum")

    # -- placement changes and moves ---------------------------------------------------------------------
    def _apply_placement(
        self,
        placement: Placement,
        reason: str,
        *,
        expected: float | None = None,
        basis: str = "",
        keys: list[str] | None = None,
    ) -> None:
        keys = list(self.catalog) if keys is None else keys
        result = self.map.plan(placement, keys, self._alive)
        n = self.map.replicas
        total = result.keys_total * n
        fraction = result.copies / total if total else 0.0
        self.placement_change = {
            "reason": reason,
            "strategy": placement.strategy,
            "moved": result.copies,
            "total": total,
            "fraction": round(fraction, 4),
            "expected_fraction": None if expected is None else round(expected, 4),
            "expected_basis": basis,
            "keys": result.keys_total,
            "keys_moving": result.keys_moving,
            "primaries_moved": result.primaries_moved,
            "at_ms": round(self.sim.now, 3),
        }
        self.rebalance = {
            "moved": 0,
            "total": result.copies,
            "started_ms": round(self.sim.now, 3),
            "done_ms": None,
            "cleanup_ms": None,
        }
        if total:
            told = f"{reason}: {result.copies} of {total} copies ({fraction:.1%}) must move"
            if expected is not None:
                told += f"; expected about {expected:.1%}"
            told += f" ({result.keys_moving} of {result.keys_total} keys change replicas)"
        else:
            told = f"{reason}: no keys yet, nothing to move"
        self.narrate(told, "placement")
        if not self.map.moving:
            self.rebalance["done_ms"] = round(self.sim.now, 3)
        for node_id, node in self.shard_nodes.items():
            if self.hosts[node_id].alive:
                node.on_map_change()
        self._schedule_departures()
        self._schedule_convergence()

    def _finish_rebalance_if_done(self) -> None:
        if self.map.moving or self.rebalance["done_ms"] is not None:
            return
        self.rebalance["done_ms"] = round(self.sim.now, 3)
        took = self.sim.now - (self.rebalance["started_ms"] or 0.0)
        drops = self.map.pending_drops()
        tail = f"; old replicas still hand off and delete {drops} copies" if drops else ""
        self.narrate(
            f"rebalance done: {self.rebalance['moved']} copies moved in {took:.0f} ms; every key is served by its new replicas{tail}",
            "placement",
        )

    def _schedule_departures(self) -> None:
        if self.leaving and not self._departure_scheduled:
            self._departure_scheduled = True
            self.sim.schedule(0.0, self._check_departures)

    def _check_departures(self) -> None:
        self._departure_scheduled = False
        for node_id in list(self.leaving):
            node = self.shard_nodes[node_id]
            if self.map.in_use(node_id) or node.disk.hints:
                continue
            host = self.hosts[node_id]
            if host.alive:
                node.sweep()
            host.alive = False
            host.cancel_all_timers()
            self.net.set_up(node_id, False)
            self.queues[node_id].gen += 1
            del self.leaving[node_id]
            del self.nodes[node_id]
            del self.hosts[node_id]
            del self.shard_nodes[node_id]
            del self.queues[node_id]
            self.map.forget_node(node_id)
            self.departed.append(node_id)
            self.narrate(f"{node_id} has handed all its keys over and left the cluster", "membership", node=node_id)
        self._schedule_convergence()

    def _schedule_convergence(self) -> None:
        if not self._convergence_scheduled:
            self._convergence_scheduled = True
            self.sim.schedule(0.0, self._run_convergence)

    def _run_convergence(self) -> None:
        self._convergence_scheduled = False
        self.checker.check_convergence()

    # -- facts from nodes --------------------------------------------------------------------------------
    def on_node_event(self, node_id: str, event: str, fields: dict[str, Any]) -> None:
        if event == "copied":
            cmap = self.map
            poke: dict[str, None] = {}
            for key, target in fields["pairs"]:
                move = cmap.moving.get(key)
                if move is None or target not in move.pending:
                    continue
                self.rebalance["moved"] += 1
                for leaver in cmap.complete_copy(key, target) or ():
                    poke[leaver] = None
            for leaver in poke:
                if self._alive(leaver):
                    self.shard_nodes[leaver].kick()
            self._finish_rebalance_if_done()
            self._schedule_departures()
            self._schedule_convergence()
        elif event == "dropped":
            for key in fields["keys"]:
                self.map.complete_drop(node_id, key)
            self.checker.check_keys(fields["keys"])
            if not self.map.moving and not self.map.pending_drops() and self.rebalance.get("cleanup_ms") is None:
                if self.rebalance["total"]:
                    self.rebalance["cleanup_ms"] = round(self.sim.now, 3)
                    self.narrate("old replicas have handed off and deleted every copy they no longer own", "placement")
            self._schedule_departures()
            self._schedule_convergence()
        elif event == "hints_done":
            self._schedule_departures()
            self._schedule_convergence()
        elif event == "read_repair":
            if fields["client"] != "load":
                nodes = list(fields["nodes"])
                self.narrate(
                    f"read repair: coordinating {fields['client']}'s get of {fields['key']}, {node_id} found older copies "
                    f"on {and_list(nodes)} and wrote {fmt_version(fields['version'])} to "
                    f"{'it' if len(nodes) == 1 else 'them'}",
                    "repair",
                    node=node_id,
                )
        elif event == "crashed":
            node = self.shard_nodes[node_id]
            if fields["lose_disk"]:
                self.lost_disks += 1
                self.narrate(
                    f"{node_id} crashed and lost its disk: its keys and undelivered hints are gone. "
                    "Keys it alone held are lost; watch the invariants",
                    "fault",
                    node=node_id,
                )
                self.checker.check_all()
            else:
                self.narrate(
                    f"{node_id} crashed; its disk keeps {len(node.disk.store)} keys and {len(node.disk.hints)} undelivered hints",
                    "fault",
                    node=node_id,
                )
            self._reassign_sources()
        elif event == "restarted":
            node = self.shard_nodes[node_id]
            self.narrate(f"{node_id} restarted with {len(node.disk.store)} keys on its disk", "fault", node=node_id)
            self._reassign_sources()
            self._schedule_departures()
            self._schedule_convergence()

    def _reassign_sources(self) -> None:
        before = dict(self.map.task_source)
        if self.map.reassign_sources(self._alive):
            for (key, target), source in self.map.task_source.items():
                if before.get((key, target)) != source and self._alive(source):
                    self.shard_nodes[source].kick()

    def cmd_heal(self, cmd: Mapping[str, Any]) -> None:
        super().cmd_heal(cmd)
        self._schedule_convergence()

    def cmd_uncut(self, cmd: Mapping[str, Any]) -> None:
        super().cmd_uncut(cmd)
        self._schedule_convergence()

    # -- answers to clients ----------------------------------------------------------------------------------
    def _on_retry(self, record: dict[str, Any], node: str, target: str) -> None:
        if not record.get("hot"):
            self.narrate(f"{record['client']} got no answer from {node} for {record['op']} {record['key']}; it tries {target}", "client")

    def _count_hot(self, record: dict[str, Any], ok: bool) -> None:
        hot = self.hot.get(record["key"])
        if hot is not None:
            if ok:
                hot.ok += 1
            else:
                hot.failed += 1

    def _on_reply(self, record: dict[str, Any], msg: Message) -> None:
        body = msg.body
        hot = record.get("hot", False)
        if hot:
            self._count_hot(record, body["ok"])
        meta = record.pop("meta") if hot else self._meta.pop(record["id"])
        snap, gen_start = meta
        now = self.sim.now
        record["node"] = body["coordinator"]
        self._ops_bucket += 1
        self.ops_done += 1
        who = record["client"]
        key = record["key"]
        if record["op"] == "put":
            what = f"{who}'s put {key}={_fmt_value(record['value'])}"
            if body["ok"]:
                record.update(status="ok", complete=now, version=_version_json(body["version"]), acks=list(body["acks"]))
                self.checker.on_put_acked(
                    key, AckedPut(body["version"], record["value"], body["acks"], who, body["w"], None), gen_start
                )
                if not hot:
                    self.narrate(
                        f"{what} acknowledged: {fmt_version(body['version'])} on {and_list(list(body['acks']))} (W = {body['w']})",
                        "client",
                    )
            elif body["phase"] == "query":
                answered = list(body["answered"])
                error = (
                    f"{body['coordinator']} heard from {len(answered)} of the R = {body['r']} replicas it asks for "
                    "the newest version, so it wrote nothing"
                )
                if record.get("unanswered"):
                    record.update(error=error + "; an earlier attempt went unanswered, so the outcome is unknown")
                else:
                    record.update(status="fail", complete=now, error=error)
                if not hot:
                    self.narrate(f"{what} failed: {error}", "client")
            else:
                acks = list(body["acks"])
                record.update(
                    version=_version_json(body["version"]),
                    acks=acks,
                    error=f"timed out with {len(acks)} of W = {body['w']} acknowledgements; it may or may not take effect",
                )
                if not hot:
                    self.narrate(
                        f"{what} timed out at {body['coordinator']} with {len(acks)} of W = {body['w']} acknowledgements"
                        + (f" ({and_list(acks)})" if acks else "")
                        + ": it may or may not take effect, so it stays pending",
                        "client",
                    )
            return
        if not body["ok"]:
            answered = list(body["answered"])
            error = f"{body['coordinator']} heard from {len(answered)} of R = {body['r']} replicas in time"
            record.update(status="fail", complete=now, error=error)
            if not hot:
                self.narrate(f"{who}'s get {key} failed: {error}", "client")
            return
        version = body["version"]
        replies = [(node, v) for node, v in body["replies"]]
        record.update(
            status="ok", complete=now, result=body["value"], version=_version_json(version), replies=[n for n, _ in replies]
        )
        verdict = self.checker.on_get_done(key, version, replies, body["r"], snap, gen_start, who)
        if verdict.stale:
            record["stale"] = True
            if not hot or verdict.violation:
                self.narrate(verdict.text, "stale" if not verdict.violation else "violation")
            elif now >= self._hot_stale_narrated + 1000.0:
                # The hot stream can read stale hundreds of times a second: tell it once a second.
                self._hot_stale_narrated = now
                self.narrate(verdict.text + f" ({self.checker.stale_reads} stale reads so far)", "stale")
        elif not hot:
            self.narrate(
                f"{who}'s get {key} -> {_fmt_value(body['value'])} ({fmt_version(version)}) from "
                f"{and_list([n for n, _ in replies])} (R = {body['r']})",
                "client",
            )

    def _on_give_up(self, record: dict[str, Any]) -> None:
        hot = record.get("hot", False)
        if hot:
            record.pop("meta", None)
            self._count_hot(record, False)
        else:
            self._meta.pop(record["id"], None)
        tries = f"{record['attempts']} attempt{'s' if record['attempts'] != 1 else ''}"
        if record["op"] == "get":
            record.update(status="fail", complete=self.sim.now, error=f"no answer after {tries}")
            what = f"{record['client']}'s get {record['key']} failed: no answer after {tries}"
        else:
            record.update(error=f"no answer after {tries}; the outcome is unknown")
            what = (
                f"{record['client']}'s put {record['key']}={_fmt_value(record['value'])} got no answer after {tries}: "
                "it may or may not have been written, so it stays pending"
            )
        if not hot:
            self.narrate(what, "client")

    # -- the view -------------------------------------------------------------------------------------------------
    def violations(self) -> list[dict[str, Any]]:
        return self.checker.violations()

    def outstanding(self) -> int:
        """Client operations still waiting for an answer (hot-key traffic included)."""
        return sum(len(c.outstanding) for c in self.clients.values()) + len(self.hot_client.outstanding)

    def balance(self) -> dict[str, Any]:
        counts = [len(self.shard_nodes[node_id].disk.store) for node_id in self.map.members]
        total = sum(counts)
        if not total:
            return {"max_over_mean": None, "stdev_pct": None, "min": 0, "max": 0, "mean": 0.0}
        mean = total / len(counts)
        stdev = math.sqrt(sum((c - mean) ** 2 for c in counts) / len(counts))
        return {
            "max_over_mean": round(max(counts) / mean, 3),
            "stdev_pct": round(100 * stdev / mean, 1),
            "min": min(counts),
            "max": max(counts),
            "mean": round(mean, 1),
        }

    def _node_view(self, node_id: str) -> dict[str, Any]:
        node, host, queue = self.shard_nodes[node_id], self.hosts[node_id], self.queues[node_id]
        rps = queue.rps()
        return {
            "id": node_id,
            "alive": host.alive,
            "member": node_id in self.map.members,
            "leaving": node_id in self.leaving,
            "keys": len(node.disk.store),
            "load_rps": rps,
            "capacity_rps": self.capacity_rps,
            "saturated": rps >= self.capacity_rps,
            "queue_ms": round(max(0.0, queue.busy_until - self.sim.now), 1) if host.alive else 0.0,
            "shed": queue.shed,
            "hints": len(node.disk.hints),
            "copies_to_send": len(self.map.copy_tasks_of(node_id)),
            "copies_to_drop": len(self.map.drop_tasks_of(node_id)),
        }

    def _rebalance_view(self) -> dict[str, Any]:
        waiting = [
            node_id
            for node_id in self.shard_nodes
            if not self.hosts[node_id].alive and (self.map.copy_tasks_of(node_id) or self.map.drop_tasks_of(node_id))
        ]
        return {
            **self.rebalance,
            "in_progress": bool(self.map.moving),
            "keys_moving": len(self.map.moving),
            "cleanup": self.map.pending_drops(),
            "waiting_on": waiting,
        }

    @staticmethod
    def _message_view(msg: Message) -> dict[str, Any]:
        out = {
            "id": msg.id,
            "from": msg.src,
            "to": msg.dst,
            "type": msg.type,
            "send_ms": round(msg.send_ms, 3),
            "deliver_ms": round(msg.deliver_ms, 3),
            "lost": msg.lost,
            "duplicate": msg.dup_of is not None,
        }
        body = msg.body
        if "items" in body:
            out["keys"] = len(body["items"])
        else:
            out["key"] = body.get("key")
            if "version" in body and body["version"] is not None:
                out["version"] = list(body["version"])
        if "ok" in body:
            out["ok"] = body["ok"]
        return out

    def _history_view(self, record: dict[str, Any]) -> dict[str, Any]:
        return {key: value for key, value in record.items() if key not in INTERNAL_FIELDS}

    def view(self) -> dict[str, Any]:
        placement = self.map.placement
        described = placement.describe(self.keys_sorted)
        in_flight = self.net.in_flight
        messages = []
        for msg in in_flight.values():
            if len(messages) >= MESSAGES_IN_VIEW:
                break
            messages.append(self._message_view(msg))
        return {
            "kind": self.kind,
            "seed": self.seed,
            "now": self.sim.now,
            "params": dict(self.params),
            "strategy": self.strategy,
            "vnodes": self.vnodes,
            "replicas": self.map.replicas,
            "write_quorum": self.map.write_quorum,
            "read_quorum": self.map.read_quorum,
            "range_split_keys": self.range_split_keys,
            "nodes": [self._node_view(node_id) for node_id in self.shard_nodes],
            "members": list(self.map.members),
            "departed": list(self.departed),
            "ring": described["ring"],
            "ring_tokens": described["ring_tokens"],
            "ring_share": placement.primary_share() if isinstance(placement, ConsistentPlacement) else {},
            "ranges": described["ranges"],
            "keys_total": len(self.catalog),
            "rebalance": self._rebalance_view(),
            "placement_change": self.placement_change,
            "balance": self.balance(),
            "hot_keys": [
                {
                    "key": hot.key,
                    "rate_rps": hot.rate,
                    "replicas": list(self.map.serving(hot.key)),
                    "coordinator": hot.coordinator or self.map.serving(hot.key)[0],
                    "sent": hot.sent,
                    "ok": hot.ok,
                    "failed": hot.failed,
                }
                for hot in self.hot.values()
            ],
            "history": [self._history_view(r) for r in self.history[-HISTORY_IN_VIEW:]],
            "stale_reads": self.checker.stale_reads,
            "ops_done": self.ops_done,
            "messages": messages,
            "messages_total": len(in_flight),
            "series": list(self.series),
            "clients": list(self.clients),
            "events": self._recent_events(EVENTS_IN_VIEW),
            "invariants": self.checker.summary(),
            "network": self.network_view(),
        }

