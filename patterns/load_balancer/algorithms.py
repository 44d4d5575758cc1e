"""How a balancer picks a backend for one request.

Every algorithm sees the same inputs: the healthy backends in pool order (never
empty), their weights, the balancer's open connections per backend, and the
client's address. Random choices come from the balancer's own random stream.

- round_robin: each healthy backend in turn.
- weighted_round_robin: nginx's smooth weighted round robin. Every pick adds each
  backend's weight to its running score, takes the highest and subtracts the
  total from it, so weights 5,1,1 give a a b a c a a (not a a a a a b c).
- least_connections: fewest open connections per unit of weight; ties go round
  robin.
- ip_hash: rendezvous (highest-random-weight) hashing of the client address
  with each backend id through BLAKE2b. A client sticks to one backend while it
  stays healthy; removing or ejecting a backend moves only that backend's
  clients, and they come back when it returns.
- random: weighted random.
- power_of_two: two different backends at random (by weight), then the one with
  fewer open connections per unit of weight.
"""

from __future__ import annotations

import hashlib
import math
import random

ALGORITHMS: dict[str, str] = {
    "round_robin": "each healthy backend in turn, however busy or slow it is",
    "weighted_round_robin": (
        "each healthy backend in turn, as often as its weight says, spread out smoothly "
        "(nginx's smooth weighted round robin: weights 5,1,1 give a a b a c a a)"
    ),
    "least_connections": (
        "the backend with the fewest open connections per unit of weight; a slow backend keeps its "
        "connections open longer, so it gets fewer new ones"
    ),
    "ip_hash": (
        "the client's address picks the backend (rendezvous hashing), so each client sticks to one backend; "
        "losing a backend moves only that backend's clients"
    ),
    "random": "a healthy backend at random, in proportion to its weight",
    "power_of_two": (
        "two backends at random, then the one with fewer open connections: nearly as good as least "
        "connections without looking at every backend"
    ),
}


def _rendezvous_key(client: str, backend: str) -> float:
    """-ln(u) for a uniform u in (0, 1) fixed by (client, backend): smaller means preferred."""
    digest = hashlib.blake2b(f"{client}|{backend}".encode(), digest_size=8).digest()
    u = (int.from_bytes(digest, "big") + 0.5) / 2.0**64
    return -math.log(u)


class Picker:
    """One balancer's choosing state: round-robin counter, smooth-WRR scores, hash cache."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.turn = 0
        self.current: dict[str, float] = {}  # smooth weighted round robin scores
        self._hash: dict[tuple[str, str], float] = {}

    def forget(self, backend: str) -> None:
        self.current.pop(backend, None)

    def pick(self, algorithm: str, healthy: list[str], weights: dict[str, int], conns: dict[str, int], client: str) -> str:
        if len(healthy) == 1:
            if algorithm == "weighted_round_robin":
                self._smooth(healthy, weights)
            return healthy[0]
        if algorithm == "round_robin":
            choice = healthy[self.turn % len(healthy)]
            self.turn += 1
            return choice
        if algorithm == "weighted_round_robin":
            return self._smooth(healthy, weights)
        if algorithm == "least_connections":
            return self._least(healthy, weights, conns)
        if algorithm == "ip_hash":
            return self._rendezvous(healthy, weights, client)
        if algorithm == "random":
            return self._weighted_random(healthy, weights, None)
        if algorithm == "power_of_two":
            first = self._weighted_random(healthy, weights, None)
            second = self._weighted_random(healthy, weights, first)
            if conns.get(second, 0) / weights[second] < conns.get(first, 0) / weights[first]:
                return second
            return first
        raise AssertionError(f"unknown algorithm {algorithm!r}")

    def _smooth(self, healthy: list[str], weights: dict[str, int]) -> str:
        current = self.current
        total = 0
        best = None
        best_score = 0.0
        for backend in healthy:
            weight = weights[backend]
            score = current.get(backend, 0.0) + weight
            current[backend] = score
            total += weight
            if best is None or score > best_score:
                best, best_score = backend, score
        assert best is not None
        current[best] = best_score - total
        return best

    def _least(self, healthy: list[str], weights: dict[str, int], conns: dict[str, int]) -> str:
        count = len(healthy)
        start = self.turn % count
        self.turn += 1
        best = healthy[start]
        best_load = conns.get(best, 0) / weights[best]
        for offset in range(1, count):
            backend = healthy[(start + offset) % count]
            load = conns.get(backend, 0) / weights[backend]
            if load < best_load:
                best, best_load = backend, load
        return best

    def _rendezvous(self, healthy: list[str], weights: dict[str, int], client: str) -> str:
        cache = self._hash
        best = healthy[0]
        best_score = -1.0
        for backend in healthy:
            key = (client, backend)
            value = cache.get(key)
            if value is None:
                value = cache[key] = _rendezvous_key(client, backend)
            score = weights[backend] / value
            if score > best_score:
                best, best_score = backend, score
        return best

    def _weighted_random(self, healthy: list[str], weights: dict[str, int], exclude: str | None) -> str:
        total = sum(weights[b] for b in healthy if b != exclude)
        point = self.rng.random() * total
        last = healthy[0]
        for backend in healthy:
            if backend == exclude:
                continue
            last = backend
            point -= weights[backend]
            if point < 0:
                return backend
        return last
