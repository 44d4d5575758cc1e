"""Scenario-file commands and ``until`` conditions for the sharded store.

Commands: ``nodes`` (keys, load and queue per node), ``placement`` (strategy,
quorums, the last placement change against its expectation, rebalance
progress, balance), ``ring`` (each node's share of the hash ring),
``ranges``, ``key K`` (where a key lives and which version each node holds),
``hot`` (the hot keys and who coordinates them), ``ops`` (the client history
with versions and stale marks) and ``stats``.

Conditions: ``settled`` (no client operation waits for an answer),
``rebalanced`` (nothing moving, nothing left to hand off), ``quiet`` (the
checker can judge replica placement: no faults, no moves, no hints).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..scenario import Condition, KindAdapter, ScenarioError, ScenarioRunner
from .checker import fmt_version


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


class ShardingAdapter(KindAdapter):
    def commands(self, runner: ScenarioRunner) -> dict[str, Callable[[str, list[str]], str]]:
        return {
            "nodes": lambda args, _input: self.nodes(runner.eng),
            "placement": lambda args, _input: self.placement(runner.eng),
            "ring": lambda args, _input: self.ring(runner.eng),
            "ranges": lambda args, _input: self.ranges(runner.eng),
            "key": lambda args, _input: self.key(runner.eng, args),
            "hot": lambda args, _input: self.hot(runner.eng),
            "stats": lambda args, _input: self.stats(runner.eng),
            "ops": lambda args, _input: self.ops(runner.eng),
        }

    def conditions(self) -> dict[str, Condition]:
        return {"settled": self.until_settled, "rebalanced": self.until_rebalanced, "quiet": self.until_quiet}

    # -- commands ---------------------------------------------------------------------------------
    @staticmethod
    def nodes(eng: Any) -> str:
        lines = []
        for node in eng.view()["nodes"]:
            state = "up  " if node["alive"] else "down"
            flags = " leaving" if node["leaving"] else ""
            lines.append(
                f"{node['id']:<4} {state} keys={node['keys']:<5} load={node['load_rps']}/s "
                f"queue={node['queue_ms']:g}ms shed={node['shed']} hints={node['hints']}{flags}".rstrip()
            )
        if eng.departed:
            lines.append("left: " + ", ".join(eng.departed))
        return "\n".join(lines)

    @staticmethod
    def placement(eng: Any) -> str:
        view = eng.view()
        head = f"strategy={view['strategy']}"
        if view["strategy"] == "consistent":
            head += f" vnodes={view['vnodes']}"
        n, w, r = view["replicas"], view["write_quorum"], view["read_quorum"]
        head += f" N={n} W={w} R={r} ({'R+W>N' if r + w > n else 'R+W<=N'}) keys={view['keys_total']}"
        lines = [head]
        change = view["placement_change"]
        if change is not None:
            lines.append(
                f"change: {change['reason']}: moved {change['moved']}/{change['total']} copies "
                f"({_pct(change['fraction'])}), expected {_pct(change['expected_fraction'])}; "
                f"keys changing replicas {change['keys_moving']}/{change['keys']}, "
                f"primaries moved {change['primaries_moved']}/{change['keys']}"
            )
        rebalance = view["rebalance"]
        state = "in progress" if rebalance["in_progress"] else "done"
        line = f"rebalance: {rebalance['moved']}/{rebalance['total']} copies, {state}"
        if rebalance["done_ms"] is not None and rebalance["started_ms"] is not None:
            line += f" in {rebalance['done_ms'] - rebalance['started_ms']:.0f} ms"
        if rebalance["cleanup"]:
            line += f", {rebalance['cleanup']} old copies to hand off"
        if rebalance["waiting_on"]:
            line += f" (waiting on {', '.join(rebalance['waiting_on'])})"
        lines.append(line)
        balance = view["balance"]
        if balance["max_over_mean"] is None:
            lines.append("balance: no keys")
        else:
            lines.append(
                f"balance: max/mean={balance['max_over_mean']:.2f} stdev={balance['stdev_pct']:.1f}% "
                f"min={balance['min']} max={balance['max']} mean={balance['mean']:g}"
            )
        return "\n".join(lines)

    @staticmethod
    def ring(eng: Any) -> str:
        view = eng.view()
        if view["strategy"] != "consistent":
            return f"no ring: the strategy is {view['strategy']}"
        shares = view["ring_share"]
        parts = [f"{node}={100 * share:.1f}%" for node, share in shares.items()]
        return f"{view['ring_tokens']} tokens; primary share: " + " ".join(parts)

    @staticmethod
    def ranges(eng: Any) -> str:
        view = eng.view()
        if view["strategy"] != "range":
            return f"no ranges: the strategy is {view['strategy']}"
        lines = []
        for r in view["ranges"]:
            start = r["start"] or "-inf"
            end = r["end"] or "+inf"
            lines.append(f"[{start}, {end}) keys={r['keys']} on {','.join(r['replicas'])}")
        return "\n".join(lines)

    @staticmethod
    def key(eng: Any, args: str) -> str:
        words = args.split()
        if len(words) != 1:
            raise ScenarioError("'key' takes one key: 'key x'")
        key = words[0]
        serving = eng.map.serving(key)
        targets = eng.map.targets(key)
        head = f"{key}: replicas {','.join(serving)}" + (f" -> gaining {','.join(targets)}" if targets else "")
        copies = []
        for node_id, node in eng.shard_nodes.items():
            copy = node.disk.store.get(key)
            if copy is not None:
                copies.append(f"{node_id}={copy[0]!r}@{fmt_version(copy[1]).replace('version ', 'v')}")
        return head + "\n" + ("  " + " ".join(copies) if copies else "  (no copies)")

    @staticmethod
    def hot(eng: Any) -> str:
        view = eng.view()
        if not view["hot_keys"]:
            return "(no hot keys)"
        return "\n".join(
            f"{h['key']} {h['rate_rps']:g}/s on {','.join(h['replicas'])} coordinator {h['coordinator']}: "
            f"sent={h['sent']} ok={h['ok']} failed={h['failed']}"
            for h in view["hot_keys"]
        )

    @staticmethod
    def ops(eng: Any) -> str:
        """The client history with versions, quorums and stale marks."""
        if not eng.history:
            return "(no operations)"
        lines = []
        for record in eng.history:
            if record["op"] == "put":
                what = f"put {record['key']}={record['value']!r}"
            else:
                what = f"get {record['key']}"
                if record["status"] == "ok":
                    what += f" -> {record['result']!r}"
            version = record.get("version")
            tag = f" v{version[0]}@{version[1] or 'load'}" if version and version[0] else ""
            if record["op"] == "put" and record.get("acks"):
                tag += f" acks={','.join(record['acks'])}"
            if record["op"] == "get" and record.get("replies"):
                tag += f" from={','.join(record['replies'])}"
            if record.get("stale"):
                tag += " STALE"
            tries = f"{record['attempts']} attempt{'s' if record['attempts'] != 1 else ''}"
            if record["status"] == "pending":
                when = f"since {record['invoke']:.3f}"
            else:
                when = f"[{record['invoke']:.3f}, {record['complete']:.3f}]"
            error = f": {record['error']}" if record.get("error") else ""
            lines.append(f"#{record['id']} {record['client']} {what} {record['status']} {when}{tag} ({tries} via {record['node']}){error}")
        return "\n".join(lines)

    @staticmethod
    def stats(eng: Any) -> str:
        view = eng.view()
        history = eng.history
        by_status: dict[str, int] = {}
        for record in history:
            by_status[record["status"]] = by_status.get(record["status"], 0) + 1
        statuses = " ".join(f"{status}={count}" for status, count in sorted(by_status.items()))
        stale = sum(1 for record in history if record.get("stale"))
        net = view["network"]["counts"]
        return (
            f"ops: {len(history)} in history ({statuses or 'none'}), {view['ops_done']} answered in all; "
            f"stale reads: {view['stale_reads']} ({stale} in history)\n"
            f"messages: sent={net['sent']} delivered={net['delivered']} dropped={net['dropped']}"
        )

    # -- conditions ----------------------------------------------------------------------------------
    @staticmethod
    def until_settled(eng: Any, args: list[str]) -> tuple[bool, str]:
        waiting = eng.outstanding()
        if not waiting:
            return True, f"no operation waits for an answer ({len(eng.history)} in history)"
        return False, f"{waiting} operations wait for an answer"

    @staticmethod
    def until_rebalanced(eng: Any, args: list[str]) -> tuple[bool, str]:
        cmap = eng.map
        if not cmap.moving and not cmap.pending_drops() and not eng.leaving:
            rebalance = eng.rebalance
            return True, f"rebalanced: {rebalance['moved']}/{rebalance['total']} copies moved"
        return False, f"{len(cmap.moving)} keys moving, {cmap.pending_drops()} old copies to hand off"

    @staticmethod
    def until_quiet(eng: Any, args: list[str]) -> tuple[bool, str]:
        why = eng.checker.quiet_reason()
        if not why:
            return True, "quiet: no faults, no moves, no undelivered hints"
        return False, why
