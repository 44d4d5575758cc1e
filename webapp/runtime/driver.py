"""The simulation driver: paces one engine to wall time and builds its frames.

Pacing is a driver, not part of the model (SimPy's RealtimeEnvironment idea):
the engine only ever sees ``advance(virtual_ms)`` and commands. The driver maps
wall seconds to virtual milliseconds through ``speed`` (virtual ms per wall ms,
1/1000 to 1), handles pause, step and reset, and keeps the command log that
defines the run: kind, parameters, seed and every accepted command with the
virtual time it was applied at.

No I/O here: the worker persists what the driver returns and sends its frames.
"""

from __future__ import annotations

import secrets
import zlib
from dataclasses import dataclass, field
from typing import Any

import orjson

import patterns

MIN_SPEED = 0.001
MAX_SPEED = 1.0
MAX_CATCH_UP_S = 0.5  # after a stall, virtual time does not leap more than this much wall time
LOG_IN_FRAME = 40  # log entries per node sent in a frame; the rest stay in the engine
KEEPALIVE_S = 10.0
FRAME_ZLIB_LEVEL = 1  # 13 us for an idle Raft frame, 35 us for a busy one; level 6 saves 10-20% more for 1.5-3.5x the time
MAX_RECOVERY_CATCH_UP_S = 60.0  # a sim recovered later than this resumes where it was, plus a minute


@dataclass
class SimSpec:
    sim_id: str
    kind: str
    seed: int
    params: dict[str, Any]
    log: list[dict[str, Any]] = field(default_factory=list)
    speed: float = 0.01
    paused: bool = False
    now_ms: float = 0.0
    epoch: int = 1
    checkpoint_epoch_ms: float | None = None  # wall clock (ms since the epoch) of the checkpoint


