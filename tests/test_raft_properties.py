"""Property-based tests of the Raft engine, and of apply()/create() validation.

The state machine drives random schedules of faults and client traffic and
checks Raft's safety invariants after every step. At the end it repairs
everything and checks liveness and linearizability.

Bounded by default; for a longer soak:

    RAFT_MAX_EXAMPLES=2000 RAFT_STEPS=80 .venv/bin/python -m pytest tests/test_raft_properties.py
"""

from __future__ import annotations

import math

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

import patterns
from engine_contract import assert_rejected_without_effect, schedule_settings
from patterns.checkers import check_history
from patterns.errors import InvalidCommand, InvalidParameter, UnknownKind
from raft_helpers import pending, repair, settle, state_json, view_json

MAX_NODES = 9
# Every fault and client rule also lets time pass, so swarm testing cannot starve the clock.
WAIT = st.sampled_from([0, 0, 2, 10, 40, 120, 300, 800])
NODE = st.integers(0, MAX_NODES - 1)
KEYS = ["x", "y", "z"]


class RaftSchedules(RuleBasedStateMachine):
    """Random schedules of faults (no crash_lose_disk: outside Raft's fault model)."""

    def __init__(self) -> None:
        super().__init__()
        self.eng = None
        self.next_value = 0

    @initialize(
        seed=st.integers(0, 2**32),
        size=st.sampled_from([3, 5]),
        clients=st.integers(1, 3),
        noop=st.booleans(),
        election=st.sampled_from([(150, 300), (100, 200), (150, 160)]),
    )
    def create(self, seed, size, clients, noop, election):
        self.eng = patterns.create(
            "raft", seed=seed, nodes=size, clients=clients, leader_noop=noop, election_timeout_ms=list(election)
        )
        self.ids = list(self.eng.nodes)

    # -- helpers -------------------------------------------------------------------------
    def node(self, index: int) -> str:
        return self.ids[index % len(self.ids)]

    def alive(self, node_id: str) -> bool:
        return self.eng.hosts[node_id].alive

    def rejected(self, cmd: dict) -> None:
        """The command is invalid in this state: it must raise and change nothing."""
        before = view_json(self.eng)
        log_length = len(self.eng.command_log)
        with pytest.raises(InvalidCommand):
            self.eng.apply(cmd)
        assert view_json(self.eng) == before
        assert len(self.eng.command_log) == log_length

    # -- faults -------------------------------------------------------------------------------
    @rule(index=NODE, wait=WAIT)
    def crash(self, index, wait):
        node_id = self.node(index)
        cmd = {"op": "crash", "node": node_id}
        if self.alive(node_id):
            self.eng.apply(cmd)
        else:
            self.rejected(cmd)
        self.eng.advance(wait)

    @rule(index=NODE, wait=WAIT)
    def restart(self, index, wait):
        node_id = self.node(index)
        cmd = {"op": "restart", "node": node_id}
        if self.alive(node_id):
            self.rejected(cmd)
        else:
            self.eng.apply(cmd)
        self.eng.advance(wait)

    @rule(labels=st.lists(st.integers(0, 2), min_size=MAX_NODES, max_size=MAX_NODES), wait=WAIT)
    def partition(self, labels, wait):
        groups: dict[int, list[str]] = {}
        for node_id, label in zip(self.ids, labels):
            groups.setdefault(label, []).append(node_id)
        cmd = {"op": "partition", "groups": [groups[k] for k in sorted(groups)]}
        if len(groups) < 2:
            self.rejected(cmd)
        else:
            self.eng.apply(cmd)
        self.eng.advance(wait)

    @rule(wait=WAIT)
    def heal(self, wait):
        self.eng.apply({"op": "heal"})
        self.eng.advance(wait)

    @rule(a=NODE, b=NODE, cut=st.booleans(), wait=WAIT)
    def cut(self, a, b, cut, wait):
        cmd = {"op": "cut" if cut else "uncut", "from": self.node(a), "to": self.node(b)}
        if cmd["from"] == cmd["to"]:
            self.rejected(cmd)
        else:
            self.eng.apply(cmd)
        self.eng.advance(wait)

    @rule(
        latency=st.tuples(st.sampled_from([0, 1, 5, 10, 20]), st.sampled_from([0, 5, 15, 40, 120])),
        drop=st.sampled_from([0.0, 0.05, 0.2, 0.5]),
        dup=st.sampled_from([0.0, 0.1, 0.3]),
        reorder=st.sampled_from([0.0, 0.1, 0.5]),
        wait=WAIT,
    )
    def network(self, latency, drop, dup, reorder, wait):
        lo, hi = sorted(latency)
        self.eng.apply(
            {"op": "network", "latency_ms": [lo, hi], "drop_rate": drop, "duplicate_rate": dup, "reorder_rate": reorder}
        )
        self.eng.advance(wait)

    @rule(index=NODE, wait=WAIT)
    def timeout(self, index, wait):
        node_id = self.node(index)
        cmd = {"op": "timeout", "node": node_id}
        if self.alive(node_id):
            self.eng.apply(cmd)
        else:
            self.rejected(cmd)
        self.eng.advance(wait)

    # -- faults aimed at the leader (a nemesis, as in Jepsen) -------------------------------------
    @rule(wait=WAIT)
    def crash_leader(self, wait):
        leader = self.eng.leader()
        if leader is not None:
            self.eng.apply({"op": "crash", "node": leader})
        self.eng.advance(wait)

    @rule(companions=st.integers(0, 1), wait=WAIT)
    def isolate_leader(self, companions, wait):
        leader = self.eng.leader()
        if leader is not None:
            group = [leader] + [n for n in self.ids if n != leader][:companions]
            self.eng.apply({"op": "partition", "groups": [group]})
        self.eng.advance(wait)

    @rule(mask=st.integers(1, 2**MAX_NODES - 1), wait=WAIT)
    def cut_leader_off(self, mask, wait):
        """Cut the leader's outgoing links to some followers: its entries reach only the others."""
        leader = self.eng.leader()
        if leader is not None:
            for bit, node_id in enumerate(self.ids):
                if node_id != leader and mask >> bit & 1:
                    self.eng.apply({"op": "cut", "from": leader, "to": node_id})
        self.eng.advance(wait)

    # -- clients ----------------------------------------------------------------------------
    @rule(client=st.integers(1, 3), key=st.sampled_from(KEYS), via=st.none() | NODE, wait=WAIT)
    def put(self, client, key, via, wait):
        self.next_value += 1
        cmd = {"op": "put", "key": key, "value": self.next_value, "client": f"c{client}"}
        self.submit(cmd, via)
        self.eng.advance(wait)

    @rule(client=st.integers(1, 3), key=st.sampled_from(KEYS), via=st.none() | NODE, wait=WAIT)
    def get(self, client, key, via, wait):
        self.submit({"op": "get", "key": key, "client": f"c{client}"}, via)
        self.eng.advance(wait)

    def submit(self, cmd, via):
        if via is not None:
            cmd["via"] = self.node(via)
        if cmd["client"] not in self.eng.clients:
            self.rejected(cmd)
            return
        count = len(self.eng.history)
        result = self.eng.apply(cmd)
        assert result == {"op_id": count + 1}

    # -- time -----------------------------------------------------------------------------------
    @rule(ms=st.sampled_from([1, 5, 20, 50, 100, 250, 600, 1500]) | st.floats(0, 400, allow_nan=False))
    def advance(self, ms):
        before = self.eng.now
        self.eng.advance(ms)
        assert self.eng.now == before + ms

    @rule(count=st.integers(1, 20))
    def step(self, count):
        for _ in range(count):
            self.eng.step()

    # -- checks -----------------------------------------------------------------------------------
    @invariant()
    def safety(self):
        if self.eng is not None:
            assert self.eng.violations() == []

    @precondition(lambda self: self.eng is not None)
    @invariant()
    def leaders_unique_per_term(self):
        # An independent restatement of election safety from the view alone.
        view = self.eng.view()
        terms = [n["term"] for n in view["nodes"] if n["alive"] and n["role"] == "leader"]
        assert len(terms) == len(set(terms))

    def teardown(self):
        eng = self.eng
        if eng is None or eng.violations():
            return  # the invariant has already failed; don't mask it
        repair(eng)
        settled = settle(eng, limit_ms=60_000)
        assert eng.violations() == []
        assert eng.leader() is not None, "no leader 60 s after repairing everything"
        assert settled, f"operations still pending 60 s after repairing everything: {pending(eng)}"
        assert all(record["status"] == "ok" for record in eng.history)
        result = check_history(eng.history)
        assert result.ok, result.explanation
        # Every live node converges on the leader's committed state.
        eng.advance(1_000)
        leader = eng.raft_nodes[eng.leader()]
        for node in eng.raft_nodes.values():
            assert node.log[: leader.commit_index] == leader.log[: leader.commit_index]


