"""How fast the Raft engine simulates, in virtual seconds per wall second.

    .venv/bin/python bench/raft_speed.py            # a table
    .venv/bin/python bench/raft_speed.py --json     # one JSON object
    .venv/bin/python bench/raft_speed.py --check    # exit 1 if idle is under 1,000x real time

Three measurements, each repeated (best of N, fresh engine each time):

- idle: a 5-node cluster with a leader and no clients (heartbeats only);
- loaded: the same cluster under 100 client operations per virtual second,
  half puts and half gets, spread over 16 keys and every client;
- baseline: a bare heapq event loop with tuple callbacks, each event
  scheduling the next as a message delivery would, for as many events as the
  idle run processed. It is the floor for any pure-Python discrete-event
  simulation; the ratio says how much the engine's real work costs on top.

The engine's figures count the events its simulator ran (timers and message
deliveries). Wall time comes from time.perf_counter; the engine itself never
reads a clock.
"""

from __future__ import annotations

import argparse
import heapq
import json
import platform
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import patterns  # noqa: E402

TARGET_IDLE_SPEEDUP = 1_000.0
SETTINGS = {
    "seed": 1,
    "nodes": 5,
    "election_timeout_ms": [150, 300],
    "heartbeat_ms": 50,
    "latency_ms": [10, 15],
    "clients": 3,
}
WARMUP_MS = 1_000.0  # elect a leader before timing
IDLE_VIRTUAL_S = 300.0
LOADED_VIRTUAL_S = 60.0
OPS_PER_S = 100
KEYS = 16


def new_engine(seed: int):
    params = {k: v for k, v in SETTINGS.items() if k != "seed"}
    eng = patterns.create("raft", seed=seed, **params)
    eng.advance(WARMUP_MS)
    assert eng.leader() is not None, "no leader after warm-up"
    return eng


def measure_idle(seed: int) -> dict:
    eng = new_engine(seed)
    events0 = eng.sim.events_run
    start = time.perf_counter()
    eng.advance(IDLE_VIRTUAL_S * 1000.0)
    wall = time.perf_counter() - start
    events = eng.sim.events_run - events0
    assert eng.violations() == []
    return {"virtual_s": IDLE_VIRTUAL_S, "wall_s": wall, "events": events}


