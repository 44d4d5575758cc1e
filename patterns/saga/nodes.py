"""The saga's nodes: four services, the orchestrator and the event bus.

Node code talks only to its Host. What a crash must not lose lives in
``self.disk`` (a plain dict); everything else is rebuilt in ``start()``.

Every step and every compensation is idempotent: a service keeps one record
per saga (the idempotency key is saga id + step, and each service runs exactly
one step). A repeated forward command gets the recorded answer back and
changes nothing; a repeated compensation is acknowledged and changes nothing;
a compensation that arrives before its forward step leaves a tombstone, so the
late forward step is refused instead of applied.
"""

from __future__ import annotations

from typing import Any

from ..kernel.cluster import ClusterNode, Host
from ..kernel.network import Message

# (service, forward action, compensation), in saga order.
STEPS: tuple[tuple[str, str, str], ...] = (
    ("order", "create order", "cancel order"),
    ("inventory", "reserve items", "release items"),
    ("payment", "charge card", "refund"),
    ("shipping", "schedule shipment", "cancel shipment"),
)
SERVICES: tuple[str, ...] = tuple(step[0] for step in STEPS)
LAST = len(STEPS) - 1
DONE_EVENTS = ("OrderCreated", "ItemsReserved", "PaymentCharged", "ShipmentScheduled")
FAILED_EVENTS = ("OrderRejected", "ReservationFailed", "PaymentDeclined", "ShippingFailed")
UNDONE_EVENTS = ("OrderCancelled", "ItemsReleased", "PaymentRefunded", "ShipmentCancelled")
BUSINESS_FAILURE = {
    "order": "order rejected by the fraud check",
    "inventory": "out of stock",
    "payment": "card declined",
    "shipping": "no courier available",
}
FAIL_MODES = ("off", "once", "always", "p")


def subscriber(event_type: str) -> str | None:
    """Which service reacts to an event on the bus (choreography)."""
    if event_type in DONE_EVENTS:
        k = DONE_EVENTS.index(event_type)
        return SERVICES[k + 1] if k < LAST else "order"  # order marks the saga completed
    for table in (FAILED_EVENTS, UNDONE_EVENTS):
        if event_type in table:
            k = table.index(event_type)
            return SERVICES[k - 1] if k > 0 else None
    return None


class FailureSwitch:
    """A business failure the learner injects into one service's forward step."""

    def __init__(self) -> None:
        self.mode = "off"
        self.p = 1.0

    def as_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "p": self.p}


