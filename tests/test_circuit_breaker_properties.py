"""Property-based tests of the circuit breaker engine, and of its apply()/create() validation.

The state machine drives random schedules of downstream faults (errors,
latency, hangs, gray failures, crashes, restarts), front crashes, partitions,
network changes, traffic and fan-out changes, and live changes to every
pipeline setting (breaker, retry, bulkhead, fallback, timeout, composition,
forced states). After every step the engine's invariants hold and the view
agrees with itself. At the end it repairs everything and checks that traffic
is served again and every breaker closes.

Bounded by default; for a longer soak:

    CB_MAX_EXAMPLES=500 CB_STEPS=60 .venv/bin/python -m pytest tests/test_circuit_breaker_properties.py
"""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

import patterns
from engine_contract import assert_rejected_without_effect, schedule_settings
from patterns.errors import InvalidCommand, InvalidParameter

WAIT = st.sampled_from([0, 0, 5, 40, 150, 400])
INDEX = st.integers(0, 10)
BREAKER = st.fixed_dictionaries(
    {},
    optional={
        "window_type": st.sampled_from(["count", "time"]),
        "window_size": st.sampled_from([5, 20, 50]),
        "window_ms": st.sampled_from([200, 1000, 3000]),
        "failure_rate_threshold": st.sampled_from([10, 50, 100]),
        "slow_call_rate_threshold": st.sampled_from([20, 100]),
        "slow_call_ms": st.sampled_from([20, 100, 300]),
        "minimum_calls": st.sampled_from([1, 5, 10]),
        "wait_open_ms": st.sampled_from([50, 500, 2000]),
        "half_open_calls": st.sampled_from([1, 3, 10]),
    },
)
RETRY = st.fixed_dictionaries(
    {},
    optional={
        "policy": st.sampled_from(["none", "fixed", "exponential", "exponential_jitter"]),
        "max_attempts": st.integers(1, 5),
        "base_ms": st.sampled_from([5, 50, 200]),
        "budget": st.booleans(),
        "budget_ratio": st.sampled_from([0, 0.2, 1.0]),
    },
)


def state_json(eng) -> str:
    return json.dumps({"view": eng.view(), "events": eng.events(), "log": eng.command_log}, sort_keys=True)


