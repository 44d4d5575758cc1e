"""Determinism checks every engine's tests share.

- Cross-process: the same run in child processes under different PYTHONHASHSEED
  values must produce the same state, byte for byte.
- Replay: an engine's seed and command log (through JSON, as the store keeps
  them) rebuild it, to its latest moment or to an earlier one.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import patterns

ROOT = Path(__file__).resolve().parent.parent
HASH_SEEDS = ("0", "1", "12345", "random")


def fingerprint(state_json: str) -> str:
    return hashlib.sha256(state_json.encode()).hexdigest()


def child_fingerprint(body: str, hash_seed: str) -> str:
    """Run ``body`` (Python that sets STATE, a JSON string) in a fresh interpreter."""
    code = "\n".join(
        [
            "import hashlib, sys",
            f"sys.path[:0] = [{str(ROOT)!r}, {str(ROOT / 'tests')!r}]",
            body,
            "print(hashlib.sha256(STATE.encode()).hexdigest())",
        ]
    )
    env = dict(os.environ, PYTHONHASHSEED=hash_seed)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def assert_same_across_hash_seeds(expected_state_json: str, body: str) -> None:
    expected = fingerprint(expected_state_json)
    digests = {seed: child_fingerprint(body, seed) for seed in HASH_SEEDS}
    assert set(digests.values()) == {expected}, digests


def replay_of(eng: Any, until_ms: float | None = None) -> Any:
    """The engine rebuilt from its seed and command log, as a fork or a recovery would."""
    spec = {"kind": eng.kind, "seed": eng.seed, "params": eng.params, "log": eng.command_log}
    return patterns.replay(json.loads(json.dumps(spec)), until_ms=eng.now if until_ms is None else until_ms)


def assert_replays(eng: Any) -> None:
    """The command log replays to the same view."""
    assert json.dumps(replay_of(eng).view(), sort_keys=True) == json.dumps(eng.view(), sort_keys=True)


def assert_replay_stops_at(eng: Any, until_ms: float, state_json: Callable[[Any], str]) -> None:
    """Replaying the whole log up to ``until_ms`` equals replaying only the commands
    given by then: later commands leave no trace on an earlier moment."""
    fork = replay_of(eng, until_ms)
    partial = patterns.replay(
        {"kind": eng.kind, "seed": eng.seed, "params": eng.params,
         "log": [e for e in eng.command_log if e["at_ms"] <= until_ms]},
        until_ms=until_ms,
    )
    assert fork.now == until_ms
    assert state_json(fork) == state_json(partial)
