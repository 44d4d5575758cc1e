"""Property-based tests of the saga engine, and of its apply()/create() validation.

The state machine drives random schedules of orders, business failures
(once, always, with a probability), crashes and restarts of any service, the
orchestrator or the bus, partitions, message loss, duplication and
reordering, traffic, and live mode switches. After every step the safety
invariants hold (no double effect, compensations in reverse order,
conservation of units and money). At the end it heals every fault and checks
that every saga ends completed, compensated or failed, with the books balanced.

Bounded by default; for a longer soak:

    SAGA_MAX_EXAMPLES=1000 SAGA_STEPS=60 .venv/bin/python -m pytest tests/test_saga_properties.py
"""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

import patterns
from engine_contract import assert_rejected_without_effect, schedule_settings
from patterns.errors import InvalidCommand, InvalidParameter
from patterns.saga.engine import CUSTOMERS, ITEMS

WAIT = st.sampled_from([0, 0, 5, 20, 60, 150, 400, 1000])
NODES = ["order", "inventory", "payment", "shipping", "orchestrator", "bus"]
SERVICES = ["order", "inventory", "payment", "shipping"]
SAFETY = ("no_double_effect", "compensation_order", "conservation")


def state_json(eng) -> str:
    return json.dumps({"view": eng.view(), "events": eng.events(), "log": eng.command_log}, sort_keys=True)


