"""Shared pieces for the platform benchmarks: process CPU, viewers, percentiles."""

from __future__ import annotations

import asyncio
import os
import re
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


HEADER = re.compile(r'"seq": ?(\d+).*?"sent_at": ?([0-9.e+]+)')


def frame_header(text: str) -> tuple[int, float] | None:
    """(seq, sent_at) of a frame, read from its first bytes: both servers put
    them before the view, so a viewer of 600 need not parse whole frames."""
    if '"frame"' not in text[:20]:
        return None
    match = HEADER.search(text, 0, 400)
    return (int(match.group(1)), float(match.group(2))) if match else None


async def viewer(
    url: str, headers: dict[str, str], stats: ViewerStats, stop: asyncio.Event,
    ack_every: int = 5, ack_ms: float = 200.0, stall: asyncio.Event | None = None,
) -> None:
    """A well-behaved viewer that acknowledges like the browser does: once
    ``ack_every`` frames are unacknowledged, or ``ack_ms`` after the first of
    them (ack_every 0: never). While ``stall`` is set it stops reading."""
    async with websockets.connect(url, additional_headers=headers, max_size=None, max_queue=None) as ws:
        pending_seq, pending, first_at = None, 0, 0.0
        while not stop.is_set():
            if stall is not None and stall.is_set():
                await asyncio.sleep(0.05)
                continue
            try:
                text = await asyncio.wait_for(ws.recv(), ack_ms / 1000.0 if pending else 0.5)
            except asyncio.TimeoutError:
                text = None
            now = time.time() * 1000.0
            header = frame_header(text) if text is not None else None
            if header is not None:
                seq, sent_at = header
                stats.frames += 1
                stats.bytes += len(text)
                stats.seqs.append(seq)
                stats.delays_ms.append(now - sent_at)
                pending_seq, pending = seq, pending + 1
                if pending == 1:
                    first_at = now
            if ack_every and pending and (pending >= ack_every or now - first_at >= ack_ms):
                await ws.send('{"type":"ack","seq":%d}' % pending_seq)
                pending = 0
