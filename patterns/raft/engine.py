"""The Raft engine: nodes, clients, checker and narration behind the contract."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from ..errors import InvalidCommand, InvalidParameter
from ..kernel.cluster import ClusterEngine
from ..kernel.network import Message
from ..kernel.rng import derive_rng
from ..text import and_list
from ..validate import flag, number, number_pair, only_keys, text
from .checker import RaftChecker, describe, shared_prefix
from .client import RaftClient
from .node import LEADER, Entry, RaftConfig, RaftNode

MAX_PENDING_OPS = 500
HISTORY_IN_VIEW = 60
EVENTS_IN_VIEW = 60
PARAMS = [
    "nodes",
    "election_timeout_ms",
    "heartbeat_ms",
    "latency_ms",
    "drop_rate",
    "duplicate_rate",
    "reorder_rate",
    "clients",
    "client_timeout_ms",
    "leader_noop",
]


def _message_view(msg: Message) -> dict[str, Any]:
    """A message in flight as the page draws it: the envelope, then what its type says."""
    view = {
        "id": msg.id,
        "from": msg.src,
        "to": msg.dst,
        "type": msg.type,
        "send_ms": msg.send_ms,
        "deliver_ms": msg.deliver_ms,
        "lost": msg.lost,
        "duplicate": msg.dup_of is not None,
    }
    body = msg.body
    kind = msg.type
    if kind == "AppendEntries":
        view["term"] = body["term"]
        view["prev_index"] = body["prev_index"]
        view["entries"] = len(body["entries"])
        view["commit"] = body["commit"]
    elif kind == "AppendEntriesReply":
        view["term"] = body["term"]
        view["success"] = body["success"]
        view["match_index"] = body["match_index"]
    elif kind == "RequestVote":
        view["term"] = body["term"]
        view["last_log_index"] = body["last_log_index"]
    elif kind == "RequestVoteReply":
        view["term"] = body["term"]
        view["granted"] = body["granted"]
    elif kind == "ClientRequest":
        view["op"] = body["op"]
        view["key"] = body["key"]
        view["seq"] = body["seq"]
    else:
        view["ok"] = body["ok"]
        view["seq"] = body["seq"]
        view["leader"] = body.get("leader")
    return view


class _LogView:
    """The view of one node's log, one dict per entry, each built once.

    Entries are immutable and a log only grows or loses a suffix, so (as in the
    checker's digests) the lists agree below the top of their common prefix
    when they agree at it. The dicts are shared between views; readers must
    not change them.
    """

    __slots__ = ("entries", "dicts")

    def __init__(self) -> None:
        self.entries: list[Entry] = []
        self.dicts: list[dict[str, Any]] = []

    def view(self, log: list[Entry]) -> list[dict[str, Any]]:
        entries, dicts = self.entries, self.dicts
        if len(entries) != len(log) or (log and entries[-1] is not log[-1]):
            keep = shared_prefix(entries, log)
            del entries[keep:]
            del dicts[keep:]
            for entry in log[keep:]:
                entries.append(entry)
                dicts.append({"term": entry.term, "command": dict(entry.command)})
        return list(dicts)


class RaftEngine(ClusterEngine):
    kind = "raft"
    title = "Raft consensus"
    COMMANDS: ClassVar[dict[str, str]] = {
        **ClusterEngine.COMMANDS,
        "put": "cmd_put",
        "get": "cmd_get",
        "timeout": "cmd_timeout",
    }

    def __init__(self, *, seed: int = 1, **params: Any) -> None:
        only_keys(params, PARAMS, error=InvalidParameter)
        err = InvalidParameter
        size = number(params, "nodes", lo=3, hi=9, integer=True, default=5, error=err)
        election = number_pair(params, "election_timeout_ms", lo=1, hi=60_000, default=(150.0, 300.0), error=err)
        heartbeat = number(params, "heartbeat_ms", lo=1, hi=60_000, default=50.0, error=err)
        network = self.network_params(params, default_latency_ms=(10.0, 15.0))
        clients = number(params, "clients", lo=1, hi=9, integer=True, default=3, error=err)
        client_timeout = number(params, "client_timeout_ms", lo=1, hi=60_000, default=election[1], error=err)
        noop = flag(params, "leader_noop", default=True, error=err)
        normalized = {
            "nodes": size,
            "election_timeout_ms": list(election),
            "heartbeat_ms": heartbeat,
            **network,
            "clients": clients,
            "client_timeout_ms": client_timeout,
            "leader_noop": noop,
        }
        super().__init__(seed=seed, params=normalized, network=network)
        ids = [f"n{i}" for i in range(1, size + 1)]
        config = RaftConfig(tuple(ids), election, heartbeat, noop)
        for node_id in ids:
            self.add_node(node_id, lambda host: RaftNode(host, config))
        self.raft_nodes: dict[str, RaftNode] = dict(self.nodes)  # type: ignore[arg-type]
        self.checker = RaftChecker(self.raft_nodes)
        self.history: list[dict[str, Any]] = []
        self._log_views = {node_id: _LogView() for node_id in ids}
        self._final_views: dict[int, dict[str, Any]] = {}  # record id -> view, for finished records in view
        self.clients = {
            f"c{i}": RaftClient(
                f"c{i}",
                sim=self.sim,
                net=self.net,
                rng=derive_rng(seed, "client", f"c{i}"),
                nodes=ids,
                timeout_ms=client_timeout,
                retry_ms=heartbeat * 2,
                on_complete=self._on_client_complete,
                on_redirect=self._on_client_redirect,
            )
            for i in range(1, clients + 1)
        }
        for node in self.raft_nodes.values():
            node.start()

    # -- commands ------------------------------------------------------------------
    def cmd_timeout(self, cmd: Mapping[str, Any]) -> None:
        only_keys(cmd, ["node"])
        node_id = self.alive_node_arg(cmd)
        self.raft_nodes[node_id].force_timeout()

    def cmd_put(self, cmd: Mapping[str, Any]) -> dict[str, Any]:
        only_keys(cmd, ["key", "value", "client", "via"])
        key = text(cmd, "key", max_len=32)
        if "value" not in cmd:
            raise InvalidCommand("'put' needs a 'value'")
        value = cmd["value"]
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise InvalidCommand(f"'value' must be text or a whole number, not {value!r}")
        if isinstance(value, str) and len(value) > 64:
            raise InvalidCommand("'value' must be at most 64 characters long")
        if isinstance(value, int) and abs(value) > 2**53:
            raise InvalidCommand("'value' is too large; use at most 2^53")
        return self._submit(cmd, {"op": "put", "key": key, "value": value})

    def cmd_get(self, cmd: Mapping[str, Any]) -> dict[str, Any]:
        only_keys(cmd, ["key", "client", "via"])
        key = text(cmd, "key", max_len=32)
        return self._submit(cmd, {"op": "get", "key": key, "result": None})

    def _submit(self, cmd: Mapping[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
        client_id = text(cmd, "client", default="c1", max_len=8)
        if client_id not in self.clients:
            raise InvalidCommand(f"unknown client {client_id!r}; the clients are {', '.join(self.clients)}")
        via = self.node_arg(cmd, "via") if "via" in cmd else None
        client = self.clients[client_id]
        if sum(len(c.outstanding) for c in self.clients.values()) >= MAX_PENDING_OPS:
            raise InvalidCommand(f"{MAX_PENDING_OPS} operations are already pending; wait for some to finish")
        record = {
            "id": len(self.history) + 1,
            "client": client_id,
            **fields,
            "invoke": self.sim.now,
            "complete": None,
            "status": "pending",
            "attempts": 0,
            "node": None,
        }
        self.history.append(record)
        client.submit(record, via)
        return {"op_id": record["id"]}

    # -- facts from nodes and clients ---------------------------------------------------
    def on_node_event(self, node_id: str, event: str, fields: dict[str, Any]) -> None:
        node = self.raft_nodes[node_id]
        checker = self.checker
        checker.now = self.sim.now
        if event == "election_started":
            why = "timed out" if fields["reason"] == "timed out" else "was told to time out"
            self.narrate(f"{node_id} {why} and started an election for term {fields['term']}", "election", node=node_id)
        elif event == "election_failed":
            votes = len(fields["votes"])
            self.narrate(
                f"{node_id}'s election for term {fields['term']} got {votes} of {len(self.nodes)} votes, "
                f"short of the {node.majority} it needs (a split vote or lost messages); it tries again",
                "election",
                node=node_id,
            )
        elif event == "became_leader":
            checker.on_leader(node_id, fields["term"])
            voters = sorted(fields["votes"], key=lambda n: int(n[1:]))
            self.narrate(f"{node_id} won term {fields['term']} with votes from {and_list(voters)}", "leader", node=node_id)
        elif event == "stepped_down":
            self.narrate(
                f"{node_id} stepped down from {fields['role']}: it heard term {fields['term']} from {fields['heard_from']}",
                "election",
                node=node_id,
            )
        elif event == "log_truncated":
            checker.on_truncate(node_id, fields["from_index"])
            count = fields["count"]
            self.narrate(
                f"{node_id} discarded {count} uncommitted entr{'y' if count == 1 else 'ies'} from index "
                f"{fields['from_index']} that conflicted with leader {fields['leader']}'s log",
                "log",
                node=node_id,
            )
        elif event == "commit_advanced":
            fresh = checker.on_commit(node_id)
            if fresh:
                last = len(checker.committed)
                first = last - len(fresh) + 1
                what = describe(fresh[-1]).replace(f" (term {fresh[-1].term})", "")
                where = f"entry {last}" if first == last else f"entries {first}-{last}"
                self.narrate(f"{where} ({what}) committed: a majority holds it", "commit", node=node_id)
        elif event == "crashed":
            if fields["lose_disk"]:
                checker.on_lose_disk(node_id)
                self.narrate(
                    f"{node_id} crashed and lost its disk: it will return with no term, no vote and an empty log. "
                    "Raft assumes stable storage, so this can break safety; watch the invariants",
                    "fault",
                    node=node_id,
                )
            else:
                self.narrate(
                    f"{node_id} crashed; its disk keeps term {node.term}, its vote and {len(node.log)} log entries",
                    "fault",
                    node=node_id,
                )
        elif event == "restarted":
            self.narrate(
                f"{node_id} restarted as a follower in term {node.term} with {len(node.log)} log entries; "
                "it learns what is committed from the leader",
                "fault",
                node=node_id,
            )

    def _on_client_complete(self, record: dict[str, Any], msg: Message) -> None:
        body = msg.body
        record["complete"] = self.sim.now
        record["status"] = "ok"
        record["index"] = body["index"]
        if record["op"] == "get":
            record["result"] = body["result"]
            what = f"get {record['key']} -> {body['result']!r}"
        else:
            what = f"put {record['key']}={record['value']}"
        self.checker.now = self.sim.now
        self.checker.on_ack(record["client"], record["seq"], body["index"], record["op"])
        self.narrate(f"{record['client']}'s {what} acknowledged by {msg.src} (entry {body['index']})", "client")

    def _on_client_redirect(self, record: dict[str, Any], node_id: str, hint: str | None) -> None:
        where = f"redirected it to {hint}" if hint else "knows no leader yet"
        self.narrate(f"{node_id} is not the leader and {where} ({record['client']}'s {record['op']} {record['key']})", "client")

    # -- the view --------------------------------------------------------------------
    def _after_run(self) -> None:
        self.checker.check(self.sim.now)

    def violations(self) -> list[dict[str, Any]]:
        self.checker.check(self.sim.now)
        return self.checker.violations()

    def leader(self) -> str | None:
        """The live leader with the highest term, if any."""
        best = None
        for node in self.raft_nodes.values():
            if self.hosts[node.id].alive and node.role == LEADER and (best is None or node.term > best.term):
                best = node
        return best.id if best else None

    def node_view(self, node: RaftNode) -> dict[str, Any]:
        host = self.hosts[node.id]
        disk = node.disk
        role = node.role
        leading = role == LEADER
        deadline = host.timer_due("election")
        return {
            "id": node.id,
            "alive": host.alive,
            "role": role,
            "term": disk.term,
            "voted_for": disk.voted_for,
            "commit_index": node.commit_index,
            "last_applied": node.last_applied,
            "log": self._log_views[node.id].view(disk.log),
            "leader_id": node.leader_id,
            "votes": list(node.votes) if role != "follower" else [],
            "election_deadline_ms": deadline,
            "election_timeout_ms": node.election_timeout_ms if deadline is not None else None,
            "next_index": dict(node.next_index) if leading else {},
            "match_index": dict(node.match_index) if leading else {},
            "kv": dict(node.kv),
        }

    def view(self) -> dict[str, Any]:
        self.checker.check(self.sim.now)
        return {
            "kind": self.kind,
            "seed": self.seed,
            "now": self.sim.now,
            "params": dict(self.params),
            "nodes": [self.node_view(node) for node in self.raft_nodes.values()],
            "leader": self.leader(),
            "committed": len(self.checker.committed),
            "messages": [_message_view(msg) for msg in self.net.in_flight.values()],
            "history": self._history_views(),
            "clients": list(self.clients),
            "events": self._recent_events(EVENTS_IN_VIEW),
            "invariants": self.checker.summary(),
            "network": self.network_view(),
        }

    def _history_views(self) -> list[dict[str, Any]]:
        """The newest operations. A finished record never changes again, so its
        view is built once and kept while the record stays in view."""
        kept = self._final_views
        final: dict[int, dict[str, Any]] = {}
        views = []
        for record in self.history[-HISTORY_IN_VIEW:]:
            view = kept.get(record["id"])
            if view is None:
                view = self._history_view(record)
            if record["status"] != "pending":
                final[record["id"]] = view
            views.append(view)
        self._final_views = final
        return views

    @staticmethod
    def _history_view(record: dict[str, Any]) -> dict[str, Any]:
        return {key: value for key, value in record.items() if key != "seq"}