class CircuitBreakerSchedules(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.eng = None

    @initialize(
        seed=st.integers(0, 2**32),
        downstreams=st.integers(1, 4),
        rate=st.sampled_from([0, 30, 100, 200]),
        workers=st.sampled_from([2, 20]),
        bulkhead=st.sampled_from([1, 3, 10]),
    )
    def create(self, seed, downstreams, rate, workers, bulkhead):
        self.eng = patterns.create(
            "circuit_breaker", seed=seed, downstreams=downstreams, rate_rps=rate, front_workers=workers,
            bulkhead_limit=bulkhead,
        )

    def node(self, index: int) -> str:
        ids = list(self.eng.nodes)
        return ids[index % len(ids)]

    def downstream(self, index: int) -> str:
        ids = list(self.eng.downstreams)
        return ids[index % len(ids)]

    def rejected(self, cmd: dict) -> None:
        before = state_json(self.eng)
        with pytest.raises(InvalidCommand):
            self.eng.apply(cmd)
        assert state_json(self.eng) == before

    # -- faults ------------------------------------------------------------------------
    @rule(index=INDEX, wait=WAIT)
    def crash(self, index, wait):
        node_id = self.node(index)
        cmd = {"op": "crash", "node": node_id}
        self.eng.apply(cmd) if self.eng.hosts[node_id].alive else self.rejected(cmd)
        self.eng.advance(wait)

    @rule(index=INDEX, wait=WAIT)
    def restart(self, index, wait):
        node_id = self.node(index)
        cmd = {"op": "restart", "node": node_id}
        self.rejected(cmd) if self.eng.hosts[node_id].alive else self.eng.apply(cmd)
        self.eng.advance(wait)

    @rule(
        index=INDEX,
        error=st.sampled_from([0.0, 0.3, 1.0]),
        latency=st.sampled_from([[10, 30], [100, 400], [0, 0]]),
        hang=st.sampled_from([0.0, 0.5, 1.0]),
        gray=st.booleans(),
        wait=WAIT,
    )
    def fault(self, index, error, latency, hang, gray, wait):
        self.eng.apply(
            {"op": "downstream", "node": self.downstream(index), "error_rate": error, "latency_ms": latency,
             "hang_rate": hang, "gray": gray}
        )
        self.eng.advance(wait)

    @rule(index=INDEX, wait=WAIT)
    def partition(self, index, wait):
        self.eng.apply({"op": "partition", "groups": [[self.downstream(index)]]})
        self.eng.advance(wait)

    @rule(wait=WAIT)
    def heal(self, wait):
        self.eng.apply({"op": "heal"})
        self.eng.advance(wait)

    @rule(drop=st.sampled_from([0.0, 0.05]), dup=st.sampled_from([0.0, 0.2]), reorder=st.sampled_from([0.0, 0.3]))
    def network(self, drop, dup, reorder):
        self.eng.apply({"op": "network", "latency_ms": [1, 5], "drop_rate": drop, "duplicate_rate": dup, "reorder_rate": reorder})

    # -- the learner's settings ---------------------------------------------------------------
    @rule(rate=st.sampled_from([0, 20, 100, 200]), fan=st.integers(1, 15), wait=WAIT)
    def traffic(self, rate, fan, wait):
        ids = list(self.eng.downstreams)
        fanout = [d for i, d in enumerate(ids) if fan >> i & 1] or ids[:1]
        self.eng.apply({"op": "traffic", "rate_rps": rate, "fanout": fanout})
        self.eng.advance(wait)

    @rule(change=BREAKER, wait=WAIT)
    def breaker(self, change, wait):
        cmd = {"op": "breaker", **change}
        if not change:
            self.rejected(cmd)
        else:
            self.eng.apply(cmd)
        self.eng.advance(wait)

    @rule(change=RETRY, wait=WAIT)
    def retry(self, change, wait):
        cmd = {"op": "retry", **change}
        self.eng.apply(cmd) if change else self.rejected(cmd)
        self.eng.advance(wait)

    @rule(limit=st.integers(1, 12), wait=WAIT)
    def bulkhead(self, limit, wait):
        self.eng.apply({"op": "bulkhead", "limit": limit})
        self.eng.advance(wait)

    @rule(mode=st.sampled_from(["default", "cached"]))
    def fallback(self, mode):
        self.eng.apply({"op": "fallback", "mode": mode})

    @rule(flags=st.fixed_dictionaries({}, optional={k: st.booleans() for k in ["breaker", "retry", "bulkhead", "fallback"]}), wait=WAIT)
    def pipeline(self, flags, wait):
        cmd = {"op": "pipeline", **flags}
        self.eng.apply(cmd) if flags else self.rejected(cmd)
        self.eng.advance(wait)

    @rule(ms=st.sampled_from([20, 200, 1000]))
    def timeout(self, ms):
        self.eng.apply({"op": "timeout", "timeout_ms": ms})

    @rule(state=st.sampled_from(["closed", "open", "half_open", "disabled"]), index=st.none() | INDEX, wait=WAIT)
    def force(self, state, index, wait):
        cmd = {"op": "force", "state": state}
        if index is not None:
            cmd["node"] = self.downstream(index)
        self.eng.apply(cmd) if self.eng.hosts["front"].alive else self.rejected(cmd)
        self.eng.advance(wait)

    # -- time ----------------------------------------------------------------------------------
    @rule(ms=st.sampled_from([1, 50, 300, 1000]))
    def advance(self, ms):
        before = self.eng.now
        self.eng.advance(ms)
        assert self.eng.now == before + ms

    @rule(count=st.integers(1, 30))
    def step(self, count):
        for _ in range(count):
            self.eng.step()

    # -- checks --------------------------------------------------------------------------------
    @invariant()
    def safety(self):
        if self.eng is not None:
            assert self.eng.violations() == []

    @precondition(lambda self: self.eng is not None)
    @invariant()
    def the_view_agrees(self):
        view = self.eng.view()
        assert set(view["breakers"]) == set(self.eng.downstreams)
        assert view["breaker"] == view["breakers"]["d1"]
        for b in view["breakers"].values():
            assert b["state"] in ("closed", "open", "half_open", "disabled")
            assert len(b["transitions"]) <= 20
        for d in view["downstream"]:
            if not d["alive"]:
                assert d["in_flight"] == 0
        totals = view["totals"]
        assert totals["requests"] == totals["client_done"] + totals["pending"]
        assert len(view["messages"]) <= 300 and view["messages_total"] >= len(view["messages"])
        series = view["series"]
        assert len(series["t"]) <= 300 and len(series["client_rps"]) == len(series["t"])
        assert all(item["ok"] for item in view["invariants"])

    def teardown(self):
        eng = self.eng
        if eng is None or eng.violations():
            return
        eng.apply({"op": "heal"})
        eng.apply({"op": "network", "latency_ms": [1, 3], "drop_rate": 0, "duplicate_rate": 0, "reorder_rate": 0})
        for node_id in list(eng.nodes):
            if not eng.hosts[node_id].alive:
                eng.apply({"op": "restart", "node": node_id})
            if node_id in eng.downstreams:
                eng.apply({"op": "downstream", "node": node_id, "error_rate": 0, "latency_ms": [10, 30], "hang_rate": 0, "gray": False})
        eng.apply({"op": "breaker", "window_type": "count", "window_size": 20, "minimum_calls": 10,
                   "failure_rate_threshold": 50, "slow_call_rate_threshold": 100, "slow_call_ms": 300,
                   "wait_open_ms": 500, "half_open_calls": 3})
        eng.apply({"op": "pipeline", "breaker": True, "retry": True, "bulkhead": True, "fallback": False})
        eng.apply({"op": "bulkhead", "limit": 10})
        eng.apply({"op": "timeout", "timeout_ms": 500})
        for d, breaker in eng.front.breakers.items():
            if breaker.state == "disabled":  # only force leaves disabled
                eng.apply({"op": "force", "state": "closed", "node": d})
        eng.apply({"op": "traffic", "rate_rps": 30, "fanout": list(eng.downstreams)})
        # Longer than a client's 5 s timeout: requests lost before the repair have ended.
        eng.advance(6000)
        done: list = []
        eng.recorder = done
        eng.advance(5000)
        eng.recorder = None
        assert eng.violations() == []
        assert len(done) >= 0.6 * 30 * 5
        assert sum(1 for d in done if not d.ok) <= 0.05 * len(done)
        # Every breaker found its own way back to closed (none is stuck half-open).
        assert all(b["state"] == "closed" for b in eng.view()["breakers"].values())


TestCircuitBreakerSchedules = CircuitBreakerSchedules.TestCase
TestCircuitBreakerSchedules.settings = schedule_settings("CB", max_examples=80, steps=40)


# -- apply() validation ------------------------------------------------------------------------------


def busy_engine():
    """Traffic, a failing d1 with its breaker open, a gray d2, a crashed d3."""
    eng = patterns.create("circuit_breaker", seed=11, downstreams=3, rate_rps=200)
    eng.advance(500)
    eng.apply({"op": "downstream", "node": "d1", "error_rate": 1.0})
    eng.apply({"op": "downstream", "node": "d2", "gray": True})
    eng.apply({"op": "crash", "node": "d3"})
    eng.advance(733)
    return eng


BAD_COMMANDS = [
    ("not a dict", ["force", "open"], "must be a JSON object"),
    ("unknown op", {"op": "explode"}, "unknown op 'explode'"),
    ("no disk to lose", {"op": "crash_lose_disk", "node": "d1"}, "unknown op 'crash_lose_disk'"),
    ("crash unknown", {"op": "crash", "node": "d9"}, "unknown node 'd9'"),
    ("crash a crashed node", {"op": "crash", "node": "d3"}, "d3 is down"),
    ("restart a live node", {"op": "restart", "node": "front"}, "already up"),
    ("traffic empty", {"op": "traffic"}, "needs 'rate_rps'"),
    ("traffic too high", {"op": "traffic", "rate_rps": 1001}, "between 0 and 1000"),
    ("traffic negative", {"op": "traffic", "rate_rps": -1}, "between 0 and 1000"),
    ("traffic NaN", {"op": "traffic", "rate_rps": math.nan}, "must be a number"),
    ("fanout empty", {"op": "traffic", "fanout": []}, "'fanout' must be a non-empty list"),
    ("fanout unknown", {"op": "traffic", "fanout": ["d7"]}, "'fanout' must be a non-empty list"),
    ("fanout twice", {"op": "traffic", "fanout": ["d1", "d1"]}, "distinct"),
    ("downstream front", {"op": "downstream", "node": "front", "error_rate": 0.5}, "front is the front service"),
    ("downstream nothing", {"op": "downstream", "node": "d1"}, "needs at least one of"),
    ("downstream error rate", {"op": "downstream", "node": "d1", "error_rate": 1.5}, "between 0 and 1"),
    ("downstream latency order", {"op": "downstream", "node": "d1", "latency_ms": [50, 10]}, "min <= max"),
    ("downstream gray text", {"op": "downstream", "node": "d1", "gray": "yes"}, "true or false"),
    ("downstream extra", {"op": "downstream", "node": "d1", "speed": 2}, "does not take 'speed'"),
    ("breaker empty", {"op": "breaker"}, "needs at least one of"),
    ("breaker threshold", {"op": "breaker", "failure_rate_threshold": 0}, "between 1 and 100"),
    ("breaker window type", {"op": "breaker", "window_type": "sliding"}, "must be one of count, time"),
    ("breaker half open zero", {"op": "breaker", "half_open_calls": 0}, "between 1 and 100"),
    ("breaker fraction", {"op": "breaker", "window_size": 2.5}, "whole number"),
    ("retry empty", {"op": "retry"}, "needs at least one of"),
    ("retry policy", {"op": "retry", "policy": "random"}, "must be one of none, fixed"),
    ("retry attempts", {"op": "retry", "max_attempts": 0}, "between 1 and 10"),
    ("retry cap below base", {"op": "retry", "base_ms": 500, "cap_ms": 100}, "at least 'base_ms'"),
    ("retry budget text", {"op": "retry", "budget": 1}, "true or false"),
    ("bulkhead missing", {"op": "bulkhead"}, "'limit' is required"),
    ("bulkhead zero", {"op": "bulkhead", "limit": 0}, "between 1 and 1000"),
    ("fallback mode", {"op": "fallback", "mode": "random"}, "must be one of default, cached"),
    ("pipeline empty", {"op": "pipeline"}, "needs at least one of"),
    ("pipeline text", {"op": "pipeline", "breaker": "on"}, "true or false"),
    ("pipeline unknown", {"op": "pipeline", "cache": True}, "does not take 'cache'"),
    ("timeout zero", {"op": "timeout", "timeout_ms": 0}, "between 1 and 60000"),
    ("force unknown state", {"op": "force", "state": "ajar"}, "must be one of closed, open"),
    ("force front", {"op": "force", "state": "open", "node": "front"}, "front is the front service"),
    ("force no state", {"op": "force"}, "'state' is required"),
    ("front empty", {"op": "front"}, "needs 'workers'"),
    ("front workers zero", {"op": "front", "workers": 0}, "between 1 and 1000"),
    ("partition unknown", {"op": "partition", "groups": [["d1", "x"]]}, "unknown node 'x'"),
]


@pytest.mark.parametrize("cmd,fragment", [(c, f) for _, c, f in BAD_COMMANDS], ids=[n for n, _, _ in BAD_COMMANDS])
def test_bad_command_is_rejected_and_changes_nothing(cmd, fragment):
    assert_rejected_without_effect(busy_engine, cmd, fragment, state_json, future_ms=1500)


def test_minimum_calls_is_capped_at_a_count_window():
    eng = patterns.create("circuit_breaker", seed=3, rate_rps=100, retry=False)
    eng.apply({"op": "breaker", "window_size": 5})  # minimum_calls stays 10, judged at 5
    eng.apply({"op": "downstream", "node": "d1", "error_rate": 1.0})
    eng.advance(200)
    assert eng.view()["breakers"]["d1"]["state"] == "open"
    assert "5 of 5 calls in the window failed" in eng.view()["breakers"]["d1"]["transitions"][0]["why"]


def test_force_needs_a_live_front():
    eng = patterns.create("circuit_breaker", seed=2)
    eng.apply({"op": "crash", "node": "front"})
    with pytest.raises(InvalidCommand, match="front is down"):
        eng.apply({"op": "force", "state": "open"})


BAD_PARAMS = [
    ({"downstreams": 5}, "between 1 and 4"),
    ({"downstreams": 0}, "between 1 and 4"),
    ({"rate_rps": 2000}, "between 0 and 1000"),
    ({"retry_policy": "sometimes"}, "must be one of"),
    ({"fanout": ["d3"]}, "'fanout'"),
    ({"minimum_calls": 0}, "between 1 and 1000"),
    ({"breaker": "yes"}, "true or false"),
    ({"colour": "red"}, "does not take 'colour'"),
]


@pytest.mark.parametrize("params,fragment", BAD_PARAMS, ids=[str(p) for p, _ in BAD_PARAMS])
def test_bad_parameters_are_rejected(params, fragment):
    with pytest.raises(InvalidParameter, match=fragment):
        patterns.create("circuit_breaker", seed=1, **params)


def test_every_parameter_has_a_default_and_the_view_has_its_keys():
    eng = patterns.create("circuit_breaker")
    assert "circuit_breaker" in patterns.kinds()
    eng.advance(1000)
    view = eng.view()
    for key in ["breakers", "breaker", "downstream", "front", "pipeline", "stats", "series", "messages",
                "messages_total", "events", "invariants", "network", "params", "seed", "now", "kind"]:
        assert key in view, key
    for key in ["state", "failure_rate", "slow_rate", "calls_in_window", "transitions"]:
        assert key in view["breaker"]
    for key in ["id", "alive", "in_flight", "received", "error_rate", "latency_ms", "gray"]:
        assert key in view["downstream"][0]
    for key in ["attempts", "successes", "failures", "short_circuited", "fallbacks", "bulkhead_rejected",
                "p99_ms", "client_rps", "downstream_rps", "amplification"]:
        assert key in view["stats"]
    for key in ["t", "client_rps", "downstream_rps", "amplification", "p99_ms", "error_rate", "breaker_state", "in_flight"]:
        assert key in view["series"]
    assert view["front"]["workers"] == 20 and view["stats"]["amplification"] == 1.0
    json.dumps(view)


def test_probes_in_flight_when_the_breaker_is_switched_off_still_decide():
    """Half-open probes sent through the breaker are recorded even if the breaker is off when they end."""
    eng = patterns.create("circuit_breaker", seed=4, rate_rps=200, retry=False)
    eng.apply({"op": "force", "state": "half_open", "node": "d1"})
    eng.advance(15)  # the three probes are in flight (10-30 ms each)
    assert eng.front.breakers["d1"].probes_permitted == 3
    eng.apply({"op": "pipeline", "breaker": False})
    eng.advance(100)
    eng.apply({"op": "pipeline", "breaker": True})
    eng.advance(100)
    assert eng.view()["breakers"]["d1"]["state"] == "closed"
    assert eng.violations() == []


def test_lowering_half_open_calls_settles_a_half_open_breaker():
    eng = patterns.create("circuit_breaker", seed=4, rate_rps=200, retry=False, half_open_calls=50)
    eng.apply({"op": "force", "state": "half_open", "node": "d1"})
    eng.advance(100)  # some 20 probes, fewer than 50
    eng.apply({"op": "traffic", "rate_rps": 0})
    eng.advance(300)
    assert eng.view()["breakers"]["d1"]["state"] == "half_open"
    assert 0 < eng.view()["breakers"]["d1"]["calls_in_window"] < 50
    eng.apply({"op": "breaker", "half_open_calls": 1})
    assert eng.view()["breakers"]["d1"]["state"] == "closed"
