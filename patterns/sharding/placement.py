"""Placement strategies: which N nodes hold a key, in preference order.

Every strategy is an immutable value built from the member list (in join
order) and the replica count N. ``preference(key)`` names the N nodes that
should hold the key; the first is its primary. A change of membership or
strategy builds a new placement, and the rebalancer compares the two key by
key to find the copies that must move.

- ``ConsistentPlacement``: a hash ring. Each node owns ``vnodes`` tokens; a
  key belongs to the first N distinct nodes clockwise from its hash. A joining
  node takes over about 1/(M+1) of the copies, all of them from its ring
  neighbours.
- ``ModuloPlacement``: node ``hash(key) mod M`` and the next N-1 members.
  Changing M reshuffles almost everything.
- ``RangePlacement``: contiguous key ranges (in key order), each with its own
  replica set. A range that grows past ``range_split_keys`` keys splits at its
  median key and the upper half goes to the least loaded nodes; joins and
  removals hand whole ranges over, a few at a time, until the load is even.

Hashes come from SHA-256, so every process agrees on them whatever its
PYTHONHASHSEED.
"""

from __future__ import annotations

import hashlib
import math
from abc import ABC, abstractmethod
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from functools import lru_cache
from typing import Any, NamedTuple

SPACE = 2**64
STRATEGIES = ("consistent", "modulo", "range")
RING_IN_VIEW = 320  # ring tokens listed in the view at most (thinned evenly beyond; 5 nodes x 64 vnodes fit)


