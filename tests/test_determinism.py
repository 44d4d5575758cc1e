"""Determinism: same seed, same commands at the same virtual times -> same run.

Also across processes with different PYTHONHASHSEED values, through
``patterns.replay()`` of a command log, and a scan of ``patterns/`` for things
that would break it (wall clocks, module-level randomness, I/O libraries).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import patterns
from determinism_helpers import assert_replay_stops_at, assert_same_across_hash_seeds, replay_of
from raft_helpers import new_engine, random_schedule, run_schedule, state_json, view_json

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "patterns"


def scripted_run(seed: int = 7, **params) -> patterns.Engine:
    eng = new_engine(seed, **params)
    eng.advance(400)
    eng.apply({"op": "put", "key": "x", "value": 1, "client": "c1"})
    eng.apply({"op": "get", "key": "x", "client": "c2"})
    eng.advance(120)
    eng.apply({"op": "network", "latency_ms": [5, 40], "drop_rate": 0.2, "duplicate_rate": 0.2, "reorder_rate": 0.3})
    eng.apply({"op": "crash", "node": eng.leader()})
    eng.advance(650)
    eng.apply({"op": "partition", "groups": [["n1", "n2"]]})
    eng.apply({"op": "put", "key": "y", "value": "b", "client": "c3"})
    for _ in range(25):
        eng.step()
    eng.apply({"op": "cut", "from": "n3", "to": "n4"})
    eng.apply({"op": "timeout", "node": "n5"})
    eng.advance(900)
    eng.apply({"op": "heal"})
    for node_id, host in eng.hosts.items():
        if not host.alive:
            eng.apply({"op": "restart", "node": node_id})
    eng.apply({"op": "network", "drop_rate": 0.0})
    eng.advance(3000)
    return eng


def test_same_seed_and_commands_give_identical_runs():
    a, b = scripted_run(), scripted_run()
    assert state_json(a) == state_json(b)
    assert a.sim.events_run == b.sim.events_run > 500
    assert a.net.trace_since(0) == b.net.trace_since(0)


def test_a_different_seed_gives_a_different_run():
    # Guards the test above against comparing two things that cannot differ.
    assert view_json(scripted_run(seed=7)) != view_json(scripted_run(seed=8))


@pytest.mark.parametrize("seed", range(8))
def test_random_schedules_are_deterministic(seed):
    def run():
        eng = new_engine(seed, nodes=5, clients=3)
        run_schedule(eng, random_schedule(seed, list(eng.nodes), 3, 120))
        eng.advance(2000)
        return state_json(eng)

    assert run() == run()


# -- replay ---------------------------------------------------------------------------------


def test_replay_of_a_scripted_run_reproduces_its_view():
    eng = scripted_run()
    assert view_json(replay_of(eng)) == view_json(eng)
    assert replay_of(eng).history == eng.history


@pytest.mark.parametrize("seed", range(12))
def test_replay_of_random_schedules_reproduces_the_view(seed):
    eng = new_engine(seed, nodes=[3, 5][seed % 2], clients=3, leader_noop=seed % 3 != 0)
    run_schedule(eng, random_schedule(seed, list(eng.nodes), 3, 150))
    eng.advance(500)
    replayed = replay_of(eng)
    assert view_json(replayed) == view_json(eng)
    assert replayed.history == eng.history
    assert replayed.events() == eng.events()


def test_replay_can_stop_at_an_earlier_moment():
    assert_replay_stops_at(scripted_run(), 1000.0, view_json)


def test_replay_records_rejected_commands_and_goes_on():
    eng = scripted_run()
    log = list(eng.command_log)
    log.insert(2, {"at_ms": log[1]["at_ms"], "cmd": {"op": "restart", "node": "n1"}})  # n1 is up: rejected
    replayed = patterns.replay({"kind": "raft", "seed": 7, "params": eng.params, "log": log}, until_ms=eng.now)
    assert view_json(replayed) == view_json(eng)
    assert any(entry.get("rejected") for entry in replayed.command_log)


# -- across processes and hash seeds ----------------------------------------------------------

CHILD = """
from raft_helpers import new_engine, random_schedule, run_schedule, state_json
eng = new_engine(4, nodes=5, clients=3)
run_schedule(eng, random_schedule(4, list(eng.nodes), 3, 200))
eng.advance(1500)
STATE = state_json(eng)
"""


def test_runs_match_across_processes_with_different_hash_seeds():
    here = new_engine(4, nodes=5, clients=3)
    run_schedule(here, random_schedule(4, list(here.nodes), 3, 200))
    here.advance(1500)
    assert_same_across_hash_seeds(state_json(here), CHILD)


# -- the source scan --------------------------------------------------------------------------

FORBIDDEN_MODULES = {"django", "asyncio", "socket", "time", "uuid", "threading", "secrets"}
FORBIDDEN_CALLS = {("datetime", "now"), ("datetime", "utcnow"), ("datetime", "today"), ("date", "today")}


def scan_source(source: str, name: str = "<source>") -> list[str]:
    """Problems that would make an engine depend on something besides seed and commands."""
    problems = []
    tree = ast.parse(source, name)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in FORBIDDEN_MODULES:
                    problems.append(f"{name}:{node.lineno}: imports {alias.name}")
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            root = node.module.split(".")[0]
            if root in FORBIDDEN_MODULES:
                problems.append(f"{name}:{node.lineno}: imports from {node.module}")
            if root == "random" and any(alias.name != "Random" for alias in node.names):
                problems.append(f"{name}:{node.lineno}: imports module-level random functions")
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.value.id == "random" and node.attr not in ("Random",):
                problems.append(f"{name}:{node.lineno}: uses random.{node.attr} (module-level random state)")
            if (node.value.id, node.attr) in FORBIDDEN_CALLS:
                problems.append(f"{name}:{node.lineno}: reads the wall clock ({node.value.id}.{node.attr})")
        elif isinstance(node, ast.Attribute) and node.attr in ("now", "utcnow") and isinstance(node.value, ast.Attribute):
            if node.value.attr == "datetime":
                problems.append(f"{name}:{node.lineno}: reads the wall clock (datetime.{node.attr})")
    return problems


def test_patterns_package_has_no_forbidden_dependencies():
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) >= 10
    problems = [p for path in files for p in scan_source(path.read_text(), str(path.relative_to(ROOT)))]
    assert problems == []


@pytest.mark.parametrize(
    "snippet",
    [
        "import django",
        "from django.conf import settings",
        "import asyncio",
        "import socket",
        "import time",
        "from time import monotonic",
        "import uuid",
        "import os.path, time",
        "import random\nx = random.random()",
        "import random\nrandom.seed(3)",
        "import random\nrandom.choice([1, 2])",
        "from random import choice",
        "import datetime\nnow = datetime.datetime.now()",
        "from datetime import datetime\nnow = datetime.now()",
        "from datetime import datetime\nnow = datetime.utcnow()",
    ],
)
def test_scan_catches_forbidden_things(snippet):
    assert scan_source(snippet)


@pytest.mark.parametrize(
    "snippet",
    [
        "import random\nrng = random.Random(7)\nx = rng.random()",
        "from random import Random",
        "import heapq, hashlib, math",
        "from .kernel.sim import Simulator",
        "self.sim.now",
    ],
)
def test_scan_allows_seeded_generators_and_virtual_time(snippet):
    assert scan_source(snippet) == []


def test_no_set_iteration_in_engine_sources():
    # Iterating a set of strings depends on PYTHONHASHSEED. Sets for membership are fine;
    # this flags `for x in {...}` and `for x in set(...)` loops.
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.For, ast.comprehension)):
                it = node.iter
                if isinstance(it, (ast.Set, ast.SetComp)) or (
                    isinstance(it, ast.Call) and isinstance(it.func, ast.Name) and it.func.id in ("set", "frozenset")
                ):
                    problems.append(f"{path.relative_to(ROOT)}:{node.lineno if hasattr(node, 'lineno') else it.lineno}")
    assert problems == []


def test_replay_with_zero_latency_and_commands_sharing_a_moment():
    # Regression: on a zero-latency network a command's messages are due at the
    # very instant it is applied. replay() used to apply the next command of the
    # same instant before those messages ran when the original run had stepped
    # in between, and the runs diverged. apply() now runs what is due at `now`.
    eng = new_engine(1, nodes=3, latency_ms=[0, 0])
    eng.advance(400)
    leader = eng.leader()
    eng.apply({"op": "put", "key": "x", "value": 1, "client": "c1", "via": leader})
    assert eng.next_event_ms() is None or eng.next_event_ms() > eng.now
    eng.step()
    eng.apply({"op": "get", "key": "x", "client": "c2", "via": leader})
    eng.advance(0)
    eng.apply({"op": "put", "key": "x", "value": 2, "client": "c3", "via": leader})
    eng.advance(200)
    assert view_json(replay_of(eng)) == view_json(eng)
