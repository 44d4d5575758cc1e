"""Runs every scenario in tests/scenarios/sharding/ and checks its exact output.

``REWRITE=1 pytest tests/test_sharding_scenarios.py`` regenerates the expected
output in place; read the diff before committing it.

Each scenario also has semantic assertions on the engine's view after chosen
blocks, so that a rewrite that accepts wrong behaviour still fails: they are
the lessons the page must show.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from determinism_helpers import assert_replays
from engine_contract import scenario_tests
from patterns.scenario import ScenarioRun

SCENARIOS = Path(__file__).parent / "scenarios" / "sharding"
FILES = sorted(SCENARIOS.glob("*.txt"))


# -- helpers ------------------------------------------------------------------------------------


def nodes(view: dict) -> dict[str, dict]:
    return {node["id"]: node for node in view["nodes"]}


def outputs(run: ScenarioRun, command: str) -> str:
    return "\n".join(step.output for step in run.steps if step.block.command == command)


def fraction(change: dict) -> float:
    return change["moved"] / change["total"]


def assert_converged(eng) -> None:
    """Every key that exists is on exactly its N nodes, with one version."""
    assert eng.checker.quiet_reason() == ""
    for key in eng.catalog:
        holders = sorted(node_id for node_id, node in eng.shard_nodes.items() if key in node.disk.store)
        if holders:
            assert holders == sorted(eng.map.serving(key)), key
            assert len({eng.shard_nodes[n].disk.store[key][1] for n in holders}) == 1, key


def assert_healthy_end(run: ScenarioRun) -> None:
    eng = run.engine
    assert eng.violations() == []
    assert_replays(eng)  # the command log replays to the same state


# -- the lessons ----------------------------------------------------------------------------------


def check_join(run: ScenarioRun) -> None:
    before = run.find("placement", 0).view
    assert before["keys_total"] == 1000 and before["placement_change"] is None
    mid = run.find("placement", 1).view
    ring = mid["placement_change"]
    assert ring["reason"] == "n6 joined" and ring["strategy"] == "consistent"
    assert ring["total"] == 3000 and ring["expected_fraction"] == pytest.approx(1 / 6, abs=1e-3)
    assert abs(fraction(ring) - 1 / 6) < 0.04  # consistent hashing: about 1/(M+1) of the copies
    assert ring["primaries_moved"] / ring["keys"] < 0.25
    # The move takes virtual time: half-way through, some copies are across and some are not.
    assert mid["rebalance"]["in_progress"] and 0 < mid["rebalance"]["moved"] < mid["rebalance"]["total"]
    done = run.find("placement", 2).view
    assert not done["rebalance"]["in_progress"] and done["rebalance"]["moved"] == ring["moved"]
    after = nodes(run.find("nodes", 0).view)
    assert sum(n["keys"] for n in after.values()) == 3000
    assert after["n6"]["keys"] == ring["moved"]  # the new node gained exactly the copies that moved
    mod = run.find("placement", 3).view["placement_change"]
    assert mod["strategy"] == "modulo" and mod["total"] == 3000
    assert fraction(mod) > 2.5 * fraction(ring)  # hash mod N moves far more
    assert mod["keys_moving"] / mod["keys"] > 0.85 and ring["keys_moving"] / ring["keys"] < 0.6
    assert mod["primaries_moved"] / mod["keys"] > 0.75
    assert abs(fraction(mod) - mod["expected_fraction"]) < 0.05
    final = run.find("placement", 4).view
    assert not final["rebalance"]["in_progress"] and final["rebalance"]["moved"] == mod["moved"]
    assert_converged(run.engine)
    assert_healthy_end(run)


def check_vnodes(run: ScenarioRun) -> None:
    spreads = [run.find("placement", i).view["balance"] for i in range(3)]  # vnodes 1, 16, 64
    assert [b["max_over_mean"] > 1.4 for b in spreads] == [True, False, False]
    assert spreads[2]["max_over_mean"] < 1.1
    assert spreads[0]["stdev_pct"] > spreads[1]["stdev_pct"] > spreads[2]["stdev_pct"]
    one = run.find("ring", 0).view
    assert one["ring_tokens"] == 5 and len(one["ring"]) == 5
    assert max(one["ring_share"].values()) > 0.3 and min(one["ring_share"].values()) < 0.05
    assert run.find("ring", 2).view["ring_tokens"] == 320
    wide = run.find("placement", 3).view
    assert wide["vnodes"] == 256 and wide["balance"]["max_over_mean"] < spreads[2]["max_over_mean"]
    assert wide["balance"]["stdev_pct"] < 5
    assert len(wide["ring"]) <= 320 < wide["ring_tokens"]  # thinned in the view
    assert_converged(run.engine)
    assert_healthy_end(run)


def check_hot_key(run: ScenarioRun) -> None:
    early = nodes(run.find("nodes", 0).view)
    hot_set = {"n4", "n2", "n3"}
    assert run.find("hot", 0).view["hot_keys"][0]["replicas"] == ["n4", "n2", "n3"]
    # Everything lands on the key's replica set, most of it on the coordinator.
    assert early["n1"]["load_rps"] == early["n5"]["load_rps"] == 0
    assert early["n4"]["load_rps"] > 1000 and early["n4"]["saturated"] and early["n4"]["queue_ms"] > 100
    assert all(early[n]["load_rps"] > 300 for n in hot_set)
    late = run.find("nodes", 1).view
    late_nodes = nodes(late)
    assert late_nodes["n1"]["load_rps"] == late_nodes["n5"]["load_rps"] == 0
    assert late_nodes["n4"]["shed"] > 0  # it melted
    hot = run.find("hot", 1).view["hot_keys"][0]
    assert hot["failed"] > hot["ok"] > 0
    series = late["series"]
    assert len(series) == 40 and series[-1]["t"] == 4000
    assert set(series[-1]["load"]) <= hot_set  # idle nodes have no load entry
    cooled = nodes(run.find("nodes", 2).view)
    assert all(n["load_rps"] == 0 and n["queue_ms"] == 0 for n in cooled.values())
    assert "failed" not in outputs(run, "violations") and outputs(run, "violations") == "none"
    events = outputs(run, "events")
    assert "n4 is overloaded" in events and "now go to n2" in events
    assert_converged(run.engine)
    assert_healthy_end(run)


def check_stale_read(run: ScenarioRun) -> None:
    first = run.find("ops", 0).view
    put7, stale = first["history"][1], first["history"][2]
    assert put7["status"] == "ok" and put7["acks"] == ["n5", "n1"]
    assert stale["stale"] is True and stale["result"] == 1 and stale["replies"] == ["n3"]
    assert stale["invoke"] >= put7["complete"]
    events = outputs(run, "events")
    assert (
        "c2's get x returned version 1 (n5) from n3, but put x=7 (version 2 (n5)) had been acknowledged by n5 and n1 "
        "only: R + W = 1 + 2 = 3 <= N = 3, so the read quorum missed the newest copy" in events
    )
    fresh = run.find("key x", 2).view
    assert fresh["read_quorum"] == 2
    (get4,) = [r for r in fresh["history"] if r["id"] == 4]
    assert get4["stale"] is False and get4["result"] == 7 and "n3" in get4["replies"]
    assert "read repair" in events
    # No fault at all: W=1, R=1 and a jittery network.
    calm = run.find("ops", 1).view
    assert calm["write_quorum"] == calm["read_quorum"] == 1
    assert [r["stale"] for r in calm["history"] if r["op"] == "get"] == [True, False]
    assert calm["stale_reads"] == 1
    assert all(inv["ok"] for inv in calm["invariants"])
    assert_healthy_end(run)


def check_remove_node(run: ScenarioRun) -> None:
    during = run.find("placement", 0).view
    change = during["placement_change"]
    assert change["reason"] == "n2 was removed" and change["expected_fraction"] == 0.2
    assert during["rebalance"]["in_progress"]
    assert nodes(run.find("nodes", 0).view)["n2"]["leaving"]
    after = run.find("nodes", 1).view
    assert "n2" not in nodes(after) and after["departed"] == ["n2"] and after["members"] == ["n1", "n3", "n4", "n5"]
    history = run.find("ops", 0).view["history"]  # the scenario's last engine is another one
    reads = {r["key"]: r for r in history if r["op"] == "get"}
    assert reads["x"]["result"] == 10 and reads["y"]["result"] == 20 and reads["cart"]["result"] == "3 apples"
    assert all(r["status"] == "ok" and not r["stale"] for r in reads.values())
    assert run.find("stats", 0).view["network"]["counts"]["dropped"] > 0  # batches were lost and resent
    summary = {inv["id"]: inv for inv in run.find("ops", 0).view["invariants"]}
    assert all(inv["ok"] for inv in summary.values())
    assert "every key on its 3 nodes" in summary["replica_placement"]["detail"]
    assert "removing n1 would leave 2 nodes, fewer than the 3 replicas" in run.steps[-1].output


def check_remove_dead_node(run: ScenarioRun) -> None:
    waiting = run.find("placement", 0).view["rebalance"]
    assert not waiting["in_progress"] and waiting["moved"] == waiting["total"] > 0  # the survivors sent n3's keys
    assert waiting["waiting_on"] == ["n3"] and waiting["cleanup"] > 0
    down = nodes(run.find("nodes", 0).view)
    assert not down["n3"]["alive"] and down["n3"]["leaving"] and down["n3"]["keys"] > 0
    gone = run.find("nodes", 1).view
    assert "n3" not in nodes(gone) and gone["departed"] == ["n3"]
    assert sum(n["keys"] for n in gone["nodes"]) == 1200
    assert_converged(run.engine)
    assert_healthy_end(run)


def check_strategy_switch(run: ScenarioRun) -> None:
    changes = [run.find("placement", i).view["placement_change"] for i in (1, 3, 4)]
    assert [c["strategy"] for c in changes] == ["modulo", "range", "consistent"]
    for change in changes:
        assert 0.3 < fraction(change) < 0.5 and abs(fraction(change) - change["expected_fraction"]) < 0.05
        assert change["keys_moving"] / change["keys"] > 0.8
    ranges = run.find("ranges", 0).view["ranges"]
    assert len(ranges) == 8 and sum(r["keys"] for r in ranges) == 1000
    back = run.find("placement", 4).view
    assert back["balance"] == run.find("placement", 0).view["balance"]  # same ring, same spread as at the start
    assert_converged(run.engine)
    assert_healthy_end(run)


def check_range_splits(run: ScenarioRun) -> None:
    one = run.find("ranges", 0).view["ranges"]
    assert one == [{"start": "", "end": None, "node": "n1", "replicas": ["n1", "n2", "n3"], "keys": 80}]
    empty = nodes(run.find("nodes", 0).view)
    assert empty["n4"]["keys"] == empty["n5"]["keys"] == 0
    two = run.find("ranges", 1).view["ranges"]
    assert [r["keys"] for r in two] == [60, 60] and two[1]["start"] == "k0061"
    spread = nodes(run.find("nodes", 1).view)
    assert all(n["keys"] > 0 for n in spread.values())
    many = run.find("ranges", 2).view["ranges"]
    assert len(many) == 9 and all(r["keys"] <= 100 for r in many)
    joined = run.find("placement", 2).view["placement_change"]
    assert joined["reason"] == "n6 joined" and abs(fraction(joined) - 1 / 6) < 0.05
    final = nodes(run.find("nodes", 2).view)
    assert final["n6"]["keys"] >= 200 and sum(n["keys"] for n in final.values()) == 1500
    assert_converged(run.engine)
    assert_healthy_end(run)


SEMANTIC: dict[str, Callable[[ScenarioRun], None]] = {
    "join_consistent_vs_modulo": check_join,
    "vnodes_spread": check_vnodes,
    "hot_key": check_hot_key,
    "stale_read": check_stale_read,
    "remove_node": check_remove_node,
    "remove_dead_node": check_remove_dead_node,
    "strategy_switch": check_strategy_switch,
    "range_splits": check_range_splits,
}


test_every_scenario_has_semantic_checks, test_scenario = scenario_tests(FILES, SEMANTIC)
