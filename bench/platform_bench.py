"""Platform benchmarks: classroom fan-out, sandbox, slow viewers, scaling out,
click-to-frame latency and worker capacity.

    .venv/bin/python bench/platform_bench.py [--quick] [--only classroom,sandbox,...] [--json]

Everything runs here on loopback: an embedded Redis, real daphne and engine
worker processes, and WebSocket clients in this process. Each figure comes with
a baseline measured in the same run, because these machines are noisy:

- classroom: N viewers of one simulation at 20 frames/s on one daphne, against
  a bare `websockets` broadcast server sending frames of the same size to N;
- sandbox: N simulations (5-node Raft, speed 1) with one viewer each, on this
  machine with two engine workers and one daphne, against the bare server
  sending N clients frames of the same size at the same rate;
- slow viewers: viewers that stop reading, among healthy ones. Server memory
  and the healthy viewers' delay with our frame window, against the same run
  with no window (what daphne does without one) and with no stalled viewers;
- scale-out: two daphne processes and two workers against one Redis, viewers
  of one simulation spread over both, against the same viewers on one daphne;
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
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")

import redis as redis_lib  # noqa: E402
import websockets  # noqa: E402
from harness import ViewerStats, cpu_seconds, percentile, rss_mb, viewer  # noqa: E402

from webapp.runtime.driver import read_message  # noqa: E402
from webapp.runtime.launch import DaphneProcess, WorkerProcess  # noqa: E402
from webapp.runtime.launch import open_new_sim as new_sim  # noqa: E402
from webapp.runtime.redis_embedded import EmbeddedRedis, free_port  # noqa: E402

SECTIONS = ("classroom", "slow", "sandbox", "quiet", "scale", "click", "capacity")
ACK_EVERY = 5  # like the browser: half the default window of 10
SPEED_1 = json.dumps({"type": "control", "id": 1, "action": "speed", "speed": 1})
PAUSE = json.dumps({"type": "control", "id": 2, "action": "pause"})
QUIET = {"LAB_LOG_LEVEL": "WARNING"}


class Lab:
    """Redis, workers and daphne processes for one section, stopped on exit."""

    def __init__(self, redis_url: str, tmp: Path) -> None:
        self.redis_url, self.tmp = redis_url, tmp
        self.redis = redis_lib.Redis.from_url(redis_url)
        self.children: list = []

    def worker(self, **env: str) -> WorkerProcess:
        child = WorkerProcess(self.redis_url, self.tmp / f"w{len(self.children)}.log", **QUIET, **env)
        self.children.append(child)
        return child

    def daphne(self, **env: str) -> DaphneProcess:
        child = DaphneProcess(self.redis_url, self.tmp / f"d{len(self.children)}.log", **QUIET, **env)
        self.children.append(child)
        return child

    def share_url(self, server: DaphneProcess, sim_id: str) -> str:
        share = self.redis.hget(f"lab:sim:{sim_id}", "share").decode()
        return ws_url(server, sim_id) + f"?watch={share}"

    def stop(self) -> None:
        for child in self.children:
            child.stop()
        self.children = []
        self.redis.flushdb()


def ws_url(server: DaphneProcess, sim_id: str) -> str:
    return server.url.replace("http", "ws") + f"/ws/sim/{sim_id}/"


@contextmanager
def lab_processes(redis_server: EmbeddedRedis, tmp: Path):
    lab = Lab(redis_server.url, tmp)
    try:
        yield lab
    finally:
        lab.stop()


async def measure(targets, seconds: float, pids: dict[str, int], *, settle: float = 2.0, stalls=None) -> dict:
    """Open the viewers (url, headers, first messages), let them settle, then
    measure for ``seconds``. ``stalls`` maps viewer index -> asyncio.Event."""
    stalls = stalls or {}
    stats = [ViewerStats() for _ in targets]
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(viewer(
            url, headers, s, stop, ack_every=ACK_EVERY, first=first,
            stall=stalls.get(i), max_queue=4 if i in stalls else None,
        ))
        for i, ((url, headers, first), s) in enumerate(zip(targets, stats))
    ]
    await asyncio.sleep(settle)
    for s in stats:
        s.reset()
    cpu0 = {name: cpu_seconds(pid) for name, pid in pids.items()}
    own0 = time.process_time()
    t0 = time.monotonic()
    for event in stalls.values():
        event.set()
    await asyncio.sleep(seconds)
    elapsed = time.monotonic() - t0
    cpu = {name: (cpu_seconds(pid) - cpu0[name]) / elapsed for name, pid in pids.items()}
    cpu["clients"] = (time.process_time() - own0) / elapsed
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {"stats": stats, "elapsed": elapsed, "cpu": cpu}


def summary(stats: list[ViewerStats], elapsed: float) -> dict:
    delays = [d for s in stats for d in s.delays_ms]
    rates = [s.frames / elapsed for s in stats]
    frames = sum(s.frames for s in stats)
    return {
        "viewers": len(stats),
        "fps_mean": statistics.mean(rates) if rates else 0.0,
        "fps_min": min(rates) if rates else 0.0,
        "p50_ms": percentile(delays, 50),
        "p99_ms": percentile(delays, 99),
        "missed": sum(s.missed() for s in stats),
        "frames": frames,
        "bytes_per_frame": (sum(s.bytes for s in stats) / frames) if frames else 0,
    }


@asynccontextmanager
async def bare_server(payload_bytes: int, hz: float):
    """`bench/baseline_ws.py` on a free port, for as long as the block runs:
    yields (ws url, pid)."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(ROOT / "bench" / "baseline_ws.py"), str(port), str(payload_bytes), str(hz)])
    try:
        await asyncio.sleep(1.0)
        yield f"ws://127.0.0.1:{port}/", proc.pid
    finally:
        proc.terminate()
        proc.wait()