class SagaSchedules(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.eng = None

    @initialize(
        seed=st.integers(0, 2**32),
        mode=st.sampled_from(["orchestration", "choreography"]),
        stock=st.sampled_from([5, 100]),
        balance=st.sampled_from([100, 500]),
        rate=st.sampled_from([0, 0, 5, 20]),
    )
    def create(self, seed, mode, stock, balance, rate):
        self.eng = patterns.create("saga", seed=seed, mode=mode, stock=stock, balance=balance, rate_rps=rate)

    def alive(self, node: str) -> bool:
        return self.eng.hosts[node].alive

    def rejected(self, cmd: dict) -> None:
        before = state_json(self.eng)
        with pytest.raises(InvalidCommand):
            self.eng.apply(cmd)
        assert state_json(self.eng) == before

    # -- load ------------------------------------------------------------------------------
    @rule(customer=st.sampled_from(CUSTOMERS), item=st.sampled_from(ITEMS), qty=st.integers(1, 4), amount=st.integers(1, 150), wait=WAIT)
    def place_order(self, customer, item, qty, amount, wait):
        result = self.eng.apply({"op": "place_order", "customer": customer, "item": item, "qty": qty, "amount": amount})
        assert result["saga"] in self.eng.sagas
        self.eng.advance(wait)

    @rule(rate=st.sampled_from([0, 2, 10, 50]), wait=WAIT)
    def traffic(self, rate, wait):
        self.eng.apply({"op": "traffic", "rate_rps": rate})
        self.eng.advance(wait)

    @rule(mode=st.sampled_from(["orchestration", "choreography"]), wait=WAIT)
    def mode(self, mode, wait):
        self.eng.apply({"op": "mode", "mode": mode})
        self.eng.advance(wait)

    # -- faults ------------------------------------------------------------------------------
    @rule(service=st.sampled_from(SERVICES), mode=st.sampled_from(["off", "once", "always", "p"]), p=st.sampled_from([0.1, 0.5, 1.0]), wait=WAIT)
    def fail(self, service, mode, p, wait):
        cmd = {"op": "fail", "service": service, "mode": mode}
        if mode in ("always", "p"):
            cmd["p"] = p
        self.eng.apply(cmd)
        self.eng.advance(wait)

    @rule(node=st.sampled_from(NODES), wait=WAIT)
    def crash(self, node, wait):
        cmd = {"op": "crash", "node": node}
        self.eng.apply(cmd) if self.alive(node) else self.rejected(cmd)
        self.eng.advance(wait)

    @rule(node=st.sampled_from(NODES), wait=WAIT)
    def restart(self, node, wait):
        cmd = {"op": "restart", "node": node}
        self.rejected(cmd) if self.alive(node) else self.eng.apply(cmd)
        self.eng.advance(wait)

    @rule(labels=st.lists(st.integers(0, 1), min_size=6, max_size=6), wait=WAIT)
    def partition(self, labels, wait):
        groups: dict[int, list[str]] = {}
        for node, label in zip(NODES, labels):
            groups.setdefault(label, []).append(node)
        cmd = {"op": "partition", "groups": [groups[k] for k in sorted(groups)]}
        self.eng.apply(cmd) if len(groups) >= 2 else self.rejected(cmd)
        self.eng.advance(wait)

    @rule(wait=WAIT)
    def heal(self, wait):
        self.eng.apply({"op": "heal"})
        self.eng.advance(wait)

    @rule(
        drop=st.sampled_from([0.0, 0.0, 0.1, 0.3]),
        dup=st.sampled_from([0.0, 0.3, 1.0]),
        reorder=st.sampled_from([0.0, 0.5]),
        wait=WAIT,
    )
    def network(self, drop, dup, reorder, wait):
        self.eng.apply({"op": "network", "drop_rate": drop, "duplicate_rate": dup, "reorder_rate": reorder})
        self.eng.advance(wait)

    @rule(count=st.integers(1, 30))
    def steps(self, count):
        for _ in range(count):
            self.eng.step()

    # -- checks ------------------------------------------------------------------------------
    @invariant()
    def safety_holds(self):
        if self.eng is None:
            return
        broken = [v for v in self.eng.violations() if v["invariant"] in SAFETY]
        assert broken == [], broken

    @invariant()
    def counts_match(self):
        if self.eng is None:
            return
        counts = self.eng.view()["saga_counts"]
        assert sum(counts.values()) == len(self.eng.sagas)

    def teardown(self):
        eng = self.eng
        if eng is None:
            return
        eng.apply({"op": "traffic", "rate_rps": 0})
        for service in SERVICES:
            eng.apply({"op": "fail", "service": service, "mode": "off"})
        for node in NODES:
            if not eng.hosts[node].alive:
                eng.apply({"op": "restart", "node": node})
        eng.apply({"op": "heal"})
        eng.apply({"op": "network", "drop_rate": 0, "duplicate_rate": 0, "reorder_rate": 0})
        eng.advance(20_000)
        view = eng.view()
        stuck = [s for s in eng.sagas.values() if s["status"] not in ("completed", "compensated", "failed")]
        assert stuck == [], stuck[:3]
        assert eng.violations() == []
        ledger = view["ledger"]
        for entry in ledger["items"].values():
            assert entry["in_stock"] + entry["reserved"] + entry["shipped"] == entry["initial"]
            assert entry["reserved"] == 0  # every ended saga shipped or released its units
        money = ledger["money"]
        assert money["charged"] == money["captured"] + money["refunded"]
        # Every completed saga charged once; every compensated one was refunded.
        completed = [s for s in eng.sagas.values() if s["status"] == "completed"]
        assert money["captured"] == sum(s["order"]["amount"] for s in completed)
        assert ledger["units"]["shipped"] == sum(s["order"]["qty"] for s in completed)
        assert view["bus"]["undelivered"] == 0


TestSagaSchedules = SagaSchedules.TestCase
TestSagaSchedules.settings = schedule_settings("SAGA", max_examples=100, steps=40)


# -- validation ------------------------------------------------------------------------------


def busy_engine():
    eng = patterns.create("saga", seed=5, rate_rps=10)
    eng.advance(700)
    return eng


BAD_COMMANDS = [
    ({"op": "place_order", "customer": "dave"}, "'customer' must be one of alice, bob, carol"),
    ({"op": "place_order", "item": 3}, "'item' must be one of widget, gadget, gizmo"),
    ({"op": "place_order", "qty": 0}, "'qty' must be between 1 and 100"),
    ({"op": "place_order", "qty": 1.5}, "'qty' must be a whole number"),
    ({"op": "place_order", "amount": -5}, "'amount' must be between 1 and 100000"),
    ({"op": "place_order", "price": 5}, "does not take 'price'"),
    ({"op": "traffic"}, "'rate_rps' is required"),
    ({"op": "traffic", "rate_rps": 51}, "'rate_rps' must be between 0 and 50"),
    ({"op": "traffic", "rate_rps": math.nan}, "'rate_rps' must be a number"),
    ({"op": "mode"}, "'mode' is required"),
    ({"op": "mode", "mode": "chaos"}, "'mode' must be one of orchestration, choreography"),
    ({"op": "fail"}, "'service' must be one of order, inventory, payment, shipping"),
    ({"op": "fail", "service": "orchestrator"}, "'service' must be one of"),
    ({"op": "fail", "service": "payment", "mode": "sometimes"}, "'mode' must be one of off, once, always, p"),
    ({"op": "fail", "service": "payment", "mode": "p"}, "mode 'p' needs 'p'"),
    ({"op": "fail", "service": "payment", "mode": "once", "p": 0.5}, "'p' only goes with mode 'always' or 'p'"),
    ({"op": "fail", "service": "payment", "p": 2}, "'p' must be between 0 and 1"),
    ({"op": "crash", "node": "bank"}, "unknown node 'bank'"),
    ({"op": "restart", "node": "order"}, "order is already up"),
    ({"op": "crash_lose_disk", "node": "order"}, "unknown op 'crash_lose_disk'"),
    ({"op": "partition", "groups": [["order"], ["order"]]}, "more than one group"),
    ({"op": "network", "duplicate_rate": 3}, "'duplicate_rate' must be between 0 and 1"),
    ({"op": "explode"}, "unknown op 'explode' for saga"),
    ({"node": "order"}, "a command needs an 'op'"),
]


@pytest.mark.parametrize("cmd,fragment", BAD_COMMANDS, ids=[json.dumps(c) for c, _ in BAD_COMMANDS])
def test_bad_commands_raise_and_change_nothing(cmd, fragment):
    assert_rejected_without_effect(busy_engine, cmd, fragment, state_json)


def test_a_command_that_is_not_an_object_is_rejected():
    eng = busy_engine()
    before = state_json(eng)
    with pytest.raises(InvalidCommand):
        eng.apply(["place_order"])
    assert state_json(eng) == before


BAD_PARAMS = [
    ({"mode": "chaos"}, "'mode' must be one of orchestration, choreography"),
    ({"stock": -1}, "'stock' must be between 0 and"),
    ({"balance": 1.5}, "'balance' must be a whole number"),
    ({"retry_ms": 1}, "'retry_ms' must be between 10 and"),
    ({"rate_rps": 60}, "'rate_rps' must be between 0 and 50"),
    ({"stuck_after_ms": 10}, "'stuck_after_ms' must be between"),
    ({"latency_ms": [5, 1]}, "min <= max"),
    ({"drop_rate": 2}, "'drop_rate' must be between 0 and 1"),
    ({"colour": "red"}, "does not take 'colour'"),
]


@pytest.mark.parametrize("params,fragment", BAD_PARAMS, ids=[next(iter(p)) for p, _ in BAD_PARAMS])
def test_bad_create_params_raise_invalid_parameter(params, fragment):
    with pytest.raises(InvalidParameter) as info:
        patterns.create("saga", seed=1, **params)
    assert fragment in str(info.value)


def test_every_parameter_has_a_default_and_place_order_returns_the_saga_id():
    eng = patterns.create("saga", seed=1)
    assert "saga" in patterns.kinds()
    assert list(eng.nodes) == NODES
    assert eng.apply({"op": "place_order"}) == {"saga": 1}
    assert eng.apply({"op": "place_order", "customer": "bob", "item": "gizmo", "qty": 1, "amount": 99}) == {"saga": 2}
    eng.advance(2_000)
    view = eng.view()
    assert view["saga_counts"]["completed"] == 2 and eng.violations() == []


def test_view_has_the_documented_keys_and_stays_small_at_50_orders_per_second():
    eng = patterns.create("saga", seed=3, rate_rps=50, stock=100_000, balance=1_000_000)
    eng.apply({"op": "fail", "service": "payment", "mode": "p", "p": 0.2})
    eng.apply({"op": "network", "duplicate_rate": 0.2, "reorder_rate": 0.2})
    eng.advance(60_000)
    view = eng.view()
    for key in [
        "sagas", "saga_counts", "definition", "services", "orchestrator", "bus", "messages", "messages_total",
        "ledger", "series", "events", "invariants", "network", "params", "seed", "now", "kind", "mode",
    ]:
        assert key in view
    assert len(view["sagas"]) == 40 and len(view["messages"]) <= 300
    assert set(view["series"]) == {"t", "running", "completed", "compensated", "failed"}
    assert len(view["series"]["t"]) == 200 and view["series"]["t"][1] - view["series"]["t"][0] == 250
    assert [d["service"] for d in view["definition"]] == SERVICES
    assert view["definition"][2] == {"service": "payment", "action": "charge card", "compensation": "refund"}
    counts = view["saga_counts"]
    assert counts["completed"] > 2000 and counts["compensated"] > 400
    assert eng.violations() == []
    assert len(json.dumps(view)) < 300_000


# -- the checker sees what it should ----------------------------------------------------------


def test_a_long_outage_is_not_a_liveness_violation_and_the_saga_finishes_after_it():
    eng = patterns.create("saga", seed=9, stuck_after_ms=5_000)
    eng.apply({"op": "crash", "node": "payment"})
    eng.apply({"op": "place_order"})
    eng.advance(60_000)
    assert eng.sagas[1]["status"] == "running" and eng.violations() == []
    eng.apply({"op": "restart", "node": "payment"})
    eng.advance(2_000)
    assert eng.sagas[1]["status"] == "completed" and eng.violations() == []


def test_the_liveness_check_reports_a_saga_stuck_after_faults_healed():
    from patterns.saga.checker import SagaChecker

    now = [0.0]
    checker = SagaChecker(lambda: now[0], stuck_after_ms=1_000)
    now[0] = 5_000.0
    checker.check_liveness({7: 100.0}, calm_since=None, now=now[0])  # a fault is active: no judgement
    checker.check_liveness({7: 100.0}, calm_since=4_500.0, now=now[0])  # healed 500 ms ago: still fine
    assert checker.violations() == []
    now[0] = 6_000.0
    checker.check_liveness({7: 100.0}, calm_since=4_500.0, now=now[0])
    assert [v["invariant"] for v in checker.violations()] == ["liveness"]
    assert "saga 7 is still running" in checker.violations()[0]["message"]


def test_the_checker_catches_units_created_out_of_thin_air():
    eng = patterns.create("saga", seed=4)
    eng.apply({"op": "place_order"})
    eng.advance(500)
    assert eng.violations() == []
    eng.services["inventory"].disk["stock"]["widget"] += 5  # a bug that creates stock
    eng.advance(1)
    found = eng.violations()
    assert [v["invariant"] for v in found] == ["conservation"]
    assert "widget: 103 in stock + 2 reserved = 105, but there were 100" in found[0]["message"]
    assert eng.view()["ledger"]["ok"] is False


def test_the_checker_catches_a_double_charge_and_a_wrong_compensation_order():
    from patterns.saga.checker import SagaChecker

    checker = SagaChecker(lambda: 0.0, stuck_after_ms=1_000)
    for step in (0, 1, 2):
        checker.on_effect(1, step, "forward")
    checker.on_effect(1, 2, "forward")
    checker.on_effect(1, 0, "compensate")  # order cancelled before the refund and the release
    checker.on_effect(1, 2, "compensate")
    checker.on_effect(1, 1, "compensate")
    checker.on_end(1, "compensated")
    assert [v["invariant"] for v in checker.violations()] == ["no_double_effect", "compensation_order"]
    assert "payment applied its step twice for saga 1" in checker.violations()[0]["message"]
