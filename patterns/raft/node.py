"""One Raft server: the whole of Figure 2 of Ongaro and Ousterhout (2014).

The node is a state machine over two inputs, a delivered message and a fired
timer. It reaches the world only through its ``Host``: ``send`` appends a
message to the wire, timers are named, and ``emit`` reports facts (an election
started, a leader won, entries were discarded) that the engine narrates and the
checker verifies from outside.

Persistent state (term, voted_for, log) lives in ``RaftDisk``, which a crash
keeps and ``crash_lose_disk`` wipes. Everything else is volatile.

Roles swap behaviour through ``become_follower``, ``become_candidate`` and
``become_leader``; each sets the role and arms the right timer.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

from ..kernel.cluster import ClusterNode, Host
from ..kernel.network import Message

FOLLOWER, CANDIDATE, LEADER = "follower", "candidate", "leader"
MAX_BATCH = 64  # entries per AppendEntries


class Entry(NamedTuple):
    term: int
    command: Mapping[str, Any]  # read-only; {"op": "noop"} or a client command


NOOP = MappingProxyType({"op": "noop"})


class RaftDisk:
    """What survives a crash. Raft persists these BEFORE answering any message."""

    __slots__ = ("term", "voted_for", "log")

    def __init__(self) -> None:
        self.term = 0
        self.voted_for: str | None = None
        self.log: list[Entry] = []


class RaftConfig(NamedTuple):
    peers: tuple[str, ...]  # every node id, self included, in order
    election_timeout_ms: tuple[float, float]
    heartbeat_ms: float
    leader_noop: bool


class RaftNode(ClusterNode):
    def __init__(self, host: Host, config: RaftConfig) -> None:
        super().__init__(host)
        self.config = config
        self.others = tuple(p for p in config.peers if p != self.id)
        self.majority = len(config.peers) // 2 + 1
        self.disk = RaftDisk()
        # Timer callbacks, bound once (re-arming happens on every heartbeat).
        self._election_fired = self._on_election_timeout
        self._heartbeat_fired = self._on_heartbeat
        self._reset_volatile()

    # -- lifecycle -------------------------------------------------------------
    def _reset_volatile(self) -> None:
        self.role = FOLLOWER
        self.leader_id: str | None = None
        self.commit_index = 0
        self.last_applied = 0
        self.kv: dict[str, Any] = {}
        self.sessions: dict[tuple[str, int], Any] = {}  # (client, seq) -> result: exactly-once
        self.votes: dict[str, bool] = {}  # granted votes, in arrival order
        self.next_index: dict[str, int] = {}
        self.match_index: dict[str, int] = {}
        self.sent_index: dict[str, int] = {}  # highest index sent to each peer and not known lost
        self.election_timeout_ms = 0.0

    def start(self) -> None:
        self._reset_volatile()
        self._arm_election_timer()

    def on_crash(self) -> None:
        self._reset_volatile()

    def on_lose_disk(self) -> None:
        self.disk = RaftDisk()

    # -- small helpers -------------------------------------------------------
    @property
    def term(self) -> int:
        return self.disk.term

    @property
    def log(self) -> list[Entry]:
        return self.disk.log

    def last_log(self) -> tuple[int, int]:
        log = self.disk.log
        return (len(log), log[-1].term if log else 0)

    def term_at(self, index: int) -> int:
        return self.disk.log[index - 1].term if index > 0 else 0

    def _arm_election_timer(self) -> None:
        lo, hi = self.config.election_timeout_ms
        # lo + (hi - lo) * random() is what rng.uniform(lo, hi) computes, without the call.
        self.election_timeout_ms = lo if hi <= lo else lo + (hi - lo) * self.host.rng.random()
        self.host.set_timer("election", self.election_timeout_ms, self._election_fired)

    def _adopt_term(self, term: int, heard_from: str) -> None:
        """A higher term seen anywhere: adopt it and become a follower (Figure 2, all servers)."""
        old_role = self.role
        self.disk.term = term
        self.disk.voted_for = None
        if old_role != FOLLOWER:
            self.host.emit("stepped_down", role=old_role, term=term, heard_from=heard_from)
        self.become_follower(leader=None)

    # -- role changes ----------------------------------------------------------
    def become_follower(self, *, leader: str | None) -> None:
        if self.role == LEADER:
            self.host.cancel_timer("heartbeat")
        self.role = FOLLOWER
        self.leader_id = leader
        if self.votes:
            self.votes = {}
        self._arm_election_timer()

    def become_candidate(self, reason: str) -> None:
        if self.role == CANDIDATE:
            self.host.emit("election_failed", term=self.term, votes=list(self.votes))
        if self.role == LEADER:
            self.host.cancel_timer("heartbeat")
        disk = self.disk
        disk.term += 1
        disk.voted_for = self.id
        self.role = CANDIDATE
        self.leader_id = None
        self.votes = {self.id: True}
        self.host.emit("election_started", term=disk.term, reason=reason)
        self._arm_election_timer()
        last_index, last_term = self.last_log()
        for peer in self.others:
            self.host.send(
                peer,
                "RequestVote",
                {"term": disk.term, "candidate": self.id, "last_log_index": last_index, "last_log_term": last_term},
            )
        if len(self.votes) >= self.majority:  # only for a one-node cluster
            self.become_leader()

    def become_leader(self) -> None:
        self.role = LEADER
        self.leader_id = self.id
        self.host.cancel_timer("election")
        self.election_timeout_ms = 0.0
        self.host.emit("became_leader", term=self.term, votes=list(self.votes))
        next_index = len(self.log) + 1
        self.next_index = {peer: next_index for peer in self.others}
        self.match_index = {peer: 0 for peer in self.others}
        self.sent_index = {peer: 0 for peer in self.others}
        if self.config.leader_noop:
            # A no-op from the new term lets earlier entries commit (section 8).
            self.log.append(Entry(self.term, NOOP))
        self._broadcast_append()
        self._maybe_commit()

    def force_timeout(self) -> None:
        """The lab's 'timeout' button: start an election now."""
        self.become_candidate("forced")

    def _on_election_timeout(self) -> None:
        self.become_candidate("timed out")

    def _on_heartbeat(self) -> None:
        self._broadcast_append()

    # -- messages --------------------------------------------------------------
    def on_message(self, msg: Message) -> None:
        _HANDLERS[msg.type](self, msg)

    def _on_request_vote(self, msg: Message) -> None:
        body = msg.body
        if body["term"] > self.term:
            self._adopt_term(body["term"], msg.src)
        disk = self.disk
        granted = False
        if body["term"] == disk.term and disk.voted_for in (None, body["candidate"]):
            last_index, last_term = self.last_log()
            up_to_date = body["last_log_term"] > last_term or (
                body["last_log_term"] == last_term and body["last_log_index"] >= last_index
            )
            if up_to_date:
                granted = True
                disk.voted_for = body["candidate"]
                self._arm_election_timer()  # granting a vote resets the timer
        self.host.send(msg.src, "RequestVoteReply", {"term": disk.term, "granted": granted})

    def _on_request_vote_reply(self, msg: Message) -> None:
        body = msg.body
        if body["term"] > self.term:
            self._adopt_term(body["term"], msg.src)
            return
        if self.role != CANDIDATE or body["term"] != self.term or not body["granted"]:
            return
        self.votes[msg.src] = True
        if len(self.votes) >= self.majority:
            self.become_leader()

    def _on_append_entries(self, msg: Message) -> None:
        body = msg.body
        disk = self.disk
        if body["term"] < disk.term:
            self._reply_append(msg.src, success=False, match=0, conflict_index=0, conflict_term=None)
            return
        if body["term"] > disk.term:
            self._adopt_term(body["term"], msg.src)
        if self.role == CANDIDATE:
            self.host.emit("stepped_down", role=CANDIDATE, term=disk.term, heard_from=msg.src)
        # A leader exists for this term: follow it and reset the election timer.
        self.become_follower(leader=body["leader"])
        log = disk.log
        prev_index, prev_term = body["prev_index"], body["prev_term"]
        if prev_index > len(log):
            self._reply_append(msg.src, success=False, match=0, conflict_index=len(log) + 1, conflict_term=None)
            return
        if prev_index > 0 and log[prev_index - 1].term != prev_term:
            # Fast backtracking: name the conflicting term and where it starts.
            conflict_term = log[prev_index - 1].term
            first = prev_index
            while first > 1 and log[first - 2].term == conflict_term:
                first -= 1
            self._reply_append(msg.src, success=False, match=0, conflict_index=first, conflict_term=conflict_term)
            return
        index = prev_index
        for entry in body["entries"]:
            index += 1
            if index <= len(log):
                if log[index - 1].term == entry.term:
                    continue  # already have it: a duplicate or reordered message must not truncate
                discarded = len(log) - index + 1
                del log[index - 1 :]
                self.host.emit("log_truncated", from_index=index, count=discarded, leader=msg.src)
            log.append(entry)
        match = prev_index + len(body["entries"])
        if body["commit"] > self.commit_index:
            new_commit = min(body["commit"], match)
            if new_commit > self.commit_index:
                self._set_commit(new_commit)
        self._reply_append(msg.src, success=True, match=match, conflict_index=0, conflict_term=None)

    def _reply_append(self, dst: str, *, success: bool, match: int, conflict_index: int, conflict_term: int | None) -> None:
        self.host.send(
            dst,
            "AppendEntriesReply",
            {
                "term": self.disk.term,
                "success": success,
                "match_index": match,
                "conflict_index": conflict_index,
                "conflict_term": conflict_term,
            },
        )

    def _on_append_entries_reply(self, msg: Message) -> None:
        body = msg.body
        term = body["term"]
        if term > self.disk.term:
            self._adopt_term(term, msg.src)
            return
        if self.role != LEADER or term != self.disk.term:
            return
        peer = msg.src
        if body["success"]:
            match = body["match_index"]
            if match > self.match_index[peer]:
                self.match_index[peer] = match
                self._maybe_commit()
            next_index = self.next_index[peer]
            if match + 1 > next_index:
                self.next_index[peer] = next_index = match + 1
            if next_index <= len(self.disk.log) and match >= self.sent_index[peer]:
                # More to send, and no AppendEntries still in flight carries it: keep the
                # follower catching up. (Sending on every reply would start a new chain of
                # sends with each heartbeat, and under steady load they never die out.)
                self._send_append(peer)
            return
        # Rejected: back up using the follower's hint, never below what it already has.
        next_index = body["conflict_index"]
        if body["conflict_term"] is not None:
            last_of_term = self._last_index_of_term(body["conflict_term"])
            if last_of_term:
                next_index = last_of_term + 1
        self.next_index[peer] = max(self.match_index[peer] + 1, min(max(next_index, 1), len(self.log) + 1))
        self.sent_index[peer] = self.match_index[peer]  # what was sent beyond the match did not fit
        self._send_append(peer)

    def _last_index_of_term(self, term: int) -> int:
        log = self.log
        for index in range(len(log), 0, -1):
            entry_term = log[index - 1].term
            if entry_term == term:
                return index
            if entry_term < term:
                break
        return 0

    # -- replication (leader) -----------------------------------------------------
    def _broadcast_append(self) -> None:
        for peer in self.others:
            self._send_append(peer)
        self.host.set_timer("heartbeat", self.config.heartbeat_ms, self._heartbeat_fired)

    def _send_append(self, peer: str) -> None:
        log = self.disk.log
        prev_index = self.next_index[peer] - 1
        entries = tuple(log[prev_index : prev_index + MAX_BATCH])
        if prev_index + len(entries) > self.sent_index[peer]:
            self.sent_index[peer] = prev_index + len(entries)
        self.host.send(
            peer,
            "AppendEntries",
            {
                "term": self.disk.term,
                "leader": self.id,
                "prev_index": prev_index,
                "prev_term": log[prev_index - 1].term if prev_index > 0 else 0,
                "entries": entries,
                "commit": self.commit_index,
            },
        )

    def _maybe_commit(self) -> None:
        """Commit the highest index a majority holds, but only if it is from this term.

        Counting replicas of an entry from an earlier term is not enough (Figure 8):
        such entries commit only indirectly, when an entry of the current term does.
        """
        matches = sorted([len(self.log), *self.match_index.values()], reverse=True)
        candidate = matches[self.majority - 1]
        if candidate > self.commit_index and self.term_at(candidate) == self.term:
            self._set_commit(candidate)

    def _set_commit(self, index: int) -> None:
        self.commit_index = index
        self.host.emit("commit_advanced", commit_index=index, role=self.role)
        self._apply_committed()

    # -- the replicated key-value state machine ----------------------------------------
    def _apply_committed(self) -> None:
        while self.last_applied < self.commit_index:
            self.last_applied += 1
            entry = self.log[self.last_applied - 1]
            command = entry.command
            if command["op"] == "noop":
                continue
            session = (command["client"], command["seq"])
            if session in self.sessions:
                result = self.sessions[session]  # a retried request: apply once, answer again
            else:
                result = self._execute(command)
                self.sessions[session] = result
            if self.role == LEADER and entry.term == self.term:
                self._reply_client(command["client"], command["seq"], result, self.last_applied)

    def _execute(self, command: Mapping[str, Any]) -> Any:
        if command["op"] == "put":
            self.kv[command["key"]] = command["value"]
            return None
        return self.kv.get(command["key"])

    def _reply_client(self, client: str, seq: int, result: Any, index: int) -> None:
        self.host.send(client, "ClientReply", {"seq": seq, "ok": True, "result": result, "index": index, "leader": self.id})

    def _on_client_request(self, msg: Message) -> None:
        body = msg.body
        if self.role != LEADER:
            self.host.send(msg.src, "ClientReply", {"seq": body["seq"], "ok": False, "leader": self.leader_id})
            return
        session = (body["client"], body["seq"])
        if session in self.sessions:
            # Already applied (a retry after a lost reply). Find its index for the record.
            self._reply_client(body["client"], body["seq"], self.sessions[session], self._index_of(session))
            return
        command = {"op": body["op"], "key": body["key"], "client": body["client"], "seq": body["seq"]}
        if body["op"] == "put":
            command["value"] = body["value"]
        self.log.append(Entry(self.term, MappingProxyType(command)))
        for peer in self.others:
            if self.next_index[peer] == len(self.log):  # the follower is caught up: send it now
                self._send_append(peer)
        self._maybe_commit()

    def _index_of(self, session: tuple[str, int]) -> int:
        for index in range(self.last_applied, 0, -1):
            command = self.log[index - 1].command
            if command.get("client") == session[0] and command.get("seq") == session[1]:
                return index
        return 0


_HANDLERS = {
    "RequestVote": RaftNode._on_request_vote,
    "RequestVoteReply": RaftNode._on_request_vote_reply,
    "AppendEntries": RaftNode._on_append_entries,
    "AppendEntriesReply": RaftNode._on_append_entries_reply,
    "ClientRequest": RaftNode._on_client_request,
}