TestRaftSchedules = RaftSchedules.TestCase
TestRaftSchedules.settings = schedule_settings("RAFT", max_examples=500, steps=50)


# -- apply() validation ------------------------------------------------------------------------------


def busy_engine():
    """An engine with some history: a leader, a crashed node, a pending write, a partition."""
    eng = patterns.create("raft", seed=11, nodes=5)
    eng.advance(400)
    eng.apply({"op": "put", "key": "x", "value": 1})
    eng.advance(300)
    eng.apply({"op": "crash", "node": "n4"})
    eng.apply({"op": "partition", "groups": [["n1", "n2"], ["n3", "n5"]]})
    eng.apply({"op": "put", "key": "y", "value": "two", "client": "c2"})
    eng.advance(7)
    return eng


BAD_COMMANDS = [
    ("not a dict", ["crash", "n1"], "must be a JSON object"),
    ("string", "crash n1", "must be a JSON object"),
    ("no op", {"node": "n1"}, "needs an 'op'"),
    ("op not a string", {"op": 3}, "needs an 'op'"),
    ("unknown op", {"op": "explode", "node": "n1"}, "unknown op 'explode'"),
    ("unknown node", {"op": "crash", "node": "n9"}, "unknown node 'n9'"),
    ("node missing", {"op": "crash"}, "needs 'node'"),
    ("node wrong type", {"op": "crash", "node": 1}, "unknown node 1"),
    ("node is a list", {"op": "crash", "node": ["n1"]}, "unknown node"),
    ("extra field", {"op": "crash", "node": "n1", "force": True}, "does not take 'force'"),
    ("crash a crashed node", {"op": "crash", "node": "n4"}, "n4 is down"),
    ("restart a node that is up", {"op": "restart", "node": "n1"}, "already up"),
    ("timeout a crashed node", {"op": "timeout", "node": "n4"}, "n4 is down"),
    ("heal with arguments", {"op": "heal", "node": "n1"}, "does not take 'node'"),
    ("partition without groups", {"op": "partition"}, "'groups' must be"),
    ("partition groups not a list", {"op": "partition", "groups": "n1,n2"}, "'groups' must be"),
    ("partition empty", {"op": "partition", "groups": []}, "'groups' must be"),
    ("partition empty group", {"op": "partition", "groups": [["n1"], []]}, "'groups' must be"),
    ("partition unknown node", {"op": "partition", "groups": [["n1", "n7"]]}, "unknown node 'n7'"),
    ("partition node twice", {"op": "partition", "groups": [["n1", "n2"], ["n2"]]}, "more than one group"),
    ("partition one group", {"op": "partition", "groups": [["n1", "n2", "n3", "n4", "n5"]]}, "at least two groups"),
    ("partition nested", {"op": "partition", "groups": [["n1", ["n2"]]]}, "unknown node ['n2']"),
    ("cut to itself", {"op": "cut", "from": "n1", "to": "n1"}, "must be different"),
    ("cut unknown", {"op": "cut", "from": "n1", "to": "nx"}, "unknown node 'nx'"),
    ("uncut missing to", {"op": "uncut", "from": "n1"}, "needs 'to'"),
    ("latency not a pair", {"op": "network", "latency_ms": 10}, "pair [min, max]"),
    ("latency three", {"op": "network", "latency_ms": [1, 2, 3]}, "pair [min, max]"),
    ("latency reversed", {"op": "network", "latency_ms": [20, 10]}, "min <= max"),
    ("latency negative", {"op": "network", "latency_ms": [-1, 10]}, "between 0 and"),
    ("latency too big", {"op": "network", "latency_ms": [1, 1e9]}, "between 0 and"),
    ("latency strings", {"op": "network", "latency_ms": ["1", "2"]}, "pair [min, max]"),
    ("drop above 1", {"op": "network", "drop_rate": 1.5}, "'drop_rate' must be between 0 and 1"),
    ("drop negative", {"op": "network", "drop_rate": -0.1}, "'drop_rate' must be between"),
    ("drop bool", {"op": "network", "drop_rate": True}, "'drop_rate' must be a number"),
    ("drop NaN", {"op": "network", "drop_rate": math.nan}, "'drop_rate' must be a number"),
    ("drop infinite", {"op": "network", "duplicate_rate": math.inf}, "'duplicate_rate' must be a number"),
    ("reorder text", {"op": "network", "reorder_rate": "lots"}, "'reorder_rate' must be a number"),
    ("network unknown field", {"op": "network", "jitter": 3}, "does not take 'jitter'"),
    ("put without key", {"op": "put", "value": 1}, "'key' is required"),
    ("put without value", {"op": "put", "key": "x"}, "needs a 'value'"),
    ("put empty key", {"op": "put", "key": "", "value": 1}, "1 to 32 characters"),
    ("put long key", {"op": "put", "key": "k" * 33, "value": 1}, "1 to 32 characters"),
    ("put key number", {"op": "put", "key": 5, "value": 1}, "'key' must be text"),
    ("put bool value", {"op": "put", "key": "x", "value": False}, "'value' must be text or a whole number"),
    ("put float value", {"op": "put", "key": "x", "value": 1.5}, "'value' must be text or a whole number"),
    ("put list value", {"op": "put", "key": "x", "value": [1]}, "'value' must be text or a whole number"),
    ("put long value", {"op": "put", "key": "x", "value": "v" * 65}, "at most 64 characters"),
    ("put huge value", {"op": "put", "key": "x", "value": 2**60}, "too large"),
    ("put unknown client", {"op": "put", "key": "x", "value": 1, "client": "c9"}, "unknown client 'c9'"),
    ("put client number", {"op": "put", "key": "x", "value": 1, "client": 1}, "'client' must be text"),
    ("put via unknown node", {"op": "put", "key": "x", "value": 1, "via": "n0"}, "unknown node 'n0'"),
    ("get with a value", {"op": "get", "key": "x", "value": 1}, "does not take 'value'"),
    ("get without key", {"op": "get"}, "'key' is required"),
]


