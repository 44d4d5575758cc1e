"""Seeded randomness. One seed drives a run; each component derives its own.

Derivation goes through SHA-256 of the seed and a path of names, so it is the
same in every process and under any PYTHONHASHSEED, and adding a component does
not shift the random streams of the others.
"""

from __future__ import annotations

import hashlib
import random


def derive_seed(seed: int, *path: str) -> int:
    """A 64-bit sub-seed for the component named by ``path``."""
    text = ":".join([str(int(seed)), *path]).encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "big")


def derive_rng(seed: int, *path: str) -> random.Random:
    """A private ``random.Random`` for one component. Never the module-level one."""
    return random.Random(derive_seed(seed, *path))
