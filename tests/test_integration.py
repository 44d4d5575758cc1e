"""End to end over real processes: daphne, engine workers and Redis, through a
real WebSocket client. A command goes in and a frame comes out; bad input gets
an error; a worker killed with SIGKILL is replaced and the simulation comes back
in the same state, replayed from its command log."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
import websockets

import patterns
from webapp.runtime import keys
from webapp.runtime.launch import open_new_sim
from webapp.runtime.driver import read_message, trim_view

pytestmark = pytest.mark.integration


class Client:
    def __init__(self, ws):
        self.ws = ws
        self.next_id = 0
        self.last_frame: dict | None = None

    async def next(self, kind: str, timeout: float = 15.0, want_id: int | None = None) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"no {kind} within {timeout} s"
            message = read_message(await asyncio.wait_for(self.ws.recv(), left))
            if message["type"] == "frame":
                self.last_frame = message
                await self.ws.send(json.dumps({"type": "ack", "seq": message["seq"]}))
            if message["type"] == kind and (want_id is None or message.get("id") == want_id):
                return message

    async def request(self, kind: str, **fields) -> dict:
        self.next_id += 1
        await self.ws.send(json.dumps({"type": kind, "id": self.next_id, **fields}))
        while True:
            message = await self.next_any_reply()
            if message.get("id") == self.next_id:
                return message

    async def next_any_reply(self, timeout: float = 20.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            assert left > 0, "no reply"
            message = read_message(await asyncio.wait_for(self.ws.recv(), left))
            if message["type"] == "frame":
                self.last_frame = message
                await self.ws.send(json.dumps({"type": "ack", "seq": message["seq"]}))
            elif message["type"] in ("reply", "error"):
                return message


def connect(server, sim_id: str, cookie: str):
    ws_url = server.url.replace("http://", "ws://") + f"/ws/sim/{sim_id}/"
    return websockets.connect(ws_url, additional_headers={"Cookie": cookie, "Origin": server.url})


async def test_command_in_frame_out_and_bad_input(clean_redis, start_worker, start_daphne):
    start_worker()
    server = start_daphne()
    sim_id, cookie = open_new_sim(server.url)
    async with connect(server, sim_id, cookie) as ws:
        client = Client(ws)
        assert (await client.next("hello"))["role"] == "owner"
        assert (await client.request("control", action="speed", speed=1))["ok"]
        first = await client.next("frame")
        reply = await client.request("command", cmd={"op": "timeout", "node": "n3"})
        shown_by = reply.pop("shown_by")
        assert reply == {"type": "reply", "id": client.next_id, "ok": True, "result": None}
        assert isinstance(shown_by, int) and shown_by > first["seq"]
        # The reply names the first frame that shows the command: every frame from
        # there on narrates it, whichever of reply and frame came first.
        frame = client.last_frame
        while frame["seq"] < shown_by:
            frame = await client.next("frame")
        assert any("n3 was told to time out" in e["text"] for e in frame["view"]["events"]), frame["view"]["events"]
        error = await client.request("command", cmd={"op": "restart", "node": "n1"})
        assert error["type"] == "error" and "already up" in error["message"]
        later = await client.next("frame")
        assert later["now"] > first["now"] and later["seq"] > first["seq"]


async def test_a_killed_worker_is_replaced_and_the_state_replayed(clean_redis, start_worker, start_daphne):
    workers = [start_worker(), start_worker()]
    server = start_daphne()
    sim_id, cookie = open_new_sim(server.url)
    async with connect(server, sim_id, cookie) as ws:
        client = Client(ws)
        await client.next("hello")
        assert (await client.request("control", action="speed", speed=1))["ok"]
        await client.next("frame")
        for cmd in (
            {"op": "put", "key": "x", "value": 1},
            {"op": "partition", "groups": [["n1", "n2"], ["n3", "n4", "n5"]]},
            {"op": "put", "key": "y", "value": 2, "client": "c2"},
            {"op": "network", "drop_rate": 0.1},
            {"op": "heal"},
        ):
            assert (await client.request("command", cmd=cmd))["ok"]
            await asyncio.sleep(0.2)
        assert (await client.request("control", action="pause"))["ok"]
        await asyncio.sleep(0.3)
        paused = await client.next("frame")
        before = paused["view"]

        owner = clean_redis.get(keys.lease_key(sim_id))
        victim = next(w for w in workers if str(w.proc.pid) == clean_redis.hget("lab:workers", owner))
        victim.kill()
        # A command sent while nobody runs the simulation is not lost: the page resends it.
        reply = await client.request("command", cmd={"op": "crash", "node": "n4"})
        assert reply["ok"], reply
        new_owner = clean_redis.get(keys.lease_key(sim_id))
        assert new_owner and new_owner != owner
        for _ in range(100):
            frame = await client.next("frame")
            if frame["seq"] > paused["seq"] and not next(n for n in frame["view"]["nodes"] if n["id"] == "n4")["alive"]:
                break
        recovered = frame["view"]

    # The recovered run is the replay of the log: check it against an independent replay.
    meta = clean_redis.hgetall(keys.meta_key(sim_id))
    log = [json.loads(item) for item in clean_redis.lrange(keys.log_key(sim_id), 0, -1)]
    assert [item["cmd"]["op"] for item in log] == ["put", "partition", "put", "network", "heal", "crash"]
    replayed = patterns.replay(
        {"kind": "raft", "seed": int(meta["seed"]), "params": json.loads(meta["params"]), "log": log},
        until_ms=frame["now"],
    )
    assert json.dumps(trim_view(replayed.view()), sort_keys=True) == json.dumps(recovered, sort_keys=True)
    # And nothing changed between the moment of the kill and the crash command.
    before_replay = patterns.replay(
        {"kind": "raft", "seed": int(meta["seed"]), "params": json.loads(meta["params"]), "log": log[:-1]},
        until_ms=paused["now"],
    )
    assert json.dumps(trim_view(before_replay.view()), sort_keys=True) == json.dumps(before, sort_keys=True)


async def test_a_worker_that_joins_later_takes_the_new_simulations(clean_redis, start_worker, start_daphne):
    """Whichever worker takes an open request from the shared channel passes it on
    to a live worker running clearly fewer simulations (worker.BALANCE_SLACK), so
    the load evens out instead of staying where it started."""
    from webapp.runtime.worker import BALANCE_SLACK

    first = start_worker()
    server = start_daphne()
    sockets = []

    async def open_sims(n: int) -> list[str]:
        opened = []
        for _ in range(n):
            sim_id, cookie = open_new_sim(server.url)
            sockets.append(await connect(server, sim_id, cookie).__aenter__())
            opened.append(sim_id)
        deadline = time.monotonic() + 20
        while not all(clean_redis.exists(keys.lease_key(sim_id)) for sim_id in opened):
            assert time.monotonic() < deadline, "not every simulation was adopted within 20 s"
            await asyncio.sleep(0.2)
        return opened

    try:
        sims = await open_sims(16)
        second = start_worker()
        # (it reports its load, none, as it starts)
        sims += await open_sims(16)
        pids = dict(clean_redis.hgetall("lab:workers"))
        owners = [pids[clean_redis.get(keys.lease_key(sim_id))] for sim_id in sims]
        counts = [owners.count(str(w.proc.pid)) for w in (first, second)]
        # Reports race with adoptions, so allow twice the slack; without balancing: about 24 and 8.
        assert abs(counts[0] - counts[1]) <= 2 * BALANCE_SLACK, f"simulations per worker: {counts}"
    finally:
        for ws in sockets:
            await ws.close()
