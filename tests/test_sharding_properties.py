"""Property-based tests of the sharding engine, and of apply()/create() validation.

The state machine drives random schedules of faults (crash, restart,
partition, cut, loss, duplication, reordering), membership changes (add and
remove nodes), strategy and quorum changes, bulk loads and client traffic,
and checks the invariants after every step. At the end it repairs everything,
lets the moves and hints finish and checks, from the node disks themselves,
that no acknowledged write was lost, that every key sits on exactly its N
nodes, and that with R + W > N no read in the healed phase is stale.

Bounded by default; for a longer soak:

    SHARDING_MAX_EXAMPLES=1000 SHARDING_STEPS=80 .venv/bin/python -m pytest tests/test_sharding_properties.py
"""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

import patterns
from engine_contract import assert_rejected_without_effect, schedule_settings
from patterns.errors import InvalidCommand, InvalidParameter

WAIT = st.sampled_from([0, 0, 2, 10, 40, 120, 300, 800])
NODE = st.integers(0, 15)
KEYS = ["a", "b", "c", "d", "e", "f"]
HEAL_LIMIT_MS = 120_000.0


def state_json(eng) -> str:
    return json.dumps(
        {"view": eng.view(), "history": eng.history, "events": eng.events(), "log": eng.command_log}, sort_keys=True
    )


