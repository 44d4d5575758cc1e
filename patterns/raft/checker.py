"""Raft's safety properties, checked live from outside the node code.

The checker reads node state and the facts nodes emit, keeps its own global
records (leaders per term, the committed log), and reports a violation the
moment a property breaks:

- election safety: at most one leader per term
- log matching: two logs holding an entry with the same index and term agree
  on every entry up to it
- leader completeness: a leader holds every entry committed in earlier terms
- state machine safety: no two nodes commit (and so apply) different entries
  at the same index
- no acknowledged write is ever lost

Logs are compared through prefix digests: digest[i] hashes digest[i-1] with
entry i, so one comparison checks a whole prefix. The checker keeps the digests
of each node's log and extends them as the log grows; a truncation resets them
from the first discarded index.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..checkers.base import InvariantChecker

if TYPE_CHECKING:  # pragma: no cover
    from .node import Entry, RaftNode

INVARIANTS = {
    "election_safety": "Election safety: at most one leader per term",
    "log_matching": "Log matching: same index and term means the same log up to there",
    "leader_completeness": "Leader completeness: every leader holds all earlier committed entries",
    "state_machine_safety": "State machine safety: no two nodes commit different entries at one index",
    "acknowledged_writes": "No acknowledged write is lost",
}


def entry_key(entry: Entry) -> tuple:
    return (entry.term, tuple(sorted(entry.command.items())))


def describe(entry: Entry) -> str:
    command = entry.command
    if command["op"] == "noop":
        return f"no-op of term {entry.term}"
    if command["op"] == "put":
        return f"put {command['key']}={command['value']} (term {entry.term})"
    return f"get {command['key']} (term {entry.term})"


def shared_prefix(seen: list[Entry], log: list[Entry]) -> int:
    """How many entries an earlier copy of a log (``seen``) still shares with
    ``log``. Entries are immutable and a log only grows or loses a suffix, so
    the two agree below the top of their common length when they agree at it;
    otherwise something changed below the top: find the first difference."""
    keep = min(len(seen), len(log))
    if keep and seen[keep - 1] is not log[keep - 1]:
        first = 0
        while first < keep and seen[first] is log[first]:
            first += 1
        keep = first
    return keep


class _LogDigests:
    """Prefix digests of one node's log, extended incrementally."""

    __slots__ = ("entries", "digests")

    def __init__(self) -> None:
        self.entries: list[Entry] = []
        self.digests: list[int] = []

    def sync(self, log: list[Entry]) -> int:
        """Bring the digests up to ``log``; return the first index (0-based) that is new."""
        entries, digests = self.entries, self.digests
        if len(entries) == len(log) and (not log or entries[-1] is log[-1]):
            return len(log)  # unchanged since the last look: the common case between events
        keep = shared_prefix(entries, log)
        del entries[keep:]
        del digests[keep:]
        previous = digests[-1] if digests else 0
        for index in range(keep, len(log)):
            entry = log[index]
            previous = hash((previous, entry_key(entry)))
            entries.append(entry)
            digests.append(previous)
        return keep

    def truncated(self, from_index: int) -> None:
        del self.entries[from_index - 1 :]
        del self.digests[from_index - 1 :]


