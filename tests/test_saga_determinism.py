"""Determinism of the saga engine: same seed and commands at the same virtual times -> same run.

Also across processes with different PYTHONHASHSEED values, and through
``patterns.replay()`` of a command log.
"""

from __future__ import annotations

import json

import patterns
from determinism_helpers import assert_replay_stops_at, assert_same_across_hash_seeds, replay_of


def state_json(eng) -> str:
    return json.dumps({"view": eng.view(), "events": eng.events(), "log": eng.command_log}, sort_keys=True)


def scripted_run(seed: int = 7) -> patterns.Engine:
    """Both modes, every fault: business failures, crashes, a partition, duplicates, reordering, loss."""
    eng = patterns.create("saga", seed=seed, rate_rps=20)
    eng.advance(600)
    eng.apply({"op": "fail", "service": "payment", "mode": "p", "p": 0.3})
    eng.apply({"op": "network", "duplicate_rate": 0.3, "reorder_rate": 0.3, "drop_rate": 0.05})
    eng.advance(700)
    eng.apply({"op": "crash", "node": "orchestrator"})
    eng.apply({"op": "mode", "mode": "choreography"})
    eng.advance(500)
    eng.apply({"op": "restart", "node": "orchestrator"})
    eng.apply({"op": "crash", "node": "bus"})
    eng.apply({"op": "fail", "service": "shipping", "mode": "once"})
    for _ in range(30):
        eng.step()
    eng.apply({"op": "restart", "node": "bus"})
    eng.apply({"op": "partition", "groups": [["inventory"], ["order", "payment", "shipping", "orchestrator", "bus"]]})
    eng.advance(600)
    eng.apply({"op": "heal"})
    eng.apply({"op": "mode", "mode": "orchestration"})
    eng.apply({"op": "place_order", "customer": "carol", "item": "gizmo", "qty": 3, "amount": 55})
    eng.apply({"op": "crash", "node": "payment"})
    eng.advance(400)
    eng.apply({"op": "restart", "node": "payment"})
    eng.apply({"op": "fail", "service": "payment", "mode": "off"})
    eng.apply({"op": "traffic", "rate_rps": 0})
    eng.apply({"op": "network", "duplicate_rate": 0, "reorder_rate": 0, "drop_rate": 0})
    eng.advance(3000)
    return eng


def test_same_seed_and_commands_give_identical_runs():
    a, b = scripted_run(), scripted_run()
    assert state_json(a) == state_json(b)
    assert a.sim.events_run == b.sim.events_run > 1000
    assert a.net.trace_since(0) == b.net.trace_since(0)


def test_the_scripted_run_ends_healthy():
    eng = scripted_run()
    view = eng.view()
    assert eng.violations() == []
    assert view["saga_counts"]["running"] == view["saga_counts"]["compensating"] == 0
    assert view["saga_counts"]["completed"] > 10 and view["saga_counts"]["compensated"] > 3


def test_a_different_seed_gives_a_different_run():
    assert state_json(scripted_run(seed=7)) != state_json(scripted_run(seed=8))


def test_replay_of_a_scripted_run_reproduces_it():
    eng = scripted_run()
    assert state_json(replay_of(eng)) == state_json(eng)


def test_replay_can_stop_at_an_earlier_moment():
    assert_replay_stops_at(scripted_run(), 1500.0, state_json)


def test_replay_with_commands_sharing_a_moment():
    eng = patterns.create("saga", seed=2, latency_ms=[0, 0])
    eng.apply({"op": "place_order"})
    eng.apply({"op": "crash", "node": "orchestrator"})
    eng.apply({"op": "place_order", "qty": 1})
    eng.apply({"op": "restart", "node": "orchestrator"})
    eng.advance(0)
    eng.apply({"op": "mode", "mode": "choreography"})
    eng.apply({"op": "place_order", "qty": 1})
    eng.advance(500)
    assert state_json(replay_of(eng)) == state_json(eng)


def test_runs_match_across_processes_with_different_hash_seeds():
    assert_same_across_hash_seeds(
        state_json(scripted_run()), "from test_saga_determinism import scripted_run, state_json\nSTATE = state_json(scripted_run())"
    )
