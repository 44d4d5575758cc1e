"""Runs every scenario in tests/scenarios/circuit_breaker/ and checks its exact output.

``REWRITE=1 pytest tests/test_circuit_breaker_scenarios.py`` regenerates the
expected output in place; read the diff before committing it.

Besides the exact text, the checks below assert each lesson (numbers parsed
from the output and the engine's views), so a rewrite that accepts a run that
no longer shows it still fails.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from determinism_helpers import assert_replays
from engine_contract import scenario_tests
from patterns.scenario import ScenarioRun

SCENARIOS = Path(__file__).parent / "scenarios" / "circuit_breaker"
FILES = sorted(SCENARIOS.glob("*.txt"))


class Measure:
    def __init__(self, text: str) -> None:
        head = re.search(r"(\d+) requests sent, (\d+) ended: (\d+) ok \((\d+) with fallbacks\), (\d+) errors", text)
        assert head, text
        self.sent, self.ended, self.ok, self.degraded, self.errors = (int(g) for g in head.groups())
        att = re.search(
            r"attempts=(\d+) \(first=(\d+) retries=(\d+)\) for (\d+) calls: amplification ([\d.]+)x, peak ([\d.]+) attempts/s",
            text,
        )
        assert att, text
        self.attempts, self.first, self.retries, self.calls = (int(g) for g in att.groups()[:4])
        self.amplification, self.peak = float(att.group(5)), float(att.group(6))
        refusals = re.search(r"short_circuited=(\d+) bulkhead_rejected=(\d+) front_rejected=(\d+)", text)
        self.short, self.bulkhead_rejected, self.front_rejected = (int(g) for g in refusals.groups())
        self.calls_by = {}
        for d, rest in re.findall(r"^(d\d) calls: (.*)$", text, re.M):
            self.calls_by[d] = {why.strip(): int(n) for why, n in re.findall(r"([a-z -]+?) (\d+)(?:,|$)", rest.strip())}

    @property
    def error_rate(self) -> float:
        return self.errors / self.ended if self.ended else 0.0


def measures(run: ScenarioRun) -> list[Measure]:
    return [Measure(step.output) for step in run.steps if step.block.command.startswith("measure")]


def now_of(output: str) -> float:
    match = re.match(r"now=([\d.]+)", output)
    assert match, output
    return float(match.group(1))


def check_breaker_cycle(run: ScenarioRun) -> None:
    base, opened, closed, forced = measures(run)
    assert base.errors == 0 and base.amplification == pytest.approx(1.0, abs=0.02)
    # Open: d1's calls are refused at once, d2 is untouched.
    assert opened.calls_by["d1"]["short-circuited"] >= 0.8 * opened.sent
    assert opened.calls_by["d2"] == {"ok": opened.calls_by["d2"]["ok"]}
    t_open, t_half, t_reopen, t_half2, t_closed = (
        now_of(run.find("until state", i).output) for i in range(5)
    )
    assert t_half - t_open == pytest.approx(1000.0)  # wait_open_ms
    assert t_half2 - t_reopen == pytest.approx(1000.0)
    assert t_reopen - t_half < 200 and t_closed - t_half2 < 200  # three probes at 100 rps
    assert closed.short <= 3 and closed.calls_by["d1"]["ok"] >= 90
    lines = run.find("transitions d1").output.splitlines()
    pairs = [re.search(r" d1 (\w+) -> (\w+):", line).groups() for line in lines]
    assert pairs == [("closed", "open"), ("open", "half_open"), ("half_open", "open"), ("open", "half_open"), ("half_open", "closed")]
    assert "10 of 20 calls in the window failed (50% >= 50%)" in lines[0]
    assert "3 of 3 probe calls failed" in lines[2]
    assert forced.calls_by["d2"]["short-circuited"] >= 30
    assert "(forced)" in run.find("transitions d2").output
    eng = run.engine
    view = eng.view()
    assert view["breakers"]["d1"]["state"] == "closed" and view["breaker"] == view["breakers"]["d1"]
    assert [t["to"] for t in view["breakers"]["d1"]["transitions"]] == ["open", "half_open", "open", "half_open", "closed"]
    assert "open" in view["series"]["breaker_state"]["d1"] and 2 in view["series"]["breaker_level"]["d1"]
    assert eng.violations() == []
    assert_replays(eng)


def check_retry_storm(run: ScenarioRun) -> None:
    none, expo, jitter, expo_breaker, jitter_breaker, budget = measures(run)
    assert none.amplification == 1.0 and none.retries == 0 and none.error_rate > 0.2
    # Retries into a full service: more than twice the load, and no fewer errors.
    assert expo.amplification > 2.0 and jitter.amplification > 2.0
    assert expo.peak > 2 * none.peak and jitter.peak > 2 * none.peak
    # Jitter spreads retries; it does not remove them: the load is about the same.
    assert jitter.amplification == pytest.approx(expo.amplification, rel=0.25)
    # The breaker sheds the load: fewer attempts than the calls needed.
    assert expo_breaker.amplification < 0.5 and jitter_breaker.amplification < 0.5
    assert expo_breaker.short > 0.5 * expo_breaker.calls
    # A 20% budget caps retries near 20% of first attempts (plus 5 a second).
    assert 1.0 < budget.amplification < 1.35
    assert budget.retries <= 0.2 * budget.first + 5 * 3 + 5
    assert run.engine.violations() == []


def check_bulkhead(run: ScenarioRun) -> None:
    before, without, before2, with_bh, with_fallback = measures(run)
    assert before.errors == 0 and before2.errors == 0
    # Without a bulkhead the hung d1 takes every worker: requests are refused
    # before d2 is called, and d2 serves far fewer calls.
    assert without.front_rejected > 0.4 * without.sent
    assert run.find("status", 0).view["front"]["busy"] == 20
    # With one, d1's calls beyond the limit are refused at once and d2 carries on.
    assert with_bh.front_rejected == 0 and with_bh.bulkhead_rejected > 0.8 * with_bh.sent
    assert with_bh.calls_by["d2"]["ok"] > 3 * without.calls_by["d2"]["ok"]
    assert with_bh.calls_by["d2"]["ok"] >= 0.95 * with_bh.sent
    assert run.find("status", 1).view["front"]["busy"] < 20
    # With a fallback on top, clients get answers again.
    assert with_fallback.ok >= 0.95 * with_fallback.ended and with_fallback.degraded == with_fallback.ok
    eng = run.engine
    assert max(eng.view()["series"]["in_flight"]["d1"]) <= 8
    assert eng.violations() == []
    assert_replays(eng)


def check_gray_failure(run: ScenarioRun) -> None:
    base, base2, after = measures(run)
    assert base.errors == 0 and base2.errors == 0
    strict, eager = (now_of(run.find("until state", i).output) - 1000.0 for i in range(2))
    assert eager < 0.5 * strict and eager < 500
    first, second = (run.find("transitions d1", i).output for i in range(2))
    assert "20 of 20 calls in the window were slow" in first and "100% >= 100%" in first
    assert "10 of 20 calls in the window were slow" in second and "50% >= 50%" in second
    assert after.calls_by["d1"]["short-circuited"] > 0.9 * after.sent
    assert after.calls_by["d2"] == {"ok": after.calls_by["d2"]["ok"]}
    eng = run.engine
    assert eng.view()["downstream"][0]["gray"] is True and eng.view()["downstream"][0]["alive"] is True
    assert eng.violations() == []
    assert_replays(eng)


SEMANTIC: dict[str, Callable[[ScenarioRun], None]] = {
    "gray_failure": check_gray_failure,
    "breaker_cycle": check_breaker_cycle,
    "retry_storm": check_retry_storm,
    "bulkhead": check_bulkhead,
}


test_every_scenario_has_semantic_checks, test_scenario = scenario_tests(FILES, SEMANTIC)
