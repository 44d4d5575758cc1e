"""The saga engine: an order that spans four services, with compensations.

Nodes: the services ``order``, ``inventory``, ``payment``, ``shipping``, the
``orchestrator`` (orchestration mode) and the ``bus`` (choreography mode).
The engine plays the customers' front door (a ``client`` endpoint that sends
each order and retries until it is accepted), the narrator and the observer:
it builds the saga table of the view from the facts the nodes emit. The
checker lives outside the service code.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any, ClassVar

from ..errors import InvalidCommand, InvalidParameter
from ..kernel.arrivals import PoissonArrivals
from ..kernel.cluster import ClusterEngine, Host
from ..kernel.network import Message
from ..kernel.rng import derive_rng
from ..text import and_list
from ..validate import number, only_keys, text
from .checker import SagaChecker
from .nodes import (
    FAIL_MODES,
    LAST,
    SERVICES,
    STEPS,
    BusNode,
    InventoryService,
    OrchestratorNode,
    OrderService,
    PaymentService,
    ServiceNode,
    ShippingService,
)

MODES = ("orchestration", "choreography")
ITEMS = ("widget", "gadget", "gizmo")
CUSTOMERS = ("alice", "bob", "carol")
MAX_RATE_RPS = 50.0
SERIES_EVERY_MS = 250.0
SERIES_POINTS = 200
SAGAS_IN_VIEW = 40
MESSAGES_IN_VIEW = 300
EVENTS_IN_VIEW = 60
STATUSES = ("running", "compensating", "completed", "compensated", "failed")
ENDED = ("completed", "compensated", "failed")
PARAMS = [
    "mode",
    "stock",
    "balance",
    "retry_ms",
    "rate_rps",
    "stuck_after_ms",
    "latency_ms",
    "drop_rate",
    "duplicate_rate",
    "reorder_rate",
]
DEFAULT_ORDER = {"customer": "alice", "item": "widget", "qty": 2, "amount": 30}


class SagaEngine(ClusterEngine):
    kind = "saga"
    title = "Saga"
    COMMANDS: ClassVar[dict[str, str]] = {
        **ClusterEngine.DISKLESS_COMMANDS,
        "place_order": "cmd_place_order",
        "traffic": "cmd_traffic",
        "mode": "cmd_mode",
        "fail": "cmd_fail",
    }

    def __init__(self, *, seed: int = 1, **params: Any) -> None:
        only_keys(params, PARAMS, error=InvalidParameter)
        err = InvalidParameter
        mode = text(params, "mode", choices=MODES, default="orchestration", error=err)
        stock = number(params, "stock", lo=0, hi=1_000_000, integer=True, default=100, error=err)
        balance = number(params, "balance", lo=0, hi=1_000_000_000, integer=True, default=500, error=err)
        retry_ms = number(params, "retry_ms", lo=10, hi=60_000, default=200.0, error=err)
        rate = number(params, "rate_rps", lo=0, hi=MAX_RATE_RPS, default=0.0, error=err)
        stuck = number(params, "stuck_after_ms", lo=1000, hi=3_600_000, default=30_000.0, error=err)
        network = self.network_params(params, default_latency_ms=(5.0, 15.0))
        normalized = {
            "mode": mode,
            "stock": stock,
            "balance": balance,
            "retry_ms": retry_ms,
            "rate_rps": rate,
            "stuck_after_ms": stuck,
            **network,
        }
        super().__init__(seed=seed, params=normalized, network=network)
        self.mode = mode
        self.retry_ms = retry_ms
        self.initial_stock = {item: stock for item in ITEMS}
        self.initial_balances = {customer: balance for customer in CUSTOMERS}
        states = [
            {"orders": {}},
            {"stock": dict(self.initial_stock), "held": {i: 0 for i in ITEMS}, "reservations": {}, "released": 0},
            {"balances": dict(self.initial_balances), "charges": {}, "charged": 0, "captured": 0, "refunded": 0},
            {"shipments": {}, "shipped": {i: 0 for i in ITEMS}, "cancelled": 0},
        ]
        classes = (OrderService, InventoryService, PaymentService, ShippingService)
        self.services: dict[str, ServiceNode] = {}
        for step, (name, cls) in enumerate(zip(SERVICES, classes)):
            state = states[step]

            def factory(host: Host, cls: Any = cls, step: int = step, state: dict = state) -> ServiceNode:
                return cls(host, step, retry_ms, state)

            self.services[name] = self.add_node(name, factory)  # type: ignore[assignment]
        self.orchestrator: OrchestratorNode = self.add_node(
            "orchestrator", lambda host: OrchestratorNode(host, retry_ms)
        )  # type: ignore[assignment]
        self.bus: BusNode = self.add_node("bus", lambda host: BusNode(host, retry_ms))  # type: ignore[assignment]
        self.net.attach("client", self._client_receive)
        self.checker = SagaChecker(lambda: self.sim.now, stuck)
        self.sagas: dict[int, dict[str, Any]] = {}
        self.recent: deque[int] = deque(maxlen=SAGAS_IN_VIEW)
        self.running: dict[int, float] = {}  # saga -> started_ms, for the liveness check
        self.counts = {status: 0 for status in STATUSES}
        self.next_saga = 1
        self.client_pending: dict[int, dict[str, Any]] = {}
        self.client_timers: dict[int, Any] = {}
        self.calm_since: float | None = 0.0
        self.traffic_rng = derive_rng(seed, "traffic")
        self.traffic = PoissonArrivals(self.sim, self.traffic_rng, self._traffic_tick)
        self.series: dict[str, deque] = {key: deque(maxlen=SERIES_POINTS) for key in ("t", "running", "completed", "compensated", "failed")}
        for node in self.nodes.values():
            node.start()
        self.narrate(
            f"{mode}: an order goes order -> inventory -> payment -> shipping; "
            f"{stock} of each item in stock, ${balance} on each customer's card",
            "info",
        )
        self.sim.schedule(SERIES_EVERY_MS, self._sample)
        if rate:
            self.traffic.set_rate(rate)

    # -- validation helpers ---------------------------------------------------------------
    @staticmethod
    def _choice(cmd: Mapping[str, Any], key: str, choices: tuple[str, ...], default: str) -> str:
        value = cmd.get(key, default)
        if not isinstance(value, str) or value not in choices:
            raise InvalidCommand(f"'{key}' must be one of {', '.join(choices)}, not {value!r}")
        return value

    # -- commands ---------------------------------------------------------------------------
    def cmd_place_order(self, cmd: Mapping[str, Any]) -> dict[str, Any]:
        only_keys(cmd, ["customer", "item", "qty", "amount"])
        order = {
            "customer": self._choice(cmd, "customer", CUSTOMERS, DEFAULT_ORDER["customer"]),
            "item": self._choice(cmd, "item", ITEMS, DEFAULT_ORDER["item"]),
            "qty": number(cmd, "qty", lo=1, hi=100, integer=True, default=DEFAULT_ORDER["qty"]),
            "amount": number(cmd, "amount", lo=1, hi=100_000, integer=True, default=DEFAULT_ORDER["amount"]),
        }
        saga = self.place_order(order)
        return {"saga": saga}

    def cmd_traffic(self, cmd: Mapping[str, Any]) -> None:
        only_keys(cmd, ["rate_rps"])
        rate = number(cmd, "rate_rps", lo=0, hi=MAX_RATE_RPS)
        self.traffic.set_rate(rate)
        self.narrate(f"traffic: {rate:g} orders per second" if rate else "traffic stopped", "info")

    def cmd_mode(self, cmd: Mapping[str, Any]) -> None:
        only_keys(cmd, ["mode"])
        mode = text(cmd, "mode", choices=MODES)
        self.mode = mode
        how = (
            "the orchestrator drives each step and logs it first"
            if mode == "orchestration"
            else "the services react to each other's events on the bus"
        )
        self.narrate(f"new sagas use {mode}: {how}; sagas already running finish as they started", "info")

    def cmd_fail(self, cmd: Mapping[str, Any]) -> None:
        only_keys(cmd, ["service", "mode", "p"])
        service = cmd.get("service")
        if not isinstance(service, str) or service not in SERVICES:
            raise InvalidCommand(f"'service' must be one of {', '.join(SERVICES)}, not {service!r}")
        mode = text(cmd, "mode", choices=FAIL_MODES, default="always")
        if mode == "p" and "p" not in cmd:
            raise InvalidCommand("mode 'p' needs 'p', the probability that a step fails, e.g. 0.3")
        if mode in ("off", "once") and "p" in cmd:
            raise InvalidCommand(f"'p' only goes with mode 'always' or 'p', not {mode!r}")
        p = number(cmd, "p", lo=0, hi=1, default=1.0)
        switch = self.services[service].failure
        switch.mode, switch.p = mode, p
        name, action, _comp = STEPS[SERVICES.index(service)]
        why = self._reason(service)
        if mode == "off":
            self.narrate(f"{service} works normally again", "fault")
        elif mode == "once":
            self.narrate(f"the next '{action}' at {service} will fail ({why})", "fault")
        else:
            self.narrate(f"'{action}' at {service} fails {'always' if p >= 1 else f'with probability {p:g}'} ({why})", "fault")

    @staticmethod
    def _reason(service: str) -> str:
        from .nodes import BUSINESS_FAILURE

        return BUSINESS_FAILURE[service]

    # -- the front door (the client endpoint) ----------------------------------------------
    def place_order(self, order: dict[str, Any]) -> int:
        saga = self.next_saga
        self.next_saga += 1
        record = {
            "id": saga,
            "status": "running",
            "mode": self.mode,
            "order": dict(order),
            "steps": [
                {"service": name, "action": action, "status": "pending", "compensation": comp}
                for name, action, comp in STEPS
            ],
            "started_ms": self.sim.now,
            "ended_ms": None,
        }
        self.sagas[saga] = record
        self.recent.append(saga)
        self.running[saga] = self.sim.now
        self.counts["running"] += 1
        dst = "orchestrator" if self.mode == "orchestration" else "order"
        self.client_pending[saga] = {"dst": dst, "order": order, "attempt": 0}
        self._client_send(saga)
        return saga

    def _client_send(self, saga: int) -> None:
        pending = self.client_pending.get(saga)
        if pending is None:
            return
        pending["attempt"] += 1
        self.net.send("client", pending["dst"], "PlaceOrder", {"saga": saga, "order": pending["order"], "attempt": pending["attempt"]})
        self.client_timers[saga] = self.sim.schedule(self.retry_ms, self._client_send, saga)

    def _client_receive(self, msg: Message) -> None:
        if msg.type == "Accepted":
            saga = msg.body["saga"]
            if self.client_pending.pop(saga, None) is not None:
                self.client_timers.pop(saga).cancel()

    def _traffic_tick(self) -> None:
        """One order of the background traffic, drawn from the traffic stream."""
        rng = self.traffic_rng
        order = {
            "customer": CUSTOMERS[rng.randrange(len(CUSTOMERS))],
            "item": ITEMS[rng.randrange(len(ITEMS))],
            "qty": rng.randint(1, 3),
            "amount": rng.randint(2, 12) * 5,
        }
        self.place_order(order)

    # -- node facts: the observer and narrator ----------------------------------------------
    def on_node_event(self, node_id: str, event: str, fields: dict[str, Any]) -> None:
        if event == "applied":
            self._on_applied(node_id, fields)
        elif event == "saga_end":
            self._on_end(fields["saga"], fields["status"])
        elif event == "recovered":
            self._on_recovered(fields)
        elif event == "failure_used":
            self.narrate(f"{node_id}: the one-time failure was used; {node_id} works normally again", "fault")
        elif event == "crashed":
            what = {
                "orchestrator": "its saga log is safe on disk; running orchestrated sagas wait",
                "bus": "its event log is safe on disk; events wait to be delivered",
            }.get(node_id, "its books are safe on disk; requests to it go unanswered and are retried")
            self.narrate(f"{node_id} crashed: {what}", "fault")
        elif event == "restarted":
            if node_id != "orchestrator":
                self.narrate(f"{node_id} restarted", "fault")
            elif not self.orchestrator.disk["log"]:
                self.narrate("orchestrator restarted: its log is empty, so there is nothing to resume", "fault")

    def _on_applied(self, service: str, fields: dict[str, Any]) -> None:
        saga, step, action = fields["saga"], fields["step"], fields["action"]
        if fields["effect"]:
            self.checker.on_effect(saga, step, action)
        record = self.sagas.get(saga)
        if record is None:
            return
        steps = record["steps"]
        if action == "forward":
            if fields["ok"]:
                steps[step]["status"] = "done"
            else:
                steps[step]["status"] = "failed"
                steps[step]["reason"] = fields["reason"]
                self._on_failure(record, step, fields["reason"])
        elif fields["effect"]:
            steps[step]["status"] = "compensated"

    def _on_failure(self, record: dict[str, Any], step: int, reason: str) -> None:
        saga = record["id"]
        service, action, _comp = STEPS[step]
        undo = [k for k in range(step - 1, -1, -1) if record["steps"][k]["status"] == "done"]
        order = record["order"]
        head = f"saga {saga}: {service} failed to {action} ({reason})"
        if not undo:
            self.narrate(f"{head}; nothing was done yet, so nothing to undo", "saga", saga=saga)
            return
        if record["status"] == "running":
            self._move(record, "compensating")
        plan = [self._undo_text(k, order) for k in undo]
        self.narrate(f"{head}; compensating: {', then '.join(plan)}", "saga", saga=saga)

    @staticmethod
    def _undo_text(step: int, order: dict[str, Any]) -> str:
        return {
            0: "cancelling the order",
            1: f"releasing {order['qty']} {order['item']} at inventory",
            2: f"refunding ${order['amount']} to {order['customer']}",
            3: "cancelling the shipment",
        }[step]

    def _move(self, record: dict[str, Any], status: str) -> None:
        self.counts[record["status"]] -= 1
        self.counts[status] += 1
        record["status"] = status

    def _on_end(self, saga: int, status: str) -> None:
        record = self.sagas[saga]
        if record["status"] in ENDED:
            return
        self._move(record, status)
        record["ended_ms"] = self.sim.now
        self.running.pop(saga, None)
        self.checker.on_end(saga, status)
        order = record["order"]
        took = self.sim.now - record["started_ms"]
        if status == "completed":
            text_ = (
                f"saga {saga} completed in {took:.0f} ms: {order['qty']} {order['item']} reserved, "
                f"${order['amount']} charged to {order['customer']}, shipment scheduled"
            )
        elif status == "compensated":
            undone = [STEPS[k][2] for k in range(LAST, -1, -1) if record["steps"][k]["status"] == "compensated"]
            text_ = f"saga {saga} compensated in {took:.0f} ms: {and_list(undone)}, in that order"
        else:
            text_ = f"saga {saga} failed at its first step: the order was never created"
        self.narrate(text_, "saga", saga=saga)

    def _on_recovered(self, fields: dict[str, Any]) -> None:
        resumed = fields["resumed"]
        parts = []
        for item in resumed[:5]:
            name, action, comp = STEPS[item["step"]]
            what = action if item["phase"] == "forward" else comp
            how = "resending it (it may have been done: the service dedupes)" if item["resent"] else "sending it"
            parts.append(f"saga {item['saga']} at {name}: {what}, {how}")
        more = f" and {len(resumed) - 5} more" if len(resumed) > 5 else ""
        tail = ("; " + "; ".join(parts) + more) if parts else "; no saga was in progress"
        self.narrate(
            f"orchestrator restarted and replayed its log of {fields['log_length']} entries: "
            f"{len(resumed)} saga{'s' if len(resumed) != 1 else ''} to resume{tail}",
            "fault",
        )

    # -- checking ------------------------------------------------------------------------------
    def _faults_active(self) -> bool:
        net = self.net
        return (
            any(not host.alive for host in self.hosts.values())
            or bool(net.partition_groups())
            or bool(net.cuts())
            or net.drop_rate >= 0.5
        )

    def _update_calm(self) -> None:
        if self._faults_active():
            self.calm_since = None
        elif self.calm_since is None:
            self.calm_since = self.sim.now

    def apply(self, cmd: Any) -> dict[str, Any] | None:
        result = super().apply(cmd)
        self._update_calm()
        return result

    def books(self) -> dict[str, Any]:
        inv, pay, ship = self.services["inventory"].disk, self.services["payment"].disk, self.services["shipping"].disk
        return {
            "initial_stock": self.initial_stock,
            "stock": inv["stock"],
            "held": inv["held"],
            "shipped": ship["shipped"],
            "money": {
                "initial_balances": sum(self.initial_balances.values()),
                "balances": sum(pay["balances"].values()),
                "charged": pay["charged"],
                "captured": pay["captured"],
                "refunded": pay["refunded"],
            },
        }

    def _after_run(self) -> None:
        self.checker.check_books(self.books())
        self._update_calm()
        self.checker.check_liveness(self.running, self.calm_since, self.sim.now)

    def violations(self) -> list[dict[str, Any]]:
        return self.checker.violations()

    def _sample(self) -> None:
        series = self.series
        series["t"].append(self.sim.now)
        series["running"].append(self.counts["running"] + self.counts["compensating"])
        series["completed"].append(self.counts["completed"])
        series["compensated"].append(self.counts["compensated"])
        series["failed"].append(self.counts["failed"])
        self.sim.schedule(SERIES_EVERY_MS, self._sample)

    # -- the view ----------------------------------------------------------------------------
    def ledger(self) -> dict[str, Any]:
        books = self.books()
        items = {}
        for item, initial in self.initial_stock.items():
            held, shipped = books["held"][item], books["shipped"][item]
            items[item] = {"initial": initial, "in_stock": books["stock"][item], "reserved": held - shipped, "shipped": shipped}
        units = {key: sum(entry[key] for entry in items.values()) for key in ("initial", "in_stock", "reserved", "shipped")}
        return {
            "items": items,
            "units": units,
            "money": dict(books["money"]),
            "ok": not self.checker.reports["conservation"],
        }

    def saga_view(self, saga: int) -> dict[str, Any]:
        record = self.sagas[saga]
        return {
            "id": record["id"],
            "status": record["status"],
            "mode": record["mode"],
            "order": dict(record["order"]),
            "steps": [dict(step) for step in record["steps"]],
            "started_ms": round(record["started_ms"], 3),
            "ended_ms": None if record["ended_ms"] is None else round(record["ended_ms"], 3),
        }

    def view(self) -> dict[str, Any]:
        in_flight = self.net.in_flight
        messages = list(in_flight.values())[-MESSAGES_IN_VIEW:]
        return {
            "kind": self.kind,
            "seed": self.seed,
            "now": self.sim.now,
            "params": dict(self.params),
            "mode": self.mode,
            "definition": [
                {"service": name, "action": action, "compensation": comp} for name, action, comp in STEPS
            ],
            "sagas": [self.saga_view(saga) for saga in self.recent],
            "saga_counts": dict(self.counts),
            "services": [
                {
                    "id": name,
                    "alive": self.hosts[name].alive,
                    "failure": node.failure.as_dict(),
                    "state": {**node.summary(), "repeats": node.disk["repeats"]},
                }
                for name, node in self.services.items()
            ],
            "orchestrator": {
                "alive": self.hosts["orchestrator"].alive,
                "log_length": len(self.orchestrator.disk["log"]),
                "in_progress": self.orchestrator.in_progress() if self.hosts["orchestrator"].alive else None,
                "log_tail": [dict(entry) for entry in self.orchestrator.disk["log"][-12:]],
            },
            "bus": {
                "alive": self.hosts["bus"].alive,
                "events": len(self.bus.disk["events"]),
                "undelivered": len(self.bus.disk["pending"]),
            },
            "traffic": {"rate_rps": self.traffic.rate_rps},
            "messages": [
                {
                    "id": msg.id,
                    "from": msg.src,
                    "to": msg.dst,
                    "type": msg.type,
                    "send_ms": round(msg.send_ms, 3),
                    "deliver_ms": round(msg.deliver_ms, 3),
                    "lost": msg.lost,
                    "duplicate": msg.dup_of is not None,
                    "saga": msg.body.get("saga"),
                    **({"event": msg.body["type"]} if "type" in msg.body else {}),
                    **({"action": msg.body["action"], "attempt": msg.body["attempt"]} if msg.type in ("Do", "Ack") else {}),
                }
                for msg in messages
            ],
            "messages_total": len(in_flight),
            "ledger": self.ledger(),
            "series": {key: [round(v, 3) if isinstance(v, float) else v for v in values] for key, values in self.series.items()},
            "events": self.events()[-EVENTS_IN_VIEW:],
            "invariants": self.checker.summary(),
            "network": self.network_view(),
        }
