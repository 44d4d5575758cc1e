"""The simulated network: latency, loss, duplication, reordering, partitions.

Every message is immutable (a NamedTuple whose body is a read-only mapping).
Its fate is decided when it is sent, from the network's own random stream, so a
page can draw a lost message flying and vanishing. Partitions, link cuts and
crashed receivers are checked again when a message arrives: a message in flight
when a partition starts is lost, as on a real wire.

Every send, delivery and drop goes to a bounded trace. Entries carry a
sequence number so a reader can ask for what happened since it last looked.
"""

from __future__ import annotations

import random
from collections import deque
from itertools import islice
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

from .sim import Simulator


class Message(NamedTuple):
    id: int
    src: str
    dst: str
    type: str
    body: Mapping[str, Any]
    send_ms: float
    deliver_ms: float
    lost: bool  # decided at send: it will not arrive
    dup_of: int | None  # the id of the original when this is a duplicate


class TraceEntry(NamedTuple):
    seq: int
    at_ms: float
    event: str  # "send" | "deliver" | "drop"
    msg_id: int
    src: str
    dst: str
    type: str
    why: str  # for drops: "loss", "partition", "cut", "down"; else ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at_ms": self.at_ms,
            "event": self.event,
            "id": self.msg_id,
            "from": self.src,
            "to": self.dst,
            "type": self.type,
            "why": self.why,
        }


Handler = Callable[[Message], None]
_new_tuple = tuple.__new__