def repair(eng) -> None:
    """Stop the hot keys, heal the network, restore it, restart every crashed node, restore quorums."""
    for key in list(eng.hot):
        eng.apply({"op": "hot_key", "key": key, "rate_rps": 0})
    eng.apply({"op": "heal"})
    eng.apply({"op": "network", "latency_ms": [10, 15], "drop_rate": 0, "duplicate_rate": 0, "reorder_rate": 0})
    for node_id, host in list(eng.hosts.items()):
        if not host.alive:
            eng.apply({"op": "restart", "node": node_id})
    n = eng.map.replicas
    eng.apply({"op": "set_quorum", "w": n // 2 + 1, "r": n // 2 + 1})


def settle(eng, limit_ms: float = HEAL_LIMIT_MS) -> bool:
    """Advance until the checker can judge placement and no client waits. False if the limit passes."""
    deadline = eng.now + limit_ms
    while eng.now < deadline:
        eng.advance(250)
        if not eng.checker.quiet_reason() and not eng.outstanding():
            return True
    return False


def assert_no_acknowledged_write_lost(eng) -> None:
    """From the disks: every acknowledged put's version, or a newer one, is on some node."""
    best: dict[str, tuple] = {}
    for record in eng.history:
        if record["op"] == "put" and record["status"] == "ok":
            version = tuple(record["version"])
            if version > best.get(record["key"], (0, "")):
                best[record["key"]] = version
    for key, version in best.items():
        held = max((node.disk.store[key][1] for node in eng.shard_nodes.values() if key in node.disk.store), default=(0, ""))
        assert held >= version, f"{key}: acknowledged {version}, best on disk {held}"


def assert_placed(eng) -> None:
    """Every key that exists is on exactly its N nodes, with one version, and nowhere else."""
    for key in eng.catalog:
        holders = sorted(node_id for node_id, node in eng.shard_nodes.items() if key in node.disk.store)
        if not holders:
            continue
        assert holders == sorted(eng.map.serving(key)), f"{key} on {holders}, should be on {eng.map.serving(key)}"
        assert len({eng.shard_nodes[n].disk.store[key][1] for n in holders}) == 1, f"{key}'s copies disagree"


class ShardingSchedules(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.eng = None
        self.next_value = 0

    @initialize(
        seed=st.integers(0, 2**32),
        size=st.integers(3, 5),
        strategy=st.sampled_from(["consistent", "modulo", "range"]),
        vnodes=st.sampled_from([1, 4, 16]),
        replicas=st.sampled_from([2, 3, 3]),
        loaded=st.sampled_from([0, 0, 20, 150]),
    )
    def create(self, seed, size, strategy, vnodes, replicas, loaded):
        self.eng = patterns.create(
            "sharding", seed=seed, nodes=size, strategy=strategy, vnodes=vnodes, replicas=replicas, range_split_keys=100
        )
        if loaded:
            self.eng.apply({"op": "load", "keys": loaded})

    # -- helpers -------------------------------------------------------------------------------
    def node(self, index: int) -> str:
        ids = list(self.eng.nodes)
        return ids[index % len(ids)]

    def try_apply(self, cmd: dict) -> bool:
        """Apply a command the state may refuse; a refusal must change nothing."""
        before = state_json(self.eng)
        try:
            self.eng.apply(cmd)
        except InvalidCommand:
            assert state_json(self.eng) == before
            return False
        return True

    # -- faults ------------------------------------------------------------------------------------
    @rule(index=NODE, wait=WAIT)
    def crash(self, index, wait):
        node_id = self.node(index)
        was_up = self.eng.hosts[node_id].alive
        assert self.try_apply({"op": "crash", "node": node_id}) == was_up
        self.eng.advance(wait)

    @rule(index=NODE, wait=WAIT)
    def restart(self, index, wait):
        node_id = self.node(index)
        was_up = self.eng.hosts[node_id].alive
        assert self.try_apply({"op": "restart", "node": node_id}) == (not was_up)
        self.eng.advance(wait)

    @rule(labels=st.lists(st.integers(0, 2), min_size=16, max_size=16), wait=WAIT)
    def partition(self, labels, wait):
        groups: dict[int, list[str]] = {}
        for node_id, label in zip(self.eng.nodes, labels):
            groups.setdefault(label, []).append(node_id)
        self.try_apply({"op": "partition", "groups": [groups[k] for k in sorted(groups)]})
        self.eng.advance(wait)

    @rule(wait=WAIT)
    def heal(self, wait):
        self.eng.apply({"op": "heal"})
        self.eng.advance(wait)

    @rule(a=NODE, b=NODE, cut=st.booleans(), wait=WAIT)
    def cut(self, a, b, cut, wait):
        self.try_apply({"op": "cut" if cut else "uncut", "from": self.node(a), "to": self.node(b)})
        self.eng.advance(wait)

    @rule(
        latency=st.tuples(st.sampled_from([0, 1, 5, 10]), st.sampled_from([5, 15, 40, 120])),
        drop=st.sampled_from([0.0, 0.0, 0.1, 0.3]),
        dup=st.sampled_from([0.0, 0.2]),
        reorder=st.sampled_from([0.0, 0.3]),
        wait=WAIT,
    )
    def network(self, latency, drop, dup, reorder, wait):
        lo, hi = sorted(latency)
        self.eng.apply({"op": "network", "latency_ms": [lo, hi], "drop_rate": drop, "duplicate_rate": dup, "reorder_rate": reorder})
        self.eng.advance(wait)

    # -- membership and placement -------------------------------------------------------------------
    @rule(wait=WAIT)
    def add_node(self, wait):
        members = len(self.eng.map.members)
        assert self.try_apply({"op": "add_node"}) == (members < 12)
        self.eng.advance(wait)

    @rule(index=NODE, wait=WAIT)
    def remove_node(self, index, wait):
        members = list(self.eng.map.members)
        node_id = members[index % len(members)]
        assert self.try_apply({"op": "remove_node", "node": node_id}) == (len(members) > self.eng.map.replicas)
        self.eng.advance(wait)

    @rule(strategy=st.sampled_from(["consistent", "modulo", "range"]), vnodes=st.sampled_from([1, 8, 32]), wait=WAIT)
    def set_strategy(self, strategy, vnodes, wait):
        cmd = {"op": "set_strategy", "strategy": strategy}
        if strategy == "consistent":
            cmd["vnodes"] = vnodes
        self.try_apply(cmd)
        self.eng.advance(wait)

    @rule(w=st.integers(1, 3), r=st.integers(1, 3), wait=WAIT)
    def set_quorum(self, w, r, wait):
        n = self.eng.map.replicas
        assert self.try_apply({"op": "set_quorum", "w": w, "r": r}) == (w <= n and r <= n)
        self.eng.advance(wait)

    # -- traffic ---------------------------------------------------------------------------------------
    @rule(client=st.integers(1, 3), key=st.sampled_from(KEYS), via=st.none() | NODE, wait=WAIT)
    def put(self, client, key, via, wait):
        self.next_value += 1
        cmd = {"op": "put", "key": key, "value": self.next_value, "client": f"c{client}"}
        if via is not None:
            cmd["via"] = self.node(via)
        count = len(self.eng.history)
        assert self.eng.apply(cmd) == {"op_id": count + 1}
        self.eng.advance(wait)

    @rule(client=st.integers(1, 3), key=st.sampled_from(KEYS), via=st.none() | NODE, wait=WAIT)
    def get(self, client, key, via, wait):
        cmd = {"op": "get", "key": key, "client": f"c{client}"}
        if via is not None:
            cmd["via"] = self.node(via)
        self.eng.apply(cmd)
        self.eng.advance(wait)

    @rule(key=st.sampled_from(KEYS[:2]), rate=st.sampled_from([0, 20, 80]), wait=WAIT)
    def hot_key(self, key, rate, wait):
        self.try_apply({"op": "hot_key", "key": key, "rate_rps": rate})
        self.eng.advance(wait)

    @rule(ms=st.sampled_from([1, 20, 100, 400, 1500]) | st.floats(0, 400, allow_nan=False))
    def advance(self, ms):
        before = self.eng.now
        self.eng.advance(ms)
        assert self.eng.now == before + ms

    @rule(count=st.integers(1, 20))
    def step(self, count):
        for _ in range(count):
            self.eng.step()

    # -- checks ------------------------------------------------------------------------------------------
    @invariant()
    def safety(self):
        if self.eng is not None:
            assert self.eng.violations() == []

    def teardown(self):
        eng = self.eng
        if eng is None or eng.violations():
            return  # the invariant has already failed; don't mask it
        repair(eng)
        assert settle(eng), f"not quiet {HEAL_LIMIT_MS:g} ms after repairing everything: {eng.checker.quiet_reason()}"
        assert eng.violations() == []
        assert not eng.leaving and not eng.map.moving and eng.map.pending_drops() == 0
        assert eng.checker.convergence_skipped.startswith("checked")
        assert_no_acknowledged_write_lost(eng)
        assert_placed(eng)
        # The healed phase: with R + W > N, every read sees the newest acknowledged write.
        assert eng.map.read_quorum + eng.map.write_quorum > eng.map.replicas
        first = len(eng.history)
        for i, key in enumerate(KEYS):
            eng.apply({"op": "get", "key": key, "client": f"c{i % 3 + 1}"})
        for i, key in enumerate(KEYS[:3]):
            self.next_value += 1
            eng.apply({"op": "put", "key": key, "value": self.next_value, "client": f"c{i % 3 + 1}"})
        eng.advance(300)
        for i, key in enumerate(KEYS):
            eng.apply({"op": "get", "key": key, "client": f"c{i % 3 + 1}"})
        assert settle(eng)
        healed = eng.history[first:]
        assert all(r["status"] == "ok" for r in healed), [r for r in healed if r["status"] != "ok"]
        assert not any(r.get("stale") for r in healed), [r for r in healed if r.get("stale")]
        latest = {r["key"]: r["value"] for r in healed if r["op"] == "put"}
        for record in healed[-len(KEYS):]:
            if record["key"] in latest:
                assert record["result"] == latest[record["key"]]
        assert eng.violations() == []
        assert_no_acknowledged_write_lost(eng)
        assert_placed(eng)


TestShardingSchedules = ShardingSchedules.TestCase
TestShardingSchedules.settings = schedule_settings("SHARDING", max_examples=120, steps=40)


# -- apply() validation ------------------------------------------------------------------------------------


def busy_engine():
    """Some history: keys, a pending write, a crashed node, a partition, a node leaving, a hot key."""
    eng = patterns.create("sharding", seed=11, nodes=6)
    eng.apply({"op": "load", "keys": 200})
    eng.apply({"op": "put", "key": "x", "value": 1})
    eng.advance(300)
    eng.apply({"op": "hot_key", "key": "x", "rate_rps": 50})
    eng.apply({"op": "remove_node", "node": "n6"})
    eng.apply({"op": "crash", "node": "n4"})
    eng.apply({"op": "partition", "groups": [["n1", "n2"], ["n3", "n5"]]})
    eng.apply({"op": "put", "key": "y", "value": "two", "client": "c2"})
    eng.advance(7)
    return eng


BAD_COMMANDS = [
    ("not a dict", ["put", "x"], "must be a JSON object"),
    ("unknown op", {"op": "shard"}, "unknown op 'shard'"),
    ("unknown node", {"op": "crash", "node": "n9"}, "unknown node 'n9'"),
    ("crash a crashed node", {"op": "crash", "node": "n4"}, "n4 is down"),
    ("restart a node that is up", {"op": "restart", "node": "n1"}, "already up"),
    ("put without key", {"op": "put", "value": 1}, "'key' is required"),
    ("put without value", {"op": "put", "key": "x"}, "needs a 'value'"),
    ("put empty key", {"op": "put", "key": "", "value": 1}, "1 to 32 characters"),
    ("put key number", {"op": "put", "key": 5, "value": 1}, "'key' must be text"),
    ("put float value", {"op": "put", "key": "x", "value": 1.5}, "'value' must be text or a whole number"),
    ("put bool value", {"op": "put", "key": "x", "value": True}, "'value' must be text or a whole number"),
    ("put long value", {"op": "put", "key": "x", "value": "v" * 65}, "at most 64 characters"),
    ("put huge value", {"op": "put", "key": "x", "value": 2**60}, "too large"),
    ("put unknown client", {"op": "put", "key": "x", "value": 1, "client": "c9"}, "unknown client 'c9'"),
    ("put via unknown node", {"op": "put", "key": "x", "value": 1, "via": "n0"}, "unknown node 'n0'"),
    ("put extra field", {"op": "put", "key": "x", "value": 1, "ttl": 5}, "does not take 'ttl'"),
    ("get with a value", {"op": "get", "key": "x", "value": 1}, "does not take 'value'"),
    ("get without key", {"op": "get"}, "'key' is required"),
    ("load nothing", {"op": "load", "keys": 0}, "'keys' must be between 1 and 5000"),
    ("load too many", {"op": "load", "keys": 5001}, "'keys' must be between 1 and 5000"),
    ("load fraction", {"op": "load", "keys": 2.5}, "'keys' must be a whole number"),
    ("load text", {"op": "load", "keys": "100"}, "'keys' must be a whole number"),
    ("load with a node down", {"op": "load", "keys": 10}, "n4 is down"),
    ("load missing count", {"op": "load"}, "'keys' is required"),
    ("hot key rate too high", {"op": "hot_key", "key": "x", "rate_rps": 501}, "'rate_rps' must be between 0 and 500"),
    ("hot key negative", {"op": "hot_key", "key": "x", "rate_rps": -1}, "'rate_rps' must be between"),
    ("hot key NaN", {"op": "hot_key", "key": "x", "rate_rps": math.nan}, "'rate_rps' must be a number"),
    ("cool a cold key", {"op": "hot_key", "key": "zz", "rate_rps": 0}, "'zz' is not hot"),
    ("hot key without key", {"op": "hot_key", "rate_rps": 10}, "'key' is required"),
    ("add node with a field", {"op": "add_node", "node": "n9"}, "does not take 'node'"),
    ("remove unknown node", {"op": "remove_node", "node": "n42"}, "unknown node 'n42'"),
    ("remove node missing", {"op": "remove_node"}, "needs 'node'"),
    ("remove a leaving node", {"op": "remove_node", "node": "n6"}, "already leaving"),
    ("strategy unknown", {"op": "set_strategy", "strategy": "random"}, "'strategy' must be one of consistent, modulo, range"),
    ("strategy missing", {"op": "set_strategy"}, "'strategy' is required"),
    ("strategy unchanged", {"op": "set_strategy", "strategy": "consistent"}, "already consistent with 16 vnodes"),
    ("vnodes with modulo", {"op": "set_strategy", "strategy": "modulo", "vnodes": 8}, "consistent strategy only"),
    ("vnodes zero", {"op": "set_strategy", "strategy": "consistent", "vnodes": 0}, "'vnodes' must be between 1 and 256"),
    ("vnodes too many", {"op": "set_strategy", "strategy": "consistent", "vnodes": 257}, "between 1 and 256"),
    ("quorum empty", {"op": "set_quorum"}, "needs 'w', 'r' or both"),
    ("write quorum above N", {"op": "set_quorum", "w": 4}, "'w' must be between 1 and 3"),
    ("read quorum above N", {"op": "set_quorum", "r": 4, "w": 2}, "'r' must be between 1 and 3"),
    ("read quorum zero", {"op": "set_quorum", "r": 0}, "'r' must be between 1 and 3"),
    ("quorum text", {"op": "set_quorum", "w": "2"}, "'w' must be a whole number"),
    ("quorum unknown field", {"op": "set_quorum", "n": 3}, "does not take 'n'"),
    ("partition unknown node", {"op": "partition", "groups": [["n1", "n7"]]}, "unknown node 'n7'"),
    ("network drop above 1", {"op": "network", "drop_rate": 1.5}, "'drop_rate' must be between 0 and 1"),
]


@pytest.mark.parametrize("cmd,fragment", [(c, f) for _, c, f in BAD_COMMANDS], ids=[n for n, _, _ in BAD_COMMANDS])
def test_bad_command_is_rejected_and_changes_nothing(cmd, fragment):
    assert_rejected_without_effect(busy_engine, cmd, fragment, state_json)


def test_removing_below_n_and_departed_nodes_are_refused():
    eng = patterns.create("sharding", seed=3, nodes=4)
    eng.apply({"op": "remove_node", "node": "n4"})
    with pytest.raises(InvalidCommand, match="would leave 2 nodes, fewer than the 3 replicas"):
        eng.apply({"op": "remove_node", "node": "n1"})
    eng.advance(1_000)
    assert eng.departed == ["n4"]
    for cmd in ({"op": "crash", "node": "n4"}, {"op": "restart", "node": "n4"}, {"op": "get", "key": "x", "via": "n4"}):
        before = state_json(eng)
        with pytest.raises(InvalidCommand, match="n4 was removed"):
            eng.apply(cmd)
        assert state_json(eng) == before


def test_too_many_nodes_keys_and_hot_keys_are_refused():
    eng = patterns.create("sharding", seed=1, nodes=11)
    eng.apply({"op": "add_node"})
    with pytest.raises(InvalidCommand, match="already has 12 nodes"):
        eng.apply({"op": "add_node"})
    eng.apply({"op": "load", "keys": 5000})
    eng.apply({"op": "load", "keys": 5000})
    with pytest.raises(InvalidCommand, match="would pass the limit of 10000"):
        eng.apply({"op": "load", "keys": 1})
    with pytest.raises(InvalidCommand, match="already holds 10000 keys"):
        eng.apply({"op": "put", "key": "new", "value": 1})
    eng.apply({"op": "put", "key": "k0001", "value": 1})  # an existing key is fine
    for key in ("k0001", "k0002", "k0003", "k0004"):
        eng.apply({"op": "hot_key", "key": key, "rate_rps": 1})
    with pytest.raises(InvalidCommand, match="at most 4 keys can be hot"):
        eng.apply({"op": "hot_key", "key": "k0005", "rate_rps": 1})


def test_too_many_pending_operations_is_rejected_cleanly():
    eng = patterns.create("sharding", seed=1, nodes=3)
    eng.apply({"op": "partition", "groups": [["n1"], ["n2"], ["n3"]]})
    for node_id in ("n1", "n2", "n3"):
        eng.apply({"op": "crash", "node": node_id})
    count = 0
    with pytest.raises(InvalidCommand, match="already pending"):
        while count < 1000:
            eng.apply({"op": "put", "key": "k", "value": count, "client": f"c{count % 3 + 1}"})
            count += 1
    assert count == 500
    before = state_json(eng)
    with pytest.raises(InvalidCommand):
        eng.apply({"op": "get", "key": "k"})
    assert state_json(eng) == before


BAD_PARAMS = [
    ({"nodes": 2}, "'nodes' must be between 3 and 12"),
    ({"nodes": 13}, "'nodes' must be between 3 and 12"),
    ({"nodes": "5"}, "'nodes' must be a whole number"),
    ({"strategy": "ring"}, "'strategy' must be one of consistent, modulo, range"),
    ({"vnodes": 0}, "'vnodes' must be between 1 and 256"),
    ({"vnodes": 300}, "'vnodes' must be between 1 and 256"),
    ({"replicas": 0}, "'replicas' must be between 1 and 5"),
    ({"replicas": 6}, "'replicas' must be between 1 and 5"),
    ({"replicas": 5, "nodes": 4}, "'replicas' (5) cannot exceed 'nodes' (4)"),
    ({"write_quorum": 4}, "'write_quorum' (4) cannot exceed 'replicas' (3)"),
    ({"read_quorum": 2, "replicas": 1}, "'read_quorum' (2) cannot exceed 'replicas' (1)"),
    ({"write_quorum": 0}, "'write_quorum' must be between 1 and 5"),
    ({"latency_ms": [20, 10]}, "min <= max"),
    ({"drop_rate": 2}, "'drop_rate' must be between 0 and 1"),
    ({"range_split_keys": 10}, "'range_split_keys' must be between 100 and 10000"),
    ({"clients": 0}, "'clients' must be between 1 and 9"),
    ({"capacity_rps": 0}, "'capacity_rps' must be between"),
    ({"request_timeout_ms": -1}, "'request_timeout_ms' must be between"),
    ({"client_timeout_ms": "soon"}, "'client_timeout_ms' must be a number"),
    ({"shards": 4}, "does not take 'shards'"),
]


@pytest.mark.parametrize("params,fragment", BAD_PARAMS, ids=[next(iter(p)) + "=" + repr(next(iter(p.values()))) for p, _ in BAD_PARAMS])
def test_bad_create_params_raise_invalid_parameter(params, fragment):
    with pytest.raises(InvalidParameter) as info:
        patterns.create("sharding", seed=1, **params)
    assert fragment in str(info.value)


def test_defaults():
    eng = patterns.create("sharding", seed=1)
    view = eng.view()
    assert (view["strategy"], view["vnodes"], view["replicas"], view["write_quorum"], view["read_quorum"]) == (
        "consistent", 16, 3, 2, 2,
    )
    assert [n["id"] for n in view["nodes"]] == ["n1", "n2", "n3", "n4", "n5"]
    assert view["params"]["latency_ms"] == [10.0, 15.0]
    assert len(view["ring"]) == view["ring_tokens"] == 80 and view["ranges"] == []
    assert patterns.create("sharding", seed=1, replicas=5).view()["write_quorum"] == 3  # a majority of N
    assert "sharding" in patterns.kinds()


def test_view_stays_small_after_a_big_load():
    eng = patterns.create("sharding", seed=1)
    eng.apply({"op": "load", "keys": 5000})
    eng.apply({"op": "hot_key", "key": "k0042", "rate_rps": 300})
    eng.advance(31_000)  # a full series of 300 points
    view = eng.view()
    assert len(view["series"]) == 300
    size = len(json.dumps(view, separators=(",", ":")))
    assert size < 40_000, size
    assert len(view["messages"]) <= 300 and view["messages_total"] >= len(view["messages"])


def test_load_then_five_seconds_is_fast():
    import time as wall  # the test measures wall time; the engine never reads it

    start = wall.perf_counter()
    eng = patterns.create("sharding", seed=1)
    eng.apply({"op": "load", "keys": 1000})
    eng.advance(5_000)
    eng.apply({"op": "add_node"})
    eng.advance(5_000)
    assert wall.perf_counter() - start < 1.0
    assert not eng.view()["rebalance"]["in_progress"]
    idle = eng.sim.events_run
    eng.advance(60_000)
    assert eng.sim.events_run - idle <= 601  # only the 100 ms samples
