"""Clients of the replicated key-value store.

A client may have many requests outstanding. Each request carries (client, seq)
so the state machine applies it once however often it is retried. A client
finds the leader through redirects and retries on a timeout, each time at
another node. Its history is what the linearizability checker reads.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from ..kernel.network import Message, Network
from ..kernel.sim import Simulator, Timer


class RaftClient:
    def __init__(
        self,
        client_id: str,
        *,
        sim: Simulator,
        net: Network,
        rng: random.Random,
        nodes: list[str],
        timeout_ms: float,
        retry_ms: float,
        on_complete: Callable[[dict[str, Any], Message], None],
        on_redirect: Callable[[dict[str, Any], str, str | None], None],
    ) -> None:
        self.id = client_id
        self.sim, self.net, self.rng = sim, net, rng
        self.nodes = nodes
        self.timeout_ms, self.retry_ms = timeout_ms, retry_ms
        self.on_complete, self.on_redirect = on_complete, on_redirect
        self.leader_hint: str | None = None
        self.next_seq = 0
        self.outstanding: dict[int, dict[str, Any]] = {}  # seq -> history record
        self._timers: dict[int, Timer] = {}
        net.attach(client_id, self.on_message)

    def submit(self, record: dict[str, Any], via: str | None) -> None:
        self.next_seq += 1
        record["seq"] = self.next_seq
        self.outstanding[self.next_seq] = record
        target = via or self.leader_hint or self.rng.choice(self.nodes)
        self._send(record, target)

    def _send(self, record: dict[str, Any], target: str) -> None:
        seq = record["seq"]
        record["node"] = target
        record["attempts"] += 1
        body = {"client": self.id, "seq": seq, "op": record["op"], "key": record["key"]}
        if record["op"] == "put":
            body["value"] = record["value"]
        self.net.send(self.id, target, "ClientRequest", body)
        self._arm(seq, self.timeout_ms, None)

    def _arm(self, seq: int, delay_ms: float, target: str | None) -> None:
        old = self._timers.get(seq)
        if old is not None:
            old.cancel()
        self._timers[seq] = self.sim.schedule(delay_ms, self._retry, seq, target)

    def _retry(self, seq: int, target: str | None) -> None:
        record = self.outstanding.get(seq)
        if record is None:
            return
        if target is None:  # timed out: try another node
            others = [n for n in self.nodes if n != record["node"]]
            target = self.rng.choice(others)
            self.leader_hint = None
        self._send(record, target)

    def on_message(self, msg: Message) -> None:
        body = msg.body
        seq = body["seq"]
        record = self.outstanding.get(seq)
        if record is None:
            return  # a late or duplicate reply for a finished request
        if body["ok"]:
            del self.outstanding[seq]
            self._timers.pop(seq).cancel()
            self.leader_hint = body["leader"]
            self.on_complete(record, msg)
            return
        hint = body["leader"]
        self.on_redirect(record, msg.src, hint)
        if hint is not None and hint != msg.src:
            self.leader_hint = hint
            self._arm(seq, 0.0, hint)  # go straight to the leader it named
        else:
            # Nobody knows a leader yet (an election is on): wait a little, then try elsewhere.
            self.leader_hint = None
            others = [n for n in self.nodes if n != msg.src]
            self._arm(seq, self.retry_ms, self.rng.choice(others))