def measure_loaded(seed: int) -> dict:
    eng = new_engine(seed)
    rng = random.Random(seed)  # the benchmark's own stream, for the workload
    clients = list(eng.clients)
    gap_ms = 1000.0 / OPS_PER_S
    steps = int(LOADED_VIRTUAL_S * OPS_PER_S)
    events0 = eng.sim.events_run
    ops0 = len(eng.history)
    value = 0
    start = time.perf_counter()
    for i in range(steps):
        key = f"k{rng.randrange(KEYS)}"
        client = clients[i % len(clients)]
        if rng.random() < 0.5:
            value += 1
            eng.apply({"op": "put", "key": key, "value": value, "client": client})
        else:
            eng.apply({"op": "get", "key": key, "client": client})
        eng.advance(gap_ms)
    wall = time.perf_counter() - start
    events = eng.sim.events_run - events0
    done = [r for r in eng.history[ops0:] if r["status"] == "ok"]
    latencies = sorted(r["complete"] - r["invoke"] for r in done)
    assert eng.violations() == []
    return {
        "virtual_s": LOADED_VIRTUAL_S,
        "wall_s": wall,
        "events": events,
        "ops_submitted": steps,
        "ops_completed": len(done),
        "op_latency_p50_ms": latencies[len(latencies) // 2] if latencies else None,
        "op_latency_p99_ms": latencies[int(len(latencies) * 0.99)] if latencies else None,
    }


def measure_baseline(seed: int, events: int, population: int = 13) -> dict:
    """A bare heapq loop: (time, seq, fn, args) tuples; each event schedules one more."""
    rng = random.Random(seed)
    uniform = rng.uniform
    heap: list[tuple] = []
    push, pop = heapq.heappush, heapq.heappop
    counter = [0, 0]  # seq, events run

    def deliver(src: int, dst: int) -> None:
        counter[1] += 1
        counter[0] += 1
        push(heap, (now[0] + uniform(10.0, 15.0), counter[0], deliver, (dst, src)))

    now = [0.0]
    for i in range(population):
        counter[0] += 1
        push(heap, (uniform(0.0, 15.0), counter[0], deliver, (i, (i + 1) % population)))
    start = time.perf_counter()
    while counter[1] < events:
        at, _, fn, args = pop(heap)
        now[0] = at
        fn(*args)
    wall = time.perf_counter() - start
    return {"virtual_s": now[0] / 1000.0, "wall_s": wall, "events": counter[1]}


def best_of(repeats: int, fn, *args) -> dict:
    runs = [fn(*args) for _ in range(repeats)]
    best = min(runs, key=lambda r: r["wall_s"])
    best = dict(best)
    best["wall_s_median"] = statistics.median(r["wall_s"] for r in runs)
    best["speedup"] = best["virtual_s"] / best["wall_s"]
    best["events_per_s"] = best["events"] / best["wall_s"]
    return best


def run(repeats: int) -> dict:
    seed = SETTINGS["seed"]
    idle = best_of(repeats, measure_idle, seed)
    loaded = best_of(repeats, measure_loaded, seed)
    baseline = best_of(repeats, measure_baseline, seed, idle["events"])
    return {
        "settings": {
            **SETTINGS,
            "warmup_ms": WARMUP_MS,
            "idle_virtual_s": IDLE_VIRTUAL_S,
            "loaded_virtual_s": LOADED_VIRTUAL_S,
            "ops_per_s": OPS_PER_S,
            "keys": KEYS,
            "repeats": repeats,
            "python": platform.python_version(),
            "machine": platform.machine(),
        },
        "idle": idle,
        "loaded": loaded,
        "baseline": baseline,
        "ratio_idle_vs_baseline": idle["events_per_s"] / baseline["events_per_s"],
        "ratio_loaded_vs_baseline": loaded["events_per_s"] / baseline["events_per_s"],
        "target_idle_speedup": TARGET_IDLE_SPEEDUP,
        "meets_target": idle["speedup"] >= TARGET_IDLE_SPEEDUP,
    }


def table(result: dict) -> str:
    s = result["settings"]
    lines = [
        f"Raft engine speed  (seed={s['seed']}, nodes={s['nodes']}, election={s['election_timeout_ms']} ms, "
        f"heartbeat={s['heartbeat_ms']} ms, latency={s['latency_ms']} ms, clients={s['clients']}, "
        f"best of {s['repeats']}, Python {s['python']})",
        "",
        f"{'run':<10}{'virtual s':>11}{'wall s':>9}{'events':>10}{'events/s':>12}{'x real time':>13}",
    ]
    for name in ("idle", "loaded", "baseline"):
        r = result[name]
        speed = f"{r['speedup']:,.0f}x" if name != "baseline" else "-"
        lines.append(
            f"{name:<10}{r['virtual_s']:>11.1f}{r['wall_s']:>9.3f}{r['events']:>10,}{r['events_per_s']:>12,.0f}{speed:>13}"
        )
    loaded = result["loaded"]
    lines += [
        "",
        f"loaded: {s['ops_per_s']} ops/s over {s['keys']} keys, {loaded['ops_completed']:,} of "
        f"{loaded['ops_submitted']:,} completed, latency p50 {loaded['op_latency_p50_ms']:.1f} ms, "
        f"p99 {loaded['op_latency_p99_ms']:.1f} ms (virtual)",
        f"engine events/s vs bare heapq loop: idle {result['ratio_idle_vs_baseline']:.2f}, "
        f"loaded {result['ratio_loaded_vs_baseline']:.2f}",
        f"target: idle >= {result['target_idle_speedup']:,.0f}x real time -> "
        + ("met" if result["meets_target"] else "MISSED"),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--repeats", type=int, default=3, help="runs per measurement; the best counts (default 3)")
    parser.add_argument("--check", action="store_true", help="exit 1 when the idle target is missed")
    args = parser.parse_args(argv)
    result = run(max(1, args.repeats))
    print(json.dumps(result, indent=2) if args.json else table(result))
    return 1 if args.check and not result["meets_target"] else 0


if __name__ == "__main__":
    sys.exit(main())