async def bare(n: int, seconds: float, payload_bytes: int) -> dict:
    """The floor: a bare `websockets` server sending n clients frames at 20 Hz."""
    async with bare_server(payload_bytes, 20) as (url, pid):
        run = await measure([(url, {}, ())] * n, seconds, {"server": pid})
    return {**summary(run["stats"], run["elapsed"]), "cpu": run["cpu"]}


async def owner_speed_1(server: DaphneProcess, sim_id: str, cookie: str) -> None:
    async with websockets.connect(ws_url(server, sim_id), additional_headers={"Cookie": cookie, "Origin": server.url}) as ws:
        await ws.send(SPEED_1)
        await ws.send(json.dumps({"type": "command", "id": 2, "cmd": {"op": "network", "drop_rate": 0.0}}))
        for _ in range(20):
            message = read_message(await asyncio.wait_for(ws.recv(), 10))
            if message.get("type") == "reply" and message.get("id") == 2:
                return


# -- classroom ------------------------------------------------------------------------------
async def classroom(lab: Lab, counts: list[int], seconds: float) -> list[dict]:
    lab.worker()
    lab.worker()
    server = lab.daphne()
    sim_id, cookie = new_sim(server.url)
    await owner_speed_1(server, sim_id, cookie)
    rows = []
    for n in counts:
        target = (lab.share_url(server, sim_id), {"Origin": server.url}, ())
        run = await measure([target] * n, seconds, {"server": server.proc.pid})
        ours = {**summary(run["stats"], run["elapsed"]), "cpu": run["cpu"]}
        rows.append({"lab": ours, "bare": await bare(n, seconds, int(ours["bytes_per_frame"]))})  # the lab idles meanwhile: one sim
    return rows