@lru_cache(maxsize=1 << 16)
def key_hash(text: str) -> int:
    """A 64-bit position on the hash space, the same in every process."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def node_number(node_id: str) -> int:
    return int(node_id[1:])


class Placement(ABC):
    strategy = ""

    def __init__(self, members: Sequence[str], replicas: int) -> None:
        assert 1 <= replicas <= len(members), (replicas, members)
        self.members = tuple(members)
        self.replicas = replicas

    @abstractmethod
    def preference(self, key: str) -> tuple[str, ...]:
        """The replicas of ``key``, the primary first."""

    def primary_share(self) -> dict[str, float]:
        """The fraction of the hash space (or of the keys) each member is primary for."""
        return {}

    def describe(self, keys_sorted: Sequence[str]) -> dict[str, Any]:
        return {"ring": [], "ring_tokens": 0, "ranges": []}


class ConsistentPlacement(Placement):
    strategy = "consistent"

    def __init__(self, members: Sequence[str], replicas: int, vnodes: int) -> None:
        super().__init__(members, replicas)
        self.vnodes = vnodes
        tokens = sorted((key_hash(f"{node}#{i}"), node) for node in self.members for i in range(vnodes))
        self.points = [token for token, _ in tokens]
        self.owners = [node for _, node in tokens]

    def preference(self, key: str) -> tuple[str, ...]:
        points, owners = self.points, self.owners
        count = len(points)
        start = bisect_right(points, key_hash(key))
        chosen: list[str] = []
        want = self.replicas
        for step in range(count):
            node = owners[(start + step) % count]
            if node not in chosen:
                chosen.append(node)
                if len(chosen) == want:
                    break
        return tuple(chosen)

    def primary_share(self) -> dict[str, float]:
        share = {node: 0.0 for node in self.members}
        points, owners = self.points, self.owners
        previous = points[-1] - SPACE
        for point, node in zip(points, owners):
            share[node] += (point - previous) / SPACE  # the arc ending at a token belongs to it
            previous = point
        return {node: round(value, 4) for node, value in share.items()}

    def describe(self, keys_sorted: Sequence[str]) -> dict[str, Any]:
        count = len(self.points)
        stride = max(1, math.ceil(count / RING_IN_VIEW))
        ring = [
            {"token": round(self.points[i] / SPACE, 5), "node": self.owners[i]} for i in range(0, count, stride)
        ]
        return {"ring": ring, "ring_tokens": count, "ranges": []}


class ModuloPlacement(Placement):
    """Copy j of a key goes to member ``hash(key#j) mod M`` (the next free one if taken).

    Each copy is placed by its own hash, as a client hashing mod M would place
    each replica; so when M changes, each copy stays only if its hash mod M
    and mod M+1 name the same node: about 1 time in M+1.
    """

    strategy = "modulo"

    def preference(self, key: str) -> tuple[str, ...]:
        members = self.members
        count = len(members)
        chosen: list[str] = []
        for j in range(self.replicas):
            index = key_hash(key if j == 0 else f"{key}#{j}") % count
            while members[index] in chosen:
                index = (index + 1) % count
            chosen.append(members[index])
        return tuple(chosen)

    def primary_share(self) -> dict[str, float]:
        return {node: round(1 / len(self.members), 4) for node in self.members}


class KeyRange(NamedTuple):
    start: str  # inclusive; "" is the lowest key
    end: str | None  # exclusive; None is past the highest key
    replicas: tuple[str, ...]


def _count_in(keys_sorted: Sequence[str], start: str, end: str | None) -> int:
    hi = len(keys_sorted) if end is None else bisect_left(keys_sorted, end)
    return hi - bisect_left(keys_sorted, start)


class RangePlacement(Placement):
    strategy = "range"

    def __init__(self, members: Sequence[str], replicas: int, ranges: Sequence[KeyRange]) -> None:
        super().__init__(members, replicas)
        assert ranges and ranges[0].start == "" and ranges[-1].end is None
        self.ranges = tuple(ranges)
        self.starts = [r.start for r in self.ranges]

    @classmethod
    def initial(cls, members: Sequence[str], replicas: int) -> RangePlacement:
        return cls(members, replicas, [KeyRange("", None, tuple(members[:replicas]))])

    def preference(self, key: str) -> tuple[str, ...]:
        return self.ranges[bisect_right(self.starts, key) - 1].replicas

    def counts(self, keys_sorted: Sequence[str]) -> list[int]:
        return [_count_in(keys_sorted, r.start, r.end) for r in self.ranges]

    def describe(self, keys_sorted: Sequence[str]) -> dict[str, Any]:
        return {
            "ring": [],
            "ring_tokens": 0,
            "ranges": [
                {"start": r.start, "end": r.end, "node": r.replicas[0], "replicas": list(r.replicas), "keys": count}
                for r, count in zip(self.ranges, self.counts(keys_sorted))
            ],
        }

    # -- building new placements -------------------------------------------------
    @staticmethod
    def _loads(members: Sequence[str], ranges: Sequence[KeyRange], counts: Sequence[int]) -> dict[str, int]:
        loads = {node: 0 for node in members}
        for r, count in zip(ranges, counts):
            for node in r.replicas:
                if node in loads:
                    loads[node] += count
        return loads

    @staticmethod
    def _least_loaded(loads: dict[str, int], members: Sequence[str], count: int, exclude: Sequence[str] = ()) -> list[str]:
        order = sorted((loads[node], index, node) for index, node in enumerate(members) if node not in exclude)
        return [node for _, _, node in order[:count]]

    def split_oversized(self, keys_sorted: Sequence[str], limit: int) -> tuple[RangePlacement, list[str]]:
        """Split every range holding more than ``limit`` keys at its median key, until none does.

        The lower half keeps its replicas; the upper half goes to the N least
        loaded members. Returns the new placement and a line per split.
        """
        ranges = list(self.ranges)
        counts = [_count_in(keys_sorted, r.start, r.end) for r in ranges]
        notes: list[str] = []
        index = 0
        while index < len(ranges):
            r, count = ranges[index], counts[index]
            if count <= limit:
                index += 1
                continue
            first = bisect_left(keys_sorted, r.start)
            middle = keys_sorted[first + count // 2]
            lower = KeyRange(r.start, middle, r.replicas)
            lower_count = count // 2
            upper_count = count - lower_count
            ranges[index], counts[index] = lower, lower_count
            loads = self._loads(self.members, ranges, counts)
            upper = KeyRange(middle, r.end, tuple(self._least_loaded(loads, self.members, self.replicas)))
            ranges.insert(index + 1, upper)
            counts.insert(index + 1, upper_count)
            notes.append(
                f"range [{r.start or '-inf'}, {r.end or '+inf'}) split at {middle}: "
                f"{upper_count} keys from {middle} go to {', '.join(upper.replicas)}"
            )
        return RangePlacement(self.members, self.replicas, ranges), notes

    def with_members(self, members: Sequence[str], keys_sorted: Sequence[str]) -> RangePlacement:
        """Hand ranges of departed nodes to the least loaded members; give new members ranges until even."""
        members = tuple(members)
        ranges = list(self.ranges)
        counts = [_count_in(keys_sorted, r.start, r.end) for r in ranges]
        # Departed nodes: each of their replica slots goes to the least loaded member not in the set.
        for index, r in enumerate(ranges):
            if all(node in members for node in r.replicas):
                continue
            replicas = list(r.replicas)
            for slot, node in enumerate(replicas):
                if node not in members:
                    loads = self._loads(members, ranges, counts)
                    (replacement,) = self._least_loaded(loads, members, 1, exclude=replicas)
                    replicas[slot] = replacement
                    ranges[index] = r = KeyRange(r.start, r.end, tuple(replicas))
        # New members: take replica slots from the most loaded nodes while that evens things out.
        fresh = [node for node in members if node not in self.members]
        for new in fresh:
            while True:
                loads = self._loads(members, ranges, counts)
                ideal = sum(loads.values()) / len(members)
                room = ideal - loads[new]
                best = None
                for index, r in enumerate(ranges):
                    if new in r.replicas or counts[index] == 0 or counts[index] > room + 0.5 * counts[index]:
                        continue
                    donor = max(r.replicas, key=lambda node: (loads[node], -members.index(node)))
                    if loads[new] + counts[index] >= loads[donor]:
                        continue  # moving it would only swap who is overloaded
                    score = (loads[donor], counts[index], -index)
                    if best is None or score > best[0]:
                        best = (score, index, donor)
                if best is None:
                    break
                _, index, donor = best
                r = ranges[index]
                ranges[index] = KeyRange(r.start, r.end, tuple(new if node == donor else node for node in r.replicas))
        return RangePlacement(members, self.replicas, ranges)

    @classmethod
    def build(cls, members: Sequence[str], replicas: int, keys_sorted: Sequence[str], limit: int) -> RangePlacement:
        """Ranges of about half the split size over the keys there are, spread evenly."""
        members = tuple(members)
        if not keys_sorted:
            return cls.initial(members, replicas)
        chunk = max(1, limit // 2)
        bounds = list(range(0, len(keys_sorted), chunk))
        ranges: list[KeyRange] = []
        counts: list[int] = []
        for position, first in enumerate(bounds):
            start = "" if position == 0 else keys_sorted[first]
            end = keys_sorted[bounds[position + 1]] if position + 1 < len(bounds) else None
            loads = cls._loads(members, ranges, counts)
            ranges.append(KeyRange(start, end, tuple(cls._least_loaded(loads, members, replicas))))
            counts.append(min(chunk, len(keys_sorted) - first))
        return cls(members, replicas, ranges)


def build(strategy: str, members: Sequence[str], replicas: int, *, vnodes: int, keys_sorted: Sequence[str], range_limit: int) -> Placement:
    if strategy == "consistent":
        return ConsistentPlacement(members, replicas, vnodes)
    if strategy == "modulo":
        return ModuloPlacement(members, replicas)
    return RangePlacement.build(members, replicas, keys_sorted, range_limit)


def estimate_moved_fraction(old: Placement, new: Placement, samples: int = 2048) -> float:
    """The fraction of copies that change node between two placements, for uniformly hashed keys.

    Measured on a fixed set of synthetic keys, so it is the same in every run:
    the expectation the real keys' count can be compared with.
    """
    moved = 0
    for i in range(samples):
        key = f"~sample{i}"
        before = old.preference(key)
        moved += sum(1 for node in new.preference(key) if node not in before)
    return moved / (samples * new.replicas)
