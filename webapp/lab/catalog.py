"""The catalog of patterns on the home page: a one-line promise and a status each."""

from __future__ import annotations

from typing import Any

from django.urls import reverse

PATTERNS: list[dict[str, Any]] = [
    {"kind": "raft", "title": "Raft consensus", "status": "live",
     "promise": "Crash the leader, split the cluster, and watch a real Raft elect, replicate and stay safe."},
    {"kind": "sharding", "title": "Sharded key-value store", "status": "planned",
     "promise": "Add a node and count the keys that move: consistent hashing against modulo, hot keys, quorums."},
    {"kind": "load_balancer", "title": "Load balancer", "status": "planned",
     "promise": "Slow one backend and see round-robin feed it while least-connections routes around it."},
    {"kind": "circuit_breaker", "title": "Circuit breaker, retries and bulkheads", "status": "planned",
     "promise": "Start a retry storm, then tame it with jitter, a breaker and a bulkhead."},
    {"kind": "saga", "title": "Saga", "status": "planned",
     "promise": "Fail a payment mid-order and follow every compensation back to a consistent state."},
    {"kind": "replication", "title": "Replication and consistency models", "status": "planned",
     "promise": "Read your own writes, or not: leader-follower, quorums and stale reads side by side."},
    {"kind": "caching", "title": "Caching", "status": "planned",
     "promise": "Watch a cache stampede, then stop it with request coalescing and jittered expiry."},
    {"kind": "pubsub", "title": "Publish and subscribe", "status": "planned",
     "promise": "Drop a subscriber and see at-most-once and at-least-once delivery diverge."},
    {"kind": "event_sourcing", "title": "Event sourcing with CQRS", "status": "planned",
     "promise": "Rebuild a read model from the event log and see why projections lag."},
]


def catalog() -> list[dict[str, Any]]:
    return [
        {**item, "url": reverse("lab:start", args=[item["kind"]]) if item["status"] == "live" else None}
        for item in PATTERNS
    ]


def is_live(kind: str) -> bool:
    return any(item["kind"] == kind and item["status"] == "live" for item in PATTERNS)