# -- slow viewers ---------------------------------------------------------------------------------
async def slow_viewers(lab: Lab, healthy: int, stalled: int, seconds: float, stuck_after: float) -> dict:
    """Three runs on fresh daphnes: healthy viewers alone; with stalled viewers
    and our window; with stalled viewers and no window. Plus conflation: a
    viewer that stalls for 3 s and reads again."""
    lab.worker()
    out = {"healthy": healthy, "stalled": stalled, "seconds": seconds, "stuck_after_s": stuck_after}
    runs = (
        ("alone", {}, 0),
        ("window", {"LAB_STUCK_AFTER_S": str(stuck_after)}, stalled),
        ("no_window", {"LAB_FRAME_WINDOW": "1000000", "LAB_STUCK_AFTER_S": "100000"}, stalled),
    )
    for name, env, n_stalled in runs:
        server = lab.daphne(**env)
        sim_id, cookie = new_sim(server.url)
        await owner_speed_1(server, sim_id, cookie)
        target = (lab.share_url(server, sim_id), {"Origin": server.url}, ())
        stalls = {healthy + i: asyncio.Event() for i in range(n_stalled)}
        rss0 = rss_mb(server.proc.pid)
        samples: list[float] = []

        async def sample_rss() -> None:
            while True:
                await asyncio.sleep(1.0)
                samples.append(rss_mb(server.proc.pid))

        sampler = asyncio.create_task(sample_rss())
        run = await measure([target] * (healthy + n_stalled), seconds, {"server": server.proc.pid}, stalls=stalls)
        sampler.cancel()
        ok = summary(run["stats"][:healthy], run["elapsed"])
        stuck = run["stats"][healthy:]
        out[name] = {
            **ok, "cpu": run["cpu"]["server"], "rss_start_mb": rss0, "rss_peak_mb": max(samples or [rss0]),
            "rss_end_mb": samples[-1] if samples else rss0,
            "stalled_closed": sum(1 for s in stuck if s.close_code == 4008),
            "backlog_frames": max((s.backlog for s in stuck), default=0),
            "backlog_kib": max((s.backlog_bytes for s in stuck), default=0) / 1024.0,
            "close_reason": next((s.close_reason for s in stuck if s.close_reason), ""),
        }
        server.stop()
        lab.children.remove(server)
    out["conflation"] = await conflation(lab)
    return out


async def conflation(lab: Lab) -> dict:
    """A viewer stops reading for 3 s, then reads again: how many stale frames
    does it get before the newest, and how many did it skip?"""
    server = lab.daphne()
    sim_id, cookie = new_sim(server.url)
    await owner_speed_1(server, sim_id, cookie)
    stats, stop, stall = ViewerStats(), asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(viewer(lab.share_url(server, sim_id), {"Origin": server.url}, stats, stop, stall=stall, max_queue=4))
    await asyncio.sleep(2.0)
    stall.set()
    stalled_at = time.time() * 1000.0
    await asyncio.sleep(3.0)
    resumed_at = time.time() * 1000.0
    before = len(stats.seqs)
    stall.clear()
    await asyncio.sleep(2.0)
    stop.set()
    await task
    after = list(zip(stats.seqs[before:], stats.delays_ms[before:]))
    stale = [seq for seq, delay in after if delay > 200.0]
    fresh = next((i for i, (seq, delay) in enumerate(after) if delay <= 200.0), None)
    published = round((resumed_at - stalled_at) / 50.0)
    server.stop()
    lab.children.remove(server)
    return {
        "stall_s": 3.0, "stale_after_resume": len(stale), "frames_until_fresh": fresh,
        "skipped": stats.missed(), "published_while_stalled": published,
        "window": int(os.environ.get("LAB_FRAME_WINDOW", "10")),
    }


