"""Clients of the sharded store: smart clients that know the cluster map.

A client sends each request to a coordinator: the first replica in the key's
preference list that it does not suspect (a node suspected after it left a
request unanswered; the suspicion lasts ``SUSPECT_MS``, since a late answer
shows a node alive but not fast), or the node the learner named with ``via``. With no
answer within ``timeout_ms`` it suspects that node and tries the next replica,
up to ``max_attempts`` times. A coordinator's explicit answer, success or
failure, is final. The engine turns answers into history records.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..kernel.network import Message, Network
from ..kernel.sim import Simulator, Timer
from .cluster_map import ClusterMap

SUSPECT_MS = 2_000.0


class ShardClient:
    def __init__(
        self,
        client_id: str,
        *,
        sim: Simulator,
        net: Network,
        cmap: ClusterMap,
        timeout_ms: float,
        max_attempts: int,
        on_reply: Callable[[dict[str, Any], Message], None],
        on_give_up: Callable[[dict[str, Any]], None],
        on_retry: Callable[[dict[str, Any], str, str], None] | None = None,
    ) -> None:
        self.id = client_id
        self.sim, self.net, self.map = sim, net, cmap
        self.timeout_ms = timeout_ms
        self.max_attempts = max_attempts
        self.on_reply, self.on_give_up, self.on_retry = on_reply, on_give_up, on_retry
        self.next_seq = 0
        self.outstanding: dict[int, dict[str, Any]] = {}  # seq -> record
        self._timers: dict[int, Timer] = {}
        self.suspect_until: dict[str, float] = {}
        net.attach(client_id, self.on_message)

    def submit(self, record: dict[str, Any], via: str | None = None) -> None:
        self.next_seq += 1
        record["seq"] = self.next_seq
        self.outstanding[self.next_seq] = record
        self._send(record, via or self.choose(record["key"], ()))

    def choose(self, key: str, exclude: tuple[str, ...]) -> str:
        serving = self.map.serving(key)
        now = self.sim.now
        for node in serving:
            if node not in exclude and self.suspect_until.get(node, -1.0) <= now:
                return node
        for node in serving:
            if node not in exclude:
                return node
        return serving[0]

    def _send(self, record: dict[str, Any], target: str) -> None:
        seq = record["seq"]
        record["node"] = target
        record["attempts"] += 1
        body = {"client": self.id, "seq": seq, "key": record["key"]}
        if record["op"] == "put":
            body["value"] = record["value"]
            self.net.send(self.id, target, "Put", body)
        else:
            self.net.send(self.id, target, "Get", body)
        self._timers[seq] = self.sim.schedule(self.timeout_ms, self._timeout, seq)

    def _timeout(self, seq: int) -> None:
        record = self.outstanding.get(seq)
        if record is None:
            return
        node = record["node"]
        self.suspect_until[node] = self.sim.now + SUSPECT_MS
        record["unanswered"] = True  # a put might have been written: its outcome is unknown
        if record["attempts"] < self.max_attempts and not record.get("via"):
            target = self.choose(record["key"], (node,))
            if self.on_retry is not None:
                self.on_retry(record, node, target)
            self._send(record, target)
            return
        del self.outstanding[seq]
        del self._timers[seq]
        self.on_give_up(record)

    def on_message(self, msg: Message) -> None:
        seq = msg.body["seq"]
        record = self.outstanding.pop(seq, None)
        if record is None:
            return  # a late answer to a request already given up on
        self._timers.pop(seq).cancel()
        self.on_reply(record, msg)
