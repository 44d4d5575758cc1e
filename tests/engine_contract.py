"""Checks every engine's test suite makes the same way.

- ``schedule_settings``: the hypothesis settings of an engine's random-schedule
  state machine, bounded by default, longer with ``<PREFIX>_MAX_EXAMPLES`` and
  ``<PREFIX>_STEPS`` (inherits the CI profile from conftest).
- ``scenario_tests``: the two tests of an engine's scenario files: each file's
  exact output (``REWRITE=1`` regenerates it), then that file's lesson checks;
  and every file has lesson checks.
- ``assert_rejected_without_effect``: a bad command raises InvalidCommand with a
  short, readable message, and changes nothing, not even what is hidden (random
  streams, timers): the engine's future is its untouched twin's.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from patterns.errors import InvalidCommand
from patterns.scenario import ScenarioRun, run_file


def schedule_settings(prefix: str, *, max_examples: int, steps: int) -> settings:
    return settings(
        max_examples=int(os.environ.get(f"{prefix}_MAX_EXAMPLES", str(max_examples))),
        stateful_step_count=int(os.environ.get(f"{prefix}_STEPS", str(steps))),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )


def assert_rejected_without_effect(
    make_engine: Callable[[], Any],
    cmd: Any,
    fragment: str,
    state_json: Callable[[Any], str],
    *,
    future_ms: float = 2_000,
) -> None:
    eng = make_engine()
    twin = make_engine()
    before = state_json(eng)
    with pytest.raises(InvalidCommand) as info:
        eng.apply(cmd)
    message = str(info.value)
    assert fragment in message
    assert len(message) < 300 and "Traceback" not in message
    assert isinstance(info.value, ValueError)
    assert state_json(eng) == before
    eng.advance(future_ms)
    twin.advance(future_ms)
    assert state_json(eng) == state_json(twin)


def scenario_tests(files: Sequence[Path], semantic: dict[str, Callable[[ScenarioRun], None]]):
    """``test_every_scenario_has_semantic_checks, test_scenario = scenario_tests(FILES, SEMANTIC)``"""
    rewrite = os.environ.get("REWRITE") == "1"

    def test_every_scenario_has_semantic_checks() -> None:
        assert sorted(p.stem for p in files) == sorted(semantic)

    @pytest.mark.parametrize("path", files, ids=lambda p: p.stem)
    def test_scenario(path: Path) -> None:
        run = run_file(path, rewrite=rewrite)
        assert not run.mismatches, run.report()
        semantic[path.stem](run)

    return test_every_scenario_has_semantic_checks, test_scenario
