"""The catalog of patterns on the home page: a one-line promise and a status each."""

from __future__ import annotations

from typing import Any

from django.template import TemplateDoesNotExist
from django.template.loader import get_template
from django.urls import reverse

import patterns

PATTERNS: list[dict[str, Any]] = [
    {"kind": "raft", "title": "Raft consensus",
     "promise": "Crash the leader, split the cluster, and watch a real Raft elect, replicate and stay safe."},
    {"kind": "sharding", "title": "Sharded key-value store",
     "promise": "Add a node and count the keys that move: consistent hashing against modulo, hot keys, quorums."},
    {"kind": "load_balancer", "title": "Load balancer",
     "promise": "Slow one backend and see round-robin feed it while least-connections routes around it."},
    {"kind": "circuit_breaker", "title": "Circuit breaker, retries and bulkheads",
     "promise": "Start a retry storm, then tame it with jitter, a breaker and a bulkhead."},
    {"kind": "saga", "title": "Saga",
     "promise": "Fail a payment mid-order and follow every compensation back to a consistent state."},
    {"kind": "replication", "title": "Replication and consistency models",
     "promise": "Read your own writes, or not: leader-follower, quorums and stale reads side by side."},
    {"kind": "caching", "title": "Caching",
     "promise": "Watch a cache stampede, then stop it with request coalescing and jittered expiry."},
    {"kind": "pubsub", "title": "Publish and subscribe",
     "promise": "Drop a subscriber and see at-most-once and at-least-once delivery diverge."},
    {"kind": "event_sourcing", "title": "Event sourcing with CQRS",
     "promise": "Rebuild a read model from the event log and see why projections lag."},
]


def catalog() -> list[dict[str, Any]]:
    items = []
    for item in PATTERNS:
        live = is_live(item["kind"])
        url = reverse("lab:start", args=[item["kind"]]) if live else None
        items.append({**item, "status": "live" if live else "planned", "url": url})
    return items


def is_live(kind: str) -> bool:
    """Live when an engine is registered for it and its lab page exists."""
    if kind not in patterns.kinds():
        return False
    try:
        get_template(f"lab/{kind}.html")
    except TemplateDoesNotExist:
        return False
    return True
