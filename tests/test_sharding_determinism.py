"""Determinism of the sharding engine: same seed and commands at the same virtual
times -> the same run, in any process, under any PYTHONHASHSEED, however a
caller slices time into advance() calls, and through patterns.replay().
"""

from __future__ import annotations

import json
import random

import pytest

import patterns
from determinism_helpers import assert_replay_stops_at, assert_same_across_hash_seeds, replay_of


def state_json(eng) -> str:
    return json.dumps(
        {"view": eng.view(), "history": eng.history, "events": eng.events(), "log": eng.command_log}, sort_keys=True
    )


def scripted_run(seed: int = 7, slices: int = 1) -> patterns.Engine:
    """Faults, membership and strategy changes, a hot key and client traffic.

    ``slices`` cuts every wait into that many advance() calls of uneven sizes.
    """
    cutter = random.Random(slices)
    eng = patterns.create("sharding", seed=seed, nodes=5)

    def wait(ms: float) -> None:
        if slices == 1:
            eng.advance(ms)
            return
        start = eng.now
        cuts = sorted(cutter.uniform(0, ms) for _ in range(slices - 1))
        for cut in cuts:
            eng.advance_to(start + cut)
        eng.advance_to(start + ms)

    eng.apply({"op": "load", "keys": 300})
    eng.apply({"op": "put", "key": "x", "value": 1, "client": "c1"})
    eng.apply({"op": "get", "key": "x", "client": "c2"})
    eng.apply({"op": "hot_key", "key": "k0007", "rate_rps": 120})
    wait(500)
    eng.apply({"op": "network", "latency_ms": [5, 40], "drop_rate": 0.1, "duplicate_rate": 0.1, "reorder_rate": 0.2})
    eng.apply({"op": "add_node"})
    wait(300)
    eng.apply({"op": "crash", "node": "n2"})
    eng.apply({"op": "partition", "groups": [["n1", "n3"], ["n4"]]})
    for i in range(6):
        eng.apply({"op": "put", "key": "xyz"[i % 3], "value": i, "client": f"c{i % 3 + 1}"})
        eng.apply({"op": "get", "key": "xyz"[(i + 1) % 3], "client": f"c{(i + 1) % 3 + 1}"})
        wait(37)
    for _ in range(25):
        eng.step()
    eng.apply({"op": "remove_node", "node": "n5"})
    eng.apply({"op": "set_strategy", "strategy": "modulo"})
    wait(700)
    eng.apply({"op": "heal"})
    eng.apply({"op": "restart", "node": "n2"})
    eng.apply({"op": "network", "latency_ms": [10, 15], "drop_rate": 0, "duplicate_rate": 0, "reorder_rate": 0})
    eng.apply({"op": "set_quorum", "w": 1, "r": 1})
    for key in "xyz":
        eng.apply({"op": "get", "key": key, "client": "c3"})
    eng.apply({"op": "set_strategy", "strategy": "range"})
    wait(400)
    eng.apply({"op": "hot_key", "key": "k0007", "rate_rps": 0})
    wait(3000)
    return eng


def test_same_seed_and_commands_give_identical_runs():
    a, b = scripted_run(), scripted_run()
    assert state_json(a) == state_json(b)
    assert a.sim.events_run == b.sim.events_run > 2000
    assert a.net.trace_since(0) == b.net.trace_since(0)
    assert a.violations() == []


def test_a_different_seed_gives_a_different_run():
    assert state_json(scripted_run(seed=7)) != state_json(scripted_run(seed=8))


@pytest.mark.parametrize("slices", [3, 17])
def test_slicing_time_differently_changes_nothing(slices):
    # The web driver advances by wall-clock ticks of any size: the run must not depend on them.
    assert state_json(scripted_run(slices=slices)) == state_json(scripted_run(slices=1))


def test_replay_reproduces_the_run():
    eng = scripted_run()
    replayed = replay_of(eng)
    assert json.dumps(replayed.view(), sort_keys=True) == json.dumps(eng.view(), sort_keys=True)
    assert replayed.history == eng.history
    assert replayed.events() == eng.events()


def test_replay_can_stop_at_an_earlier_moment():
    assert_replay_stops_at(scripted_run(), 900.0, state_json)


def test_runs_match_across_processes_with_different_hash_seeds():
    assert_same_across_hash_seeds(
        state_json(scripted_run(seed=4)), "from test_sharding_determinism import scripted_run, state_json\nSTATE = state_json(scripted_run(seed=4))"
    )
