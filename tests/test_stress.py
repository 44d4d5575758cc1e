"""Many viewers of one simulation across two web processes, through a worker failure.

One Redis, two engine workers, two daphnes (both with a 3 s stuck limit). One
simulation runs at speed 1; its owner and 40 read-only viewers (the share link)
watch it, half on each daphne. Every viewer acknowledges like the browser's
LabSocket: in batches, once half the frame window is used or ack_ms after the
first unacknowledged frame. Mid-run one viewer stops reading its socket for
1.5 s, another stops for good, and the worker holding the lease is SIGKILLed.

Checked:
- no healthy viewer starves: no gap of 2 s or more between its frames except
  the one failover gap (under 12 s), and after it every viewer gets ~20 frames/s;
- seqs only rise per viewer; a seq means the same frame everywhere, and both
  web processes deliver the same seqs;
- the stalled viewer gets at most frame_window frames past its last ack while it
  does not read, and once it reads and acks again the next frame is the newest
  (conflation), not the backlog;
- the viewer stalled for good is closed with 4008 and a "Too slow" reason after
  the stuck limit, not before; no healthy viewer is closed.

Only WebSockets, processes and the Redis keys of the fixtures are used (never
the frame transport between workers and web processes). ``pytest -s`` prints a
summary with the figures.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time

import pytest
import websockets
import websockets.protocol

from webapp.runtime import keys
from webapp.runtime.driver import read_message
from webapp.runtime.launch import open_new_sim

pytestmark = [pytest.mark.integration, pytest.mark.timeout(150)]

VIEWERS = 40
STUCK_AFTER_S = 3
STARVE_S = 2.0  # a healthy viewer gets a frame at least this often, failover aside
FAILOVER_MAX_S = 12.0  # lease expiry (6 s) + the web processes' watch refresh (3 s) + adoption
ADOPTED_TO_FRAME_S = 2.0  # from the survivor taking the lease to its frames on every page
STALL_S = 1.5  # shorter than the stuck limit, long enough to fill the window many times over
STEADY_S = 3.5  # measured after the failover
MIN_RATE = 16.0  # frames/s after the failover (the worker ticks at 20 Hz)


class Viewer:
    """A WebSocket client that reads and acknowledges like static/lab/socket.js."""

    def __init__(self, name: str, web: int, url: str, headers: dict[str, str]) -> None:
        self.name, self.web, self.url, self.headers = name, web, url, headers
        self.ws = None
        self.hello: dict | None = None
        self.frames: list[tuple[float, int, float, float, int]] = []  # (arrived, seq, sent_at, now, epoch)
        self.replies: dict[int, asyncio.Future] = {}
        self.closed: tuple[int | None, str, float] | None = None  # (code, reason, when)
        self.window, self.ack_ms = 10, 200
        self._ack_seq: int | None = None
        self._ack_count = 0
        self._ack_timer: asyncio.TimerHandle | None = None
        self.acked: int | None = None  # the last seq acknowledged
        # stalling: stop reading (and so acknowledging) until resumed
        self._stall = False
        self._resume = asyncio.Event()
        self.stalled_at = 0.0
        self.acked_at_stall: int | None = None
        self.drained: list[int] = []  # seqs read after the stall, before the first new ack
        self.resumed_ack_at = 0.0  # wall ms of that first ack
        self.after_resume: tuple[int, float, float] | None = None  # (seq, sent_at, arrived wall ms) of the next frame
        self.task: asyncio.Task | None = None

    async def open(self) -> None:
        self.ws = await websockets.connect(
            self.url, additional_headers=self.headers, compression=None, open_timeout=15
        )
        first = read_message(await asyncio.wait_for(self.ws.recv(), 15))
        assert first["type"] == "hello", (self.name, first)
        self.hello = first
        self.window = first["limits"]["frame_window"]
        self.ack_ms = first["limits"]["ack_ms"]
        self.task = asyncio.create_task(self._read(), name=self.name)

    # -- acknowledging in batches, as the browser does --------------------------------
    def _ack_later(self, seq: int) -> None:
        self._ack_seq = seq
        self._ack_count += 1
        if self._ack_count >= max(1, self.window // 2):
            self._ack_now()
        elif self._ack_timer is None:
            self._ack_timer = asyncio.get_running_loop().call_later(self.ack_ms / 1000, self._ack_now)

    def _ack_now(self) -> None:
        if self._ack_timer is not None:
            self._ack_timer.cancel()
            self._ack_timer = None
        if self._ack_seq is None or self._stall:
            return
        self._send({"type": "ack", "seq": self._ack_seq})
        self.acked = self._ack_seq
        self._ack_seq, self._ack_count = None, 0

    def _send(self, message: dict) -> None:
        if self.ws.state is not websockets.protocol.State.OPEN:
            return
        task = asyncio.ensure_future(self.ws.send(json.dumps(message)))
        task.add_done_callback(lambda t: t.cancelled() or t.exception())  # a send racing a close may fail

    async def request(self, **message) -> dict:
        rid = len(self.replies) + 1
        future = self.replies[rid] = asyncio.get_running_loop().create_future()
        self._send({**message, "id": rid})
        return await asyncio.wait_for(future, 15)

    # -- stalling -------------------------------------------------------------------
    def stall(self) -> None:
        """Stop reading the socket (so stop acknowledging) from now on."""
        self._stall = True
        if self._ack_timer is not None:
            self._ack_timer.cancel()
            self._ack_timer = None
        self.stalled_at = time.monotonic()
        self.acked_at_stall = self.acked

    def resume(self) -> None:
        self._resume.set()

    async def _drain_stalled(self) -> None:
        """Read what arrived while stalled, without acknowledging (the server can send
        nothing more until we do), then acknowledge it all at once."""
        deadline = time.monotonic() + 1.0  # frames still coming after this: the server is not holding them
        while time.monotonic() < deadline:
            try:
                raw = await asyncio.wait_for(self.ws.recv(), 0.3)
            except TimeoutError:
                break
            message = read_message(raw)
            if message["type"] == "frame":
                self._record(message)
                self.drained.append(message["seq"])
        self._stall = False
        self._ack_seq, self._ack_count = (self.drained[-1] if self.drained else self.acked), 0
        self.resumed_ack_at = time.time() * 1000
        self._ack_now()

    # -- the read loop ----------------------------------------------------------------
    def _record(self, message: dict) -> None:
        self.frames.append(
            (time.monotonic(), message["seq"], message["sent_at"], message["now"], message.get("epoch", 0))
        )

    async def _read(self) -> None:
        try:
            while True:
                if self._stall:
                    await self._resume.wait()
                    await self._drain_stalled()
                message = read_message(await self.ws.recv())
                kind = message["type"]
                if kind == "frame":
                    self._record(message)
                    if self.resumed_ack_at and self.after_resume is None:
                        self.after_resume = (message["seq"], message["sent_at"], time.time() * 1000)
                    self._ack_later(message["seq"])
                elif kind in ("reply", "error") and message.get("id") in self.replies:
                    future = self.replies[message["id"]]
                    if not future.done():
                        future.set_result(message)
        except websockets.ConnectionClosed as exc:
            rcvd = exc.rcvd
            self.closed = (rcvd.code if rcvd else None, rcvd.reason if rcvd else "", time.monotonic())

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
        if self.ws is not None:
            await self.ws.close()

    # -- figures -------------------------------------------------------------------
    def seqs(self) -> list[int]:
        return [f[1] for f in self.frames]

    def arrivals(self) -> list[float]:
        return [f[0] for f in self.frames]


def ws_url(server, sim_id: str, query: str = "") -> str:
    return server.url.replace("http://", "ws://") + f"/ws/sim/{sim_id}/" + query


async def wait_until(predicate, timeout: float, what, step: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"{what() if callable(what) else what}: not within {timeout} s")
        await asyncio.sleep(step)


async def test_forty_viewers_on_two_web_processes_through_a_worker_kill_and_stalled_viewers(
    clean_redis, start_worker, start_daphne
):
    started = time.monotonic()
    summary: list[str] = []
    workers = [start_worker(), start_worker()]
    env = {"LAB_STUCK_AFTER_S": str(STUCK_AFTER_S)}
    webs = [start_daphne(**env), start_daphne(**env)]
    sim_id, cookie = open_new_sim(webs[0].url)
    share = clean_redis.hget(keys.meta_key(sim_id), "share")
    assert share, clean_redis.hgetall(keys.meta_key(sim_id))
    setup_s = time.monotonic() - started

    owner = Viewer("owner", 0, ws_url(webs[0], sim_id), {"Cookie": cookie, "Origin": webs[0].url})

    def watcher(name: str, web: int) -> Viewer:
        return Viewer(name, web, ws_url(webs[web], sim_id, f"?watch={share}"), {"Origin": webs[web].url})

    healthy = [watcher(f"v{i:02d}", i % 2) for i in range(VIEWERS)]
    brief = watcher("stalled-briefly", 0)  # stops reading for STALL_S, then reads again
    stuck = watcher("stalled-for-good", 1)  # stops reading past the stuck limit
    everyone = [owner, *healthy, brief, stuck]
    try:
        await owner.open()
        assert owner.hello["role"] == "owner"
        reply = await owner.request(type="control", action="speed", speed=1)
        assert reply.get("ok"), reply
        await asyncio.gather(*(v.open() for v in everyone[1:]))
        assert all(v.hello["role"] == "viewer" for v in everyone[1:])
        window = owner.hello["limits"]["frame_window"]
        assert all(v.window == window for v in everyone)

        # Warm up: every viewer streams.
        await wait_until(lambda: all(len(v.frames) >= 20 for v in everyone), 15, "20 frames for every viewer")
        await asyncio.sleep(1.0)

        # Stall two viewers.
        brief.stall()
        stuck.stall()
        stalled_at = time.monotonic()
        stuck_closed_at: list[float] = []
        stuck_told: list[dict] = []  # the "closing" message: daphne drops close reasons (django/daphne#374)

        async def watch_stuck() -> None:
            await stuck.ws.wait_closed()
            stuck_closed_at.append(time.monotonic())
            try:  # what it had been sent before the close, still unread
                while True:
                    message = read_message(await stuck.ws.recv())
                    if message["type"] == "frame":
                        stuck.drained.append(message["seq"])
                    elif message["type"] == "closing":
                        stuck_told.append(message)
            except websockets.ConnectionClosed:
                pass

        stuck_watch = asyncio.create_task(watch_stuck())
        await asyncio.sleep(STALL_S)
        newest_at_resume = max(v.seqs()[-1] for v in healthy)
        brief.resume()
        await wait_until(
            lambda: brief.after_resume is not None, 5,
            lambda: f"a frame for the viewer that resumed (it read {len(brief.drained)} frames sent while it was "
            f"stalled, then acknowledged: {bool(brief.resumed_ack_at)}; closed: {brief.closed})",
        )

        # The briefly stalled viewer: at most a window of frames while stalled, then the newest.
        last_unread = brief.drained[-1] if brief.drained else (brief.acked or 0)
        past_ack = [s for s in brief.seqs() if (brief.acked_at_stall or 0) < s <= last_unread]
        assert 1 <= len(past_ack) <= window, (
            f"while stalled for {STALL_S} s the viewer got {len(past_ack)} frames past its last ack (window {window})"
        )
        assert brief.closed is None, f"the briefly stalled viewer was closed: {brief.closed}"
        next_seq, next_sent_at, _ = brief.after_resume
        backlog_next = last_unread + 1
        skipped = next_seq - backlog_next
        assert next_seq >= newest_at_resume, (
            f"after resuming, the next frame was seq {next_seq}: older than seq {newest_at_resume}, which other "
            f"viewers had before it resumed (the backlog would start at {backlog_next})"
        )
        age_ms = brief.resumed_ack_at - next_sent_at
        assert age_ms < 500, f"after resuming, the next frame was made {age_ms:.0f} ms before the viewer's ack"
        summary.append(
            f"viewer stalled {STALL_S} s: {len(past_ack)} frames past its last ack (window {window}); next frame "
            f"seq +{skipped} past the backlog, made {age_ms:.0f} ms before its ack"
        )

        # Kill the worker that runs the simulation.
        lease = clean_redis.get(keys.lease_key(sim_id))
        pid = clean_redis.hget("lab:workers", lease)
        victim = next(w for w in workers if str(w.proc.pid) == pid)
        survivor = next(w for w in workers if w is not victim)
        killed_at = time.monotonic()
        victim.kill()

        try:
            await asyncio.wait_for(stuck_watch, STUCK_AFTER_S + 5)
        except TimeoutError:
            pytest.fail(f"a viewer stalled for {time.monotonic() - stalled_at:.1f} s was not disconnected (limit {STUCK_AFTER_S} s)")

        # The survivor adopts the simulation; frames flow again to everyone.
        adopted_at: list[float] = []  # when the lease named another worker

        def resumed() -> bool:
            if not adopted_at and clean_redis.get(keys.lease_key(sim_id)) not in (None, lease):
                adopted_at.append(time.monotonic())
            return all(v.frames and v.frames[-1][0] > killed_at + 1.0 for v in healthy)

        await wait_until(resumed, FAILOVER_MAX_S + 3, "frames after the worker was killed")
        recovered_at = time.monotonic()
        await asyncio.sleep(STEADY_S + 0.5)
        ended_at = time.monotonic()
        new_lease = clean_redis.get(keys.lease_key(sim_id))
        assert new_lease and new_lease != lease, (lease, new_lease)
        assert clean_redis.hget("lab:workers", new_lease) == str(survivor.proc.pid)
    finally:
        await asyncio.gather(*(v.close() for v in everyone), return_exceptions=True)

    # ---------------------------------------------------------------- checks

    # No healthy viewer was closed; every one saw rising seqs.
    for v in [owner, *healthy]:
        assert v.closed is None, f"{v.name} (daphne {v.web + 1}) was closed: {v.closed}"
    for v in everyone:
        seqs = v.seqs()
        bad = [(a, b) for a, b in zip(seqs, seqs[1:]) if b <= a]
        assert not bad, f"{v.name}: seqs did not only rise, e.g. {bad[:3]} ({len(seqs)} frames)"

    # No starvation: one failover gap (around the kill) and short gaps otherwise; ~20/s afterwards.
    failover_gaps, rates, counts = [], [], []
    for v in [owner, *healthy]:
        times = v.arrivals()
        gaps = [(b - a, a, b) for a, b in zip(times, [*times[1:], ended_at])]  # up to the end of the run
        spanning = [g for g in gaps if g[2] > killed_at]
        failover = max(spanning)
        others = [g for g in gaps if g is not failover]
        worst = max(g[0] for g in others)
        assert worst < STARVE_S, (
            f"{v.name} (daphne {v.web + 1}) starved: a {worst:.2f} s gap between frames outside the failover "
            f"(failover gap {failover[0]:.2f} s, {len(times)} frames)"
        )
        assert failover[0] < FAILOVER_MAX_S, f"{v.name}: the failover gap was {failover[0]:.2f} s"
        assert failover[1] < killed_at + 1.0, f"{v.name}: frames stopped {failover[1] - killed_at:.2f} s after the kill"
        assert adopted_at and failover[2] - adopted_at[0] < ADOPTED_TO_FRAME_S, (
            f"{v.name}: frames came back {failover[2] - adopted_at[0]:.2f} s after the survivor took the lease "
            f"({failover[0]:.2f} s gap)"
        )
        steady_from = failover[2] + 0.5
        steady = [t for t in times if t >= steady_from]
        rate = len(steady) / (ended_at - steady_from)
        assert ended_at - steady_from >= STEADY_S - 0.6 and rate >= MIN_RATE, (
            f"{v.name} (daphne {v.web + 1}) got {rate:.1f} frames/s over the {ended_at - steady_from:.1f} s "
            f"after the failover (want >= {MIN_RATE})"
        )
        failover_gaps.append(failover[0])
        rates.append(rate)
        counts.append(len(times))
    summary.append(
        f"frames per healthy viewer: min {min(counts)}, median {statistics.median(counts):.0f}, max {max(counts)}; "
        f"failover gap {min(failover_gaps):.2f} to {max(failover_gaps):.2f} s; "
        f"after it {min(rates):.1f} to {max(rates):.1f} frames/s"
    )

    # The same frames everywhere: a seq always carries the same frame, and both web
    # processes delivered the same seqs over the span every healthy viewer watched.
    seen: dict[int, tuple] = {}
    for v in everyone:
        for _, seq, sent_at, now, epoch in v.frames:
            other = seen.setdefault(seq, (sent_at, now, epoch, v.name))
            assert other[:3] == (sent_at, now, epoch), f"seq {seq}: {v.name} got {(sent_at, now, epoch)}, {other[3]} got {other}"
    lo = max(v.seqs()[0] for v in healthy)
    hi = min(v.seqs()[-1] for v in healthy)
    per_web = [set(), set()]
    for v in healthy:
        per_web[v.web].update(s for s in v.seqs() if lo <= s <= hi)
    only = per_web[0] ^ per_web[1]
    assert per_web[0] and not only, (
        f"the web processes delivered different frames in seqs {lo}..{hi}: {len(per_web[0])} vs {len(per_web[1])}, "
        f"{len(only)} on one only, e.g. {sorted(only)[:5]}"
    )
    coverage = []
    for v in healthy:
        got = {s for s in v.seqs() if lo <= s <= hi}
        share_got = len(got) / len(per_web[v.web])
        coverage.append(share_got)
        assert share_got >= 0.95, f"{v.name} got {len(got)} of the {len(per_web[v.web])} frames its web process delivered"
    summary.append(
        f"same frames on both web processes: {len(per_web[0])} seqs in common; "
        f"each viewer got at least {min(coverage):.0%} of them"
    )

    # The viewer stalled for good: closed with 4008 and a reason, after the limit (not before).
    code = stuck.ws.close_code
    reason = stuck.ws.close_reason or (stuck_told[0]["reason"] if stuck_told and stuck_told[0]["code"] == code else "")
    after = stuck_closed_at[0] - stalled_at
    assert code == 4008, f"the viewer stalled for good was closed with {code} {reason!r}, not 4008"
    assert reason.startswith("Too slow"), f"closed with 4008 but the reason was {reason!r}"
    assert STUCK_AFTER_S - 0.5 <= after <= STUCK_AFTER_S + 3, f"closed {after:.1f} s after it stopped reading"
    unread = [s for s in stuck.seqs() + stuck.drained if (stuck.acked_at_stall or 0) < s]
    assert 1 <= len(unread) <= window, f"the viewer stalled for good was sent {len(unread)} frames past its last ack"
    summary.append(
        f"viewer stalled for good: {len(unread)} frames past its last ack; closed {code} {after:.1f} s "
        f"after it stopped reading, reason {reason!r}"
    )

    total = time.monotonic() - started
    summary.insert(
        0,
        f"{len(everyone)} sockets on 2 daphnes, 2 workers; setup {setup_s:.1f} s, total {total:.1f} s; "
        f"worker killed {killed_at - started:.1f} s in, lease taken over {adopted_at[0] - killed_at:.1f} s later, "
        f"frames back on every socket {recovered_at - killed_at:.1f} s later",
    )
    print("\nstress: " + "\n stress: ".join(summary))
