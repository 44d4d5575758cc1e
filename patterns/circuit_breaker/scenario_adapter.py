"""What the scenario runner knows about the circuit breaker lab.

Commands:

- ``status``: the front, each breaker and each downstream, one line each.
- ``measure MS``: run MS virtual ms and report what happened in that period:
  client requests and how they ended, attempts sent downstream, retries, the
  amplification (attempts / calls the requests needed), the peak downstream
  rate over 100 ms, refusals, and how each downstream's calls ended.
- ``transitions [D]``: every breaker transition kept (last 20 per breaker).

``until`` conditions: ``state D STATE`` (d1's breaker is in STATE).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..scenario import Condition, KindAdapter, ScenarioError, ScenarioRunner
from .breaker import STATES
from .clients import Done
from .engine import percentile


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


class CircuitBreakerAdapter(KindAdapter):
    def commands(self, runner: ScenarioRunner) -> dict[str, Callable[[str, list[str]], str]]:
        return {
            "status": lambda args, _input: self.status(runner.eng),
            "measure": lambda args, _input: self.measure(runner.eng, args),
            "transitions": lambda args, _input: self.transitions(runner.eng, args),
        }

    def conditions(self) -> dict[str, Condition]:
        return {"state": self.until_state}

    @staticmethod
    def status(eng: Any) -> str:
        view = eng.view()
        f = view["front"]
        p = view["pipeline"]
        lines = [
            f"front {'up' if f['alive'] else 'down'} busy={f['busy']}/{f['workers']} queued={f['queued']}/{f['queue_limit']} "
            f"pipeline={'>'.join(p['order'])}"
        ]
        for d, b in view["breakers"].items():
            lines.append(
                f"{d} breaker {b['state']} window={b['calls_in_window']} failed={b['failure_rate']:g}% slow={b['slow_rate']:g}%"
            )
        for d in view["downstream"]:
            lines.append(
                f"{d['id']} {'up  ' if d['alive'] else 'down'} in_flight={d['in_flight']} received={d['received']} "
                f"served={d['served']} errors={d['errors']} hung={d['hung']}" + (" gray" if d["gray"] else "")
            )
        return "\n".join(lines)

    def measure(self, eng: Any, args: str) -> str:
        try:
            span = float(args)
        except ValueError:
            raise ScenarioError(f"'measure' needs milliseconds, not {args!r}") from None
        start = eng.now
        before = dict(eng.totals)
        results_before = {d: dict(r) for d, r in eng.call_results.items()}
        record: list[Done] = []
        eng.recorder = record
        try:
            eng.advance(span)
        finally:
            eng.recorder = None
        delta = {k: eng.totals[k] - before[k] for k in eng.totals}
        ok = [d for d in record if d.ok]
        errors = len(record) - len(ok)
        degraded = sum(1 for d in ok if d.fallbacks)
        latencies = sorted(d.done_ms - d.sent_ms for d in ok)
        needed = delta["calls_needed"]
        amp = delta["attempts"] / needed if needed else 0.0
        series = eng.series
        peak = max((p[2] for p in series if start < p[0] <= eng.now), default=0.0)
        lines = [
            f"{delta['requests']} requests sent, {len(record)} ended: {len(ok)} ok ({degraded} with fallbacks), "
            f"{errors} errors ({errors / len(record) if record else 0:.1%})",
            f"latency of ok requests: p50={_ms(percentile(latencies, 0.5))} p99={_ms(percentile(latencies, 0.99))} ms",
            f"attempts={delta['attempts']} (first={delta['first_attempts']} retries={delta['retries']}) for {needed} calls: "
            f"amplification {amp:.2f}x, peak {peak:g} attempts/s",
            f"short_circuited={delta['short_circuited']} bulkhead_rejected={delta['bulkhead_rejected']} "
            f"front_rejected={delta['front_rejected']} budget_exhausted={delta['budget_exhausted']} "
            f"timeouts={delta['timeouts']} fallbacks={delta['fallbacks']}",
        ]
        for d, results in eng.call_results.items():
            old = results_before[d]
            diff = {k: v - old.get(k, 0) for k, v in sorted(results.items()) if v - old.get(k, 0)}
            lines.append(f"{d} calls: " + (", ".join(f"{k} {n}" for k, n in diff.items()) if diff else "none"))
        if errors:
            reasons: dict[str, int] = {}
            for d in record:
                if not d.ok:
                    reasons[d.why] = reasons.get(d.why, 0) + 1
            top = sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))[:4]
            lines.append("errors: " + ", ".join(f"{why} {n}" for why, n in top))
        return "\n".join(lines)

    @staticmethod
    def transitions(eng: Any, args: str) -> str:
        ids = [args] if args else list(eng.transitions)
        lines = []
        for d in ids:
            if d not in eng.transitions:
                raise ScenarioError(f"unknown downstream {d!r}")
            for t in eng.transitions[d]:
                forced = " (forced)" if t["forced"] else ""
                lines.append(f"{t['at_ms']:.3f} {d} {t['from']} -> {t['to']}{forced}: {t['why']}")
        return "\n".join(lines) or "(no transitions)"

    @staticmethod
    def until_state(eng: Any, args: list[str]) -> tuple[bool, str]:
        if len(args) != 2 or args[0] not in eng.downstreams or args[1] not in STATES:
            raise ScenarioError("'until state' takes a downstream and a state: 'until state d1 open'")
        d, state = args
        if eng.hosts["front"].alive and eng.front.breakers[d].state == state:
            return True, f"{d}'s breaker is {state}"
        return False, f"{d}'s breaker {state}"
