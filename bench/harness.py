"""Shared pieces for the platform benchmarks: process CPU, viewers, percentiles."""

from __future__ import annotations

import asyncio
import json
import os
import time
from dataclasses import dataclass, field

import websockets

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (and its finished children), from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


@dataclass
class ViewerStats:
    frames: int = 0
    delays_ms: list[float] = field(default_factory=list)
    seqs: list[int] = field(default_factory=list)
    bytes: int = 0


async def viewer(url: str, headers: dict[str, str], stats: ViewerStats, stop: asyncio.Event, ack_every: int = 1) -> None:
    """A well-behaved viewer: reads every frame, acknowledges every ``ack_every``-th
    (0: none), records its delay."""
    async with websockets.connect(url, additional_headers=headers, max_size=None, max_queue=None) as ws:
        while not stop.is_set():
            try:
                text = await asyncio.wait_for(ws.recv(), 0.5)
            except asyncio.TimeoutError:
                continue
            received = time.time() * 1000.0
            message = json.loads(text)
            if message.get("type") != "frame":
                continue
            if ack_every and (stats.frames + 1) % ack_every == 0:
                await ws.send('{"type":"ack","seq":%d}' % message["seq"])
            stats.frames += 1
            stats.bytes += len(text)
            stats.seqs.append(message["seq"])
            stats.delays_ms.append(received - message["sent_at"])
