"""Runs every scenario in tests/scenarios/saga/ and checks its exact output.

``REWRITE=1 pytest tests/test_saga_scenarios.py`` regenerates the expected
output in place; read the diff before committing it.

Besides the exact text, the checks below assert each lesson from the engine's
views (statuses, step statuses, the ledger), so a rewrite that accepts a run
that no longer shows it still fails.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from determinism_helpers import assert_replays
from engine_contract import scenario_tests
from patterns.scenario import ScenarioRun

SCENARIOS = Path(__file__).parent / "scenarios" / "saga"
FILES = sorted(SCENARIOS.glob("*.txt"))


def outputs(run: ScenarioRun, command: str) -> list[str]:
    return [step.output for step in run.steps if step.block.command.startswith(command)]


def sagas_of(view: dict) -> dict[int, dict]:
    return {saga["id"]: saga for saga in view["sagas"]}


def step_statuses(saga: dict) -> list[str]:
    return [step["status"] for step in saga["steps"]]


def assert_books_balance(view: dict) -> None:
    ledger = view["ledger"]
    assert ledger["ok"]
    for entry in ledger["items"].values():
        assert entry["in_stock"] + entry["reserved"] + entry["shipped"] == entry["initial"]
    money = ledger["money"]
    assert money["charged"] == money["captured"] + money["refunded"]
    assert money["balances"] + money["captured"] == money["initial_balances"]


def assert_healthy_end(run: ScenarioRun) -> None:
    eng = run.engine
    view = eng.view()
    assert eng.violations() == []
    assert all(item["ok"] for item in view["invariants"])
    assert view["saga_counts"]["running"] == view["saga_counts"]["compensating"] == 0
    assert_books_balance(view)
    assert_replays(eng)


def compensation_lines(run: ScenarioRun) -> dict[int, str]:
    found = {}
    for text in outputs(run, "events"):
        for line in text.splitlines():
            match = re.search(r"saga (\d+) compensated in \d+ ms: (.*), in that order", line)
            if match:
                found[int(match.group(1))] = match.group(2)
    return found


# -- the lessons ------------------------------------------------------------------------------


def check_fail_each_step(run: ScenarioRun) -> None:
    view = run.engine.view()
    sagas = sagas_of(view)
    assert [sagas[i]["status"] for i in range(1, 6)] == ["completed", "failed", "compensated", "compensated", "compensated"]
    assert step_statuses(sagas[2]) == ["failed", "pending", "pending", "pending"]
    assert step_statuses(sagas[3]) == ["compensated", "failed", "pending", "pending"]
    assert step_statuses(sagas[4]) == ["compensated", "compensated", "failed", "pending"]
    assert step_statuses(sagas[5]) == ["compensated", "compensated", "compensated", "failed"]
    # Compensations run newest first.
    assert compensation_lines(run) == {
        3: "cancel order",
        4: "release items and cancel order",
        5: "refund, release items and cancel order",
    }
    log = run.find("log").output.splitlines()
    undone = [line.split()[-1] for line in log if " undone " in line]
    assert undone == ["payment", "inventory", "order"]
    # Every "send" is logged before its answer (write-ahead).
    for i, line in enumerate(log):
        if re.search(r" (done|failed|undone) ", line):
            assert " send " in log[i - 1]
    ledger = view["ledger"]
    assert ledger["money"] == {"initial_balances": 1500, "balances": 1470, "charged": 110, "captured": 30, "refunded": 80}
    assert ledger["units"]["shipped"] == 2
    assert_healthy_end(run)


def check_orchestrator_crash(run: ScenarioRun) -> None:
    crashed = run.find("sagas").view
    saga2 = sagas_of(crashed)[2]
    assert crashed["orchestrator"]["alive"] is False
    assert saga2["status"] == "running" and step_statuses(saga2) == ["done", "done", "pending", "pending"]
    events = "\n".join(outputs(run, "events"))
    assert "replayed its log of 14 entries: 1 saga to resume; saga 2 at inventory: reserve items, resending it" in events
    assert "saga 3 at payment: refund, resending it" in events
    final = run.engine.view()
    sagas = sagas_of(final)
    assert sagas[2]["status"] == "completed" and sagas[3]["status"] == "compensated"
    assert step_statuses(sagas[3]) == ["compensated", "compensated", "compensated", "failed"]
    # The resent reserve and refund were deduplicated: 8 units out, $50 refunded once.
    assert final["ledger"]["units"]["shipped"] == 8
    assert final["ledger"]["money"]["refunded"] == 50 and final["ledger"]["money"]["charged"] == 290
    services = {s["id"]: s for s in final["services"]}
    assert services["inventory"]["state"]["repeats"] >= 1 and services["payment"]["state"]["repeats"] >= 1
    assert_healthy_end(run)


def check_duplicates(run: ScenarioRun) -> None:
    final = run.engine.view()
    assert final["network"]["duplicate_rate"] == 1
    assert final["saga_counts"]["completed"] == 9 and final["saga_counts"]["compensated"] == 1
    services = {s["id"]: s for s in final["services"]}
    payment = services["payment"]["state"]
    # Ten orders of $10..$100: $550 charged once each, despite every message arriving twice.
    assert payment["charged"] == 550 and payment["repeats"] >= 10
    assert all(services[s]["state"]["repeats"] >= 10 for s in ("order", "inventory", "shipping"))
    assert services["shipping"]["state"]["shipments"] == 9
    assert final["ledger"]["units"]["shipped"] == 18
    assert_healthy_end(run)


def check_choreography(run: ScenarioRun) -> None:
    final = run.engine.view()
    sagas = sagas_of(final)
    assert [sagas[i]["mode"] for i in range(1, 6)] == ["choreography"] * 4 + ["orchestration"]
    assert [sagas[i]["status"] for i in range(1, 6)] == ["completed", "compensated", "compensated", "completed", "completed"]
    assert step_statuses(sagas[2]) == ["compensated", "compensated", "failed", "pending"]
    assert compensation_lines(run) == {2: "release items and cancel order", 3: "refund, release items and cancel order"}
    # The orchestrator logged only saga 5; the bus carried the other four.
    assert final["orchestrator"]["log_length"] == 10
    assert final["bus"]["events"] >= 4 * 4 and final["bus"]["undelivered"] == 0
    # Saga 4 waited for the bus: it took over 800 ms.
    assert sagas[4]["ended_ms"] - sagas[4]["started_ms"] > 800
    assert_healthy_end(run)


def check_partition(run: ScenarioRun) -> None:
    cut_off = sagas_of(run.find("sagas").view)[1]
    # Charged before the partition, but the orchestrator never heard: the saga waits.
    assert cut_off["status"] == "running" and step_statuses(cut_off) == ["done", "done", "done", "pending"]
    final = run.engine.view()
    assert sagas_of(final)[1]["status"] == "completed"
    payment = {s["id"]: s for s in final["services"]}["payment"]["state"]
    assert payment["charged"] == 25 and payment["repeats"] >= 1  # the resend was deduplicated
    assert final["network"]["counts"]["dropped"] >= 10  # about 15 resends lost in 3 s
    assert_healthy_end(run)


SEMANTIC: dict[str, Callable[[ScenarioRun], None]] = {
    "fail_each_step": check_fail_each_step,
    "orchestrator_crash": check_orchestrator_crash,
    "duplicates": check_duplicates,
    "choreography": check_choreography,
    "partition": check_partition,
}


test_every_scenario_has_semantic_checks, test_scenario = scenario_tests(FILES, SEMANTIC)
