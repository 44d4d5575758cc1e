"""What the scenario runner knows about the load balancer.

Commands:

- ``status``: one line per backend and per balancer.
- ``measure MS``: run MS virtual ms and report every request that ended in
  that period, as the clients saw it: count, rate, errors by reason, latency
  percentiles of the successful ones, and each backend's share.
- ``clients``: which backend each client reached during the last ``measure``,
  whether each client stuck to one backend, and how many moved since the
  previous ``clients``.
- ``vip``: who holds the VIP and where the switch sends it.
- ``health``: the health-check settings and each backend's ejections,
  re-admissions and flaps.
- ``forwards N``: run until the balancers forward N more requests and list
  the backends in the order they were picked (from the network trace).

``until`` conditions: ``ejected B``, ``readmitted B`` (the active balancer
counts B healthy), ``holds_vip LB``, ``split_brain``, ``single_vip``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..scenario import Condition, KindAdapter, ScenarioError, ScenarioRunner
from .clients import Done
from .engine import percentile


MAX_STEPS = 200_000


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


class LoadBalancerAdapter(KindAdapter):
    def __init__(self) -> None:
        self.last_period: list[Done] = []
        self.last_mapping: dict[str, str] | None = None

    def commands(self, runner: ScenarioRunner) -> dict[str, Callable[[str, list[str]], str]]:
        return {
            "status": lambda args, _input: self.status(runner.eng),
            "measure": lambda args, _input: self.measure(runner.eng, args),
            "clients": lambda args, _input: self.clients(runner.eng),
            "vip": lambda args, _input: self.vip(runner.eng),
            "health": lambda args, _input: self.health(runner.eng),
            "forwards": lambda args, _input: self.forwards(runner.eng, args),
        }

    def conditions(self) -> dict[str, Condition]:
        return {
            "ejected": self.until_ejected,
            "readmitted": self.until_readmitted,
            "holds_vip": self.until_holds_vip,
            "split_brain": self.until_split_brain,
            "single_vip": self.until_single_vip,
        }

    # -- commands -------------------------------------------------------------------------
    @staticmethod
    def status(eng: Any) -> str:
        view = eng.view()
        lines = []
        for b in view["backends"]:
            state = "up  " if b["alive"] else "down"
            health = {True: "healthy", False: "ejected", None: "-"}[b["healthy"]]
            lines.append(
                f"{b['id']:<4} {state} {health:<7} w={b['weight']} slow=x{b['slow_factor']:g} "
                f"active={b['active']}/{b['capacity']} queued={b['queued']} served={b['served']} errors={b['errors']}"
            )
        for lb in view["balancers"]:
            state = "up  " if lb["alive"] else "down"
            vip = " holds VIP" if lb["holds_vip"] else ""
            switch = " (switch->here)" if lb["switch_points_here"] else ""
            lines.append(f"{lb['id']:<4} {state} {lb['role']:<7}{vip}{switch} forwarded={lb['forwarded']} dropped={lb['dropped']}")
        lines.append(f"algorithm={view['algorithm']} rate={view['traffic']['rate_rps']:g}rps")
        return "\n".join(lines)

    def measure(self, eng: Any, args: str) -> str:
        try:
            span = float(args)
        except ValueError:
            raise ScenarioError(f"'measure' needs milliseconds, not {args!r}") from None
        record: list[Done] = []
        eng.recorder = record
        try:
            eng.advance(span)
        finally:
            eng.recorder = None
        self.last_period = record
        count = len(record)
        ok = [d for d in record if d.ok]
        errors = count - len(ok)
        latencies = sorted(d.done_ms - d.sent_ms for d in ok)
        lines = [
            f"{count} requests in {span / 1000:g} s ({count * 1000 / span:.1f}/s): {len(ok)} ok, "
            f"{errors} errors ({errors / count if count else 0:.1%})",
            f"latency of ok requests: p50={_ms(percentile(latencies, 0.5))} p90={_ms(percentile(latencies, 0.9))} "
            f"p99={_ms(percentile(latencies, 0.99))} max={_ms(latencies[-1] if latencies else None)} ms",
        ]
        if ok:
            shares: dict[str, int] = {}
            for d in ok:
                shares[d.backend] = shares.get(d.backend, 0) + 1
            order = sorted(shares, key=lambda b: int(b[1:]))
            lines.append("ok requests served by: " + " ".join(f"{b}={shares[b] / len(ok):.1%}" for b in order))
        if errors:
            reasons: dict[str, int] = {}
            for d in record:
                if not d.ok:
                    reasons[d.why] = reasons.get(d.why, 0) + 1
            lines.append("errors: " + ", ".join(f"{why} {n}" for why, n in sorted(reasons.items())))
        return "\n".join(lines)

    def clients(self, eng: Any) -> str:
        seen: dict[str, dict[str, int]] = {}
        for d in self.last_period:
            if d.ok:
                counts = seen.setdefault(d.client, {})
                counts[d.backend] = counts.get(d.backend, 0) + 1
        if not seen:
            return "(no successful requests in the last 'measure')"
        mapping = {client: max(sorted(counts), key=lambda b: counts[b]) for client, counts in sorted(seen.items())}
        per_backend: dict[str, int] = {}
        for backend in mapping.values():
            per_backend[backend] = per_backend.get(backend, 0) + 1
        sticky = sum(1 for counts in seen.values() if len(counts) == 1)
        order = sorted(per_backend, key=lambda b: int(b[1:]))
        lines = [
            "clients per backend: " + " ".join(f"{b}={per_backend[b]}" for b in order),
            f"{sticky} of {len(seen)} clients reached exactly one backend",
        ]
        previous = self.last_mapping
        if previous is not None:
            both = [c for c in mapping if c in previous]
            moved = [c for c in both if mapping[c] != previous[c]]
            moves: dict[str, int] = {}
            for c in moved:
                key = f"{previous[c]}->{mapping[c]}"
                moves[key] = moves.get(key, 0) + 1
            detail = (": " + ", ".join(f"{k} {n}" for k, n in sorted(moves.items()))) if moves else ""
            lines.append(f"moved since the previous 'clients': {len(moved)} of {len(both)}{detail}")
        self.last_mapping = mapping
        return "\n".join(lines)

    @staticmethod
    def vip(eng: Any) -> str:
        view = eng.view()
        holders = view["vip"]["holders"]
        lines = [
            f"holders: {', '.join(holders) if holders else 'none'}; the switch sends VIP traffic to {view['vip']['switch_to']}",
        ]
        lines.extend(f"warning: {w}" for w in view["warnings"])
        return "\n".join(lines)

    @staticmethod
    def health(eng: Any) -> str:
        view = eng.view()
        h = view["health"]
        lines = [
            f"every {h['interval_ms']:g} ms, timeout {h['timeout_ms']:g} ms, eject after {h['unhealthy_threshold']}, "
            f"re-admit after {h['healthy_threshold']}; checked by {h['checked_by']}",
            f"ejections={h['ejections']} readmissions={h['readmissions']} flaps={h['flaps']}",
        ]
        for b in view["backends"]:
            if b["ejections"] or b["flaps"]:
                lines.append(f"{b['id']}: ejected {b['ejections']} times, {b['flaps']} flaps")
        return "\n".join(lines)

    @staticmethod
    def forwards(eng: Any, args: str) -> str:
        try:
            count = int(args)
        except ValueError:
            raise ScenarioError(f"'forwards' needs a count, not {args!r}") from None
        if not 1 <= count <= 1000:
            raise ScenarioError("'forwards' takes 1 to 1000")
        seq = eng.net.trace_seq
        picks: list[str] = []
        for _ in range(MAX_STEPS):
            for entry in eng.net.trace_since(seq):
                seq = entry["seq"]
                if entry["event"] == "send" and entry["type"] == "Forward" and len(picks) < count:
                    picks.append(entry["to"])
            if len(picks) >= count or not eng.step():
                break
        return " ".join(picks)

    # -- until conditions ------------------------------------------------------------------
    @staticmethod
    def _backend(eng: Any, args: list[str], what: str) -> str:
        if len(args) != 1 or args[0] not in eng.backends:
            raise ScenarioError(f"'until {what}' takes a backend id, e.g. 'until {what} b2'")
        return args[0]

    def until_ejected(self, eng: Any, args: list[str]) -> tuple[bool, str]:
        backend = self._backend(eng, args, "ejected")
        active = eng.active_balancer()
        health = active.health_of(backend) if active is not None else None
        if health is not None and not health["healthy"]:
            return True, f"{active.id} has ejected {backend}"
        return False, f"{backend} ejected"

    def until_readmitted(self, eng: Any, args: list[str]) -> tuple[bool, str]:
        backend = self._backend(eng, args, "readmitted")
        active = eng.active_balancer()
        health = active.health_of(backend) if active is not None else None
        if health is not None and health["healthy"]:
            return True, f"{active.id} counts {backend} healthy"
        return False, f"{backend} healthy again"

    @staticmethod
    def until_holds_vip(eng: Any, args: list[str]) -> tuple[bool, str]:
        if len(args) != 1 or args[0] not in eng.balancers:
            raise ScenarioError("'until holds_vip' takes a balancer id, e.g. 'until holds_vip lb2'")
        if eng.balancers[args[0]].holds_vip:
            return True, f"{args[0]} holds the VIP"
        return False, f"{args[0]} holds the VIP"

    @staticmethod
    def until_split_brain(eng: Any, args: list[str]) -> tuple[bool, str]:
        holders = [b.id for b in eng.balancers.values() if b.holds_vip]
        if len(holders) > 1:
            return True, f"{' and '.join(holders)} both hold the VIP"
        return False, "two balancers hold the VIP"

    @staticmethod
    def until_single_vip(eng: Any, args: list[str]) -> tuple[bool, str]:
        holders = [b.id for b in eng.balancers.values() if b.holds_vip]
        if len(holders) == 1:
            return True, f"only {holders[0]} holds the VIP"
        return False, "exactly one balancer holds the VIP"