@pytest.mark.parametrize("cmd,fragment", [(c, f) for _, c, f in BAD_COMMANDS], ids=[n for n, _, _ in BAD_COMMANDS])
def test_bad_command_is_rejected_and_changes_nothing(cmd, fragment):
    assert_rejected_without_effect(busy_engine, cmd, fragment, state_json)


def test_too_many_pending_operations_is_rejected_cleanly():
    eng = patterns.create("raft", seed=1, nodes=3)
    eng.apply({"op": "partition", "groups": [["n1"], ["n2"], ["n3"]]})
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


@pytest.mark.parametrize("ms", [-1, math.nan, math.inf, "10", None, 1e12])
def test_bad_advance_is_rejected(ms):
    eng = busy_engine()
    before = state_json(eng)
    with pytest.raises(InvalidCommand):
        eng.advance(ms)
    assert state_json(eng) == before


BAD_PARAMS = [
    ({"nodes": 2}, "'nodes' must be between 3 and 9"),
    ({"nodes": 10}, "'nodes' must be between 3 and 9"),
    ({"nodes": 4.5}, "'nodes' must be a whole number"),
    ({"nodes": "5"}, "'nodes' must be a whole number"),
    ({"election_timeout_ms": [300, 150]}, "min <= max"),
    ({"election_timeout_ms": 150}, "pair [min, max]"),
    ({"election_timeout_ms": [0, 10]}, "between 1 and"),
    ({"heartbeat_ms": 0}, "'heartbeat_ms' must be between"),
    ({"latency_ms": [5, -5]}, "between 0 and"),
    ({"drop_rate": 2}, "'drop_rate' must be between 0 and 1"),
    ({"duplicate_rate": "no"}, "'duplicate_rate' must be a number"),
    ({"reorder_rate": None}, "'reorder_rate' must be a number"),
    ({"clients": 0}, "'clients' must be between 1 and 9"),
    ({"client_timeout_ms": -3}, "'client_timeout_ms' must be between"),
    ({"leader_noop": "yes"}, "'leader_noop' must be true or false"),
    ({"colour": "red"}, "does not take 'colour'"),
]


