"""How long a worker stays at a reduced frame rate after a burst of simulations closes.

    .venv/bin/python bench/rate_recovery.py                  # 500 sims, then 50 or 150 left
    .venv/bin/python bench/rate_recovery.py --burst 400 --keep 40

A real EngineWorker tick loop (engines, frames, publishing to a private Redis)
runs a burst of 5-node Rafts at speed 1 until its FrameRate has stepped down to
the floor; then most of the simulations close, and the bench times how long the
worker takes to get back to 20 frames a second, and watches 20 s more for a
step back down (flapping). The baseline, in the same run, is the same loop with
the quick step-up turned off (quick_hold_s = hold_s: only the 30 s hold).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CODE = r'''
import asyncio, json, os, sys, time
os.environ["DJANGO_SETTINGS_MODULE"] = "webapp.settings"
import django; django.setup()
from redis import asyncio as aioredis
from webapp.runtime.worker import EngineWorker
from webapp.runtime.driver import SimDriver, SimSpec

async def main(burst, keep, quick, watch):
    worker = EngineWorker(frame_hz=20)
    if not quick:
        worker.rate.quick_hold_s = worker.rate.hold_s
    worker.redis = aioredis.from_url(os.environ["REDIS_URL"])
    for i in range(burst):
        driver = SimDriver(SimSpec(sim_id=f"b{i}", kind="raft", seed=i, params={}, speed=1.0), wall_s=time.monotonic())
        driver.phase = i
        worker.sims[f"b{i}"] = driver
    task = asyncio.create_task(worker._tick_loop())
    start = time.monotonic()
    while worker.rate.hz > worker.rate.min_hz and time.monotonic() - start < 60:
        await asyncio.sleep(0.1)
    down = time.monotonic() - start
    for i in range(keep, burst):
        del worker.sims[f"b{i}"]
    closed = time.monotonic()
    while worker.rate.hz < worker.rate.max_hz and time.monotonic() - closed < 90:
        await asyncio.sleep(0.1)
    up = time.monotonic() - closed
    seen = []
    watched = time.monotonic()
    while time.monotonic() - watched < watch:
        await asyncio.sleep(0.5)
        seen.append(worker.rate.hz)
    task.cancel()
    print(json.dumps({"to_floor_s": down, "back_s": up, "cpu": worker.rate.cpu, "lowest_after": min(seen, default=None)}))

asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1", float(sys.argv[4])))
'''


def once(redis_url: str, burst: int, keep: int, quick: bool, watch: float) -> dict:
    env = {**os.environ, "REDIS_URL": redis_url, "LAB_LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", CODE, str(burst), str(keep), "1" if quick else "0", str(watch)],
        cwd=ROOT, env=env, capture_output=True, text=True, check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--burst", type=int, default=500)
    parser.add_argument("--keep", type=int, nargs="*", default=[50, 150])
    parser.add_argument("--watch", type=float, default=20.0, help="seconds to watch for a step back down")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    from webapp.runtime.redis_embedded import EmbeddedRedis

    redis = EmbeddedRedis()
    url = redis.start()
    rows = []
    try:
        for keep in args.keep:
            for quick in (False, True):
                rows.append({"keep": keep, "quick": quick, **once(url, args.burst, keep, quick, args.watch)})
    finally:
        redis.stop()
    if args.json:
        print(json.dumps(rows))
        return
    print(f"Back to 20 Hz after {args.burst} sims pushed a worker to the floor and most closed (2 cores, same run)\n")
    print("| sims left | step-up rule | to the floor | back to 20 Hz | CPU share before the last step up | lowest rate in the next %.0f s |" % args.watch)
    print("|---|---|---|---|---|---|")
    for r in rows:
        rule = "quick when 2x CPU < 60%" if r["quick"] else "30 s hold only (baseline)"
        print(f"| {r['keep']} | {rule} | {r['to_floor_s']:.1f} s | {r['back_s']:.1f} s | {r['cpu']:.0%} | {r['lowest_after']:g} Hz |")
    for keep in args.keep:
        base = next(r for r in rows if r["keep"] == keep and not r["quick"])
        new = next(r for r in rows if r["keep"] == keep and r["quick"])
        print(f"\n{keep} left: back to 20 Hz in {new['back_s'] / base['back_s']:.2f} of the baseline's time")


if __name__ == "__main__":
    main()
