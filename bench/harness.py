"""Shared pieces for the platform benchmarks: process CPU, viewers, percentiles."""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from dataclasses import dataclass, field

import websockets

from webapp.runtime.driver import frame_header as lab_frame_header

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (and its finished children), from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_mb(pid: int) -> float:
    """Resident memory of a process, from /proc."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


@dataclass
class ViewerStats:
    """What one viewer saw; ``reset()`` starts a measurement window."""

    frames: int = 0
    delays_ms: list[float] = field(default_factory=list)
    seqs: list[int] = field(default_factory=list)
    bytes: int = 0
    received_ms: list[float] = field(default_factory=list)
    promised_hz: float | None = None  # the rate the newest frame promised
    close_code: int | None = None
    close_reason: str = ""
    resumed_delay_ms: float | None = None  # age of the first frame read after a stall
    backlog: int = 0  # frames written to this viewer while it stalled, read only after
    backlog_bytes: int = 0

    def reset(self) -> None:
        self.frames, self.bytes = 0, 0
        self.delays_ms, self.seqs, self.received_ms = [], [], []

    def missed(self) -> int:
        """Frames of the simulation this viewer never got, between its first and last."""
        return sum(max(0, b - a - 1) for a, b in zip(self.seqs, self.seqs[1:]))



BARE_HEADER = re.compile(r'"seq":(\d+).*?"sent_at":([0-9.e+]+)')


def frame_header(data: str | bytes) -> tuple[int, float, float | None] | None:
    """(seq, sent_at, promised hz or None) of a frame without parsing or
    inflating the view: the lab's frames are binary (read by the lab's own
    ``frame_header``), the bare server's are JSON text with both up front."""
    if isinstance(data, bytes):
        header = lab_frame_header(data)
        return header["seq"], header["sent_at"], header.get("hz")
    if '"frame"' not in data[:20]:
        return None
    match = BARE_HEADER.search(data, 0, 400)
    return (int(match.group(1)), float(match.group(2)), None) if match else None


async def viewer(
    url: str, headers: dict[str, str], stats: ViewerStats, stop: asyncio.Event,
    ack_every: int = 5, ack_ms: float = 200.0, stall: asyncio.Event | None = None,
    first: tuple[str, ...] = (), max_queue: int | None = None,
) -> None:
    """A well-behaved viewer that acknowledges like the browser does: once
    ``ack_every`` frames are unacknowledged, or ``ack_ms`` after the first of
    them (ack_every 0: never). It sends ``first`` on connecting. While ``stall``
    is set it stops reading its socket; with a small ``max_queue`` the socket's
    buffers then fill and the server's writes back up, as with a frozen tab."""
    try:
        async with websockets.connect(url, additional_headers=headers, max_size=None, max_queue=max_queue) as ws:
            for text in first:
                await ws.send(text)
            pending_seq, pending, first_at, stalled = None, 0, 0.0, False
            while not stop.is_set():
                if stall is not None and stall.is_set():
                    pending, stalled = 0, True
                    await asyncio.sleep(0.05)
                    continue
                try:
                    text = await asyncio.wait_for(ws.recv(), 0.2 if pending else 0.5)
                except asyncio.TimeoutError:
                    text = None
                now = time.time() * 1000.0
                header = frame_header(text) if text is not None else None
                if header is not None:
                    seq, sent_at, hz = header
                    stats.promised_hz = hz
                    if stalled:
                        stalled = False
                        stats.resumed_delay_ms = now - sent_at
                    stats.frames += 1
                    stats.bytes += len(text)
                    stats.seqs.append(seq)
                    stats.delays_ms.append(now - sent_at)
                    stats.received_ms.append(now)
                    pending_seq, pending = seq, pending + 1
                    if pending == 1:
                        first_at = now
                # Like the browser: ack_ms is for 20 frames a second, a slower stream waits longer.
                wait_ms = ack_ms * (20.0 / stats.promised_hz if stats.promised_hz and stats.promised_hz < 20.0 else 1.0)
                if ack_every and pending and (pending >= ack_every or now - first_at >= wait_ms):
                    await ws.send('{"type":"ack","seq":%d}' % pending_seq)
                    pending = 0
            if stalled:
                # What did the server write for us while we were not reading (the
                # backlog it and the kernel hold), and did it give up on us? Read
                # what is buffered, up to a close, for at most 3 s.
                began = time.time() * 1000.0
                deadline = time.monotonic() + 3.0
                while time.monotonic() < deadline:
                    text = await asyncio.wait_for(ws.recv(), 1.0)
                    if isinstance(text, str) and text.startswith('{"type":"closing"'):  # daphne drops close reasons
                        stats.close_reason = json.loads(text)["reason"]
                    header = frame_header(text)
                    if header is not None and header[1] < began:
                        stats.backlog += 1
                        stats.backlog_bytes += len(text)
    except asyncio.TimeoutError:
        pass
    except websockets.ConnectionClosed as closed:
        stats.close_code = closed.rcvd.code if closed.rcvd else None
        stats.close_reason = (closed.rcvd.reason if closed.rcvd else "") or stats.close_reason