@pytest.mark.parametrize("params,fragment", BAD_PARAMS, ids=[next(iter(p)) + "=" + repr(next(iter(p.values()))) for p, _ in BAD_PARAMS])
def test_bad_create_params_raise_invalid_parameter(params, fragment):
    with pytest.raises(InvalidParameter) as info:
        patterns.create("raft", seed=1, **params)
    assert fragment in str(info.value)


@pytest.mark.parametrize("seed", [-1, 2**63, 1.5, "7", True, None])
def test_bad_seed_raises_invalid_parameter(seed):
    with pytest.raises(InvalidParameter, match="'seed'"):
        patterns.create("raft", seed=seed)


def test_unknown_kind():
    with pytest.raises(UnknownKind, match="unknown pattern 'paxos'"):
        patterns.create("paxos")
    with pytest.raises(ValueError):
        patterns.create(None)


def test_valid_edge_params_are_accepted():
    eng = patterns.create(
        "raft", seed=0, nodes=3, election_timeout_ms=[200, 200], latency_ms=[0, 0], drop_rate=1,
        clients=9, leader_noop=False, heartbeat_ms=1,
    )
    eng.advance(1000)
    assert eng.violations() == []
    assert eng.params["election_timeout_ms"] == [200.0, 200.0]


def test_replication_traffic_stays_bounded_under_steady_load():
    # Regression: every successful AppendEntries reply used to trigger another send
    # while the follower was behind, so each heartbeat started a new chain of sends
    # that steady client load kept alive forever: traffic grew without bound
    # (3,600 messages in the first second at 100 ops/s, 48,000 in the eighth).
    eng = patterns.create("raft", seed=1, nodes=5)
    eng.advance(1000)
    per_second = []
    for second in range(10):
        sent = eng.net.counts["sent"]
        for i in range(100):
            key = f"k{(second * 100 + i) % 16}"
            if i % 2:
                eng.apply({"op": "put", "key": key, "value": i, "client": f"c{i % 3 + 1}"})
            else:
                eng.apply({"op": "get", "key": key, "client": f"c{i % 3 + 1}"})
            eng.advance(10)
        per_second.append(eng.net.counts["sent"] - sent)
        assert len(eng.net.in_flight) < 100
    assert max(per_second) < 1500, per_second  # ~11 messages per operation plus heartbeats
    assert per_second[-1] < 1.3 * per_second[1], per_second
    assert eng.violations() == []
    assert check_history(eng.history).ok
