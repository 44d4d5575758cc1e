"""Determinism of the circuit breaker lab: same seed and commands at the same virtual times -> same run.

Also across processes with different PYTHONHASHSEED values, and through
``patterns.replay()`` of a command log.
"""

from __future__ import annotations

import json

import pytest

import patterns
from determinism_helpers import assert_replay_stops_at, assert_same_across_hash_seeds, replay_of


def state_json(eng) -> str:
    return json.dumps({"view": eng.view(), "events": eng.events(), "log": eng.command_log}, sort_keys=True)


def scripted_run(seed: int = 7) -> patterns.Engine:
    """Every command and every fault, at 200 rps over three downstreams."""
    eng = patterns.create("circuit_breaker", seed=seed, downstreams=3, rate_rps=200, retry_policy="exponential_jitter")
    eng.advance(600)
    eng.apply({"op": "downstream", "node": "d1", "error_rate": 0.7})
    eng.advance(900)
    eng.apply({"op": "downstream", "node": "d2", "gray": True})
    eng.apply({"op": "retry", "policy": "fixed", "budget": False, "max_attempts": 4})
    eng.advance(700)
    eng.apply({"op": "breaker", "window_type": "time", "window_ms": 500, "slow_call_ms": 100, "slow_call_rate_threshold": 60})
    eng.apply({"op": "network", "latency_ms": [1, 6], "duplicate_rate": 0.1, "reorder_rate": 0.2, "drop_rate": 0.02})
    eng.apply({"op": "crash", "node": "d3"})
    for _ in range(40):
        eng.step()
    eng.apply({"op": "pipeline", "bulkhead": False, "fallback": True})
    eng.apply({"op": "fallback", "mode": "cached"})
    eng.advance(800)
    eng.apply({"op": "force", "state": "half_open", "node": "d1"})
    eng.apply({"op": "traffic", "rate_rps": 500, "fanout": ["d1", "d3"]})
    eng.advance(600)
    eng.apply({"op": "restart", "node": "d3"})
    eng.apply({"op": "crash", "node": "front"})
    eng.advance(300)
    eng.apply({"op": "restart", "node": "front"})
    eng.apply({"op": "partition", "groups": [["d2"]]})
    eng.apply({"op": "retry", "policy": "exponential", "budget": True})
    eng.apply({"op": "bulkhead", "limit": 4})
    eng.apply({"op": "pipeline", "bulkhead": True})
    eng.advance(700)
    eng.apply({"op": "heal"})
    eng.apply({"op": "timeout", "timeout_ms": 200})
    eng.apply({"op": "front", "workers": 8, "queue_limit": 10})
    eng.apply({"op": "downstream", "node": "d1", "error_rate": 0, "hang_rate": 0.3})
    eng.advance(1500)
    return eng


def test_same_seed_and_commands_give_identical_runs():
    a, b = scripted_run(), scripted_run()
    assert state_json(a) == state_json(b)
    assert a.sim.events_run == b.sim.events_run > 10_000
    assert a.net.trace_since(0) == b.net.trace_since(0)
    assert a.violations() == []


def test_a_different_seed_gives_a_different_run():
    assert state_json(scripted_run(seed=7)) != state_json(scripted_run(seed=8))


def test_replay_of_a_scripted_run_reproduces_it():
    eng = scripted_run()
    assert state_json(replay_of(eng)) == state_json(eng)


def test_replay_can_stop_at_an_earlier_moment():
    assert_replay_stops_at(scripted_run(), 2500.0, state_json)


@pytest.mark.parametrize("latency", [[0, 0], [1, 3]])
def test_replay_with_commands_sharing_a_moment(latency):
    eng = patterns.create("circuit_breaker", seed=2, rate_rps=300, latency_ms=latency)
    eng.advance(100)
    eng.step()
    eng.apply({"op": "crash", "node": "d1"})
    eng.step()
    eng.apply({"op": "force", "state": "open", "node": "d2"})
    eng.apply({"op": "retry", "policy": "fixed"})
    eng.advance(0)
    eng.apply({"op": "restart", "node": "d1"})
    eng.advance(300)
    assert state_json(replay_of(eng)) == state_json(eng)


def test_runs_match_across_processes_with_different_hash_seeds():
    assert_same_across_hash_seeds(
        state_json(scripted_run()), "from test_circuit_breaker_determinism import scripted_run, state_json\nSTATE = state_json(scripted_run())"
    )
