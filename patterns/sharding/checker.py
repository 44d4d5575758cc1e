"""The sharded store's invariants, checked from outside the node code.

The checker reads node disks and the cluster map, and hears what clients were
told. It runs inside simulation events (never between them), so what it
reports depends only on the run, not on how a caller slices time.

- ``acknowledged_writes``: every acknowledged put's version, or a newer one,
  is on some node's disk (crashed nodes' disks count: they keep their data).
  Checked whenever a key's acknowledged version rises, a node deletes keys,
  or a disk is lost.
- ``quorum_reads``: a get that began after a put was acknowledged must not
  return an older version when R + W > N. Checked for gets whose placement
  generation (every placement change and every key switch bumps it, and so
  does a lost disk) is the same when the put started, when it was
  acknowledged, when the get began and when it ended. Faults (crashes,
  partitions, loss) do not exempt a read: quorum intersection does not depend
  on them. A stale read with R + W <= N is not a violation; it is marked in the
  history (``"stale": true``) and counted.
- ``replica_placement``: when nothing is moving, no node waits to drop a key,
  no coordinator holds an undelivered hint, every node is up, the network is
  whole and no disk was ever lost, every key that exists is on exactly the N
  nodes its placement names, with one version.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, NamedTuple

from ..checkers.base import InvariantChecker
from ..text import and_list

if TYPE_CHECKING:  # pragma: no cover
    from .engine import ShardingEngine

INVARIANTS = {
    "acknowledged_writes": "No acknowledged write is lost: its version, or a newer one, is on some node's disk",
    "quorum_reads": "With R + W > N and a stable placement, no get returns a version older than an acknowledged put",
    "replica_placement": "Once moves and repairs finish, every key has exactly N agreeing replicas on its nodes",
}
Version = tuple[int, str]


def fmt_version(version: Version) -> str:
    counter, coordinator = version
    if counter == 0:
        return "no version"
    return f"version {counter}" + (f" ({coordinator})" if coordinator else " (loaded)")


class AckedPut(NamedTuple):
    version: Version
    value: Any
    nodes: tuple[str, ...]  # the replicas whose acknowledgements made the quorum
    client: str
    w: int
    gen: tuple[int, int] | None  # placement generation, if stable from start to acknowledgement


class GetVerdict(NamedTuple):
    stale: bool
    violation: bool
    text: str  # why it is stale, for the narration; "" when it is not


class ShardChecker(InvariantChecker):
    INVARIANTS = INVARIANTS

    def __init__(self, engine: ShardingEngine) -> None:
        super().__init__()
        self.eng = engine
        self.latest: dict[str, AckedPut] = {}  # the highest acknowledged version per key
        self.by_w: dict[str, dict[int, tuple[Version, tuple[int, int] | None]]] = {}
        self.stale_reads = 0
        self.convergence_checks = 0
        self.convergence_skipped = ""
        self._checked_stamp: Any = None
        self._checked_detail = ""

    # -- reporting -----------------------------------------------------------------
    def clock_ms(self) -> float:
        return self.eng.now

    def summary(self) -> list[dict[str, Any]]:
        out = []
        for key, title in INVARIANTS.items():
            reports = self.reports[key]
            detail = reports[0]["message"] if reports else ""
            if not reports and key == "quorum_reads" and self.stale_reads:
                detail = f"{self.stale_reads} stale read{'s' if self.stale_reads != 1 else ''}, each allowed (R + W <= N or the placement moved)"
            if not reports and key == "replica_placement":
                detail = self.convergence_skipped
            out.append({"id": key, "title": title, "ok": not reports, "detail": detail})
        return out

    def generation(self) -> tuple[int, int]:
        return (self.eng.map.generation, self.eng.lost_disks)

    # -- acknowledged writes ------------------------------------------------------------
    def on_put_acked(self, key: str, put: AckedPut, gen_start: tuple[int, int] | None) -> None:
        gen = self.generation()
        put = put._replace(gen=gen if gen_start == gen else None)
        latest = self.latest.get(key)
        if latest is None or put.version > latest.version:
            self.latest[key] = put
        slot = self.by_w.setdefault(key, {})
        held = slot.get(put.w)
        if held is None or put.version > held[0]:
            slot[put.w] = (put.version, put.gen)
        self.check_keys([key])

    def held_version(self, key: str) -> Version:
        best: Version = (0, "")
        for node in self.eng.shard_nodes.values():
            copy = node.disk.store.get(key)
            if copy is not None and copy[1] > best:
                best = copy[1]
        return best

    def check_keys(self, keys: Iterable[str]) -> None:
        latest = self.latest
        for key in keys:
            put = latest.get(key)
            if put is None:
                continue
            held = self.held_version(key)
            if held < put.version:
                self._report(
                    "acknowledged_writes",
                    f"{put.client}'s put {key}={put.value} ({fmt_version(put.version)}, acknowledged by "
                    f"{and_list(list(put.nodes))}) is on no node's disk"
                    + (f"; the newest copy left is {fmt_version(held)}" if held[0] else ""),
                )

    def check_all(self) -> None:
        self.check_keys(list(self.latest))

    # -- reads -----------------------------------------------------------------------------
    def snapshot(self, key: str) -> tuple[AckedPut | None, dict[int, tuple[Version, tuple[int, int] | None]]]:
        """What a get that begins now must not read behind."""
        return self.latest.get(key), dict(self.by_w.get(key, {}))

    def on_get_done(
        self,
        key: str,
        version: Version,
        replies: list[tuple[str, Version]],
        r: int,
        snap: tuple[AckedPut | None, dict[int, tuple[Version, tuple[int, int] | None]]],
        gen_start: tuple[int, int],
        who: str,
    ) -> GetVerdict:
        latest, by_w = snap
        if latest is None or version >= latest.version:
            return GetVerdict(False, False, "")
        self.stale_reads += 1
        n = self.eng.map.replicas
        gen = self.generation()
        stable = gen_start == gen
        guaranteed = [
            (w, v) for w, (v, g) in sorted(by_w.items()) if w + r > n and g is not None and g == gen_start and stable and version < v
        ]
        repliers = and_list([node for node, _ in replies])
        got = f"{who}'s get {key} returned {fmt_version(version)} from {repliers}"
        missed = (
            f"put {key}={latest.value} ({fmt_version(latest.version)}) had been acknowledged by "
            f"{and_list(list(latest.nodes))} only"
        )
        if guaranteed:
            w, v = guaranteed[-1]
            self._report(
                "quorum_reads",
                f"{got}, but a put acknowledged earlier with W = {w} wrote {fmt_version(v)}: "
                f"R + W = {r + w} > N = {n}, so the quorums should have overlapped",
            )
            return GetVerdict(True, True, f"{got}, but {missed}: this breaks quorum intersection")
        if r + latest.w <= n:
            why = f"R + W = {r} + {latest.w} = {r + latest.w} <= N = {n}, so the read quorum missed the newest copy"
        elif latest.gen is None or latest.gen != gen_start or not stable:
            why = "the key's replicas changed in between (a rebalance or a lost disk), so the quorums need not overlap"
        else:
            why = "an earlier put's quorum was too small"
        return GetVerdict(True, False, f"{got}, but {missed}: {why}")

    # -- convergence -------------------------------------------------------------------------------
    def quiet_reason(self) -> str:
        """Why the replica placement cannot be judged now, or '' when it can."""
        eng = self.eng
        cmap = eng.map
        if eng.lost_disks:
            return "not checked: a disk was lost, and without anti-entropy the node stays empty"
        if cmap.moving:
            return "waiting: keys are moving"
        if cmap.pending_drops():
            return "waiting: old replicas still hold keys to hand off"
        if eng.leaving:
            return "waiting: a removed node is still leaving"
        down = [node_id for node_id, host in eng.hosts.items() if not host.alive]
        if down:
            return f"waiting: {and_list(down)} {'is' if len(down) == 1 else 'are'} down"
        if eng.net.partition_groups() or eng.net.cuts():
            return "waiting: the network is split"
        if any(node.disk.hints for node in eng.shard_nodes.values()):
            return "waiting: coordinators still hold writes some replica has not acknowledged"
        return ""

    def check_convergence(self) -> None:
        eng = self.eng
        reason = self.quiet_reason()
        if reason:
            self.convergence_skipped = reason
            return
        stamp = (eng.map.generation, len(eng.catalog), tuple(node.disk.writes for node in eng.shard_nodes.values()))
        if stamp == self._checked_stamp:
            self.convergence_skipped = self._checked_detail
            return
        self._checked_stamp = stamp
        self.convergence_checks += 1
        cmap = eng.map
        nodes = list(eng.shard_nodes.values())
        problems = 0
        for key in eng.catalog:
            copies = [(node.id, node.disk.store[key]) for node in nodes if key in node.disk.store]
            if not copies:
                continue
            want = cmap.serving(key)
            holders = [node_id for node_id, _ in copies]
            versions = {copy[1] for _, copy in copies}
            if sorted(holders) != sorted(want):
                self._report(
                    "replica_placement",
                    f"{key} should be on {and_list(list(want))} but is on {and_list(holders)}",
                )
                problems += 1
            elif len(versions) > 1:
                detail = ", ".join(f"{node_id} has {fmt_version(copy[1])}" for node_id, copy in copies)
                self._report("replica_placement", f"{key}'s replicas disagree after repair: {detail}")
                problems += 1
            if problems >= 5:
                break
        self._checked_detail = "" if problems else f"checked at {eng.now:.0f} ms: every key on its {cmap.replicas} nodes"
        self.convergence_skipped = self._checked_detail
