"""Runs every scenario in tests/scenarios/raft/ and checks its exact output.

``REWRITE=1 pytest tests/test_raft_scenarios.py`` regenerates the expected
output in place; read the diff before committing it.

Besides the exact text, each scenario has semantic assertions below, on the
engine's view after chosen blocks, so that a rewrite that accepts wrong
behaviour still fails.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from determinism_helpers import assert_replays
from engine_contract import scenario_tests
from patterns.checkers import check_history
from patterns.scenario import ScenarioError, ScenarioRun, parse, render, run_file

SCENARIOS = Path(__file__).parent / "scenarios" / "raft"
FILES = sorted(SCENARIOS.glob("*.txt"))


# -- helpers on views -------------------------------------------------------------------------


def nodes(view: dict) -> dict[str, dict]:
    return {node["id"]: node for node in view["nodes"]}


def leaders(view: dict) -> list[tuple[str, int]]:
    return [(n["id"], n["term"]) for n in view["nodes"] if n["alive"] and n["role"] == "leader"]


def terms(node: dict) -> list[int]:
    return [entry["term"] for entry in node["log"]]


def event_texts(run: ScenarioRun) -> list[str]:
    return [step.output for step in run.steps if step.block.command == "events"]


def all_events(run: ScenarioRun) -> str:
    return "\n".join(event_texts(run))


def assert_healthy_end(run: ScenarioRun) -> None:
    eng = run.engine
    assert eng.violations() == []
    assert check_history(eng.history).ok
    assert_replays(eng)  # the command log replays to the same state


# -- semantic checks per scenario ----------------------------------------------------------------


def check_first_election(run: ScenarioRun) -> None:
    start = nodes(run.find("status", 0).view)
    assert all(n["role"] == "follower" and n["term"] == 0 for n in start.values())
    after = run.find("until leader").view
    assert leaders(after) == [("n1", 1)]
    settled = run.find("status", 2).view
    assert leaders(settled) == [("n1", 1)]
    assert {n["term"] for n in settled["nodes"]} == {1}  # no second election while the leader is up
    assert all(n["commit_index"] == 1 and terms(n) == [1] for n in settled["nodes"])
    assert_healthy_end(run)


def check_leader_crash(run: ScenarioRun) -> None:
    first = run.find("until leader").view
    assert leaders(first) == [("n1", 1)]
    elected = run.find("status", 0).view
    (new_leader, term), = leaders(elected)
    assert new_leader != "n1" and term == 2
    leader_log = nodes(elected)[new_leader]["log"]
    assert {"op": "put", "key": "x", "value": 1, "client": "c1", "seq": 1} in [e["command"] for e in leader_log]
    history = run.engine.history
    assert [r["status"] for r in history] == ["ok", "ok"]
    assert history[1]["op"] == "get" and history[1]["result"] == 1
    final = nodes(run.find("status", 1).view)
    assert final["n1"]["role"] == "follower" and final["n1"]["term"] == 2
    assert len({json.dumps(n["log"]) for n in final.values()}) == 1  # n1 caught up
    assert_healthy_end(run)


def check_split_vote(run: ScenarioRun) -> None:
    first = run.find("status", 0).view
    assert all(n["role"] == "candidate" and n["term"] == 1 and n["voted_for"] == n["id"] for n in first["nodes"])
    later = run.find("status", 1).view
    assert leaders(later) == []
    assert len({n["term"] for n in later["nodes"]}) == 1 and later["nodes"][0]["term"] >= 3
    assert all(n["role"] == "candidate" for n in later["nodes"])
    won = run.find("until leader").view
    assert leaders(won) == [("n3", later["nodes"][0]["term"] + 1)]
    assert "stepped down from candidate" in all_events(run)
    assert_healthy_end(run)


def check_split_vote_random(run: ScenarioRun) -> None:
    split = nodes(run.find("status", 0).view)
    assert leaders(run.find("status", 0).view) == []
    assert split["n1"]["role"] == split["n2"]["role"] == "candidate"
    votes = [n["voted_for"] for n in split.values()]
    assert sorted(votes) == ["n1", "n1", "n2", "n2"]  # 2 votes each of 4: no majority
    assert "got 2 of 4 votes" in all_events(run)
    final = run.find("status", 1).view
    ((_, term),) = leaders(final)
    assert term == 2
    assert_healthy_end(run)


def check_partition_minority(run: ScenarioRun) -> None:
    during = nodes(run.find("status", 0).view)
    later = nodes(run.find("status", 1).view)
    # n1 still thinks it leads term 1, holds x=2 past its commit index, and commits nothing more.
    for view in (during, later):
        assert view["n1"]["role"] == "leader" and view["n1"]["term"] == 1
        assert view["n1"]["commit_index"] == 2 and len(view["n1"]["log"]) == 3
    # The majority side elected a term-2 leader and committed more.
    majority_leaders = [i for i in ("n3", "n4", "n5") if later[i]["role"] == "leader"]
    assert len(majority_leaders) == 1 and later[majority_leaders[0]]["term"] == 2
    assert later[majority_leaders[0]]["commit_index"] == 4
    statuses = {r["id"]: r["status"] for r in run.engine.history}
    assert statuses == {1: "ok", 2: "pending", 3: "ok"}
    assert_healthy_end(run)


def check_partition_heal(run: ScenarioRun) -> None:
    events = all_events(run)
    assert "n1 stepped down from leader: it heard term 2" in events
    assert "n1 discarded 1 uncommitted entry from index 3" in events
    assert "n2 discarded 1 uncommitted entry from index 3" in events
    healed = nodes(run.find("status", 0).view)
    assert [n["role"] for n in healed.values()].count("leader") == 1
    assert len({json.dumps(n["log"]) for n in healed.values()}) == 1
    assert all(terms(n) == [1, 1, 2, 2] for n in healed.values())
    assert all(r["status"] == "ok" for r in run.engine.history)
    # x=2 was retried after the heal and is the last write: everyone ends with it, applied once.
    final = run.steps[-1].view
    assert all(n["kv"] == {"x": 2} for n in final["nodes"])
    puts_of_2 = [e for e in final["nodes"][0]["log"] if e["command"].get("value") == 2]
    assert len(puts_of_2) == 1
    assert_healthy_end(run)


def _figure8_a_and_b(run: ScenarioRun) -> None:
    a = nodes(run.find("status", 0).view)
    assert terms(a["n1"]) == terms(a["n2"]) == [1, 2]
    assert all(terms(a[i]) == [1] for i in ("n3", "n4", "n5"))
    b = nodes(run.find("status", 1).view)
    assert terms(b["n5"]) == [1, 3] and b["n5"]["role"] == "leader"


def check_figure8(run: ScenarioRun) -> None:
    _figure8_a_and_b(run)
    c = nodes(run.find("status", 2).view)
    # (c): the term-2 entry is on a majority, yet nobody commits it.
    holders = [i for i, n in c.items() if len(n["log"]) >= 2 and n["log"][1]["term"] == 2]
    assert len(holders) >= 3
    assert c["n1"]["role"] == "leader" and c["n1"]["term"] == 4
    assert all(n["commit_index"] <= 1 for n in c.values() if n["alive"])
    # (d): n5 leads term 5 and overwrites index 2 everywhere it can reach.
    d = nodes(run.find("status", 3).view)
    assert d["n5"]["role"] == "leader" and d["n5"]["term"] == 5
    assert all(terms(n) == [1, 3] for i, n in d.items() if n["alive"])
    assert all(n["commit_index"] <= 1 for n in d.values() if n["alive"])
    assert all_events(run).count("discarded 1 uncommitted entry from index 2") == 3
    # The overwritten entry was never committed: the checker saw no violation.
    assert_healthy_end(run)
    assert all(r["status"] == "ok" for r in run.engine.history)


def check_figure8_commit(run: ScenarioRun) -> None:
    _figure8_a_and_b(run)
    # (e): n1, leader of term 4, commits its own entry and with it the term-2 one below.
    e_step = run.find("status", 2)
    e = nodes(e_step.view)
    assert e["n1"]["role"] == "leader" and e["n1"]["term"] == 4
    assert e["n1"]["commit_index"] == 3 and terms(e["n1"]) == [1, 2, 4]
    assert sum(terms(n)[:3] == [1, 2, 4] for n in e.values()) >= 3
    # n5 never leads again; the new leader holds every committed entry.
    for step in run.steps[run.steps.index(e_step):]:
        assert all(leader != "n5" for leader, _ in leaders(step.view))
    final_view = run.find("status", 3).view
    ((leader, term),) = leaders(final_view)
    final = nodes(final_view)
    assert term >= 5 and terms(final[leader]) == [1, 2, 4]
    assert all(terms(n) == [1, 2, 4] for n in final.values())
    assert_healthy_end(run)


def check_amnesia(run: ScenarioRun) -> None:
    two = nodes(run.find("status", 1).view)
    assert two["n1"]["role"] == two["n3"]["role"] == "leader"
    assert two["n1"]["term"] == two["n3"]["term"] == 1
    found = {v["invariant"] for v in run.engine.violations()}
    assert {"election_safety", "log_matching", "state_machine_safety"} <= found
    result = check_history(run.engine.history)
    assert not result.ok and result.key == "x"


SEMANTIC: dict[str, Callable[[ScenarioRun], None]] = {
    "first_election": check_first_election,
    "leader_crash": check_leader_crash,
    "split_vote": check_split_vote,
    "split_vote_random": check_split_vote_random,
    "partition_minority": check_partition_minority,
    "partition_heal": check_partition_heal,
    "figure8": check_figure8,
    "figure8_commit": check_figure8_commit,
    "amnesia": check_amnesia,
}


test_every_scenario_has_semantic_checks, test_scenario = scenario_tests(FILES, SEMANTIC)


# -- the runner itself --------------------------------------------------------------------------

SAMPLE = """\
# a comment
create raft seed=3 nodes=3
----
ok

