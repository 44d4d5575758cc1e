"""The cost of one engine tick as a worker runs it: advance 50 virtual ms, then view().

    .venv/bin/python bench/engine_hotpath.py                  # µs per engine per tick, 5 runs
    .venv/bin/python bench/engine_hotpath.py --engines 200 --seconds 10 --runs 5
    .venv/bin/python bench/engine_hotpath.py --golden out.txt # digests of long faulted runs

The timed loop is what a worker does at speed 1: every engine advances 50 ms
and is viewed, round-robin, for ``--seconds`` of virtual time. Engines are
Raft with default parameters (5 nodes, 3 idle clients), seeds 1..N.

``--golden`` runs every kernel engine (raft, sharding, load_balancer,
circuit_breaker, saga) for a few seeds under a fixed schedule of faults and
commands, and writes one SHA-256 per run over json.dumps of every view, the
network trace, the narration and the violations. Two versions of the code
behave the same if their golden files are identical.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, os.environ.get("PATTERNS_ROOT") or str(Path(__file__).resolve().parent.parent))

import patterns  # noqa: E402
from patterns.errors import PatternsError  # noqa: E402

TICK_MS = 50.0


def bench(engines: int, seconds: float) -> float:
    """µs of CPU per engine per tick (advance 50 ms + view)."""
    pool = [patterns.create("raft", seed=s) for s in range(1, engines + 1)]
    ticks = int(seconds * 1000 / TICK_MS)
    start = time.process_time()
    for _ in range(ticks):
        for eng in pool:
            eng.advance(TICK_MS)
            eng.view()
    elapsed = time.process_time() - start
    return elapsed / (ticks * engines) * 1e6


def bench_split(engines: int, seconds: float) -> tuple[float, float]:
    """µs per engine per tick spent in advance and in view, separately."""
    pool = [patterns.create("raft", seed=s) for s in range(1, engines + 1)]
    ticks = int(seconds * 1000 / TICK_MS)
    t_adv = t_view = 0.0
    clock = time.process_time
    for _ in range(ticks):
        for eng in pool:
            a = clock()
            eng.advance(TICK_MS)
            b = clock()
            eng.view()
            t_adv += b - a
            t_view += clock() - b
    n = ticks * engines
    return t_adv / n * 1e6, t_view / n * 1e6


# -- golden runs ---------------------------------------------------------------------

KINDS = {
    "raft": {"drop_rate": 0.05, "duplicate_rate": 0.05, "reorder_rate": 0.1},
    "sharding": {},
    "load_balancer": {},
    "circuit_breaker": {},
    "saga": {},
}


def _commands(kind: str, eng, rng: random.Random) -> list[dict]:
    nodes = list(eng.nodes)
    a, b = rng.sample(nodes, 2)
    common = [
        {"op": "crash", "node": a},
        {"op": "restart", "node": a},
        {"op": "partition", "groups": [nodes[: len(nodes) // 2]]},
        {"op": "heal"},
        {"op": "cut", "from": a, "to": b},
        {"op": "uncut", "from": a, "to": b},
        {"op": "network", "drop_rate": rng.choice([0.0, 0.1]), "duplicate_rate": rng.choice([0.0, 0.1]),
         "reorder_rate": rng.choice([0.0, 0.2])},
    ]
    key = f"k{rng.randrange(8)}"
    extra = {
        "raft": [
            {"op": "put", "key": key, "value": rng.randrange(100), "client": f"c{rng.randrange(1, 4)}"},
            {"op": "get", "key": key},
            {"op": "timeout", "node": a},
            {"op": "crash_lose_disk", "node": b},
        ],
        "sharding": [{"op": "put", "key": key, "value": str(rng.randrange(100))}, {"op": "get", "key": key},
                     {"op": "load", "keys": 5}],
        "load_balancer": [{"op": "traffic", "rate_rps": rng.choice([5, 20, 50])}],
        "circuit_breaker": [{"op": "traffic", "rate_rps": rng.choice([5, 20, 50])}],
        "saga": [{"op": "traffic", "rate_rps": rng.choice([2, 10])}, {"op": "place_order"}],
    }[kind]
    return common + extra * 3


def golden_run(kind: str, seed: int, seconds: float) -> str:
    eng = patterns.create(kind, seed=seed, **KINDS[kind])
    rng = random.Random(seed * 7919 + len(kind))
    digest = hashlib.sha256()
    ticks = int(seconds * 1000 / TICK_MS)
    for tick in range(ticks):
        if rng.random() < 0.15:
            cmd = rng.choice(_commands(kind, eng, rng))
            try:
                result = eng.apply(cmd)
            except PatternsError as exc:
                result = {"error": str(exc)}
            digest.update(json.dumps(result, sort_keys=False, default=repr).encode())
        if tick % 7 == 3:
            eng.step()
        eng.advance(TICK_MS)
        digest.update(json.dumps(eng.view()).encode())
        digest.update(json.dumps(eng.violations()).encode())
    digest.update(json.dumps(eng.net.trace_since(0)).encode())
    digest.update(json.dumps(eng.events(0)).encode())
    digest.update(json.dumps(eng.net.counts).encode())
    digest.update(json.dumps(eng.command_log).encode())
    return digest.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engines", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--split", action="store_true", help="time advance and view separately")
    parser.add_argument("--golden", metavar="FILE", help="write digests of long faulted runs to FILE")
    parser.add_argument("--golden-seconds", type=float, default=60.0)
    args = parser.parse_args()
    if args.golden:
        lines = []
        for kind in KINDS:
            for seed in (1, 2, 3):
                lines.append(f"{kind} {seed} {golden_run(kind, seed, args.golden_seconds)}")
                print(lines[-1], flush=True)
        Path(args.golden).write_text("\n".join(lines) + "\n")
        return
    results = []
    for _ in range(args.runs):
        if args.split:
            adv, view = bench_split(args.engines, args.seconds)
            results.append(adv + view)
            print(f"advance {adv:7.1f} µs  view {view:7.1f} µs  total {adv + view:7.1f} µs", flush=True)
        else:
            results.append(bench(args.engines, args.seconds))
            print(f"{results[-1]:7.1f} µs per engine per tick", flush=True)
    print(
        f"median {statistics.median(results):.1f} µs, min {min(results):.1f}, max {max(results):.1f} "
        f"({args.engines} engines, {args.seconds:g} s virtual, {args.runs} runs)"
    )


if __name__ == "__main__":
    main()
