"""The simulation WebSocket, through WebsocketCommunicator, against a real Redis
and a real engine worker process."""

from __future__ import annotations

import asyncio
import json

import pytest
from channels.testing import WebsocketCommunicator

from conftest import make_session
from webapp.asgi import application
from webapp.lab import services
from webapp.runtime.driver import read_message

pytestmark = pytest.mark.integration
ORIGIN = (b"origin", b"http://localhost")


@pytest.fixture
def owned_sim(clean_redis, start_worker):
    start_worker()
    session, _ = make_session()
    sim_id = services.sim_create(session=session, kind="raft", seed=11)
    session.save()
    from django.conf import settings

    cookie = f"{settings.SESSION_COOKIE_NAME}={session.session_key}".encode()
    meta = clean_redis.hgetall(f"lab:sim:{sim_id}")
    return {"sim_id": sim_id, "cookie": cookie, "share": meta["share"]}


def communicator(sim_id: str, cookie: bytes | None = None, query: str = "", origin=ORIGIN) -> WebsocketCommunicator:
    headers = [origin] if origin else []
    if cookie:
        headers.append((b"cookie", cookie))
    return WebsocketCommunicator(application, f"/ws/sim/{sim_id}/{query}", headers=headers)


async def receive(comm: WebsocketCommunicator, kind: str, timeout: float = 10.0, ack: bool = True) -> dict:
    """The next message of this type, acknowledging frames on the way."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        left = deadline - asyncio.get_running_loop().time()
        assert left > 0, f"no {kind} message within {timeout} s"
        message = read_message(await comm.receive_from(timeout=left))
        if message["type"] == "frame" and ack:
            await comm.send_to(text_data=json.dumps({"type": "ack", "seq": message["seq"]}))
        if message["type"] == kind:
            return message


async def send(comm, **message) -> None:
    await comm.send_to(text_data=json.dumps(message))


async def test_owner_gets_frames_and_commands_change_the_simulation(owned_sim):
    comm = communicator(owned_sim["sim_id"], owned_sim["cookie"])
    connected, _ = await comm.connect(timeout=5)
    assert connected
    hello = await receive(comm, "hello")
    assert hello["role"] == "owner"
    await send(comm, type="control", id=1, action="speed", speed=1)
    assert (await receive(comm, "reply"))["id"] == 1
    await send(comm, type="command", id=2, cmd={"op": "crash", "node": "n2"})
    reply = await receive(comm, "reply")
    assert isinstance(reply.pop("shown_by"), int)
    assert reply == {"type": "reply", "id": 2, "ok": True, "result": None}
    for _ in range(50):
        frame = await receive(comm, "frame")
        n2 = next(n for n in frame["view"]["nodes"] if n["id"] == "n2")
        if not n2["alive"]:
            break
    else:
        pytest.fail("no frame showed n2 down")
    assert frame["speed"] == 1 and frame["sim"] == owned_sim["sim_id"]
    await comm.disconnect()


async def test_bad_input_gets_an_error_and_the_simulation_keeps_running(owned_sim):
    comm = communicator(owned_sim["sim_id"], owned_sim["cookie"])
    await comm.connect(timeout=5)
    await send(comm, type="control", id=1, action="speed", speed=1)
    await receive(comm, "reply")
    bad = [
        ({"type": "command", "id": 2, "cmd": {"op": "crash", "node": "n42"}}, "unknown node"),
        ({"type": "command", "id": 3, "cmd": {"op": "explode"}}, "unknown op"),
        ({"type": "command", "id": 4, "cmd": {"op": "network", "drop_rate": 7}}, "between 0 and 1"),
        ({"type": "command", "id": 5, "cmd": "crash n1"}, "JSON object"),
        ({"type": "control", "id": 6, "action": "speed", "speed": 50}, "Speed must be"),
        ({"type": "control", "id": 7, "action": "warp"}, "Unknown control"),
        ({"type": "dance", "id": 8}, "Unknown message type"),
    ]
    for message, expected in bad:
        await comm.send_to(text_data=json.dumps(message))
        error = await receive(comm, "error")
        assert error["id"] == message["id"] and expected in error["message"], error
    await comm.send_to(text_data="{not json")
    assert "not valid JSON" in (await receive(comm, "error"))["message"]
    await comm.send_to(text_data=json.dumps({"type": "command", "id": 9, "cmd": {"op": "put", "key": "k", "value": "v" * 5000}}))
    assert "too large" in (await receive(comm, "error"))["message"]
    first = await receive(comm, "frame")
    later = await receive(comm, "frame")
    for _ in range(10):
        later = await receive(comm, "frame")
    assert later["now"] > first["now"]  # time still moves
    await send(comm, type="command", id=10, cmd={"op": "put", "key": "k", "value": 1})
    assert (await receive(comm, "reply"))["ok"]
    await comm.disconnect()


async def test_a_share_link_is_read_only_and_strangers_are_refused(owned_sim):
    viewer = communicator(owned_sim["sim_id"], query=f"?watch={owned_sim['share']}")
    assert (await viewer.connect(timeout=5))[0]
    assert (await receive(viewer, "hello"))["role"] == "viewer"
    await receive(viewer, "frame")
    await send(viewer, type="command", id=1, cmd={"op": "crash", "node": "n1"})
    assert "read-only" in (await receive(viewer, "error"))["message"]
    await viewer.disconnect()

    stranger = communicator(owned_sim["sim_id"], query="?watch=guess")
    await stranger.connect(timeout=5)
    told, closed = await closing(stranger)
    assert closed["code"] == 4004 and told["code"] == 4004 and "No such simulation" in told["reason"]

    _, other_cookie = make_session(sims={owned_sim["sim_id"]: {"kind": "raft", "cap": "forged"}})
    forger = communicator(owned_sim["sim_id"], other_cookie.encode())
    await forger.connect(timeout=5)
    assert (await closing(forger))[1]["code"] == 4004


async def closing(comm: WebsocketCommunicator) -> tuple[dict, dict]:
    """(the "closing" message that says why, the close) at the end of a connection."""
    told = None
    while True:
        output = await comm.receive_output(timeout=5)
        if output["type"] == "websocket.close":
            return told, output
        message = read_message(output.get("bytes") or output["text"])
        if message["type"] == "closing":
            told = message


async def test_cross_site_origin_is_rejected(owned_sim):
    comm = communicator(owned_sim["sim_id"], owned_sim["cookie"], origin=(b"origin", b"http://evil.example"))
    connected, _ = await comm.connect(timeout=5)
    assert not connected


async def test_a_flood_is_refused_then_disconnected(owned_sim):
    comm = communicator(owned_sim["sim_id"], owned_sim["cookie"])
    await comm.connect(timeout=5)
    for i in range(400):
        await comm.send_to(text_data=json.dumps({"type": "control", "id": i, "action": "pause"}))
    saw_slow_down = False
    while True:
        output = await comm.receive_output(timeout=10)
        if output["type"] == "websocket.close":
            assert output["code"] == 4029
            break
        message = read_message(output.get("bytes") or output["text"])
        saw_slow_down |= message["type"] == "error" and "Slow down" in message["message"]
    assert saw_slow_down


async def test_a_viewer_that_stops_reading_holds_a_bounded_window_then_is_dropped(owned_sim, settings):
    settings.LAB = {**settings.LAB, "STUCK_AFTER_S": 1.5, "FRAME_WINDOW": 2}
    comm = communicator(owned_sim["sim_id"], owned_sim["cookie"])
    await comm.connect(timeout=5)
    await send(comm, type="control", id=1, action="speed", speed=1)
    frames = 0
    while True:
        output = await comm.receive_output(timeout=10)
        if output["type"] == "websocket.close":
            break
        message = read_message(output.get("bytes") or output["text"])
        frames += message["type"] == "frame"  # never acknowledged
        if message["type"] == "closing":
            told = message
    assert output["code"] == 4008 and "Too slow" in output["reason"]
    assert told["code"] == 4008 and told["reason"] == output["reason"]  # daphne drops the close reason
    assert frames == 2  # the window: at 20 frames a second for 1.5 s, only 2 were ever sent


async def test_the_worker_keeps_its_lease_while_it_runs_the_simulation(owned_sim, clean_redis):
    from webapp.runtime import keys

    comm = communicator(owned_sim["sim_id"], owned_sim["cookie"])
    await comm.connect(timeout=5)
    await receive(comm, "frame")
    owner = clean_redis.get(keys.lease_key(owned_sim["sim_id"]))
    assert owner
    deadline = asyncio.get_running_loop().time() + (keys.LEASE_MS / 1000) * 1.6
    while asyncio.get_running_loop().time() < deadline:
        await receive(comm, "frame")
    assert clean_redis.get(keys.lease_key(owned_sim["sim_id"])) == owner  # renewed, not lost or taken over
    assert clean_redis.pttl(keys.lease_key(owned_sim["sim_id"])) > 0
    meta = clean_redis.hgetall(keys.meta_key(owned_sim["sim_id"]))
    assert float(meta["now_ms"]) > 0  # checkpointed while it runs
    await comm.disconnect()


async def test_a_full_worker_gives_the_learner_a_clear_message(clean_redis, start_worker):
    start_worker(LAB_MAX_SIMS_PER_WORKER="1")
    sims = []
    for seed in (1, 2):
        session, _ = make_session()
        sim_id = services.sim_create(session=session, kind="raft", seed=seed)
        session.save()
        from django.conf import settings

        sims.append((sim_id, f"{settings.SESSION_COOKIE_NAME}={session.session_key}".encode()))
    first = communicator(*sims[0])
    await first.connect(timeout=5)
    await receive(first, "frame")
    second = communicator(*sims[1])
    await second.connect(timeout=5)
    error = await receive(second, "error", timeout=15)
    assert "every engine worker is full" in error["message"]
    await first.disconnect()
    await second.disconnect()
