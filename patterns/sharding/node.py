"""One storage node of the sharded, replicated key-value store (Dynamo style).

Every node plays three parts, all through its ``Host``:

- **Coordinator** of client requests. A get asks the key's N replicas and
  answers with the highest version among the first R replies, then repairs
  the replicas that answered with older copies (read repair). A put runs in
  two phases, as in ABD: it asks R replicas for the newest version they hold,
  picks the next one, ``(counter + 1, coordinator)``, then writes to the N
  replicas and answers after W acknowledgements. A timeout in the first phase
  fails the put for certain (nothing was written); in the second it leaves the
  outcome unknown.
- **Replica**: it stores ``key -> (value, version)`` on its disk and keeps
  the higher version whenever two meet. It accepts a write only for a key it
  serves or is receiving (per the cluster map), so a node that gave a key
  away cannot acknowledge a write the new owners will never see.
- **Mover** of data in the background, batched, with retries:
  hints (a coordinator keeps each write it started until every replica has
  acknowledged it: hinted handoff kept at the coordinator, as in Cassandra),
  copies (a leaving replica sends its copy to the node replacing it), and
  drops (after the key switched, a leaving replica pushes its copy to every
  new replica and deletes it only when all of them hold at least that version).

The node reads the shared ``ClusterMap`` and never changes it; it reports
facts (``copied``, ``dropped``, ``hints_done``, ``read_repair``) with
``host.emit``, and the engine updates the map.

Versions are ``(counter, coordinator)`` tuples compared as tuples; (0, "") is
"no value".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from ..kernel.cluster import ClusterNode, Host
from ..kernel.network import Message
from .cluster_map import ClusterMap

Version = tuple[int, str]
ZERO: Version = (0, "")


class ShardDisk:
    """What survives a crash: the data and the hints still to deliver."""

    __slots__ = ("store", "hints", "writes")

    def __init__(self) -> None:
        self.store: dict[str, tuple[Any, Version]] = {}
        self.hints: dict[str, tuple[Any, Version]] = {}
        self.writes = 0  # how many times the store changed (lets the checker skip unchanged states)


class NodeConfig(NamedTuple):
    request_timeout_ms: float  # a coordinator waits this long for each phase's quorum
    retry_ms: float  # resend a background batch item not acknowledged within this
    batch: int  # keys per background batch
    tick_ms: float  # pause between background batches to one node


class Request:
    __slots__ = (
        "rid", "op", "key", "client", "seq", "value", "serving", "need", "replies",
        "phase", "version", "acks", "answered",
    )

    def __init__(self, rid: int, op: str, key: str, client: str, seq: int, serving: tuple[str, ...]) -> None:
        self.rid = rid
        self.op = op
        self.key = key
        self.client = client
        self.seq = seq
        self.value: Any = None
        self.serving = serving
        self.need = 0
        self.replies: dict[str, tuple[Any, Version] | None] = {}  # node -> its copy, in arrival order
        self.phase = "read" if op == "get" else "query"
        self.version: Version = ZERO
        self.acks: list[str] = []
        self.answered = False


def _version(copy: tuple[Any, Version] | None) -> Version:
    return ZERO if copy is None else copy[1]


class ShardNode(ClusterNode):
    def __init__(self, host: Host, config: NodeConfig, cmap: ClusterMap) -> None:
        super().__init__(host)
        self.config = config
        self.map = cmap
        self.disk = ShardDisk()
        self.next_rid = 0  # a boot counter: request ids never repeat, even across crashes
        self._reset_volatile()

    def _reset_volatile(self) -> None:
        self.requests: dict[int, Request] = {}
        self.acked: dict[str, dict[str, Version]] = {}  # key -> node -> the version it acknowledged holding
        self.sent: dict[str, dict[str, float]] = {}  # key -> node -> when a background item last went out

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        self._reset_volatile()
        self.sweep()
        self.kick()

    def on_crash(self) -> None:
        self._reset_volatile()

    def on_lose_disk(self) -> None:
        self.disk = ShardDisk()

    # -- orders from the control plane (called by the engine) ------------------------------
    def on_map_change(self) -> None:
        """The placement changed: drop stray copies, start moving what the map asks for.

        What this node knew about other nodes' copies is void: a node that held a
        key may have let go of it since (a target dropped from the plan sweeps its
        copy), and may be asked to take it again.
        """
        self.acked = {}
        self.sent = {}
        self.sweep()
        self.kick()

    def import_item(self, key: str, value: Any, version: Version) -> None:
        """A bulk load writes straight to the disk, as restoring a backup would."""
        self._store(key, value, version)

    def sweep(self) -> None:
        """Delete copies this node neither serves, receives nor still owes to someone."""
        drops = self.map.drop_tasks_of(self.id)
        owns = self.map.owns
        stray = [key for key in self.disk.store if not owns(self.id, key) and key not in drops]
        for key in stray:
            del self.disk.store[key]
        if stray:
            self.disk.writes += 1
            self.host.emit("dropped", keys=stray, stray=True)

    def kick(self, delay_ms: float = 0.0) -> None:
        """Make sure background work runs by ``now + delay_ms`` if there is any."""
        host = self.host
        if not host.alive or not self.has_work():
            return
        due = host.timer_due("sync")
        if due is not None and due <= host.now + delay_ms:
            return
        host.set_timer("sync", delay_ms, self._sync)

    def has_work(self) -> bool:
        return bool(self.disk.hints or self.map.copy_tasks_of(self.id) or self.map.drop_tasks_of(self.id))

    # -- small helpers ------------------------------------------------------------------------
    def _store(self, key: str, value: Any, version: Version) -> bool:
        current = self.disk.store.get(key)
        if current is not None and current[1] >= version:
            return False
        self.disk.store[key] = (value, version)
        self.disk.writes += 1
        return True

    def _held(self, key: str) -> Version:
        return _version(self.disk.store.get(key))

    def _note_ack(self, key: str, node: str, version: Version) -> None:
        """Remember that ``node`` holds ``version`` of ``key``, if anything here waits on it."""
        if key in self.disk.hints or key in self.map.drop_tasks_of(self.id) or (key, node) in self.map.copy_tasks_of(self.id):
            seen = self.acked.setdefault(key, {})
            if seen.get(node, ZERO) < version:
                seen[node] = version
        sent = self.sent.get(key)
        if sent is not None:
            sent.pop(node, None)

    def _has(self, key: str, node: str, version: Version) -> bool:
        return self.acked.get(key, {}).get(node, ZERO) >= version

    def _new_request(self, op: str, msg: Message) -> Request:
        self.next_rid += 1
        body = msg.body
        req = Request(self.next_rid, op, body["key"], msg.src, body["seq"], self.map.serving(body["key"]))
        self.requests[req.rid] = req
        self.host.set_timer(f"req{req.rid}", self.config.request_timeout_ms, lambda rid=req.rid: self._on_timeout(rid))
        return req

    def _close(self, req: Request) -> None:
        self.requests.pop(req.rid, None)
        self.host.cancel_timer(f"req{req.rid}")

    # -- messages -----------------------------------------------------------------------------
    def on_message(self, msg: Message) -> None:
        _HANDLERS[msg.type](self, msg)

    # coordinator: get ---------------------------------------------------------------------------
    def _on_get(self, msg: Message) -> None:
        req = self._new_request("get", msg)
        req.need = min(self.map.read_quorum, len(req.serving))
        if self.id in req.serving:
            req.replies[self.id] = self.disk.store.get(req.key)
        for node in req.serving:
            if node != self.id:
                self.host.send(node, "Read", {"rid": req.rid, "key": req.key})
        self._maybe_answer_get(req)

    def _on_read_reply(self, msg: Message) -> None:
        body = msg.body
        req = self.requests.get(body["rid"])
        if req is None or req.op != "get" or msg.src not in req.serving or msg.src in req.replies:
            return
        copy = None if body["version"] == ZERO else (body["value"], body["version"])
        req.replies[msg.src] = copy
        if req.answered:
            self._repair(req, [msg.src])
            if len(req.replies) == len(req.serving):
                self._close(req)
        else:
            self._maybe_answer_get(req)

    def _maybe_answer_get(self, req: Request) -> None:
        if req.answered or len(req.replies) < req.need:
            return
        req.answered = True
        best = max(req.replies.values(), key=_version)
        self.host.send(
            req.client,
            "GetReply",
            {
                "seq": req.seq,
                "ok": True,
                "value": None if best is None else best[0],
                "version": _version(best),
                "replies": tuple((node, _version(copy)) for node, copy in req.replies.items()),
                "r": req.need,
                "coordinator": self.id,
            },
        )
        self._repair(req, list(req.replies))
        if len(req.replies) == len(req.serving):
            self._close(req)

    def _repair(self, req: Request, nodes: list[str]) -> None:
        """Read repair: send the newest copy seen to replicas that answered with an older one."""
        best = max(req.replies.values(), key=_version)
        if best is None:
            return
        stale = [node for node in nodes if _version(req.replies[node]) < best[1]]
        for node in stale:
            if node == self.id:
                if self.map.owns(self.id, req.key):  # it may have handed the key off since it replied
                    self._store(req.key, best[0], best[1])
            else:
                self.host.send(
                    node, "Write", {"rid": 0, "key": req.key, "value": best[0], "version": best[1], "epoch": self.map.epoch}
                )
        if stale:
            self.host.emit("read_repair", key=req.key, nodes=stale, version=best[1], client=req.client, seq=req.seq)

    # coordinator: put ---------------------------------------------------------------------------
    def _on_put(self, msg: Message) -> None:
        req = self._new_request("put", msg)
        req.value = msg.body["value"]
        req.need = min(self.map.read_quorum, len(req.serving))
        if self.id in req.serving:
            req.replies[self.id] = self.disk.store.get(req.key)
        for node in req.serving:
            if node != self.id:
                self.host.send(node, "Query", {"rid": req.rid, "key": req.key})
        self._maybe_write(req)

    def _on_query_reply(self, msg: Message) -> None:
        body = msg.body
        req = self.requests.get(body["rid"])
        if req is None or req.phase != "query" or msg.src not in req.serving or msg.src in req.replies:
            return
        req.replies[msg.src] = None if body["version"] == ZERO else (None, body["version"])
        self._maybe_write(req)

    def _maybe_write(self, req: Request) -> None:
        if req.phase != "query" or len(req.replies) < req.need:
            return
        counter = max(_version(copy)[0] for copy in req.replies.values())
        version: Version = (counter + 1, self.id)
        key, value = req.key, req.value
        req.phase, req.version = "write", version
        req.need = min(self.map.write_quorum, len(req.serving))
        # The hint first: from here on this node makes sure every replica gets the write.
        hint = self.disk.hints.get(key)
        if hint is None or hint[1] < version:
            self.disk.hints[key] = (value, version)
        if self.map.owns(self.id, key):
            self._store(key, value, version)
            if self.id in req.serving:
                req.acks.append(self.id)
        for node in req.serving + self.map.targets(key):
            if node != self.id:
                self.host.send(
                    node, "Write", {"rid": req.rid, "key": key, "value": value, "version": version, "epoch": self.map.epoch}
                )
        self.host.set_timer(f"req{req.rid}", self.config.request_timeout_ms, lambda rid=req.rid: self._on_timeout(rid))
        self._maybe_ack_put(req)
        self.kick(self.config.retry_ms)

    def _on_write_ack(self, msg: Message) -> None:
        body = msg.body
        key = body["key"]
        if not body["ok"]:
            return
        if body["epoch"] == self.map.epoch:
            self._note_ack(key, msg.src, body["version"])
        req = self.requests.get(body["rid"])
        if req is not None and req.phase == "write" and msg.src in req.serving and msg.src not in req.acks:
            req.acks.append(msg.src)
            self._maybe_ack_put(req)
        self._settle_hint(key)

    def _maybe_ack_put(self, req: Request) -> None:
        if req.answered or len(req.acks) < req.need:
            return
        req.answered = True
        self.host.send(
            req.client,
            "PutReply",
            {"seq": req.seq, "ok": True, "version": req.version, "acks": tuple(req.acks), "w": req.need, "coordinator": self.id},
        )
        self._close(req)

    def _on_timeout(self, rid: int) -> None:
        req = self.requests.pop(rid, None)
        if req is None or req.answered:
            return
        if req.op == "get":
            body = {"seq": req.seq, "ok": False, "phase": "read", "answered": tuple(req.replies), "r": req.need}
            self.host.send(req.client, "GetReply", {**body, "coordinator": self.id})
        elif req.phase == "query":
            body = {"seq": req.seq, "ok": False, "phase": "query", "answered": tuple(req.replies), "r": req.need}
            self.host.send(req.client, "PutReply", {**body, "coordinator": self.id})
        else:
            body = {"seq": req.seq, "ok": False, "phase": "write", "acks": tuple(req.acks), "w": req.need, "version": req.version}
            self.host.send(req.client, "PutReply", {**body, "coordinator": self.id})

    # replica --------------------------------------------------------------------------------------
    def _on_read(self, msg: Message) -> None:
        body = msg.body
        copy = self.disk.store.get(body["key"])
        self.host.send(
            msg.src,
            "ReadReply",
            {"rid": body["rid"], "key": body["key"], "value": None if copy is None else copy[0], "version": _version(copy)},
        )

    def _on_query(self, msg: Message) -> None:
        body = msg.body
        self.host.send(msg.src, "QueryReply", {"rid": body["rid"], "key": body["key"], "version": self._held(body["key"])})

    def _on_write(self, msg: Message) -> None:
        body = msg.body
        key = body["key"]
        ok = self.map.owns(self.id, key)
        if ok:
            self._store(key, body["value"], body["version"])
        if body["rid"]:
            self.host.send(
                msg.src, "WriteAck", {"rid": body["rid"], "key": key, "version": self._held(key), "ok": ok, "epoch": body["epoch"]}
            )

    def _on_transfer(self, msg: Message) -> None:
        owns = self.map.owns
        out = []
        for key, value, version in msg.body["items"]:
            if owns(self.id, key):
                self._store(key, value, version)
                out.append((key, self._held(key)))
            else:
                out.append((key, None))
        self.host.send(msg.src, "TransferAck", {"items": tuple(out), "epoch": msg.body["epoch"]})

    def _on_transfer_ack(self, msg: Message) -> None:
        src = msg.src
        if msg.body["epoch"] != self.map.epoch:
            return  # it speaks of copies from before the placement changed
        copies = self.map.copy_tasks_of(self.id)
        drops = self.map.drop_tasks_of(self.id)
        copied: list[tuple[str, str]] = []
        dropped: list[str] = []
        for key, held in msg.body["items"]:
            if held is None:
                continue
            self._note_ack(key, src, held)
            if (key, src) in copies and held >= self._held(key):
                copied.append((key, src))
            if key in drops and self._drop_ready(key):
                dropped.append(key)
            self._settle_hint(key)
        self._report(copied, dropped)

    # background: hints, copies, drops (Transfer batches) --------------------------------------------------------
    def _drop_ready(self, key: str) -> bool:
        """Every current replica holds at least my version: mine may go."""
        mine = self._held(key)
        return all(node == self.id or self._has(key, node, mine) for node in self.map.serving(key))

    def _settle_hint(self, key: str) -> None:
        hint = self.disk.hints.get(key)
        if hint is None:
            return
        version = hint[1]
        for node in self.map.serving(key):
            if node == self.id:
                if self._held(key) < version:
                    return
            elif not self._has(key, node, version):
                return
        del self.disk.hints[key]
        if key not in self.map.drop_tasks_of(self.id):
            self.acked.pop(key, None)
        if not self.disk.hints:
            self.host.emit("hints_done")

    def _report(self, copied: list[tuple[str, str]], dropped: list[str]) -> None:
        if dropped:
            store = self.disk.store
            for key in dropped:
                store.pop(key, None)
                self.acked.pop(key, None)
                self.sent.pop(key, None)
            self.disk.writes += 1
        if copied:
            self.host.emit("copied", pairs=copied)
        if dropped:
            self.host.emit("dropped", keys=dropped, stray=False)

    def _sync(self) -> None:
        """One round of background work: settle what is done, send what is due, re-arm."""
        cmap, now = self.map, self.host.now
        retry, limit = self.config.retry_ms, self.config.batch
        batches: dict[str, list[tuple[str, Any, Version]]] = {}
        next_due: list[float] = []

        def offer(node: str, key: str, value: Any, version: Version) -> None:
            stamps = self.sent.get(key)
            stamp = None if stamps is None else stamps.get(node)
            if stamp is not None and now - stamp < retry:
                next_due.append(stamp + retry)
                return
            batch = batches.setdefault(node, [])
            if len(batch) >= limit:
                next_due.append(now + self.config.tick_ms)
                return
            batch.append((key, value, version))
            self.sent.setdefault(key, {})[node] = now
            next_due.append(now + retry)

        for key in list(self.disk.hints):
            value, version = self.disk.hints[key]
            if cmap.owns(self.id, key):
                self._store(key, value, version)
            self._settle_hint(key)
            if key not in self.disk.hints:
                continue
            for node in cmap.serving(key) + cmap.targets(key):
                if node != self.id and not self._has(key, node, version):
                    offer(node, key, value, version)
        copied: list[tuple[str, str]] = []
        for key, target in list(cmap.copy_tasks_of(self.id)):
            mine = self.disk.store.get(key)
            if mine is None or self._has(key, target, mine[1]):
                copied.append((key, target))
            else:
                offer(target, key, mine[0], mine[1])
        dropped: list[str] = []
        for key in list(cmap.drop_tasks_of(self.id)):
            mine = self.disk.store.get(key)
            if mine is None or self._drop_ready(key):
                dropped.append(key)
                continue
            for node in cmap.serving(key):
                if node != self.id and not self._has(key, node, mine[1]):
                    offer(node, key, mine[0], mine[1])
        for node, items in batches.items():
            self.host.send(node, "Transfer", {"items": tuple(items), "epoch": cmap.epoch})
        self._report(copied, dropped)
        if next_due and self.has_work():
            self.host.set_timer("sync", max(min(next_due) - now, self.config.tick_ms), self._sync)


_HANDLERS: dict[str, Callable[[ShardNode, Message], None]] = {
    "Get": ShardNode._on_get,
    "Put": ShardNode._on_put,
    "Read": ShardNode._on_read,
    "ReadReply": ShardNode._on_read_reply,
    "Query": ShardNode._on_query,
    "QueryReply": ShardNode._on_query_reply,
    "Write": ShardNode._on_write,
    "WriteAck": ShardNode._on_write_ack,
    "Transfer": ShardNode._on_transfer,
    "TransferAck": ShardNode._on_transfer_ack,
}
