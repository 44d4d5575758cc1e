"""Per-process frame fan-out: one subscription per simulation, one send per viewer.

A web process joins the frames group of a simulation once, however many of its
sockets watch it. Each frame arrives here as text the worker serialized once;
the hub hands the same string to every local viewer's ``offer()``, which keeps
only the newest (conflation: a slow viewer skips frames, never queues them).

What the frame path must not do: touch the database, block, or await anything
per viewer. ``offer()`` only stores a reference and sets an event; each
viewer's own sender task does the socket write.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from channels.layers import get_channel_layer

from webapp.runtime import keys

from . import services

log = logging.getLogger("lab.hub")


class Viewer(Protocol):
    def offer(self, seq: int, text: str) -> None: ...


class FrameHub:
    def __init__(self) -> None:
        self.viewers: dict[str, dict[Viewer, None]] = {}  # sim -> viewers (insertion-ordered)
        self.latest: dict[str, tuple[int, str]] = {}
        self.layer = get_channel_layer("frames")
        self.channel = ""
        self._tasks: list[asyncio.Task[None]] = []
        self._lock = asyncio.Lock()
        self.frames_in = 0

    async def _start(self) -> None:
        if self.channel:
            return
        self.channel = await self.layer.new_channel("hub.")
        self._tasks = [
            asyncio.create_task(self._receive_loop(), name="hub-receive"),
            asyncio.create_task(self._watch_loop(), name="hub-watch"),
        ]

    async def join(self, sim_id: str, viewer: Viewer) -> None:
        async with self._lock:
            await self._start()
            local = self.viewers.get(sim_id)
            if local is None:
                local = self.viewers[sim_id] = {}
                await self.layer.group_add(keys.frames_group(sim_id), self.channel)
            local[viewer] = None
        latest = self.latest.get(sim_id)
        if latest is not None:
            viewer.offer(*latest)  # a new or reconnecting viewer starts from the newest frame
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
                await self.layer.group_discard(keys.frames_group(sim_id), self.channel)

    async def _receive_loop(self) -> None:
        while True:
            try:
                message = await self.layer.receive(self.channel)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("frame receive failed; retrying")
                await asyncio.sleep(0.5)
                continue
            sim_id, seq, text = message["sim"], message["seq"], message["text"]
            self.frames_in += 1
            current = self.latest.get(sim_id)
            if current is not None and current[0] >= seq:
                continue  # an older frame that arrived late
            local = self.viewers.get(sim_id)
            if not local:
                continue
            self.latest[sim_id] = (seq, text)
            for viewer in local:
                viewer.offer(seq, text)

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
