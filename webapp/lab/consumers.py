"""The simulation WebSocket: a thin consumer.

It authenticates (owner capability in the session, or a share token for
read-only viewers), joins the process's frame hub, validates what the browser
sends and hands it to services. Frames do not pass through the channel layer
to this consumer: the hub calls ``push()`` with the bytes the worker built, which
is written at once while fewer than FRAME_WINDOW frames are unacknowledged and
otherwise held (only the newest) until the browser acknowledges. So a viewer
that stops reading holds at most FRAME_WINDOW frames in the server, and is
disconnected with a reason after STUCK_AFTER_S.

The browser acknowledges in batches (at least every ACK_MS, or once half the
window is used; the hello message tells it both), so a viewer costs the server
a few incoming messages a second, not one per frame.

Rules for the frame path are in ``hub.py``: nothing in ``push()``, ``sweep()``
or ``_ack()`` touches the database or awaits anything that can wait. Messages
from the browser and from the channel layer skip Channels' per-message
database clean-up for the same reason (see ``dispatch``).
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from typing import Any
from urllib.parse import parse_qs

from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from . import services
from .hub import get_hub
from .selectors import OWNER, sim_role_async

log = logging.getLogger("lab.ws")

CLOSE_NOT_ALLOWED = 4001
CLOSE_NOT_FOUND = 4004
CLOSE_TOO_SLOW = 4008
CLOSE_FLOOD = 4029
CONTROL_ACTIONS = ("pause", "resume", "step", "speed", "reset")
COMMAND_RETRY_S = 3.0
COMMAND_TRIES = 3


class SimConsumer(AsyncWebsocketConsumer):
    async def dispatch(self, message: dict[str, Any]) -> None:
        # Channels closes stale database connections before every handler (a
        # thread hop per message). Our handlers after connect never touch the
        # database, so we call them directly.
        handler = getattr(self, message["type"].replace(".", "_"), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def connect(self) -> None:
        lab = settings.LAB
        self.sim_id: str = self.scope["url_route"]["kwargs"]["sim_id"]
        query = parse_qs(self.scope.get("query_string", b"").decode())
        watch = (query.get("watch") or [None])[0]
        self.role = await sim_role_async(session=self.scope.get("session"), sim_id=self.sim_id, watch=watch)
        self.joined = False
        await self.accept()
        if self.role is None:
            await self.close_with_reason(CLOSE_NOT_FOUND, "No such simulation, or this link does not grant access to it")
            return
        self.window = lab["FRAME_WINDOW"]
        self.stuck_after = lab["STUCK_AFTER_S"]
        self.max_bytes = lab["MAX_MESSAGE_BYTES"]
        self.rate, self.burst = lab["RATE_PER_SECOND"], lab["RATE_BURST"]
        self.tokens, self.tokens_at, self.refused = self.burst, time.monotonic(), 0
        self.held: tuple[int, bytes] | None = None  # the newest frame the window had no room for
        self.unacked: deque[tuple[int, float]] = deque()  # (seq, sent at)
        self.pending: dict[str, dict[str, Any]] = {}  # rid -> message awaiting a worker reply
        self.next_rid = 0
        limits = {"max_message_bytes": self.max_bytes, "frame_window": self.window, "ack_ms": lab["ACK_MS"]}
        await self.send_json({"type": "hello", "sim": self.sim_id, "role": self.role, "limits": limits})
        await get_hub().join(self.sim_id, self)
        self.joined = True
        # Ask for the simulation to run, and hear back if no worker can take it.
        await self._forward({"type": "sim.open"}, client_id=None)

    async def disconnect(self, code: int) -> None:
        if getattr(self, "joined", False):
            self.joined = False
            await get_hub().leave(self.sim_id, self)

    # -- frames out ------------------------------------------------------------
    async def push(self, seq: int, frame: bytes, now: float) -> None:
        """Called by the hub for every frame (a binary message, docs/FRAMES.md).
        Send it if the window has room, else hold it as the only pending frame:
        a newer one replaces it (conflation)."""
        if len(self.unacked) >= self.window:
            self.held = (seq, frame)
            return
        self.held = None
        self.unacked.append((seq, now))
        await self.send(bytes_data=frame)

    async def sweep(self, now: float) -> None:
        """Once a second, from the hub: drop a viewer stuck past the limit, resend
        commands a dead worker never answered."""
        if self.unacked and now - self.unacked[0][1] > self.stuck_after:
            self.joined = False
            await get_hub().leave(self.sim_id, self)
            await self.close_with_reason(CLOSE_TOO_SLOW, f"Too slow: no frame acknowledged for {self.stuck_after:.0f} s; reconnecting gets the newest state")
            return
        if self.pending:
            await self._retry_pending(now)

    # -- messages in --------------------------------------------------------------
    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if not self._take_token():
            self.refused += 1
            if self.refused > self.burst:
                await self.close_with_reason(CLOSE_FLOOD, "Too many messages: the connection was closed; it reconnects by itself")
            elif self.refused == 1:
                await self.error(None, f"Slow down: at most {self.rate:.0f} messages a second. Some were ignored.")
            return
        self.refused = 0
        raw = text_data if text_data is not None else bytes_data or b""
        if len(raw) > self.max_bytes:
            await self.error(None, f"That message is too large ({len(raw)} bytes; the limit is {self.max_bytes}).")
            return
        try:
            message = json.loads(raw)
        except ValueError:
            await self.error(None, "That message is not valid JSON.")
            return
        if not isinstance(message, dict):
            await self.error(None, "A message must be a JSON object with a 'type'.")
            return
        kind = message.get("type")
        if kind == "ack":
            await self._ack(message.get("seq"))
            return
        client_id = message.get("id")
        if client_id is not None and (not isinstance(client_id, int) or isinstance(client_id, bool)):
            await self.error(None, "'id' must be a whole number.")
            return
        if kind not in ("command", "control"):
            await self.error(client_id, f"Unknown message type {kind!r}; expected command, control or ack.")
            return
        if self.role != OWNER:
            await self.error(client_id, "You are watching read-only through a share link; only the owner can change this simulation.")
            return
        if kind == "command":
            problem = _check_command(message.get("cmd"))
            body = {"type": "sim.command", "cmd": message.get("cmd")}
        else:
            problem, body = _check_control(message)
        if problem:
            await self.error(client_id, problem)
            return
        await self._forward(body, client_id=client_id)

    async def _forward(self, body: dict[str, Any], *, client_id: int | None) -> None:
        """Send to the simulation's worker and remember it until the worker answers."""
        self.next_rid += 1
        rid = f"{self.channel_name}:{self.next_rid}"
        outgoing = {**body, "rid": rid, "reply_to": self.channel_name}
        self.pending[rid] = {"message": outgoing, "client_id": client_id, "sent": time.monotonic(), "tries": 1}
        await services.sim_send(self.sim_id, outgoing)

    async def _ack(self, seq: Any) -> None:
        """The browser has drawn every frame up to ``seq``: free the window, and
        send the held frame if there is one."""
        if not isinstance(seq, int) or isinstance(seq, bool):
            return
        unacked = self.unacked
        while unacked and unacked[0][0] <= seq:
            unacked.popleft()
        if self.held is not None and len(unacked) < self.window:
            await self.push(*self.held, time.monotonic())

    def _take_token(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.tokens_at) * self.rate)
        self.tokens_at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True

    async def _retry_pending(self, now: float) -> None:
        """A command whose worker died before answering goes again, to whoever runs the sim now.
        Workers remember request ids, so a command that did land is not applied twice."""
        for rid, item in list(self.pending.items()):
            if now - item["sent"] < COMMAND_RETRY_S:
                continue
            if item["tries"] >= COMMAND_TRIES:
                del self.pending[rid]
                await self.error(item["client_id"], "The simulation did not answer; it may be restarting. Try again.")
                continue
            item["tries"] += 1
            item["sent"] = now
            await services.sim_send(self.sim_id, item["message"])

    # -- replies from workers -----------------------------------------------------------
    async def sim_reply(self, event: dict[str, Any]) -> None:
        item = self.pending.pop(event.get("rid"), None)
        if item is None:
            return
        if event.get("ok"):
            if item["message"]["type"] != "sim.open":
                reply = {"type": "reply", "id": item["client_id"], "ok": True, "result": event.get("result")}
                if event.get("shown_by") is not None:
                    reply["shown_by"] = event["shown_by"]
                await self.send_json(reply)
        else:
            await self.error(item["client_id"], event.get("error") or "The command was refused.")

    async def close_with_reason(self, code: int, reason: str) -> None:
        """Close, and say why. daphne sends the close code but drops the reason
        (django/daphne#374), so the reason also goes first as a message."""
        await self.send_json({"type": "closing", "code": code, "reason": reason})
        await self.close(code=code, reason=reason)

    async def error(self, client_id: int | None, message: str) -> None:
        await self.send_json({"type": "error", "id": client_id, "message": message})

    async def send_json(self, content: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(content, separators=(",", ":")))


def _check_command(cmd: Any) -> str:
    """Cheap shape checks; the engine validates the rest and explains."""
    if not isinstance(cmd, dict):
        return "A command needs 'cmd', a JSON object such as {\"op\": \"crash\", \"node\": \"n1\"}."
    if not isinstance(cmd.get("op"), str):
        return "A command needs an 'op', such as \"crash\"."
    return ""


def _check_control(message: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    action = message.get("action")
    if action not in CONTROL_ACTIONS:
        return f"Unknown control {action!r}; use one of {', '.join(CONTROL_ACTIONS)}.", {}
    body: dict[str, Any] = {"type": "sim.control", "action": action}
    if action == "speed":
        speed = message.get("speed")
        if isinstance(speed, bool) or not isinstance(speed, (int, float)) or not 0.001 <= speed <= 1:
            return "Speed must be a number from 0.001 (1/1000 of real time) to 1 (real time).", {}
        body["speed"] = float(speed)
    if action == "reset":
        seed = message.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63):
            return "The seed must be a whole number from 0 to 2^63-1, or empty for a new random one.", {}
        body["seed"] = seed
    return "", body