class ServiceNode(ClusterNode):
    def __init__(self, host: Host, step: int, retry_ms: float, state: dict[str, Any]) -> None:
        super().__init__(host)
        self.step = step
        self.name = SERVICES[step]
        self.retry_ms = retry_ms
        self.failure = FailureSwitch()
        # records: saga -> {"ok", "reason", "compensated"}; outbox: event key -> event (choreography)
        # repeats: commands and events that hit an existing record and changed nothing
        self.disk: dict[str, Any] = {"records": {}, "outbox": {}, "ended": {}, "repeats": 0, **state}

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> None:
        if self.disk["outbox"]:
            self.host.set_timer("outbox", self.retry_ms, self._resend_outbox)

    # -- the business step, idempotent ------------------------------------------------
    def execute(self, saga: int, action: str, order: dict[str, Any]) -> tuple[bool, str]:
        records = self.disk["records"]
        rec = records.get(saga)
        if action == "forward":
            if rec is not None:
                self.disk["repeats"] += 1
                return rec["ok"], rec["reason"]
            ok, reason = self._decide(order)
            if ok:
                self._do(saga, order)
            records[saga] = {"ok": ok, "reason": reason, "compensated": False}
            self.host.emit("applied", saga=saga, step=self.step, action="forward", ok=ok, reason=reason, effect=ok)
            return ok, reason
        if rec is None:  # the compensation overtook its forward step: leave a tombstone
            records[saga] = {"ok": False, "reason": "compensated before it arrived", "compensated": True}
            self.host.emit("applied", saga=saga, step=self.step, action="compensate", ok=True, reason="", effect=False)
            return True, ""
        if not rec["compensated"]:
            rec["compensated"] = True
            if rec["ok"]:
                self._undo(saga)
            self.host.emit("applied", saga=saga, step=self.step, action="compensate", ok=True, reason="", effect=rec["ok"])
        else:
            self.disk["repeats"] += 1
        return True, ""

    def _decide(self, order: dict[str, Any]) -> tuple[bool, str]:
        switch = self.failure
        injected = False
        if switch.mode == "once":
            injected = True
            switch.mode = "off"
            self.host.emit("failure_used")
        elif switch.mode in ("always", "p"):
            injected = switch.p >= 1.0 or self.host.rng.random() < switch.p
        if injected:
            return False, BUSINESS_FAILURE[self.name]
        return self._check(order)

    def _check(self, order: dict[str, Any]) -> tuple[bool, str]:
        return True, ""

    def _do(self, saga: int, order: dict[str, Any]) -> None:
        raise AssertionError("each service defines its effect")

    def _undo(self, saga: int) -> None:
        raise AssertionError("each service defines its compensation")

    def summary(self) -> dict[str, Any]:
        return {}

    # -- messages --------------------------------------------------------------------------
    def on_message(self, msg: Message) -> None:
        body = msg.body
        kind = msg.type
        if kind == "Do":  # orchestration: a command from the orchestrator
            ok, reason = self.execute(body["saga"], body["action"], body["order"])
            self.host.send(
                msg.src,
                "Ack",
                {"saga": body["saga"], "step": self.step, "action": body["action"], "attempt": body["attempt"], "ok": ok, "reason": reason},
            )
        elif kind == "PlaceOrder":  # choreography: the order service starts the saga
            saga = body["saga"]
            ok, reason = self.execute(saga, "forward", body["order"])
            self._publish(saga, DONE_EVENTS[0] if ok else FAILED_EVENTS[0], body["order"])
            if not ok:
                self._end(saga, "failed")
            self.host.send(msg.src, "Accepted", {"saga": saga, "attempt": body["attempt"]})
        elif kind == "Event":
            self.host.send(msg.src, "EventAck", {"key": body["key"], "sub": self.name, "saga": body["saga"]})
            self._react(body)
        elif kind == "PubAck":
            self.disk["outbox"].pop(body["key"], None)

    def _react(self, event: dict[str, Any]) -> None:
        saga, kind, order = event["saga"], event["type"], event["order"]
        if kind in DONE_EVENTS:
            k = DONE_EVENTS.index(kind)
            if k == LAST:
                self._end(saga, "completed")
                return
            ok, _reason = self.execute(saga, "forward", order)
            self._publish(saga, DONE_EVENTS[self.step] if ok else FAILED_EVENTS[self.step], order)
        else:  # a later step failed or was undone: undo ours
            self.execute(saga, "compensate", order)
            self._publish(saga, UNDONE_EVENTS[self.step], order)
            if self.step == 0:
                self._end(saga, "compensated")

    def _end(self, saga: int, status: str) -> None:
        ended = self.disk["ended"]
        if saga not in ended:
            ended[saga] = status
            self.host.emit("saga_end", saga=saga, status=status)

    def _publish(self, saga: int, event_type: str, order: dict[str, Any]) -> None:
        key = f"{saga}:{event_type}"
        event = {"key": key, "type": event_type, "saga": saga, "order": order}
        self.disk["outbox"][key] = event
        self.host.send("bus", "Publish", event)
        if self.host.timer_due("outbox") is None:
            self.host.set_timer("outbox", self.retry_ms, self._resend_outbox)

    def _resend_outbox(self) -> None:
        for event in self.disk["outbox"].values():
            self.host.send("bus", "Publish", event)
        if self.disk["outbox"]:
            self.host.set_timer("outbox", self.retry_ms, self._resend_outbox)


class OrderService(ServiceNode):
    def _do(self, saga: int, order: dict[str, Any]) -> None:
        self.disk["orders"][saga] = "created"

    def _undo(self, saga: int) -> None:
        self.disk["orders"][saga] = "cancelled"

    def summary(self) -> dict[str, Any]:
        counts = {"created": 0, "cancelled": 0}
        for status in self.disk["orders"].values():
            counts[status] += 1
        return {"orders": counts}