class SimDriver:
    def __init__(self, spec: SimSpec, *, wall_s: float, epoch_ms: float | None = None) -> None:
        """Rebuild a run from its spec. With ``epoch_ms`` (the wall clock now), a
        running simulation also catches up on the wall time since its checkpoint,
        so a worker's death does not turn its clock back."""
        self.sim_id = spec.sim_id
        self.kind = spec.kind
        self.params = dict(spec.params)
        self.speed = clamp_speed(spec.speed)
        self.paused = spec.paused
        self.epoch = spec.epoch
        self.seed = spec.seed
        self.log = list(spec.log)
        self.rids: dict[str, Any] = {}  # request id -> result, so a resent command applies once
        self.engine = patterns.replay(
            {"kind": spec.kind, "seed": spec.seed, "params": spec.params, "log": spec.log},
            until_ms=max(spec.now_ms, spec.log[-1]["at_ms"] if spec.log else 0.0),
        )
        if epoch_ms is not None and spec.checkpoint_epoch_ms is not None and not self.paused:
            missed_s = min(max(epoch_ms - spec.checkpoint_epoch_ms, 0.0) / 1000.0, MAX_RECOVERY_CATCH_UP_S)
            self.engine.advance(missed_s * 1000.0 * self.speed)
        for item in spec.log:
            if item.get("rid"):
                self.rids[item["rid"]] = None
        self.seq = 0
        self.phase = 0  # which ticks publish this simulation's frames at a reduced rate (set by the worker)
        self.dirty = True
        self._last_wall = wall_s
        self.last_frame_wall = 0.0
        self.last_shown_wall = 0.0  # the last frame published at once for a learner's action

    # -- time ----------------------------------------------------------------
    def tick(self, wall_s: float) -> None:
        """Move virtual time forward by the wall time since the last tick, times speed."""
        elapsed = min(max(wall_s - self._last_wall, 0.0), MAX_CATCH_UP_S)
        self._last_wall = wall_s
        if self.paused or elapsed <= 0:
            return
        self.engine.advance(elapsed * 1000.0 * self.speed)
        self.dirty = True

    # -- learner actions ----------------------------------------------------------
    def command(self, cmd: dict[str, Any], rid: str | None) -> tuple[Any, dict[str, Any] | None]:
        """Apply a command. Returns (result, log entry to persist); the entry is None
        for a duplicate. Raises patterns.PatternsError for bad input, changing nothing."""
        if rid is not None and rid in self.rids:
            return self.rids[rid], None
        result = self.engine.apply(cmd)
        entry = {"at_ms": self.engine.now, "cmd": cmd, "rid": rid}
        self.log.append(entry)
        if rid is not None:
            self.rids[rid] = result
        self.dirty = True
        return result, entry

    def pause(self) -> None:
        self.paused = True
        self.dirty = True

    def resume(self, wall_s: float) -> None:
        self.paused = False
        self._last_wall = wall_s
        self.dirty = True

    def set_speed(self, speed: float) -> None:
        self.speed = clamp_speed(speed)
        self.dirty = True

    def step(self) -> bool:
        """Run to the next event (every event due at that virtual time) and pause."""
        self.paused = True
        self.dirty = True
        return self.engine.step()

    def reset(self, seed: int | None, wall_s: float) -> None:
        self.seed = secrets.randbelow(2**31) if seed is None else seed
        self.engine = patterns.create(self.kind, seed=self.seed, **self.params)
        self.log = []
        self.rids = {}
        self.epoch += 1
        self._last_wall = wall_s
        self.dirty = True

    # -- frames ------------------------------------------------------------------
    def wants_frame(self, wall_s: float) -> bool:
        return self.dirty or wall_s - self.last_frame_wall >= KEEPALIVE_S

    def frame(self, *, wall_s: float, sent_at_ms: float, hz: float = 20.0) -> tuple[int, bytes]:
        """Serialize and compress the current state once; every viewer gets these
        same bytes (see ``encode_frame``). ``hz`` is the rate the worker promises
        while the simulation changes."""
        self.seq += 1
        self.dirty = False
        self.last_frame_wall = wall_s
        header = {
            "type": "frame",
            "sim": self.sim_id,
            "seq": self.seq,
            "epoch": self.epoch,
            "now": self.engine.now,
            "speed": self.speed,
            "paused": self.paused,
            "sent_at": sent_at_ms,
            "hz": hz,
        }
        return self.seq, encode_frame(header, trim_view(self.engine.view()))

    def checkpoint(self, epoch_ms: float | None = None) -> dict[str, str]:
        """The fields of the simulation's Redis hash that change while it runs;
        with ``epoch_ms``, also the wall clock they were taken at."""
        fields = {"checkpoint_epoch_ms": repr(epoch_ms)} if epoch_ms is not None else {}
        return {
            **fields,
            "now_ms": repr(self.engine.now),
            "speed": repr(self.speed),
            "paused": "1" if self.paused else "0",
            "seed": str(self.seed),
            "epoch": str(self.epoch),
        }


def encode_frame(header: dict[str, Any], view: dict[str, Any]) -> bytes:
    """A frame on the wire (a binary WebSocket message): the header as JSON, a
    newline, then the view as zlib-compressed JSON. Compressed once here, it is
    3 to 7 times smaller for every viewer (a 5-node Raft: 3.7 KB -> 1.2 KB idle,
    26 KB -> 3.8 KB with clients busy), and anyone can read the header (seq,
    sent_at, hz) without inflating the view."""
    return orjson.dumps(header) + b"\n" + zlib.compress(orjson.dumps(view, option=orjson.OPT_NON_STR_KEYS), FRAME_ZLIB_LEVEL)


def decode_frame(data: bytes) -> dict[str, Any]:
    """The frame ``encode_frame`` made, as one dict with its ``view``."""
    head, _, body = data.partition(b"\n")
    frame = orjson.loads(head)
    frame["view"] = orjson.loads(zlib.decompress(body))
    return frame


