"""The saga's invariants, checked from outside the service code.

The checker hears every effect a service applies (forward step or
compensation, and whether it changed anything) and every saga's end, and it
reads the services' books (their disks) after time moves.
"""

from __future__ import annotations

from typing import Any, ClassVar

from ..checkers.base import InvariantChecker
from .nodes import SERVICES


class SagaChecker(InvariantChecker):
    INVARIANTS: ClassVar[dict[str, str]] = {
        "no_double_effect": "No saga is charged, reserved, shipped or undone twice",
        "compensation_order": "A compensated saga undid every step that had succeeded, in reverse order",
        "conservation": "Units are neither created nor lost; money charged = captured + refunded",
        "liveness": "Once faults heal, every saga ends completed, compensated or failed",
    }

    def __init__(self, clock: Any, stuck_after_ms: float) -> None:
        super().__init__()
        self._clock = clock
        self.stuck_after_ms = stuck_after_ms
        self.effects: dict[int, list[tuple[str, int]]] = {}  # saga -> [(action, step)] with an effect
        self.seen: dict[tuple[int, int, str], int] = {}

    def clock_ms(self) -> float:
        return self._clock()

    def on_effect(self, saga: int, step: int, action: str) -> None:
        key = (saga, step, action)
        self.seen[key] = self.seen.get(key, 0) + 1
        if self.seen[key] > 1:
            what = "applied its step" if action == "forward" else "compensated"
            self._report("no_double_effect", f"{SERVICES[step]} {what} twice for saga {saga}")
        self.effects.setdefault(saga, []).append((action, step))

    def on_end(self, saga: int, status: str) -> None:
        effects = self.effects.pop(saga, [])
        for key in [(saga, step, action) for step in range(len(SERVICES)) for action in ("forward", "compensate")]:
            self.seen.pop(key, None)
        forward = [step for action, step in effects if action == "forward"]
        undone = [step for action, step in effects if action == "compensate"]
        if status == "completed":
            if forward != list(range(len(SERVICES))) or undone:
                self._report("compensation_order", f"saga {saga} completed with effects {effects}")
        elif status == "compensated":
            if undone != list(reversed(forward)):
                names = ", ".join(f"{a} {SERVICES[s]}" for a, s in effects)
                self._report(
                    "compensation_order", f"saga {saga} ended compensated but its effects were: {names}"
                )
        elif status == "failed" and effects:
            self._report("compensation_order", f"saga {saga} ended failed but had effects {effects}")

    def check_books(self, books: dict[str, Any]) -> None:
        for item, initial in books["initial_stock"].items():
            stock, held, shipped = books["stock"][item], books["held"][item], books["shipped"][item]
            if stock + held != initial or stock < 0:
                self._report(
                    "conservation",
                    f"{item}: {stock} in stock + {held} reserved = {stock + held}, but there were {initial}",
                )
            if shipped > held:
                self._report("conservation", f"{item}: {shipped} units shipped but only {held} reserved")
        money = books["money"]
        if money["charged"] != money["captured"] + money["refunded"]:
            self._report(
                "conservation",
                f"charged ${money['charged']} but captured ${money['captured']} + refunded ${money['refunded']}",
            )
        if money["balances"] + money["captured"] != money["initial_balances"]:
            self._report(
                "conservation",
                f"balances ${money['balances']} + captured ${money['captured']} != the ${money['initial_balances']} customers started with",
            )

    def check_liveness(self, running: dict[int, float], calm_since: float | None, now: float) -> None:
        if calm_since is None:
            return
        for saga, started in running.items():
            if now - max(started, calm_since) > self.stuck_after_ms:
                self._report(
                    "liveness",
                    f"saga {saga} is still running {now - started:.0f} ms after it started, "
                    f"{now - calm_since:.0f} ms after the last fault healed",
                )