class InventoryService(ServiceNode):
    def _check(self, order: dict[str, Any]) -> tuple[bool, str]:
        left = self.disk["stock"][order["item"]]
        if left < order["qty"]:
            return False, f"out of stock ({left} {order['item']} left)"
        return True, ""

    def _do(self, saga: int, order: dict[str, Any]) -> None:
        item, qty = order["item"], order["qty"]
        self.disk["stock"][item] -= qty
        self.disk["held"][item] += qty
        self.disk["reservations"][saga] = [item, qty]

    def _undo(self, saga: int) -> None:
        item, qty = self.disk["reservations"].pop(saga)
        self.disk["stock"][item] += qty
        self.disk["held"][item] -= qty
        self.disk["released"] += qty

    def summary(self) -> dict[str, Any]:
        return {"stock": dict(self.disk["stock"]), "reserved": dict(self.disk["held"]), "reservations": len(self.disk["reservations"])}


class PaymentService(ServiceNode):
    def _check(self, order: dict[str, Any]) -> tuple[bool, str]:
        balance = self.disk["balances"][order["customer"]]
        if balance < order["amount"]:
            return False, f"card declined (insufficient funds: {order['customer']} has ${balance})"
        return True, ""

    def _do(self, saga: int, order: dict[str, Any]) -> None:
        self.disk["balances"][order["customer"]] -= order["amount"]
        self.disk["charges"][saga] = [order["customer"], order["amount"]]
        self.disk["charged"] += order["amount"]
        self.disk["captured"] += order["amount"]

    def _undo(self, saga: int) -> None:
        customer, amount = self.disk["charges"].pop(saga)
        self.disk["balances"][customer] += amount
        self.disk["captured"] -= amount
        self.disk["refunded"] += amount

    def summary(self) -> dict[str, Any]:
        disk = self.disk
        return {"balances": dict(disk["balances"]), "charged": disk["charged"], "captured": disk["captured"], "refunded": disk["refunded"]}


class ShippingService(ServiceNode):
    def _do(self, saga: int, order: dict[str, Any]) -> None:
        self.disk["shipments"][saga] = [order["item"], order["qty"]]
        self.disk["shipped"][order["item"]] += order["qty"]

    def _undo(self, saga: int) -> None:
        item, qty = self.disk["shipments"].pop(saga)
        self.disk["shipped"][item] -= qty
        self.disk["cancelled"] += 1

    def summary(self) -> dict[str, Any]:
        return {"shipments": len(self.disk["shipments"]), "cancelled": self.disk["cancelled"], "shipped": dict(self.disk["shipped"])}