class Network:
    __slots__ = (
        "sim", "rng", "latency_ms", "drop_rate", "duplicate_rate", "reorder_rate",
        "_handlers", "_up", "_group_of", "_cuts", "in_flight", "_trace", "trace_seq",
        "_next_id", "_sent", "_delivered", "_dropped", "_on_arrival",
    )

    def __init__(
        self,
        sim: Simulator,
        rng: random.Random,
        *,
        latency_ms: tuple[float, float] = (10.0, 15.0),
        drop_rate: float = 0.0,
        duplicate_rate: float = 0.0,
        reorder_rate: float = 0.0,
        trace_limit: int = 5000,
    ) -> None:
        self.sim = sim
        self.rng = rng
        self.latency_ms = (float(latency_ms[0]), float(latency_ms[1]))
        self.drop_rate = float(drop_rate)
        self.duplicate_rate = float(duplicate_rate)
        self.reorder_rate = float(reorder_rate)
        self._handlers: dict[str, Handler] = {}
        self._up: dict[str, bool] = {}
        self._group_of: dict[str, int] = {}  # endpoint -> partition group; absent: reaches everyone
        self._cuts: dict[tuple[str, str], bool] = {}  # one-way (src, dst) cuts
        self.in_flight: dict[int, Message] = {}  # insertion-ordered, so iteration is deterministic
        # The trace holds plain tuples in TraceEntry's field order; readers get
        # TraceEntry objects (``trace``) or dicts (``trace_since``).
        self._trace: deque[tuple] = deque(maxlen=trace_limit)
        self.trace_seq = 0  # the seq of the newest trace entry; 0 before the first
        self._next_id = 0
        self._sent = self._delivered = self._dropped = 0
        self._on_arrival = self._arrive  # one bound method for every message, not one each

    @property
    def counts(self) -> dict[str, int]:
        """Messages sent, delivered and dropped so far (a fresh dict)."""
        return {"sent": self._sent, "delivered": self._delivered, "dropped": self._dropped}

    @property
    def trace(self) -> list[TraceEntry]:
        """The bounded trace, oldest first."""
        return [_new_tuple(TraceEntry, entry) for entry in self._trace]

    # -- endpoints -------------------------------------------------------
    def attach(self, endpoint: str, handler: Handler) -> None:
        self._handlers[endpoint] = handler
        self._up[endpoint] = True

    def set_up(self, endpoint: str, up: bool) -> None:
        self._up[endpoint] = up

    # -- faults ----------------------------------------------------------
    def partition(self, groups: Iterable[Iterable[str]]) -> None:
        """Endpoints in different groups cannot talk. Endpoints in no group reach all."""
        self._group_of = {}
        for index, group in enumerate(groups):
            for endpoint in group:
                self._group_of[endpoint] = index

    def cut(self, src: str, dst: str) -> None:
        self._cuts[(src, dst)] = True

    def uncut(self, src: str, dst: str) -> None:
        self._cuts.pop((src, dst), None)

    def heal(self) -> None:
        self._group_of = {}
        self._cuts = {}

    def partition_groups(self) -> list[list[str]]:
        if not self._group_of:
            return []
        groups: dict[int, list[str]] = {}
        for endpoint, index in self._group_of.items():
            groups.setdefault(index, []).append(endpoint)
        return [groups[i] for i in sorted(groups)]

    def cuts(self) -> list[list[str]]:
        return [[src, dst] for (src, dst) in self._cuts]

    def blocked(self, src: str, dst: str) -> str:
        """Why a message from src to dst cannot get through now, or ''."""
        group_of = self._group_of
        if group_of:
            a = group_of.get(src)
            b = group_of.get(dst)
            if a is not None and b is not None and a != b:
                return "partition"
        if self._cuts and (src, dst) in self._cuts:
            return "cut"
        return ""

    # -- traffic ---------------------------------------------------------
    def send(self, src: str, dst: str, type: str, body: Mapping[str, Any]) -> Message | None:
        """Put a message on the wire. Returns it, or None when it is dropped at once."""
        frozen = MappingProxyType(dict(body))
        self._sent += 1
        why = self.blocked(src, dst) if (self._group_of or self._cuts) else ""
        if why:
            msg = self._make(src, dst, type, frozen, 0.0, True, None)
            self._record("send", msg, "")
            self._record("drop", msg, why)
            self._dropped += 1
            return None
        rng = self.rng
        lost = self.drop_rate > 0.0 and rng.random() < self.drop_rate
        msg = self._launch(self._make(src, dst, type, frozen, self._latency(), lost, None))
        if self.duplicate_rate > 0.0 and rng.random() < self.duplicate_rate:
            self._launch(self._make(src, dst, type, frozen, self._latency(), False, msg.id))
        return msg

    def _latency(self) -> float:
        lo, hi = self.latency_ms
        rng = self.rng
        delay = lo if hi <= lo else lo + (hi - lo) * rng.random()  # what rng.uniform(lo, hi) computes
        if self.reorder_rate > 0.0 and rng.random() < self.reorder_rate:
            delay += rng.uniform(0.0, 2.0 * max(hi, 1.0))
        return delay

    def _make(self, src, dst, type, body, delay, lost, dup_of) -> Message:
        self._next_id += 1
        now = self.sim.now
        # tuple.__new__ skips the NamedTuple's Python-level __new__: this is the hot path.
        return _new_tuple(Message, (self._next_id, src, dst, type, body, now, now + delay, lost, dup_of))

    def _launch(self, msg: Message) -> Message:
        msg_id = msg.id
        self.in_flight[msg_id] = msg
        self.trace_seq += 1
        self._trace.append((self.trace_seq, msg.send_ms, "send", msg_id, msg.src, msg.dst, msg.type, ""))
        self.sim.post(msg.deliver_ms - msg.send_ms, self._on_arrival, msg)
        return msg

    def _arrive(self, msg: Message) -> None:
        del self.in_flight[msg.id]
        if msg.lost:
            why = "loss"
        elif not self._up.get(msg.dst, False):
            why = "down"
        elif self._group_of or self._cuts:
            why = self.blocked(msg.src, msg.dst)
        else:
            why = ""
        if why:
            self._dropped += 1
            self._record("drop", msg, why)
            return
        self._delivered += 1
        self.trace_seq += 1
        self._trace.append((self.trace_seq, self.sim.now, "deliver", msg.id, msg.src, msg.dst, msg.type, ""))
        self._handlers[msg.dst](msg)

    def _record(self, event: str, msg: Message, why: str) -> None:
        self.trace_seq += 1
        self._trace.append((self.trace_seq, self.sim.now, event, msg.id, msg.src, msg.dst, msg.type, why))

    def trace_since(self, seq: int) -> list[dict[str, Any]]:
        trace = self._trace
        # Entries carry consecutive seqs, so the first one after ``seq`` is found by arithmetic.
        skip = max(0, seq - (self.trace_seq - len(trace)))
        return [_new_tuple(TraceEntry, entry).as_dict() for entry in islice(trace, skip, None)]
