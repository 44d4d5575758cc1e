"""Determinism of the load balancer: same seed and commands at the same virtual times -> same run.

Also across processes with different PYTHONHASHSEED values (ip_hash hashes
client addresses; sets of strings or built-in hash() would show here), and
through ``patterns.replay()`` of a command log.
"""

from __future__ import annotations

import json

import pytest

import patterns
from determinism_helpers import assert_replay_stops_at, assert_same_across_hash_seeds, replay_of


def state_json(eng) -> str:
    return json.dumps({"view": eng.view(), "events": eng.events(), "log": eng.command_log}, sort_keys=True)


def scripted_run(seed: int = 7) -> patterns.Engine:
    """Every command, every algorithm, faults of every kind, at 300 rps."""
    eng = patterns.create("load_balancer", seed=seed, rate_rps=300, weights=[3, 1, 1, 2])
    eng.advance(800)
    eng.apply({"op": "set_algorithm", "algorithm": "ip_hash"})
    eng.advance(500)
    eng.apply({"op": "slow", "node": "b2", "factor": 12})
    eng.apply({"op": "set_algorithm", "algorithm": "power_of_two"})
    eng.advance(700)
    eng.apply({"op": "health", "interval_ms": 100, "timeout_ms": 40, "unhealthy_threshold": 1, "healthy_threshold": 1})
    eng.apply({"op": "network", "latency_ms": [1, 6], "duplicate_rate": 0.1, "reorder_rate": 0.2, "drop_rate": 0.02})
    eng.apply({"op": "crash", "node": "b3"})
    for _ in range(40):
        eng.step()
    eng.apply({"op": "set_algorithm", "algorithm": "least_connections"})
    eng.apply({"op": "add_backend", "weight": 4})
    eng.advance(600)
    eng.apply({"op": "crash", "node": "lb1"})
    eng.apply({"op": "set_algorithm", "algorithm": "random"})
    eng.advance(900)
    eng.apply({"op": "remove_backend", "node": "b1"})
    eng.apply({"op": "set_algorithm", "algorithm": "weighted_round_robin"})
    eng.apply({"op": "set_weight", "node": "b4", "weight": 5})
    eng.apply({"op": "traffic", "rate_rps": 800})
    eng.advance(400)
    eng.apply({"op": "restart", "node": "lb1"})
    eng.apply({"op": "restart", "node": "b3"})
    eng.apply({"op": "cut", "from": "lb2", "to": "lb1"})
    eng.advance(700)
    eng.apply({"op": "uncut", "from": "lb2", "to": "lb1"})
    eng.apply({"op": "set_algorithm", "algorithm": "round_robin"})
    eng.apply({"op": "health", "interval_ms": 500, "timeout_ms": 250, "unhealthy_threshold": 3, "healthy_threshold": 2})
    eng.advance(1500)
    return eng


def test_same_seed_and_commands_give_identical_runs():
    a, b = scripted_run(), scripted_run()
    assert state_json(a) == state_json(b)
    assert a.sim.events_run == b.sim.events_run > 10_000
    assert a.net.trace_since(0) == b.net.trace_since(0)


def test_a_different_seed_gives_a_different_run():
    assert state_json(scripted_run(seed=7)) != state_json(scripted_run(seed=8))


def test_replay_of_a_scripted_run_reproduces_it():
    eng = scripted_run()
    replayed = replay_of(eng)
    assert state_json(replayed) == state_json(eng)


def test_replay_can_stop_at_an_earlier_moment():
    assert_replay_stops_at(scripted_run(), 2500.0, state_json)


@pytest.mark.parametrize("latency", [[0, 0], [1, 3]])
def test_replay_with_commands_sharing_a_moment(latency):
    eng = patterns.create("load_balancer", seed=2, rate_rps=500, latency_ms=latency)
    eng.advance(100)
    eng.step()
    eng.apply({"op": "crash", "node": "b1"})
    eng.step()
    eng.apply({"op": "slow", "node": "b2", "factor": 3})
    eng.apply({"op": "set_algorithm", "algorithm": "least_connections"})
    eng.advance(0)
    eng.apply({"op": "restart", "node": "b1"})
    eng.advance(300)
    assert state_json(replay_of(eng)) == state_json(eng)


# -- across processes and hash seeds ----------------------------------------------------------

def test_runs_match_across_processes_with_different_hash_seeds():
    assert_same_across_hash_seeds(
        state_json(scripted_run()), "from test_load_balancer_determinism import scripted_run, state_json\nSTATE = state_json(scripted_run())"
    )
