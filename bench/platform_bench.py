"""Platform benchmarks: fan-out, click-to-frame latency, worker capacity.

    .venv/bin/python bench/platform_bench.py [--quick] [--json]

Everything runs here on loopback: an embedded Redis, real daphne and engine
worker processes, and WebSocket clients in this process. Each figure comes with
a baseline measured in the same run, because these machines are noisy:

- fan-out: frames per second and delay for N viewers of one simulation,
  against a bare `websockets` broadcast server sending frames of the same size;
- click to frame: a command's round trip until a frame shows it, with 50 other
  simulations running, against a bare `websockets` echo round trip;
- worker capacity: how many 5-node Raft simulations at speed 1 one worker ticks
  at 20 frames a second, against the same loop with a trivial engine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")

import websockets  # noqa: E402
from harness import ViewerStats, cpu_seconds, percentile, viewer  # noqa: E402

from webapp.runtime.launch import DaphneProcess, WorkerProcess  # noqa: E402
from webapp.runtime.launch import open_new_sim as new_sim  # noqa: E402
from webapp.runtime.redis_embedded import EmbeddedRedis, free_port  # noqa: E402


ACK_EVERY = 5  # like the browser: half the default window of 10


async def measure_viewers(urls_headers, seconds: float, pids: list[int]) -> dict:
    stats = [ViewerStats() for _ in urls_headers]
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(viewer(url, headers, s, stop, ack_every=ACK_EVERY))
        for (url, headers), s in zip(urls_headers, stats)
    ]
    await asyncio.sleep(2.0)  # let every viewer connect and settle
    for s in stats:
        s.frames, s.delays_ms, s.seqs, s.bytes = 0, [], [], 0
    cpu0 = {pid: cpu_seconds(pid) for pid in pids}
    t0 = time.monotonic()
    await asyncio.sleep(seconds)
    elapsed = time.monotonic() - t0
    cpu = {pid: (cpu_seconds(pid) - cpu0[pid]) / elapsed for pid in pids}
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    delays = [d for s in stats for d in s.delays_ms]
    rates = [s.frames / elapsed for s in stats]
    frames = sum(s.frames for s in stats)
    return {
        "viewers": len(stats),
        "fps_mean": statistics.mean(rates) if rates else 0.0,
        "fps_min": min(rates) if rates else 0.0,
        "p50_ms": percentile(delays, 50),
        "p99_ms": percentile(delays, 99),
        "cpu": cpu,
        "bytes_per_frame": (sum(s.bytes for s in stats) / frames) if frames else 0,
    }


async def fanout(lab, counts, seconds: float) -> list[dict]:
    server, redis_client = lab["daphne"], lab["redis"]
    sim_id, cookie = new_sim(server.url)
    share = redis_client.hget(f"lab:sim:{sim_id}", "share").decode()
    ws_base = server.url.replace("http", "ws") + f"/ws/sim/{sim_id}/"
    async with websockets.connect(ws_base, additional_headers={"Cookie": cookie, "Origin": server.url}) as owner:
        await owner.send(json.dumps({"type": "control", "id": 1, "action": "speed", "speed": 1}))
        await owner.send(json.dumps({"type": "command", "id": 2, "cmd": {"op": "network", "drop_rate": 0.0}}))
        results = []
        for n in counts:
            targets = [(ws_base + f"?watch={share}", {"Origin": server.url})] * n
            measured = await measure_viewers(targets, seconds, [server.proc.pid])
            measured["server_cpu"] = measured["cpu"][server.proc.pid]
            results.append(measured)
            sample_bytes = measured["bytes_per_frame"]
        lab["frame_bytes"] = int(sample_bytes)
    return results


async def fanout_baseline(counts, seconds: float, payload_bytes: int) -> list[dict]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(ROOT / "bench" / "baseline_ws.py"), str(port), str(payload_bytes), "20"])
    try:
        await asyncio.sleep(1.0)
        results = []
        for n in counts:
            measured = await measure_viewers([(f"ws://127.0.0.1:{port}/", {})] * n, seconds, [proc.pid])
            measured["server_cpu"] = measured["cpu"][proc.pid]
            results.append(measured)
        return results
    finally:
        proc.terminate()
        proc.wait()


async def click_latency(lab, background: int, clicks: int) -> dict:
    server = lab["daphne"]
    stop = asyncio.Event()
    bg_tasks = []
    for _ in range(background):
        sim_id, cookie = new_sim(server.url)
        url = server.url.replace("http", "ws") + f"/ws/sim/{sim_id}/"
        bg_tasks.append(asyncio.create_task(viewer(url, {"Cookie": cookie, "Origin": server.url}, ViewerStats(), stop)))
    sim_id, cookie = new_sim(server.url)
    url = server.url.replace("http", "ws") + f"/ws/sim/{sim_id}/"
    latencies = []
    async with websockets.connect(url, additional_headers={"Cookie": cookie, "Origin": server.url}) as ws:
        await asyncio.sleep(3.0)  # background simulations get adopted and start ticking

        async def next_frame() -> dict:
            while True:
                message = json.loads(await asyncio.wait_for(ws.recv(), 10))
                if message["type"] == "frame":
                    await ws.send('{"type":"ack","seq":%d}' % message["seq"])
                    return message

        await ws.send(json.dumps({"type": "control", "id": 0, "action": "speed", "speed": 1}))
        for i in range(clicks):
            op = "crash" if i % 2 == 0 else "restart"
            t0 = time.perf_counter()
            await ws.send(json.dumps({"type": "command", "id": i + 1, "cmd": {"op": op, "node": "n1"}}))
            while True:
                frame = await next_frame()
                n1 = frame["view"]["nodes"][0]
                if n1["alive"] == (op == "restart"):
                    break
            latencies.append((time.perf_counter() - t0) * 1000)
            await asyncio.sleep(0.1)
    stop.set()
    await asyncio.gather(*bg_tasks, return_exceptions=True)
    return {"background": background, "clicks": clicks, "p50_ms": percentile(latencies, 50), "p99_ms": percentile(latencies, 99)}


async def echo_baseline(rounds: int) -> dict:
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(ROOT / "bench" / "baseline_ws.py"), str(port), "200", "0.2"])
    try:
        await asyncio.sleep(1.0)
        latencies = []
        async with websockets.connect(f"ws://127.0.0.1:{port}/") as ws:
            for i in range(rounds):
                t0 = time.perf_counter()
                await ws.send(json.dumps({"type": "echo", "i": i}))
                while json.loads(await ws.recv()).get("type") != "echo":
                    pass
                latencies.append((time.perf_counter() - t0) * 1000)
        return {"p50_ms": percentile(latencies, 50), "p99_ms": percentile(latencies, 99)}
    finally:
        proc.terminate()
        proc.wait()


def worker_capacity(redis_url: str, sizes: list[int], seconds: float) -> list[dict]:
    """Tick N drivers at 20 Hz in a real EngineWorker loop publishing to Redis."""
    code = r'''
import asyncio, json, sys, time, os
os.environ["DJANGO_SETTINGS_MODULE"] = "webapp.settings"
import django; django.setup()
from redis import asyncio as aioredis
from webapp.runtime.worker import EngineWorker
from webapp.runtime.driver import SimDriver, SimSpec
import patterns

class TrivialEngine:
    """Baseline: the same loop and frames, with no simulation behind them."""
    def __init__(self, size): self.now = 0.0; self.blob = "x" * size
    def advance(self, ms): self.now += ms
    def view(self): return {"kind": "trivial", "blob": self.blob}

async def run(n, seconds, trivial, frame_bytes):
    worker = EngineWorker(frame_hz=20)
    worker.redis = aioredis.from_url(os.environ["REDIS_URL"])
    for i in range(n):
        driver = SimDriver(SimSpec(sim_id=f"bench{i}", kind="raft", seed=i, params={}, speed=1.0), wall_s=time.monotonic())
        if trivial:
            driver.engine = TrivialEngine(frame_bytes)
        worker.sims[f"bench{i}"] = driver
    interval = 0.05
    ticks = late = 0
    start = time.monotonic(); next_tick = start
    cpu0 = time.process_time()
    while time.monotonic() - start < seconds:
        next_tick += interval
        delay = next_tick - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            late += 1
            next_tick = time.monotonic()
        await worker.tick_all()
        ticks += 1
    elapsed = time.monotonic() - start
    virtual = sum(d.engine.now for d in worker.sims.values()) / n
    return {"sims": n, "frame_hz": ticks / elapsed, "late_ticks": late, "cpu": (time.process_time() - cpu0) / elapsed,
            "speed_achieved": virtual / (elapsed * 1000)}

n, seconds, trivial, frame_bytes = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3] == "1", int(sys.argv[4])
print(json.dumps(asyncio.run(run(n, seconds, trivial, frame_bytes))))
'''
    results = []
    for n in sizes:
        row = {}
        for label, trivial in (("raft", "0"), ("trivial", "1")):
            out = subprocess.run(
                [sys.executable, "-c", code, str(n), str(seconds), trivial, "3000"],
                cwd=ROOT, env={**os.environ, "REDIS_URL": redis_url, "LAB_LOG_LEVEL": "WARNING"},
                capture_output=True, text=True, check=True,
            )
            row[label] = json.loads(out.stdout.strip().splitlines()[-1])
        results.append(row)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="shorter runs, fewer points")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--viewers", type=str, default="", help="comma-separated viewer counts for fan-out, e.g. 300,600")
    parser.add_argument("--fanout-only", action="store_true", help="measure only fan-out (and its baseline)")
    parser.add_argument("--ack-every", type=int, default=5, help="viewers acknowledge once N frames are unacknowledged, or 200 ms after the first (0: never)")
    args = parser.parse_args()
    global ACK_EVERY
    ACK_EVERY = args.ack_every
    seconds = 4.0 if args.quick else 10.0
    counts = [10, 100] if args.quick else [10, 100, 300]
    if args.viewers:
        counts = [int(n) for n in args.viewers.split(",")]
    sizes = [25, 50, 100] if args.quick else [25, 50, 100, 150, 200]
    import redis as redis_lib

    report: dict = {}
    tmp = Path(tempfile.mkdtemp(prefix="lab-bench-"))
    with EmbeddedRedis() as redis_server:
        env = {"LAB_LOG_LEVEL": "WARNING"}
        workers = [WorkerProcess(redis_server.url, tmp / "w1.log", **env), WorkerProcess(redis_server.url, tmp / "w2.log", **env)]
        daphne = DaphneProcess(redis_server.url, tmp / "daphne.log", **env)
        lab = {"daphne": daphne, "redis": redis_lib.Redis.from_url(redis_server.url)}
        try:
            report["fanout"] = asyncio.run(fanout(lab, counts, seconds))
            report["fanout_baseline"] = asyncio.run(fanout_baseline(counts, seconds, lab["frame_bytes"]))
            if not args.fanout_only:
                report["click"] = asyncio.run(click_latency(lab, 50, 20 if args.quick else 40))
                report["click_baseline"] = asyncio.run(echo_baseline(200))
        finally:
            daphne.stop()
            for worker in workers:
                worker.stop()
        if not args.fanout_only:
            report["capacity"] = worker_capacity(redis_server.url, sizes, 4.0 if args.quick else 6.0)
    report["frame_bytes"] = lab["frame_bytes"]
    if args.json:
        print(json.dumps(report, indent=1))
        return
    print_report(report)


def print_report(report: dict) -> None:
    print(f"Frames: {report['frame_bytes']} bytes each (a 5-node Raft view, JSON)\n")
    print("Fan-out: N viewers of one simulation at 20 frames/s (one daphne, Redis pub/sub, per-process hub)")
    print(f"{'viewers':>8} | {'lab fps (min)':>14} | {'lab p50/p99 ms':>15} | {'lab CPU':>7} || {'bare fps (min)':>14} | {'bare p50/p99 ms':>15} | {'bare CPU':>8} | {'CPU x':>5} | {'p99 x':>5}")
    for lab, bare in zip(report["fanout"], report["fanout_baseline"]):
        print(
            f"{lab['viewers']:>8} | {lab['fps_mean']:6.1f} ({lab['fps_min']:4.1f}) | {lab['p50_ms']:6.1f} / {lab['p99_ms']:6.1f} | {lab['server_cpu']:6.0%} ||"
            f" {bare['fps_mean']:6.1f} ({bare['fps_min']:4.1f}) | {bare['p50_ms']:6.1f} / {bare['p99_ms']:6.1f} | {bare['server_cpu']:7.0%} |"
            f" {lab['server_cpu'] / max(bare['server_cpu'], 1e-9):5.1f} | {lab['p99_ms'] / max(bare['p99_ms'], 1e-9):5.1f}"
        )
    if "click" not in report:
        return
    click, echo = report["click"], report["click_baseline"]
    print(f"\nClick to frame, with {click['background']} other simulations running ({click['clicks']} clicks)")
    print(f"  lab:  p50 {click['p50_ms']:.1f} ms, p99 {click['p99_ms']:.1f} ms")
    print(f"  bare websockets echo round trip: p50 {echo['p50_ms']:.2f} ms, p99 {echo['p99_ms']:.2f} ms")
    print("\nWorker capacity: 5-node Raft simulations at speed 1, one worker, 20 frames/s each")
    print(f"{'sims':>6} | {'raft Hz':>7} | {'late':>5} | {'CPU':>5} | {'speed':>5} || {'trivial Hz':>10} | {'CPU':>5}")
    for row in report["capacity"]:
        raft, trivial = row["raft"], row["trivial"]
        print(
            f"{raft['sims']:>6} | {raft['frame_hz']:7.1f} | {raft['late_ticks']:>5} | {raft['cpu']:5.0%} | {raft['speed_achieved']:5.2f} ||"
            f" {trivial['frame_hz']:10.1f} | {trivial['cpu']:5.0%}"
        )


if __name__ == "__main__":
    main()
