"""Patterns Lab engines: pure Python, deterministic, no Django.

    import patterns
    patterns.kinds()                       # ["raft", ...]
    eng = patterns.create("raft", seed=7)  # every parameter has a default
    eng.apply({"op": "crash", "node": "n2"})
    eng.advance(250)
    eng.view(); eng.violations()

``replay(spec)`` rebuilds a run from its kind, parameters, seed and command log.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .circuit_breaker.engine import CircuitBreakerEngine
from .engine import Engine
from .errors import InvalidCommand, InvalidParameter, PatternsError, UnknownKind
from .load_balancer.engine import LoadBalancerEngine
from .raft.engine import RaftEngine
from .saga.engine import SagaEngine
from .sharding.engine import ShardingEngine

_REGISTRY: dict[str, type[Engine]] = {
    RaftEngine.kind: RaftEngine,
    LoadBalancerEngine.kind: LoadBalancerEngine,
    ShardingEngine.kind: ShardingEngine,
    CircuitBreakerEngine.kind: CircuitBreakerEngine,
    SagaEngine.kind: SagaEngine,
}

__all__ = [
    "Engine",
    "InvalidCommand",
    "InvalidParameter",
    "PatternsError",
    "UnknownKind",
    "create",
    "kinds",
    "replay",
]


def kinds() -> list[str]:
    return list(_REGISTRY)


def create(kind: str, *, seed: int = 1, **params: Any) -> Engine:
    cls = _REGISTRY.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise UnknownKind(f"unknown pattern {kind!r}; the patterns are {', '.join(_REGISTRY)}")
    return cls(seed=seed, **params)


def replay(spec: Mapping[str, Any], *, until_ms: float | None = None) -> Engine:
    """Rebuild a run from ``{"kind", "seed", "params", "log": [{"at_ms", "cmd"}]}``.

    Commands are applied at their recorded virtual times. With ``until_ms`` the
    run stops there (a fork at an instructor's moment); otherwise it stops right
    after the last command.
    """
    eng = create(spec["kind"], seed=spec["seed"], **dict(spec.get("params", {})))
    for item in spec.get("log", []):
        at = item["at_ms"]
        if until_ms is not None and at > until_ms:
            break
        eng.advance_to(at)
        try:
            eng.apply(item["cmd"])
        except PatternsError:
            eng.command_log.append({"at_ms": at, "cmd": item["cmd"], "rejected": True})
    if until_ms is not None:
        eng.advance_to(until_ms)
    return eng
