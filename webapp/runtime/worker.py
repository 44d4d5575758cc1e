"""The engine worker: runs simulations, applies commands, publishes frames.

One asyncio loop per process. It takes simulations from the shared assignment
channel (any worker may take one) and receives commands for its simulations on
its own channel. Frames go out on Redis pub/sub (``keys.frames_channel``),
pipelined in batches of PUBLISH_BATCH per tick. Ownership is a Redis lease holding the worker's channel name;
a worker renews the leases of what it runs. When a worker dies its leases
expire, and the next open request (a web process that still has viewers asks
every few seconds) lets another worker rebuild the simulation by replaying its
command log up to its last checkpointed virtual time.

Ordering rule: a command's log entry is written to Redis BEFORE the reply and
the frame that show it, so nothing a learner saw can be lost by a crash.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import time
from typing import Any

from channels.layers import get_channel_layer
from django.conf import settings
from redis import asyncio as aioredis
from redis.exceptions import RedisError

import patterns

from . import keys, store
from .driver import FrameRate, SimDriver

log = logging.getLogger("lab.worker")
MAX_HOPS = 8  # an open request a full worker passes on, at most this often
BALANCE_SLACK = 4  # pass a new simulation on to a worker running this many fewer
GC_THRESHOLDS = (10_000, 20, 20)  # CPython's default: (700, 10, 10)
MAX_TICKS_BEHIND = 2  # a tick later than this many intervals is skipped, not caught up
PUBLISH_BATCH = 50  # frames per pipelined PUBLISH round trip: a frame waits for at most 49 others


class EngineWorker:
    def __init__(self, *, max_sims: int | None = None, frame_hz: float | None = None) -> None:
        lab = settings.LAB
        self.max_sims = max_sims or lab["MAX_SIMS_PER_WORKER"]
        self.rate = FrameRate(frame_hz or lab["FRAME_HZ"], lab["MIN_FRAME_HZ"])
        self.tick_interval = 1.0 / self.rate.max_hz
        self.ticks = 0
        self.phases = 0  # the next simulation's frame phase
        self.park_after_s = lab["PARK_AFTER_S"]
        self.sims: dict[str, SimDriver] = {}
        self.unwatched_since: dict[str, float] = {}
        self._opening: dict[str, asyncio.Future[SimDriver | None]] = {}
        self.channel = ""
        self.stopping = asyncio.Event()

    async def run(self) -> None:
        # Hundreds of engines hold a few hundred thousand long-lived objects, and
        # CPython's default thresholds scan them often: 250 Raft simulations had a
        # tick p99 of 41 ms (max 60) of a 50 ms interval; with these, 15 ms (max
        # 37), 2 to 8% less CPU and the same memory.
        gc.set_threshold(*GC_THRESHOLDS)
        self.layer = get_channel_layer()
        self.redis = aioredis.from_url(settings.REDIS_URL)
        self.renew = self.redis.register_script(store.RENEW_LEASE)
        self.release = self.redis.register_script(store.RELEASE_LEASE)
        self.channel = await self.layer.new_channel("engine")
        await self.redis.hset("lab:workers", self.channel, str(os.getpid()))
        await self._report_load()
        log.info("engine worker %s ready (pid %s, up to %s simulations)", self.channel, os.getpid(), self.max_sims)
        tasks = [
            asyncio.create_task(self._receive_loop(self.channel), name="own"),
            asyncio.create_task(self._receive_loop(keys.ASSIGN_CHANNEL), name="assign"),
            asyncio.create_task(self._tick_loop(), name="tick"),
            asyncio.create_task(self._housekeeping_loop(), name="housekeeping"),
        ]
        try:
            await self.stopping.wait()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._park_all()
            await self.redis.hdel("lab:workers", self.channel)
            await self.redis.hdel(keys.WORKER_LOAD, self.channel)
            await self.redis.aclose()

    # -- receiving -------------------------------------------------------------
    async def _receive_loop(self, channel: str) -> None:
        while True:
            try:
                message = await self.layer.receive(channel)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("receive on %s failed; retrying", channel)
                await asyncio.sleep(0.5)
                continue
            try:
                await self.handle(message)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("handling %s failed", message.get("type"))

    async def handle(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        sim_id = message.get("sim")
        if not isinstance(sim_id, str):
            return
        if kind == "sim.close":
            await self._drop(sim_id, release=True)
            return
        driver = await self.obtain(sim_id, message)
        if driver is None:
            return
        if kind == "sim.command":
            await self._command(driver, message)
        elif kind == "sim.control":
            await self._control(driver, message)
        elif kind == "sim.open":
            await self._reply(message, ok=True)

    async def obtain(self, sim_id: str, message: dict[str, Any]) -> SimDriver | None:
        """The driver for sim_id, loading it if nobody runs it. None when it is
        elsewhere (the message is forwarded), missing, or we are full."""
        driver = self.sims.get(sim_id)
        if driver is not None:
            return driver
        pending = self._opening.get(sim_id)
        if pending is not None:
            return await pending
        future: asyncio.Future[SimDriver | None] = asyncio.get_running_loop().create_future()
        self._opening[sim_id] = future
        try:
            driver = await self._open(sim_id, message)
            future.set_result(driver)
            return driver
        except BaseException as exc:
            future.set_result(None)
            if not isinstance(exc, Exception):
                raise
            log.exception("opening %s failed", sim_id)
            await self._reply(message, ok=False, error="the simulation could not be loaded; see the server log")
            return None
        finally:
            del self._opening[sim_id]

    @staticmethod
    def _wants_answer(message: dict[str, Any]) -> bool:
        """Commands, controls and a viewer's open request need the owner's answer;
        a web process's periodic adoption request does not."""
        return message.get("type") != "sim.open" or bool(message.get("reply_to"))

    async def _lighter_worker(self) -> str | None:
        """A live worker running clearly fewer simulations than this one, if any.
        Workers report their load on every change and every housekeeping round."""
        mine = len(self.sims) + len(self._opening) - 1  # not counting the one being opened
        now_ms = time.time() * 1000.0
        lightest, lightest_load = None, mine - BALANCE_SLACK
        for channel, value in (await self.redis.hgetall(keys.WORKER_LOAD)).items():
            channel = channel.decode()
            count, _, at_ms = value.decode().partition(":")
            if channel == self.channel or now_ms - float(at_ms) > keys.LEASE_MS:
                continue  # ourselves, or a worker that stopped reporting (dead or gone)
            if int(count) < lightest_load:
                lightest, lightest_load = channel, int(count)
        return lightest

    async def _report_load(self) -> None:
        load = len(self.sims) + len(self._opening)
        await self.redis.hset(keys.WORKER_LOAD, self.channel, f"{load}:{time.time() * 1000.0:.0f}")

    async def _open(self, sim_id: str, message: dict[str, Any]) -> SimDriver | None:
        owner = await store.lease_owner(self.redis, sim_id)
        if owner is not None and owner != self.channel:
            if self._wants_answer(message):
                await self.layer.send(owner, message)  # someone runs it: pass it on
            return None
        hops = int(message.get("hops", 0))
        if owner is None and hops < MAX_HOPS:
            lighter = await self._lighter_worker()
            if lighter is not None:  # spread simulations evenly over the workers
                await self.layer.send(lighter, {**message, "hops": hops + 1})
                return None
        if len(self.sims) >= self.max_sims:
            if hops < MAX_HOPS:
                await self.layer.send(keys.ASSIGN_CHANNEL, {**message, "hops": hops + 1})
            else:
                await self._reply(message, ok=False, error="every engine worker is full; try again in a minute")
            return None
        claimed = owner == self.channel or await self.redis.set(
            keys.lease_key(sim_id), self.channel, nx=True, px=keys.LEASE_MS
        )
        if not claimed:
            owner = await store.lease_owner(self.redis, sim_id)
            if owner and owner != self.channel and self._wants_answer(message):
                await self.layer.send(owner, message)
            return None
        spec = await store.load_spec(self.redis, sim_id)
        if spec is None:
            await self.redis.delete(keys.lease_key(sim_id))
            await self._reply(message, ok=False, error="this simulation no longer exists; start a new one")
            return None
        started = time.perf_counter()
        driver = await asyncio.to_thread(SimDriver, spec, wall_s=time.monotonic(), epoch_ms=time.time() * 1000.0)
        driver.seq = int(time.time() * 1000)  # frame numbers keep rising across workers
        driver.phase, self.phases = self.phases, self.phases + 1
        self.sims[sim_id] = driver
        await self._report_load()
        log.info(
            "running %s (%s, seed %s): replayed %d commands to %.0f virtual ms in %.0f ms",
            sim_id, spec.kind, spec.seed, len(spec.log), driver.engine.now, (time.perf_counter() - started) * 1000,
        )
        return driver

    # -- learner actions -------------------------------------------------------------
    async def _command(self, driver: SimDriver, message: dict[str, Any]) -> None:
        try:
            result, entry = driver.command(message.get("cmd"), message.get("rid"))
        except patterns.PatternsError as exc:
            await self._reply(message, ok=False, error=str(exc))
            return
        except Exception:
            # A bug in an engine, not the learner's fault: rebuild from the log and say so.
            log.exception("engine failed on %r in %s; rebuilding from the log", message.get("cmd"), driver.sim_id)
            await self._rebuild(driver.sim_id)
            await self._reply(message, ok=False, error="the engine hit an internal error on that command; it was not applied")
            return
        if entry is not None:
            await store.append_log(self.redis, driver.sim_id, entry, _checkpoint(driver))
        await self._reply(message, ok=True, result=result, shown_by=driver.seq + 1)
        await self._show_now(driver)

    async def _control(self, driver: SimDriver, message: dict[str, Any]) -> None:
        action = message.get("action")
        wall = time.monotonic()
        result: Any = None
        if action == "pause":
            driver.pause()
        elif action == "resume":
            driver.resume(wall)
        elif action == "speed":
            driver.set_speed(message["speed"])
        elif action == "step":
            result = {"ran": driver.step(), "now": driver.engine.now}
        elif action == "reset":
            driver.reset(message.get("seed"), wall)
            await store.reset_log(self.redis, driver.sim_id, _checkpoint(driver))
            result = {"seed": driver.seed}
        else:
            await self._reply(message, ok=False, error=f"unknown control {action!r}")
            return
        await self.redis.hset(keys.meta_key(driver.sim_id), mapping=_checkpoint(driver))
        await self._reply(message, ok=True, result=result, shown_by=driver.seq + 1)
        await self._show_now(driver)

    async def _reply(
        self, message: dict[str, Any], *, ok: bool, result: Any = None, error: str = "", shown_by: int | None = None
    ) -> None:
        """Answer a command or control. ``shown_by`` is the seq of the first frame
        that shows its effect (frames and replies travel by different paths, so
        a page may get the reply before that frame, or after an older one)."""
        reply_to = message.get("reply_to")
        if not reply_to:
            return
        reply = {"type": "sim.reply", "rid": message.get("rid"), "ok": ok, "result": result, "error": error}
        if shown_by is not None:
            reply["shown_by"] = shown_by
        try:
            await self.layer.send(reply_to, reply)
        except Exception:
            log.warning("could not reply to %s", reply_to)

    async def _rebuild(self, sim_id: str) -> None:
        spec = await store.load_spec(self.redis, sim_id)
        if spec is not None:
            old = self.sims.get(sim_id)
            driver = self.sims[sim_id] = SimDriver(spec, wall_s=time.monotonic())
            if old is not None:
                driver.seq, driver.phase = old.seq, old.phase

    # -- time and frames ----------------------------------------------------------------
    async def _tick_loop(self) -> None:
        next_tick = time.monotonic()
        while True:
            next_tick += self.tick_interval
            delay = next_tick - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -MAX_TICKS_BEHIND * self.tick_interval:
                next_tick = time.monotonic()  # far behind: skip ticks rather than burst
                await asyncio.sleep(0)
            else:
                await asyncio.sleep(0)  # a little late (a GC pause): catch up, so no phase misses its frame
            await self.tick_all()
            if self.rate.record(time.monotonic(), time.process_time(), late=delay < -self.tick_interval):
                log.info(
                    "frame rate now %.0f Hz for %d simulations (CPU %.0f%%, %.0f%% of ticks late)",
                    self.rate.hz, len(self.sims), self.rate.cpu * 100, self.rate.late * 100,
                )

    @property
    def frame_interval(self) -> float:
        return self.rate.interval

    async def tick_all(self) -> None:
        """Advance the simulations and publish the frames of those that changed,
        in pipelined batches. The worker ticks FRAME_HZ times a second; at a
        reduced frame rate each simulation runs (and publishes) on every
        ``stride``-th tick only, on its own phase, so a busy worker's work and
        frames are spread evenly over time instead of leaving in bursts."""
        self.ticks += 1
        stride = max(1, round(self.rate.max_hz / self.rate.hz))
        wall = time.monotonic()
        frames: list[tuple[str, bytes]] = []
        for sim_id, driver in list(self.sims.items()):
            if (self.ticks + driver.phase) % stride:
                continue  # not this simulation's tick: it catches up on its next one
            try:
                driver.tick(wall)
            except Exception:
                log.exception("engine failed while running %s; rebuilding from the log", sim_id)
                await self._rebuild(sim_id)
                continue
            if driver.wants_frame(wall):
                frames.append(_frame_message(driver, wall, time.time() * 1000.0, self.rate.hz))
                if len(frames) >= PUBLISH_BATCH:
                    await self._send_frames(frames)
                    frames = []
        if frames:
            await self._send_frames(frames)

    async def _send_frames(self, frames: list[tuple[str, bytes]]) -> None:
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for channel, data in frames:
                    pipe.publish(channel, data)
                await pipe.execute()
        except (OSError, RedisError):
            # Viewers get the next frame 50 ms later; a frame is never worth a retry.
            log.warning("publishing %d frames failed", len(frames), exc_info=True)

    async def _show_now(self, driver: SimDriver) -> None:
        """Publish the effect of a learner's action at once, without waiting for the
        next tick. At most one such extra frame per frame interval: a burst of
        clicks is shown by the ticks that follow."""
        wall = time.monotonic()
        if wall - driver.last_shown_wall >= self.frame_interval:
            driver.last_shown_wall = wall
            await self._send_frames([_frame_message(driver, wall, time.time() * 1000.0, self.rate.hz)])

    # -- leases, checkpoints, parking ---------------------------------------------------------
    async def _housekeeping_loop(self) -> None:
        while True:
            await asyncio.sleep(keys.LEASE_RENEW_S)
            try:
                await self.housekeeping()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("housekeeping failed")

    async def housekeeping(self) -> None:
        await self._report_load()
        sim_ids = list(self.sims)
        if not sim_ids:
            return
        epoch_ms = time.time() * 1000.0
        async with self.redis.pipeline(transaction=False) as pipe:
            for sim_id in sim_ids:
                await self.renew(keys=[keys.lease_key(sim_id)], args=[self.channel, keys.LEASE_MS], client=pipe)
                pipe.exists(keys.watched_key(sim_id))
                pipe.hset(keys.meta_key(sim_id), mapping=self.sims[sim_id].checkpoint(epoch_ms))
            results = await pipe.execute()
        now = time.monotonic()
        for index, sim_id in enumerate(sim_ids):
            renewed, watched = results[3 * index], results[3 * index + 1]
            if not renewed:
                log.warning("lost the lease on %s; another worker runs it now", sim_id)
                self.sims.pop(sim_id, None)
                continue
            if watched:
                self.unwatched_since.pop(sim_id, None)
            else:
                since = self.unwatched_since.setdefault(sim_id, now)
                if now - since >= self.park_after_s:
                    log.info("parking %s: nobody has watched it for %.0f s", sim_id, now - since)
                    await self._drop(sim_id, release=True)

    async def _drop(self, sim_id: str, *, release: bool) -> None:
        driver = self.sims.pop(sim_id, None)
        self.unwatched_since.pop(sim_id, None)
        if driver is not None:
            await self.redis.hset(keys.meta_key(sim_id), mapping=_checkpoint(driver))
        if release:
            await self.release(keys=[keys.lease_key(sim_id)], args=[self.channel])

    async def _park_all(self) -> None:
        for sim_id in list(self.sims):
            try:
                await self._drop(sim_id, release=True)
            except Exception:
                log.exception("could not park %s", sim_id)


def _frame_message(driver: SimDriver, wall: float, sent_at: float, hz: float) -> tuple[str, bytes]:
    """(pub/sub channel, b"<seq> " + frame): the hub reads the seq without parsing."""
    seq, data = driver.frame(wall_s=wall, sent_at_ms=sent_at, hz=hz)
    return keys.frames_channel(driver.sim_id), b"%d %s" % (seq, data)


def _checkpoint(driver: SimDriver) -> dict[str, str]:
    return driver.checkpoint(time.time() * 1000.0)
