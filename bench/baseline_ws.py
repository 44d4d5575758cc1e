"""The floor for fan-out: a bare `websockets` server broadcasting frames.

    python bench/baseline_ws.py PORT PAYLOAD_BYTES HZ

It sends every connected client the same pre-built frame HZ times a second
(with a fresh "sent_at"), and echoes anything a client sends that is not an
ack (for round-trip baselines). No Django, no Channels, no Redis.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import websockets


async def main(port: int, payload_bytes: int, hz: float) -> None:
    clients: set = set()
    padding = "x" * max(0, payload_bytes - 120)

    async def handler(ws) -> None:
        clients.add(ws)
        try:
            async for message in ws:
                if '"ack"' not in message:
                    await ws.send(message)
        finally:
            clients.discard(ws)

    async def broadcast() -> None:
        seq = 0
        interval = 1.0 / hz
        next_at = time.monotonic()
        while True:
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            seq += 1
            text = json.dumps({"type": "frame", "seq": seq, "sent_at": time.time() * 1000.0, "pad": padding}, separators=(",", ":"))
            websockets.broadcast(clients, text)

    async with websockets.serve(handler, "127.0.0.1", port, max_queue=None):
        await broadcast()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])))
