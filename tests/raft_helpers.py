"""Shared helpers for the Raft tests (plain functions, not fixtures)."""

from __future__ import annotations

import json
import random
from typing import Any

import patterns

DEFAULT_NETWORK = {"op": "network", "latency_ms": [10, 15], "drop_rate": 0.0, "duplicate_rate": 0.0, "reorder_rate": 0.0}


def view_json(eng: Any) -> str:
    return json.dumps(eng.view(), sort_keys=True)


def state_json(eng: Any) -> str:
    """Everything observable: the view plus full history, events and command log."""
    return json.dumps(
        {"view": eng.view(), "history": eng.history, "events": eng.events(), "log": eng.command_log},
        sort_keys=True,
    )


def pending(eng: Any) -> list[dict]:
    return [record for record in eng.history if record["status"] == "pending"]


def repair(eng: Any) -> None:
    """Heal the network, restore defaults and restart every crashed node."""
    eng.apply({"op": "heal"})
    eng.apply(dict(DEFAULT_NETWORK))
    for node_id, host in eng.hosts.items():
        if not host.alive:
            eng.apply({"op": "restart", "node": node_id})


def settle(eng: Any, *, limit_ms: float = 60_000.0, chunk_ms: float = 250.0) -> bool:
    """Advance until a leader exists and no operation is pending. False if the limit passes first."""
    deadline = eng.now + limit_ms
    while eng.now < deadline:
        eng.advance(chunk_ms)
        if eng.leader() is not None and not pending(eng):
            return True
    return False


def random_schedule(seed: int, node_ids: list[str], clients: int, steps: int) -> list[tuple[float, dict]]:
    """A reproducible list of (advance ms, command) with faults and client traffic.

    Commands may be invalid in the state they meet (restarting a node that is
    up, say); ``run_schedule`` ignores those, as the browser would show an error.
    """
    rng = random.Random(seed)
    out: list[tuple[float, dict]] = []
    value = 0
    for _ in range(steps):
        wait = rng.choice([0, 0, 1, 5, 20, 50, 120, 300, 700])
        roll = rng.random()
        node = rng.choice(node_ids)
        if roll < 0.10:
            cmd = {"op": "crash", "node": node}
        elif roll < 0.20:
            cmd = {"op": "restart", "node": node}
        elif roll < 0.26:
            mine = rng.sample(node_ids, rng.randint(1, len(node_ids) - 1))
            cmd = {"op": "partition", "groups": [mine]}
        elif roll < 0.32:
            cmd = {"op": "heal"}
        elif roll < 0.37:
            other = rng.choice([n for n in node_ids if n != node])
            cmd = {"op": rng.choice(["cut", "uncut"]), "from": node, "to": other}
        elif roll < 0.43:
            cmd = {
                "op": "network",
                "latency_ms": sorted([rng.choice([0, 1, 5, 10, 30]), rng.choice([0, 5, 15, 40])]),
                "drop_rate": rng.choice([0.0, 0.0, 0.1, 0.3]),
                "duplicate_rate": rng.choice([0.0, 0.2]),
                "reorder_rate": rng.choice([0.0, 0.3]),
            }
        elif roll < 0.48:
            cmd = {"op": "timeout", "node": node}
        elif roll < 0.75:
            value += 1
            cmd = {"op": "put", "key": rng.choice("xyz"), "value": value, "client": f"c{rng.randint(1, clients)}"}
        else:
            cmd = {"op": "get", "key": rng.choice("xyz"), "client": f"c{rng.randint(1, clients)}"}
        if cmd["op"] in ("put", "get") and rng.random() < 0.3:
            cmd["via"] = node
        out.append((float(wait), cmd))
    return out


def run_schedule(eng: Any, schedule: list[tuple[float, dict]]) -> None:
    for wait, cmd in schedule:
        eng.advance(wait)
        try:
            eng.apply(cmd)
        except patterns.InvalidCommand:
            pass


def new_engine(seed: int = 7, **params: Any) -> Any:
    return patterns.create("raft", seed=seed, **params)
