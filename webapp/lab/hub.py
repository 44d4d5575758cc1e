"""Per-process frame fan-out: one subscription per simulation, one send per viewer.

A web process holds one Redis pub/sub connection and subscribes to a
simulation's frames channel once, however many of its sockets watch it. Each
frame arrives here as bytes the worker serialized and compressed once, and
the hub hands the same bytes to every local viewer's ``push()``, which writes
it at once if the viewer has room in its window of unacknowledged frames, and
otherwise keeps it as the only held frame (conflation: a slow viewer skips
frames, never queues them). Once a second the hub's sweep lets every viewer
check itself (``sweep()``): a viewer stuck past the limit is closed with a
reason, and commands a dead worker never answered are resent.

RULES FOR THE FRAME PATH (``_receive_loop``, ``push``, ``sweep``, ``_ack``),
which runs 12,000 times a second for 600 viewers at 20 Hz:
- never touch the database (Channels' per-message connection clean-up is
  skipped for this consumer, see ``SimConsumer.dispatch``);
- never await anything that can wait: daphne's send only queues bytes on the
  transport, so the hub awaits each viewer's ``push()`` in turn without a task
  per viewer. Anything slower (Redis, a worker) belongs to a task of its own;
- never serialize, compress or decode per viewer: every viewer gets the same bytes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Protocol

from redis import asyncio as aioredis
from redis.exceptions import RedisError

from webapp.runtime import keys

from . import services
from .redis_clients import frames_redis

log = logging.getLogger("lab.hub")


SWEEP_S = 1.0


class Viewer(Protocol):
    async def push(self, seq: int, frame: bytes, now: float) -> None: ...

    async def sweep(self, now: float) -> None: ...


class FrameHub:
    def __init__(self) -> None:
        self.viewers: dict[str, dict[Viewer, None]] = {}  # sim -> viewers (insertion-ordered)
        self.latest: dict[str, tuple[int, bytes]] = {}
        self.pubsub: aioredis.client.PubSub | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._lock = asyncio.Lock()

    async def _start(self) -> None:
        if self.pubsub is not None:
            return
        self.pubsub = frames_redis().pubsub(ignore_subscribe_messages=True)
        await self.pubsub.connect()
        self._tasks = [
            asyncio.create_task(self._receive_loop(), name="hub-receive"),
            asyncio.create_task(self._watch_loop(), name="hub-watch"),
            asyncio.create_task(self._sweep_loop(), name="hub-sweep"),
        ]

    async def join(self, sim_id: str, viewer: Viewer) -> None:
        async with self._lock:
            await self._start()
            local = self.viewers.get(sim_id)
            if local is None:
                local = self.viewers[sim_id] = {}
                await self.pubsub.subscribe(keys.frames_channel(sim_id))
            local[viewer] = None
        latest = self.latest.get(sim_id)
        if latest is not None:
            await viewer.push(*latest, time.monotonic())  # a new or reconnecting viewer starts from the newest frame
        await services.sim_ensure_running([sim_id])

    async def leave(self, sim_id: str, viewer: Viewer) -> None:
        async with self._lock:
            local = self.viewers.get(sim_id)
            if local is None or viewer not in local:
                return
            del local[viewer]
            if not local:
                del self.viewers[sim_id]
                self.latest.pop(sim_id, None)
                await self.pubsub.unsubscribe(keys.frames_channel(sim_id))

    async def _receive_loop(self) -> None:
        """Frames from Redis. After a lost connection redis-py reconnects and
        subscribes again; frames published meanwhile are gone, and the next one
        (at most a frame interval later) brings every viewer up to date."""
        assert self.pubsub is not None
        prefix = len(keys.FRAMES_PREFIX)
        while True:
            try:
                message = await self.pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            except asyncio.CancelledError:
                raise
            except (OSError, RedisError):
                log.warning("frame subscription lost; reconnecting", exc_info=True)
                await asyncio.sleep(0.5)
                continue
            if message is None or message.get("type") != "message":
                continue
            head, _, frame = message["data"].partition(b" ")
            sim_id, seq = message["channel"][prefix:].decode(), int(head)
            current = self.latest.get(sim_id)
            if current is not None and current[0] >= seq:
                continue  # an older frame that arrived late
            local = self.viewers.get(sim_id)
            if not local:
                continue
            self.latest[sim_id] = (seq, frame)
            now = time.monotonic()
            for viewer in list(local):
                try:
                    await viewer.push(seq, frame, now)
                except Exception:
                    log.exception("pushing a frame to a viewer failed")

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_S)
            now = time.monotonic()
            for local in list(self.viewers.values()):
                for viewer in list(local):
                    try:
                        await viewer.sweep(now)
                    except asyncio.CancelledError:
                        raise
                    except Exception:
                        log.exception("sweeping a viewer failed")

    async def _watch_loop(self) -> None:
        """Tell the workers these simulations are watched, and get orphans adopted."""
        while True:
            await asyncio.sleep(keys.WATCHED_REFRESH_S)
            try:
                await services.sim_ensure_running(list(self.viewers))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("watch refresh failed")


_hubs: dict[asyncio.AbstractEventLoop, FrameHub] = {}


def get_hub() -> FrameHub:
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None:
        hub = _hubs[loop] = FrameHub()
    return hub