class RaftChecker(InvariantChecker):
    INVARIANTS = INVARIANTS

    def __init__(self, nodes: dict[str, RaftNode]) -> None:
        super().__init__()
        self.nodes = nodes
        self.now = 0.0
        self.leaders: dict[int, str] = {}  # term -> the node that led it
        self.logs = {node_id: _LogDigests() for node_id in nodes}
        self.seen: dict[tuple[int, int], tuple[int, str]] = {}  # (index, term) -> (digest, first holder)
        self.committed: list[tuple[Entry, int, int]] = []  # (entry, digest, term it was committed in)
        self.acked: list[tuple[int, str, int]] = []  # (index, client, seq) of acknowledged writes

    def clock_ms(self) -> float:
        return self.now

    # -- facts from nodes ------------------------------------------------------------
    def on_leader(self, node_id: str, term: int) -> None:
        other = self.leaders.get(term)
        if other is not None and other != node_id:
            self._report("election_safety", f"two leaders in term {term}: {other} and {node_id}")
        self.leaders.setdefault(term, node_id)
        self._check_completeness(node_id)

    def on_truncate(self, node_id: str, from_index: int) -> None:
        self.logs[node_id].truncated(from_index)

    def on_lose_disk(self, node_id: str) -> None:
        self.logs[node_id] = _LogDigests()

    def on_commit(self, node_id: str) -> list[Entry]:
        """A node advanced its commit index. Returns entries committed for the first time."""
        node = self.nodes[node_id]
        digests = self.logs[node_id]
        self.sync(node_id)
        commit = node.commit_index
        committed = self.committed
        fresh: list[Entry] = []
        shared = min(commit, len(committed))
        if shared and digests.digests[shared - 1] != committed[shared - 1][1]:
            first = self._first_difference(node_id, shared)
            self._report(
                "state_machine_safety",
                f"{node_id} committed {describe(node.log[first - 1])} at index {first}, "
                f"but {describe(committed[first - 1][0])} was committed there before",
            )
            return fresh
        for index in range(len(committed), commit):
            entry = node.log[index]
            committed.append((entry, digests.digests[index], node.term))
            fresh.append(entry)
        return fresh

    def on_ack(self, client: str, seq: int, index: int, op: str) -> None:
        entry = self.committed[index - 1][0] if 0 < index <= len(self.committed) else None
        if entry is None or entry.command.get("client") != client or entry.command.get("seq") != seq:
            self._report(
                "acknowledged_writes",
                f"{client}'s {op} #{seq} was acknowledged as index {index}, which does not hold it in the committed log",
            )
        elif op == "put":
            self.acked.append((index, client, seq))

    # -- checks -------------------------------------------------------------------------
    def sync(self, node_id: str) -> None:
        digests = self.logs[node_id]
        log = self.nodes[node_id].log
        start = digests.sync(log)
        if start == len(log):
            return
        seen = self.seen
        for index in range(start, len(log)):
            key = (index + 1, log[index].term)
            digest = digests.digests[index]
            first = seen.get(key)
            if first is None:
                seen[key] = (digest, node_id)
            elif first[0] != digest:
                self._report(
                    "log_matching",
                    f"{node_id} and {first[1]} both hold an entry at index {index + 1} from term {key[1]}, "
                    "but their logs differ at or before it",
                )

    def check(self, now: float) -> None:
        """Run between events: bring every log's digests up to date."""
        self.now = now
        logs = self.logs
        for node_id, node in self.nodes.items():
            log = node.disk.log
            entries = logs[node_id].entries
            if len(entries) == len(log) and (not log or entries[-1] is log[-1]):
                continue  # unchanged since the last look (what _LogDigests.sync would find first)
            self.sync(node_id)

    def _first_difference(self, node_id: str, upto: int) -> int:
        digests = self.logs[node_id].digests
        for index in range(min(upto, len(digests), len(self.committed))):
            if digests[index] != self.committed[index][1]:
                return index + 1
        return upto

    def _check_completeness(self, node_id: str) -> None:
        node = self.nodes[node_id]
        self.sync(node_id)
        committed = self.committed
        count = len(committed)
        while count and committed[count - 1][2] >= node.term:
            count -= 1
        if not count:
            return
        digests = self.logs[node_id].digests
        if len(digests) >= count and digests[count - 1] == committed[count - 1][1]:
            return
        first = self._first_difference(node_id, count)
        self._report(
            "leader_completeness",
            f"{node_id} became leader of term {node.term} without committed entry {first} "
            f"({describe(committed[first - 1][0])})",
        )
        lost = [(index, client, seq) for (index, client, seq) in self.acked if index >= first]
        for index, client, seq in lost[:5]:
            self._report(
                "acknowledged_writes",
                f"{client}'s acknowledged put #{seq} (index {index}) is missing from new leader {node_id}'s log",
            )
