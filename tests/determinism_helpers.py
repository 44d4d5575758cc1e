"""Cross-process determinism: the same run in child processes under different
PYTHONHASHSEED values must produce the same state, byte for byte."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

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
