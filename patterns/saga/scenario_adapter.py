"""What the scenario runner knows about the saga engine.

Commands:

- ``sagas``: one line per saga in the view (the last 40): status, mode, each
  step's status, start and end.
- ``ledger``: units per item (in stock + reserved + shipped = initial) and the
  money (charged = captured + refunded).
- ``services``: one line per node: up or down, its books.
- ``log [N]``: the orchestrator's saga log (the last N entries, default 20).

``until`` conditions: ``ended SAGA`` (the saga completed, was compensated or
failed), ``all_ended`` (no saga is running).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from ..scenario import Condition, KindAdapter, ScenarioError, ScenarioRunner
from .nodes import STEPS


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


class SagaAdapter(KindAdapter):
    def commands(self, runner: ScenarioRunner) -> dict[str, Callable[[str, list[str]], str]]:
        return {
            "sagas": lambda args, _input: self.sagas(runner.eng),
            "ledger": lambda args, _input: self.ledger(runner.eng),
            "services": lambda args, _input: self.services(runner.eng),
            "log": lambda args, _input: self.log(runner.eng, args),
        }

    def conditions(self) -> dict[str, Condition]:
        return {"ended": self.until_ended, "all_ended": self.until_all_ended}

    @staticmethod
    def sagas(eng: Any) -> str:
        view = eng.view()
        lines = []
        for saga in view["sagas"]:
            steps = " ".join(f"{s['service']}={s['status']}" for s in saga["steps"])
            lines.append(
                f"saga {saga['id']} {saga['status']:<11} {saga['mode']:<13} {steps} "
                f"[{_ms(saga['started_ms'])}, {_ms(saga['ended_ms'])}]"
            )
        counts = " ".join(f"{k}={v}" for k, v in view["saga_counts"].items())
        lines.append(counts)
        return "\n".join(lines)

    @staticmethod
    def ledger(eng: Any) -> str:
        ledger = eng.view()["ledger"]
        lines = [
            f"{item}: {e['initial']} = {e['in_stock']} in stock + {e['reserved']} reserved + {e['shipped']} shipped"
            for item, e in ledger["items"].items()
        ]
        m = ledger["money"]
        lines.append(f"money: charged ${m['charged']} = captured ${m['captured']} + refunded ${m['refunded']}")
        lines.append(f"balances ${m['balances']} + captured ${m['captured']} = ${m['balances'] + m['captured']} (started with ${m['initial_balances']})")
        return "\n".join(lines)

    @staticmethod
    def services(eng: Any) -> str:
        view = eng.view()
        lines = []
        for s in view["services"]:
            state = "up  " if s["alive"] else "down"
            fail = "" if s["failure"]["mode"] == "off" else f" fail={s['failure']['mode']}"
            lines.append(f"{s['id']:<12} {state}{fail} {json.dumps(s['state'], sort_keys=True)}")
        o = view["orchestrator"]
        lines.append(
            f"{'orchestrator':<12} {'up  ' if o['alive'] else 'down'} log={o['log_length']} in_progress={o['in_progress']}"
        )
        b = view["bus"]
        lines.append(f"{'bus':<12} {'up  ' if b['alive'] else 'down'} events={b['events']} undelivered={b['undelivered']}")
        return "\n".join(lines)

    @staticmethod
    def log(eng: Any, args: str) -> str:
        try:
            count = int(args) if args else 20
        except ValueError:
            raise ScenarioError(f"'log' takes a count, not {args!r}") from None
        entries = eng.orchestrator.disk["log"][-count:]
        if not entries:
            return "(empty log)"
        lines = []
        for entry in entries:
            what = entry["what"]
            head = f"saga {entry['saga']} {what:<6}"
            if what == "begin":
                order = entry["order"]
                lines.append(f"{head} {order['customer']} buys {order['qty']} {order['item']} for ${order['amount']}")
            elif what == "end":
                lines.append(f"{head} {entry['status']}")
            else:
                service, action, comp = STEPS[entry["step"]]
                if what == "send":
                    lines.append(f"{head} {service}: {action if entry['phase'] == 'forward' else comp}")
                elif what == "failed":
                    lines.append(f"{head} {service}: {entry['reason']}")
                else:
                    lines.append(f"{head} {service}")
        return "\n".join(lines)

    @staticmethod
    def until_ended(eng: Any, args: list[str]) -> tuple[bool, str]:
        if len(args) != 1 or not args[0].isdigit() or int(args[0]) not in eng.sagas:
            raise ScenarioError("'until ended' takes a saga id, e.g. 'until ended 3'")
        record = eng.sagas[int(args[0])]
        if record["status"] in ("completed", "compensated", "failed"):
            return True, f"saga {record['id']} {record['status']}"
        return False, f"saga {record['id']} ended"

    @staticmethod
    def until_all_ended(eng: Any, args: list[str]) -> tuple[bool, str]:
        running = len(eng.running)
        if not running:
            return True, f"all {len(eng.sagas)} sagas ended"
        return False, f"{running} sagas still running"
