"""Runs every scenario in tests/scenarios/load_balancer/ and checks its exact output.

``REWRITE=1 pytest tests/test_load_balancer_scenarios.py`` regenerates the
expected output in place; read the diff before committing it.

Each scenario is a lesson. Besides the exact text, the checks below assert the
lesson itself (numbers parsed from the output and the engine's views), so a
rewrite that accepts a run that no longer shows it still fails.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from determinism_helpers import assert_replays
from engine_contract import scenario_tests
from patterns.scenario import ScenarioRun

SCENARIOS = Path(__file__).parent / "scenarios" / "load_balancer"
FILES = sorted(SCENARIOS.glob("*.txt"))


# -- reading outputs ---------------------------------------------------------------------


class Measure:
    def __init__(self, text: str) -> None:
        head = re.search(r"(\d+) requests in [\d.]+ s \([\d.]+/s\): (\d+) ok, (\d+) errors", text)
        assert head, text
        self.requests, self.ok, self.errors = (int(g) for g in head.groups())
        lat = re.search(r"p50=(\S+) p90=(\S+) p99=(\S+) max=(\S+) ms", text)
        assert lat, text
        self.p50, self.p90, self.p99, self.max = (float(g) for g in lat.groups())
        served = re.search(r"served by: (.*)", text)
        self.share = {b: float(p) / 100 for b, p in re.findall(r"(b\d+)=([\d.]+)%", served.group(1))} if served else {}
        errors = re.search(r"errors: (.*)", text)
        self.reasons = {why: int(n) for why, n in re.findall(r"([a-z ]+?) (\d+)(?:,|$)", errors.group(1))} if errors else {}

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests


def measures(run: ScenarioRun) -> list[Measure]:
    return [Measure(step.output) for step in run.steps if step.block.command.startswith("measure")]


def outputs(run: ScenarioRun, command: str) -> list[str]:
    return [step.output for step in run.steps if step.block.command.startswith(command)]


def now_of(output: str) -> float:
    match = re.match(r"now=([\d.]+)", output)
    assert match, output
    return float(match.group(1))


def event_times(run: ScenarioRun, pattern: str) -> list[float]:
    times = []
    for text in outputs(run, "events"):
        for line in text.splitlines():
            if re.search(pattern, line):
                times.append(float(line.split()[0]))
    return times


def assert_healthy_end(run: ScenarioRun) -> None:
    eng = run.engine
    assert eng.violations() == []
    assert all(item["ok"] for item in eng.view()["invariants"])
    assert_replays(eng)


# -- the lessons ------------------------------------------------------------------------------


def check_slow_backend(run: ScenarioRun) -> None:
    base, rr, lc, p2c, rr400, lc400 = measures(run)
    assert base.errors == 0 and base.p99 < 100
    # Round robin keeps feeding b2 its quarter; the others route around it.
    assert rr.share["b2"] == pytest.approx(0.25, abs=0.02)
    assert lc.share["b2"] < 0.10 and p2c.share["b2"] < 0.10
    # The tail: p90 back to normal, p99 clearly lower than under round robin.
    assert rr.p90 > 150 and lc.p90 < 80 and p2c.p90 < 80
    assert rr.p99 > 1.3 * lc.p99 and rr.p99 > 1.3 * p2c.p99
    # At 400 rps round robin overloads b2: its tail nears the timeout, requests fail,
    # and the health checks start ejecting it (and re-admitting it: flaps).
    assert rr400.p99 > 700 and rr400.errors > 0
    assert lc400.errors == 0 and lc400.p99 < 0.5 * rr400.p99
    assert event_times(run, r"ejected b2") and event_times(run, r"Flap #1")
    assert_healthy_end(run)


def check_health_checks(run: ScenarioRun) -> None:
    crash_fast, gray_fast, crash_lax, gray_lax = measures(run)
    ejected = event_times(run, r"ejected b3 ")
    fast_detect, lax_detect = (t - 2000.0 for t in ejected)
    assert fast_detect <= 150  # one probe of 100 ms with a 50 ms timeout
    assert 4000 <= lax_detect <= 7000  # three probes 2 s apart, 1 s timeouts
    # Requests sent to the dead b3 before it was ejected fail (timeouts).
    assert crash_fast.errors < 10 and crash_lax.errors > 100
    assert crash_lax.reasons == {"timeout": crash_lax.errors}
    flaps = [int(re.search(r"flaps=(\d+)", text).group(1)) for text in outputs(run, "health")]
    fast_flaps, lax_flaps = flaps
    assert fast_flaps >= 20 and lax_flaps <= 3
    # ... but the lax checker keeps the gray backend in rotation: many more errors.
    assert gray_lax.errors > 10 * max(gray_fast.errors, 1)
    assert run.find("health", 0).view["health"]["flaps"] == fast_flaps
    assert_healthy_end(run)


def check_ip_hash(run: ScenarioRun) -> None:
    rr, first, again, removed, added, crashed, back = outputs(run, "clients")
    assert "0 of 32 clients reached exactly one backend" in rr  # round robin spreads every client
    assert "32 of 32 clients reached exactly one backend" in again
    assert "moved since the previous 'clients': 0 of 32" in again

    def moves(text: str) -> list[tuple[str, str]]:
        line = re.search(r"moved since the previous 'clients': (\d+) of (\d+)(?:: (.*))?", text)
        assert line, text
        pairs = re.findall(r"(b\d+)->(b\d+) (\d+)", line.group(3) or "")
        assert sum(int(n) for _, _, n in pairs) == int(line.group(1))
        return [(a, b) for a, b, _ in pairs]

    assert moves(removed) and all(src == "b3" for src, _ in moves(removed))
    assert moves(added) and all(dst == "b5" for _, dst in moves(added))
    assert moves(crashed) and all(src == "b1" for src, _ in moves(crashed))
    assert moves(back) and all(dst == "b1" for _, dst in moves(back))
    assert sorted(src for src, _ in moves(crashed)) == sorted(dst for _, dst in moves(back))
    assert_healthy_end(run)


def check_failover(run: ScenarioRun) -> None:
    before, gap, after = measures(run)
    takeover = now_of(run.find("until holds_vip").output)
    gap_ms = takeover - 3000.0
    # 3 missed beats of 100 ms plus lb2's skew (156/256 of a beat), counted from lb1's last beat.
    assert 300 <= gap_ms <= 400
    assert before.errors == 0 and after.errors == 0
    # Every request sent into the gap (about 200 rps x the gap) times out at the client.
    assert gap.reasons == {"timeout": gap.errors}
    assert 0.6 * 200 * gap_ms / 1000 <= gap.errors <= 1.5 * 200 * gap_ms / 1000
    final = run.find("status").view
    roles = {lb["id"]: (lb["role"], lb["holds_vip"]) for lb in final["balancers"]}
    assert roles == {"lb1": ("standby", False), "lb2": ("active", True)}  # no preemption
    series = final["series"]
    assert max(series["error_rate"]) > 0.2  # the gap shows in the chart
    assert_healthy_end(run)


def check_split_brain(run: ScenarioRun) -> None:
    split = run.find("status").view
    assert [lb["holds_vip"] for lb in split["balancers"]] == [True, True]
    single_vip = {item["id"]: item for item in split["invariants"]}["single_vip"]
    assert single_vip["ok"] is False and single_vip["now_ok"] is False
    assert any("split brain" in w for w in split["warnings"])
    assert now_of(run.find("until single_vip").output) > now_of(run.find("until split_brain").output)
    eng = run.engine
    assert [v["invariant"] for v in eng.violations()] == ["single_vip"]
    final = eng.view()
    assert final["vip"]["holders"] == ["lb1"]  # the higher priority keeps it
    single_vip = {item["id"]: item for item in final["invariants"]}["single_vip"]
    assert single_vip["ok"] is False and single_vip["now_ok"] is True  # red since, fine now
    assert measures(run)[-1].errors == 0
    assert_replays(eng)


def check_weighted(run: ScenarioRun) -> None:
    wrr, rr, changed, added, lc = measures(run)
    assert wrr.share == pytest.approx({"b1": 0.5, "b2": 0.25, "b3": 0.125, "b4": 0.125}, abs=0.01)
    assert rr.share == pytest.approx({b: 0.25 for b in ("b1", "b2", "b3", "b4")}, abs=0.02)
    assert changed.share == pytest.approx({"b1": 4 / 11, "b2": 2 / 11, "b3": 1 / 11, "b4": 4 / 11}, abs=0.01)
    assert added.share == pytest.approx({"b1": 4 / 17, "b2": 2 / 17, "b3": 1 / 17, "b4": 4 / 17, "b5": 6 / 17}, abs=0.01)
    assert lc.share["b5"] > lc.share["b3"]
    picks = run.find("forwards").output.split()
    assert len(picks) == 16 and picks.count("b1") == 8 and picks.count("b2") == 4
    assert "b1 b1 b1" not in " ".join(picks)  # smooth: never three in a row
    assert_healthy_end(run)


SEMANTIC: dict[str, Callable[[ScenarioRun], None]] = {
    "slow_backend": check_slow_backend,
    "health_checks": check_health_checks,
    "ip_hash": check_ip_hash,
    "failover": check_failover,
    "split_brain": check_split_brain,
    "weighted": check_weighted,
}


test_every_scenario_has_semantic_checks, test_scenario = scenario_tests(FILES, SEMANTIC)