class OrchestratorNode(ClusterNode):
    """A durable orchestrator: a write-ahead saga log on its disk, replayed after a crash.

    Log entries: ``begin`` (with the order), ``send`` (written before a command
    goes out), ``done`` / ``failed`` (a forward step's answer), ``undone`` (a
    compensation's answer) and ``end`` (with the final status).
    """

    def __init__(self, host: Host, retry_ms: float) -> None:
        super().__init__(host)
        self.retry_ms = retry_ms
        self.disk: dict[str, Any] = {"log": []}
        self.sagas: dict[int, dict[str, Any]] = {}

    def start(self) -> None:
        self.sagas = {}
        for entry in self.disk["log"]:
            self._apply(entry)
        resumed = []
        for saga, st in self.sagas.items():
            if st["ended"] is None:
                resumed.append({"saga": saga, "phase": st["phase"], "step": st["step"], "resent": st["awaiting"]})
                self._dispatch(saga)
        if self.disk["log"]:
            self.host.emit("recovered", log_length=len(self.disk["log"]), resumed=resumed)

    def on_crash(self) -> None:
        self.sagas = {}

    def in_progress(self) -> int:
        return sum(1 for st in self.sagas.values() if st["ended"] is None)

    # -- the log ----------------------------------------------------------------------
    def _log(self, entry: dict[str, Any]) -> None:
        self.disk["log"].append(entry)
        self._apply(entry)

    def _apply(self, entry: dict[str, Any]) -> None:
        what, saga = entry["what"], entry["saga"]
        if what == "begin":
            self.sagas[saga] = {"order": entry["order"], "phase": "forward", "step": 0, "awaiting": False, "ended": None, "attempt": 0, "failed_at": -1}
            return
        st = self.sagas[saga]
        if what == "send":
            st["awaiting"] = True
            st["attempt"] = 0
        elif what == "done":
            st["awaiting"] = False
            st["step"] += 1
        elif what == "failed":
            st["awaiting"] = False
            st["phase"] = "compensate"
            st["failed_at"] = st["step"]
            st["step"] -= 1
        elif what == "undone":
            st["awaiting"] = False
            st["step"] -= 1
        elif what == "end":
            st["ended"] = entry["status"]

    # -- driving a saga ------------------------------------------------------------------
    def _dispatch(self, saga: int) -> None:
        """Send the saga's next command (logging it first unless the log already has it), or end it."""
        st = self.sagas[saga]
        if st["phase"] == "forward" and st["step"] > LAST:
            self._finish(saga, "completed")
            return
        if st["phase"] == "compensate" and st["step"] < 0:
            self._finish(saga, "compensated" if st["failed_at"] > 0 else "failed")
            return
        if not st["awaiting"]:
            self._log({"what": "send", "saga": saga, "phase": st["phase"], "step": st["step"]})
        self._send(saga)

    def _finish(self, saga: int, status: str) -> None:
        self.host.cancel_timer(f"retry:{saga}")
        self._log({"what": "end", "saga": saga, "status": status})
        self.host.emit("saga_end", saga=saga, status=status)

    def _send(self, saga: int) -> None:
        st = self.sagas[saga]
        st["attempt"] += 1
        self.host.send(
            SERVICES[st["step"]],
            "Do",
            {"saga": saga, "step": st["step"], "action": st["phase"], "attempt": st["attempt"], "order": st["order"]},
        )
        self.host.set_timer(f"retry:{saga}", self.retry_ms, lambda: self._send(saga))

    def on_message(self, msg: Message) -> None:
        body = msg.body
        if msg.type == "PlaceOrder":
            saga = body["saga"]
            if saga not in self.sagas:
                self._log({"what": "begin", "saga": saga, "order": dict(body["order"])})
                self._dispatch(saga)
            self.host.send(msg.src, "Accepted", {"saga": saga, "attempt": body["attempt"]})
        elif msg.type == "Ack":
            saga = body["saga"]
            st = self.sagas.get(saga)
            if st is None or st["ended"] is not None or not st["awaiting"]:
                return  # a duplicate or late answer: already logged
            if body["step"] != st["step"] or body["action"] != st["phase"]:
                return
            self.host.cancel_timer(f"retry:{saga}")
            if body["action"] == "forward":
                what = "done" if body["ok"] else "failed"
                self._log({"what": what, "saga": saga, "step": body["step"], **({} if body["ok"] else {"reason": body["reason"]})})
            else:
                self._log({"what": "undone", "saga": saga, "step": body["step"]})
            self._dispatch(saga)


class BusNode(ClusterNode):
    """The event bus of choreography: a durable event log, at-least-once delivery with retries."""

    def __init__(self, host: Host, retry_ms: float) -> None:
        super().__init__(host)
        self.retry_ms = retry_ms
        # events: key -> event; pending: "key>subscriber" -> [subscriber, key]
        self.disk: dict[str, Any] = {"events": {}, "pending": {}}

    def start(self) -> None:
        if self.disk["pending"]:
            self.host.set_timer("redeliver", self.retry_ms, self._redeliver)

    def on_message(self, msg: Message) -> None:
        body = msg.body
        if msg.type == "Publish":
            key = body["key"]
            if key not in self.disk["events"]:
                event = {"key": key, "type": body["type"], "saga": body["saga"], "order": dict(body["order"])}
                self.disk["events"][key] = event
                sub = subscriber(body["type"])
                if sub is not None:
                    self.disk["pending"][f"{key}>{sub}"] = [sub, key]
                    self.host.send(sub, "Event", event)
                    if self.host.timer_due("redeliver") is None:
                        self.host.set_timer("redeliver", self.retry_ms, self._redeliver)
            self.host.send(msg.src, "PubAck", {"key": key, "saga": body["saga"]})
        elif msg.type == "EventAck":
            self.disk["pending"].pop(f"{body['key']}>{body['sub']}", None)

    def _redeliver(self) -> None:
        for sub, key in self.disk["pending"].values():
            self.host.send(sub, "Event", self.disk["events"][key])
        if self.disk["pending"]:
            self.host.set_timer("redeliver", self.retry_ms, self._redeliver)
