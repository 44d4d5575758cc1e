"""The cluster map: membership, placement, quorums and the moves in progress.

This is control-plane metadata, the kind a coordination service (ZooKeeper,
etcd, a placement driver) keeps. The engine owns and changes it; every node
reads the same map at once, so a change reaches all of them instantly. What
the map does NOT do is move data: it only says which copies must move. The
nodes move them as real messages over the simulated network.

A key is either settled (it lives on ``placement.preference(key)``) or moving.
A move records where the key is served from now (``serving``, the old replica
set: reads, writes and quorums use it) and the ``targets`` that must receive a
copy. Each target is paired with a leaving node, whose copy it receives
(another live replica stands in when that node is down). When every target
holds its copy the key switches to the new set, and each leaving node gets a
drop task: push its copy to the new replicas, and delete it only when they
have acknowledged it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import NamedTuple

from .placement import Placement


class Move:
    __slots__ = ("serving", "targets", "pending")

    def __init__(self, serving: tuple[str, ...], targets: tuple[str, ...], pending: dict[str, str]) -> None:
        self.serving = serving  # the replica set that serves the key until the move finishes
        self.targets = targets  # nodes gaining a copy
        self.pending = pending  # target -> the leaving node whose copy it takes; removed when it has it


class PlanResult(NamedTuple):
    copies: int  # copies to move
    keys_moving: int  # keys whose replica set changes
    keys_total: int
    primaries_moved: int  # keys whose first replica (the usual coordinator) changes


class ClusterMap:
    def __init__(self, placement: Placement, replicas: int, write_quorum: int, read_quorum: int) -> None:
        self.placement = placement
        self.replicas = replicas
        self.write_quorum = write_quorum
        self.read_quorum = read_quorum
        self.generation = 0  # bumps on every placement change and every key's switch
        self.epoch = 0  # bumps on every placement change: what a node learned about others' copies before is void
        self.moving: dict[str, Move] = {}
        self.copy_tasks: dict[str, dict[tuple[str, str], None]] = {}  # source -> {(key, target)}
        self.task_source: dict[tuple[str, str], str] = {}  # (key, target) -> source
        self.drop_tasks: dict[str, dict[str, None]] = {}  # node -> {key}
        self._cache: dict[str, tuple[str, ...]] = {}

    # -- reading (nodes and clients) ----------------------------------------------
    @property
    def members(self) -> tuple[str, ...]:
        return self.placement.members

    def preference(self, key: str) -> tuple[str, ...]:
        cached = self._cache.get(key)
        if cached is None:
            cached = self._cache[key] = self.placement.preference(key)
        return cached

    def serving(self, key: str) -> tuple[str, ...]:
        move = self.moving.get(key)
        return move.serving if move is not None else self.preference(key)

    def targets(self, key: str) -> tuple[str, ...]:
        move = self.moving.get(key)
        return move.targets if move is not None else ()

    def owns(self, node: str, key: str) -> bool:
        """May ``node`` store ``key`` now: it serves it or is receiving it."""
        move = self.moving.get(key)
        if move is None:
            return node in self.preference(key)
        return node in move.serving or node in move.targets

    def copy_tasks_of(self, node: str) -> dict[tuple[str, str], None]:
        return self.copy_tasks.get(node) or {}

    def drop_tasks_of(self, node: str) -> dict[str, None]:
        return self.drop_tasks.get(node) or {}

    def pending_copies(self) -> int:
        return len(self.task_source)

    def pending_drops(self) -> int:
        return sum(len(tasks) for tasks in self.drop_tasks.values())

    def in_use(self, node: str) -> bool:
        """Does ``node`` still serve, receive, send or hold back any key?"""
        if node in self.placement.members or self.copy_tasks.get(node) or self.drop_tasks.get(node):
            return True
        return any(node in move.serving or node in move.targets for move in self.moving.values())

    # -- changing (the engine) -------------------------------------------------------
    def plan(self, placement: Placement, keys: Iterable[str], alive: Callable[[str], bool]) -> PlanResult:
        """Switch to ``placement``: every key whose replica set changes starts (or restarts) a move."""
        moving: dict[str, Move] = {}
        cache: dict[str, tuple[str, ...]] = {}
        copies = total = primaries = 0
        for key in keys:
            total += 1
            current = self.serving(key)
            new = cache[key] = placement.preference(key)
            primaries += current[0] != new[0]
            if current == new or set(current) == set(new):
                continue
            targets = tuple(node for node in new if node not in current)
            leaving = tuple(node for node in current if node not in new)
            moving[key] = Move(current, targets, dict(zip(targets, leaving)))
            copies += len(targets)
        # A node waiting to drop a key keeps it if the new plan makes it an owner again.
        for node, tasks in self.drop_tasks.items():
            for key in list(tasks):
                move = moving.get(key)
                owners = move.serving + move.targets if move is not None else cache.get(key) or placement.preference(key)
                if node in owners:
                    del tasks[key]
        self.placement = placement
        self._cache = cache
        self.moving = moving
        self.generation += 1
        self.epoch += 1
        self.copy_tasks = {}
        self.task_source = {}
        for key, move in moving.items():
            for target, leaver in move.pending.items():
                self._assign(key, target, self._source_for(move, leaver, alive))
        return PlanResult(copies, len(moving), total, primaries)

    def _source_for(self, move: Move, leaver: str, alive: Callable[[str], bool]) -> str:
        for node in (leaver, *[n for n in move.serving if n != leaver]):
            if alive(node):
                return node
        return leaver

    def _assign(self, key: str, target: str, source: str) -> None:
        self.copy_tasks.setdefault(source, {})[(key, target)] = None
        self.task_source[(key, target)] = source

    def reassign_sources(self, alive: Callable[[str], bool]) -> int:
        """Copies whose sender is down get a live stand-in from the key's current replicas."""
        changed = 0
        for (key, target), source in list(self.task_source.items()):
            if alive(source):
                continue
            move = self.moving[key]
            stand_in = self._source_for(move, move.pending[target], alive)
            if stand_in != source:
                del self.copy_tasks[source][(key, target)]
                self._assign(key, target, stand_in)
                changed += 1
        return changed

    def complete_copy(self, key: str, target: str) -> list[str] | None:
        """``target`` holds its copy. Returns the leaving nodes when the key switches, else None."""
        move = self.moving.get(key)
        if move is None or target not in move.pending:
            return None
        del move.pending[target]
        source = self.task_source.pop((key, target))
        del self.copy_tasks[source][(key, target)]
        if move.pending:
            return None
        del self.moving[key]
        self.generation += 1
        final = self.preference(key)
        leavers = [node for node in move.serving if node not in final]
        for node in leavers:
            self.drop_tasks.setdefault(node, {})[key] = None
        return leavers

    def complete_drop(self, node: str, key: str) -> bool:
        tasks = self.drop_tasks.get(node)
        if tasks is None or key not in tasks:
            return False
        del tasks[key]
        return True

    def forget_node(self, node: str) -> None:
        self.copy_tasks.pop(node, None)
        self.drop_tasks.pop(node, None)