apply
{"op": "timeout", "node": "n1"}
{"op": "crash", "node": "n9"}
----
ok
error: InvalidCommand: unknown node 'n9'; the nodes are n1, n2, n3

until leader n1
----
now=20.837 n1 is leader of term 1
"""


def test_runner_reproduces_a_sample_and_rewrites_mismatches(tmp_path: Path) -> None:
    path = tmp_path / "sample.txt"
    path.write_text(SAMPLE)
    run = run_file(path)
    assert not run.mismatches, run.report()
    broken = SAMPLE.replace("now=20.837", "now=1.000")
    path.write_text(broken)
    run = run_file(path)
    assert len(run.mismatches) == 1 and "now=1.000" in run.report()
    run_file(path, rewrite=True)
    assert path.read_text() == SAMPLE


def test_parse_and_render_round_trip_with_blank_lines_in_output() -> None:
    text = "cmd a\n----\n----\nline 1\n\nline 3\n----\n----\n\n# note\ncmd b\ninput\n----\nout\n"
    blocks, trailer = parse(text)
    assert [b.command for b in blocks] == ["cmd a", "cmd b"]
    assert blocks[0].expected == "line 1\n\nline 3"
    assert blocks[1].input == ["input"] and blocks[1].preamble == ["# note"]
    assert render(blocks, [b.expected for b in blocks], trailer) == text


def test_script_errors_are_not_output(tmp_path: Path) -> None:
    path = tmp_path / "bad.txt"
    path.write_text("create raft seed=1\n----\nok\n\nfrobnicate\n----\n")
    with pytest.raises(ScenarioError, match="unknown command"):
        run_file(path)
    path.write_text("advance 10\n----\n")
    with pytest.raises(ScenarioError, match="first command must be 'create'"):
        run_file(path)


def test_until_reports_a_condition_not_reached(tmp_path: Path) -> None:
    path = tmp_path / "until.txt"
    path.write_text("create raft seed=3 nodes=3\n----\nok\n\nuntil leader n2 within=50\n----\n\n")
    run = run_file(path, rewrite=True)
    assert run.steps[1].output == "now=50.000 not reached within 50 ms: n2 is leader"
    assert run.engine.now == 50.0