def read_message(data: str | bytes) -> dict[str, Any]:
    """Any server-to-browser message as a dict: a binary frame, or JSON text."""
    return decode_frame(data) if isinstance(data, bytes) else orjson.loads(data)


def frame_header(data: bytes) -> dict[str, Any]:
    """Just the header of a frame: no inflating."""
    return orjson.loads(data[: data.index(b"\n")])


def clamp_speed(speed: float) -> float:
    return min(max(float(speed), MIN_SPEED), MAX_SPEED)


def trim_view(view: dict[str, Any]) -> dict[str, Any]:
    """Send only the tail of long logs: ``log_offset`` says where the tail starts."""
    for node in view.get("nodes", []):
        log = node.get("log")
        if isinstance(log, list) and len(log) > LOG_IN_FRAME:
            node["log_offset"] = len(log) - LOG_IN_FRAME
            node["log"] = log[-LOG_IN_FRAME:]
    return view


class FrameRate:
    """A worker's frame rate: ``max_hz`` while it keeps up; halved (down to
    ``min_hz``) when it falls behind; doubled again when it has room.

    Frames are snapshots and the page animates between them from virtual time,
    so a lower rate on time looks smooth; falling behind (late, bunched frames
    and a growing delay) does not. Every ``window_s`` it looks at the share of
    ticks that started more than a tick late and at the process's CPU share
    (wall-clock busy time is no good: it counts waiting for Redis and for a
    core). It steps up only after ``hold_s`` without stepping down, so it does
    not flap -- unless the load has clearly gone (a burst of simulations has
    closed): frames are most of a worker's work, so doubling the rate at most
    doubles its CPU, and with that still under ``CPU_UP`` it steps up after
    ``quick_hold_s``.
    """

    LATE_SHARE_DOWN = 0.1
    CPU_DOWN = 0.8
    CPU_UP = 0.6

    def __init__(
        self, max_hz: float, min_hz: float, window_s: float = 2.0, hold_s: float = 30.0, quick_hold_s: float = 4.0
    ) -> None:
        self.max_hz, self.min_hz = max_hz, min(min_hz, max_hz)
        self.window_s, self.hold_s, self.quick_hold_s = window_s, hold_s, min(quick_hold_s, hold_s)
        self.hz = max_hz
        self.cpu = 0.0  # CPU share over the last window
        self.late = 0.0  # share of ticks that started late over the last window
        self._since: float | None = None
        self._cpu_since = 0.0
        self._ticks = self._late_ticks = 0
        self._stepped_down_at = float("-inf")

    @property
    def interval(self) -> float:
        return 1.0 / self.hz

    def record(self, now: float, cpu_s: float, late: bool) -> bool:
        """Account one tick (wall clock, process CPU seconds so far, whether it
        started more than a tick late); returns True when the rate changed."""
        if self._since is None:
            self._since, self._cpu_since = now, cpu_s
            return False
        self._ticks += 1
        self._late_ticks += late
        span = now - self._since
        if span < self.window_s:
            return False
        self.cpu = (cpu_s - self._cpu_since) / span
        self.late = self._late_ticks / self._ticks
        self._since, self._cpu_since, self._ticks, self._late_ticks = now, cpu_s, 0, 0
        if self.late > self.LATE_SHARE_DOWN or self.cpu > self.CPU_DOWN:
            self._stepped_down_at = now  # (at the floor too: the hold starts once the pressure ends)
            if self.hz > self.min_hz:
                self.hz = max(self.min_hz, self.hz / 2)
                return True
            return False
        if self.late > 0 or self.cpu >= self.CPU_UP or self.hz >= self.max_hz:
            return False
        hold = self.quick_hold_s if 2 * self.cpu < self.CPU_UP else self.hold_s
        if now - self._stepped_down_at >= hold:
            self.hz = min(self.max_hz, self.hz * 2)
            return True
        return False