# -- sandbox -----------------------------------------------------------------------------------------
async def sandbox(lab: Lab, n: int, seconds: float, workers: int) -> dict:
    """n learners, each with their own 5-node Raft at speed 1 and one viewer (the owner)."""
    worker_procs = [lab.worker() for _ in range(workers)]
    server = lab.daphne()
    started = time.monotonic()
    sims = [new_sim(server.url) for _ in range(n)]
    created_s = time.monotonic() - started
    targets = [(ws_url(server, sim_id), {"Cookie": cookie, "Origin": server.url}, (SPEED_1,)) for sim_id, cookie in sims]
    pids = {"daphne": server.proc.pid, "redis": lab.redis.info("server")["process_id"]}
    for i, w in enumerate(worker_procs):
        pids[f"worker{i + 1}"] = w.proc.pid
    run = await measure(targets, seconds, pids, settle=8.0)
    ours = {**summary(run["stats"], run["elapsed"]), "cpu": run["cpu"], "created_s": created_s}
    rates = sorted(s.frames / run["elapsed"] for s in run["stats"])
    ours["fps_p1"] = rates[len(rates) // 100] if rates else 0.0
    ours["below_19fps"] = sum(1 for r in rates if r < 19.0)
    promised = [s.promised_hz or 20.0 for s in run["stats"]]
    ours["promised_hz"] = sorted(set(promised))
    ours["below_promise"] = sum(1 for s, p in zip(run["stats"], promised) if s.frames / run["elapsed"] < 0.9 * p)
    ours["sims_per_worker"] = sorted(
        sum(1 for key in lab.redis.scan_iter("lab:sim:*:lease") if lab.redis.get(key).decode() == channel)
        for channel in (c.decode() for c in lab.redis.hkeys("lab:workers"))
    )
    lab.stop()  # the baseline gets the machine to itself, as the lab had
    baseline = await bare(n, seconds, int(ours["bytes_per_frame"] or 3000))
    return {"lab": ours, "bare": baseline}


# -- quiet simulations ------------------------------------------------------------------------------------
async def quiet(lab: Lab, n: int, seconds: float) -> dict:
    """n paused simulations, one viewer each: what do they cost?"""
    worker_procs = [lab.worker(), lab.worker()]
    server = lab.daphne()
    sims = [new_sim(server.url) for _ in range(n)]
    targets = [(ws_url(server, sim_id), {"Cookie": cookie, "Origin": server.url}, (SPEED_1, PAUSE)) for sim_id, cookie in sims]
    pids = {"daphne": server.proc.pid, "worker1": worker_procs[0].proc.pid, "worker2": worker_procs[1].proc.pid}
    run = await measure(targets, seconds, pids, settle=5.0)
    frames = sum(s.frames for s in run["stats"])
    ours = {"sims": n, "frames_per_s": frames / run["elapsed"], "bytes_per_s": sum(s.bytes for s in run["stats"]) / run["elapsed"], "cpu": run["cpu"]}
    async with bare_server(200, 0.1) as (url, pid):
        idle = await measure([(url, {}, ())] * n, seconds, {"server": pid})
    return {"lab": ours, "bare_idle_cpu": idle["cpu"]["server"]}


# -- scale-out --------------------------------------------------------------------------------------------
async def scale_out(lab: Lab, n: int, seconds: float) -> dict:
    """One simulation, n viewers over two daphnes and two workers, then the same n on one daphne."""
    lab.worker()
    lab.worker()
    servers = [lab.daphne(), lab.daphne()]
    sim_id, cookie = new_sim(servers[0].url)
    await owner_speed_1(servers[0], sim_id, cookie)
    targets = [(lab.share_url(servers[i % 2], sim_id), {"Origin": servers[i % 2].url}, ()) for i in range(n)]
    run = await measure(targets, seconds, {"web1": servers[0].proc.pid, "web2": servers[1].proc.pid})
    per_web = [summary(run["stats"][i::2], run["elapsed"]) for i in (0, 1)]
    # Both web processes relay the same frames: the seqs their viewers saw overlap.
    seen = [set(seq for s in run["stats"][i::2] for seq in s.seqs) for i in (0, 1)]
    common = len(seen[0] & seen[1]) / max(1, len(seen[0] | seen[1]))
    two = {"web": per_web, "all": summary(run["stats"], run["elapsed"]), "cpu": run["cpu"], "same_frames": common}
    single = [(lab.share_url(servers[0], sim_id), {"Origin": servers[0].url}, ())] * n
    run = await measure(single, seconds, {"web1": servers[0].proc.pid})
    one = {"all": summary(run["stats"], run["elapsed"]), "cpu": run["cpu"]}
    return {"viewers": n, "two_web": two, "one_web": one}


# -- click to frame -----------------------------------------------------------------------------------------
async def click_latency(lab: Lab, background: int, clicks: int) -> dict:
    lab.worker()
    lab.worker()
    server = lab.daphne()
    stop = asyncio.Event()
    bg_tasks = []
    for _ in range(background):
        sim_id, cookie = new_sim(server.url)
        bg_tasks.append(asyncio.create_task(viewer(ws_url(server, sim_id), {"Cookie": cookie, "Origin": server.url}, ViewerStats(), stop, first=(SPEED_1,))))
    sim_id, cookie = new_sim(server.url)
    latencies = []
    async with websockets.connect(ws_url(server, sim_id), additional_headers={"Cookie": cookie, "Origin": server.url}) as ws:
        await asyncio.sleep(3.0)  # background simulations get adopted and start ticking

        async def next_frame() -> dict:
            while True:
                message = read_message(await asyncio.wait_for(ws.recv(), 10))
                if message["type"] == "frame":
                    await ws.send('{"type":"ack","seq":%d}' % message["seq"])
                    return message

        await ws.send(SPEED_1)
        for i in range(clicks):
            op = "crash" if i % 2 == 0 else "restart"
            t0 = time.perf_counter()
            await ws.send(json.dumps({"type": "command", "id": i + 2, "cmd": {"op": op, "node": "n1"}}))
            while True:
                frame = await next_frame()
                if frame["view"]["nodes"][0]["alive"] == (op == "restart"):
                    break
            latencies.append((time.perf_counter() - t0) * 1000)
            await asyncio.sleep(0.1)
    stop.set()
    await asyncio.gather(*bg_tasks, return_exceptions=True)
    return {
        "background": background, "clicks": clicks, "p50_ms": percentile(latencies, 50), "p99_ms": percentile(latencies, 99),
        "bare": await echo_baseline(200),
    }


async def echo_baseline(rounds: int) -> dict:
    latencies = []
    async with bare_server(200, 0.2) as (url, _), websockets.connect(url) as ws:
        for i in range(rounds):
            t0 = time.perf_counter()
            await ws.send(json.dumps({"type": "echo", "i": i}))
            while json.loads(await ws.recv()).get("type") != "echo":
                pass
            latencies.append((time.perf_counter() - t0) * 1000)
    return {"p50_ms": percentile(latencies, 50), "p99_ms": percentile(latencies, 99)}


# -- worker capacity ------------------------------------------------------------------------------------------
CAPACITY_CODE = r'''
import asyncio, json, sys, time, os
os.environ["DJANGO_SETTINGS_MODULE"] = "webapp.settings"
import django; django.setup()
from redis import asyncio as aioredis
from webapp.runtime.worker import EngineWorker
from webapp.runtime.driver import SimDriver, SimSpec

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


def worker_capacity(redis_url: str, sizes: list[int], seconds: float) -> list[dict]:
    """Tick N drivers at 20 Hz in a real EngineWorker loop publishing to Redis."""
    results = []
    for n in sizes:
        row = {}
        for label, trivial in (("raft", "0"), ("trivial", "1")):
            out = subprocess.run(
                [sys.executable, "-c", CAPACITY_CODE, str(n), str(seconds), trivial, "3000"],
                cwd=ROOT, env={**os.environ, "REDIS_URL": redis_url, **QUIET},
                capture_output=True, text=True, check=True,
            )
            row[label] = json.loads(out.stdout.strip().splitlines()[-1])
        results.append(row)
    return results


# -- report ---------------------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="shorter runs, fewer points")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated sections: {', '.join(SECTIONS)}")
    parser.add_argument("--viewers", default="", help="classroom viewer counts, e.g. 300,600")
    parser.add_argument("--sims", type=int, default=500, help="sandbox simulations (default 500)")
    parser.add_argument("--sandbox-workers", type=int, default=2, help="engine workers for the sandbox (default 2, as runlab starts)")
    parser.add_argument("--ack-every", type=int, default=5, help="viewers acknowledge once N frames are unacknowledged, or 200 ms after the first (0: never)")
    args = parser.parse_args()
    global ACK_EVERY
    ACK_EVERY = args.ack_every
    sections = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; choose from {', '.join(SECTIONS)}")
    seconds = 5.0 if args.quick else 10.0
    counts = [int(n) for n in args.viewers.split(",")] if args.viewers else ([100, 600] if args.quick else [10, 100, 300, 600])

    report: dict = {}
    tmp = Path(tempfile.mkdtemp(prefix="lab-bench-"))
    with EmbeddedRedis() as redis_server:
        for section in sections:
            with lab_processes(redis_server, tmp) as lab:
                if section == "classroom":
                    report[section] = asyncio.run(classroom(lab, counts, seconds))
                elif section == "slow":
                    report[section] = asyncio.run(slow_viewers(lab, 100, 20, seconds + 5.0, stuck_after=8.0))
                elif section == "sandbox":
                    report[section] = asyncio.run(sandbox(lab, args.sims, seconds, args.sandbox_workers))
                elif section == "quiet":
                    # Longer than a keep-alive interval (10 s), or --quick would see none.
                    report[section] = asyncio.run(quiet(lab, 200, max(seconds, 12.0)))
                elif section == "scale":
                    report[section] = asyncio.run(scale_out(lab, 600, seconds))
                elif section == "click":
                    report[section] = asyncio.run(click_latency(lab, 50, 20 if args.quick else 40))
                elif section == "capacity":
                    report[section] = worker_capacity(redis_server.url, [100, 200] if args.quick else [100, 200, 300], 4.0 if args.quick else 6.0)
            if not args.json:
                print_section(section, report[section], sys.stdout)
                sys.stdout.flush()
    if args.json:
        print(json.dumps(report, indent=1, default=str))


def _cpu(value: float) -> str:
    return f"{value:.0%}"


def print_section(section: str, data, out) -> None:  # noqa: C901 - one printer per section
    w = out.write
    if section == "classroom":
        bytes_per_frame = data[0]["lab"]["bytes_per_frame"] if data else 0
        w(f"\nClassroom: N viewers of one 5-node Raft at 20 frames/s, one daphne ({bytes_per_frame:.0f} bytes a frame)\n")
        w(f"{'viewers':>7} | {'lab fps (min)':>13} | {'lab p50/p99 ms':>15} | {'lab CPU':>7} | {'missed':>6} || {'bare fps':>8} | {'bare p50/p99 ms':>15} | {'bare CPU':>8} || {'CPU x':>5} | {'p99 x':>5}\n")
        for row in data:
            lab, bare_ = row["lab"], row["bare"]
            w(
                f"{lab['viewers']:>7} | {lab['fps_mean']:5.1f} ({lab['fps_min']:4.1f}) | {lab['p50_ms']:6.1f} / {lab['p99_ms']:6.1f} |"
                f" {_cpu(lab['cpu']['server']):>7} | {lab['missed']:>6} || {bare_['fps_mean']:8.1f} | {bare_['p50_ms']:6.1f} / {bare_['p99_ms']:6.1f} |"
                f" {_cpu(bare_['cpu']['server']):>8} || {lab['cpu']['server'] / max(bare_['cpu']['server'], 1e-9):5.2f} | {lab['p99_ms'] / max(bare_['p99_ms'], 1e-9):5.2f}\n"
            )
    elif section == "slow":
        w(f"\nSlow viewers: {data['healthy']} healthy viewers of one simulation, plus {data['stalled']} that stop reading for {data['seconds']:.0f} s\n")
        w(f"{'run':>32} | {'healthy fps (min)':>17} | {'p50/p99 ms':>15} | {'CPU':>5} | {'RSS start/peak MB':>17} | {'backlog per stalled viewer':>26} | stalled closed\n")
        labels = {
            "alone": "no stalled viewers (baseline)",
            "window": f"stalled, window of 10, limit {data['stuck_after_s']:.0f} s",
            "no_window": "stalled, no window (daphne alone)",
        }
        for key, label in labels.items():
            r = data[key]
            w(
                f"{label:>32} | {r['fps_mean']:9.1f} ({r['fps_min']:4.1f}) | {r['p50_ms']:6.1f} / {r['p99_ms']:6.1f} | {_cpu(r['cpu']):>5} |"
                f" {r['rss_start_mb']:7.1f} / {r['rss_peak_mb']:7.1f} | {r['backlog_frames']:>5} frames, {r['backlog_kib']:7.0f} KiB | {r['stalled_closed']}\n"
            )
        w("  (backlog: frames the server wrote to a stalled viewer that it read only afterwards; without a window it grows\n"
          "   with the stall, in kernel buffers first and then in daphne's memory, since daphne has no write backpressure)\n")
        if data["window"]["close_reason"]:
            w(f"  close reason they got (4008): \"{data['window']['close_reason']}\"\n")
        c = data["conflation"]
        w(
            f"  Conflation: a viewer that stopped reading for {c['stall_s']:.0f} s ({c['published_while_stalled']} frames published) then"
            f" read {c['stale_after_resume']} stale frames (at most the window, {c['window']}) and the newest;"
            f" {c['skipped']} frames were skipped, not queued\n"
        )
    elif section == "sandbox":
        lab, bare_ = data["lab"], data["bare"]
        cpu = lab["cpu"]
        w(f"\nSandbox: {lab['viewers']} simulations (5-node Raft, speed 1), one viewer each, 2 cores, {len(lab['sims_per_worker'])} workers + 1 daphne + Redis\n")
        w(f"  lab:  promised {', '.join(f'{hz:.0f}' for hz in lab['promised_hz'])} frames/s; {lab['below_promise']} viewers got under 90% of their promise\n")
        w(f"        fps mean {lab['fps_mean']:.1f}, 1st percentile {lab['fps_p1']:.1f}, min {lab['fps_min']:.1f}; {lab['below_19fps']} viewers under 19 fps;"
          f" delay p50 {lab['p50_ms']:.0f} ms, p99 {lab['p99_ms']:.0f} ms; {lab['bytes_per_frame']:.0f} bytes a frame\n")
        w("        CPU: " + ", ".join(f"{name} {_cpu(v)}" for name, v in cpu.items()) + f"; simulations per worker {lab['sims_per_worker']}\n")
        w(f"  bare websockets, {bare_['viewers']} clients at 20 Hz: fps mean {bare_['fps_mean']:.1f}, min {bare_['fps_min']:.1f};"
          f" delay p50 {bare_['p50_ms']:.0f} ms, p99 {bare_['p99_ms']:.0f} ms; server CPU {_cpu(bare_['cpu']['server'])}, clients {_cpu(bare_['cpu']['clients'])}\n")
    elif section == "quiet":
        lab = data["lab"]
        w(f"\nQuiet simulations: {lab['sims']} paused simulations, one viewer each\n")
        w(f"  lab: {lab['frames_per_s']:.1f} frames/s in all ({lab['bytes_per_s'] / 1024:.1f} KiB/s: keep-alives only);"
          f" CPU " + ", ".join(f"{name} {_cpu(v)}" for name, v in lab["cpu"].items() if name != "clients") + "\n")
        w(f"  bare websockets server holding {lab['sims']} idle connections: CPU {_cpu(data['bare_idle_cpu'])}\n")
    elif section == "scale":
        two, one = data["two_web"], data["one_web"]
        w(f"\nScale-out: {data['viewers']} viewers of one simulation, two daphnes + two workers on one Redis\n")
        for i, web in enumerate(two["web"]):
            w(f"  web{i + 1}: {web['viewers']} viewers, fps {web['fps_mean']:.1f} (min {web['fps_min']:.1f}), p50/p99 {web['p50_ms']:.0f} / {web['p99_ms']:.0f} ms, CPU {_cpu(two['cpu'][f'web{i + 1}'])}\n")
        w(f"  both web processes relayed the same frames: {two['same_frames']:.0%} of seqs seen on both\n")
        w(f"  the same {data['viewers']} on one daphne: fps {one['all']['fps_mean']:.1f} (min {one['all']['fps_min']:.1f}),"
          f" p50/p99 {one['all']['p50_ms']:.0f} / {one['all']['p99_ms']:.0f} ms, CPU {_cpu(one['cpu']['web1'])}\n")
    elif section == "click":
        w(f"\nClick to frame, with {data['background']} other simulations running ({data['clicks']} clicks)\n")
        w(f"  lab:  p50 {data['p50_ms']:.1f} ms, p99 {data['p99_ms']:.1f} ms\n")
        w(f"  bare websockets echo round trip: p50 {data['bare']['p50_ms']:.2f} ms, p99 {data['bare']['p99_ms']:.2f} ms\n")
    elif section == "capacity":
        w("\nWorker capacity: 5-node Raft simulations at speed 1, one worker, 20 frames/s each\n")
        w(f"{'sims':>6} | {'raft Hz':>7} | {'late':>5} | {'CPU':>5} | {'speed':>5} || {'trivial Hz':>10} | {'CPU':>5}\n")
        for row in data:
            raft, trivial = row["raft"], row["trivial"]
            w(
                f"{raft['sims']:>6} | {raft['frame_hz']:7.1f} | {raft['late_ticks']:>5} | {raft['cpu']:5.0%} | {raft['speed_achieved']:5.2f} ||"
                f" {trivial['frame_hz']:10.1f} | {trivial['cpu']:5.0%}\n"
            )


if __name__ == "__main__":
    main()
