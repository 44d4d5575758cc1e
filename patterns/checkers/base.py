"""What every engine's checker shares: a book of invariant violations.

A checker lives outside the code it checks. It names its invariants in
``INVARIANTS`` (id -> a learner-readable title), reports a broken one with a
message saying what broke, and offers ``violations()`` (the contract's list)
and ``summary()`` (one line per invariant, for the invariant panel).
"""

from __future__ import annotations

from typing import Any, ClassVar

MAX_REPORTS = 50  # per invariant; a broken run keeps its first few stories, not thousands


class InvariantChecker:
    INVARIANTS: ClassVar[dict[str, str]] = {}

    def __init__(self) -> None:
        self.reports: dict[str, list[dict[str, Any]]] = {key: [] for key in self.INVARIANTS}
        self._summary: list[dict[str, Any]] | None = None  # built on demand, dropped by every report

    def clock_ms(self) -> float:
        """The virtual time reports are stamped with."""
        raise AssertionError(f"{type(self).__name__} must say what time it is")

    def _report(self, invariant: str, message: str, at_ms: float | None = None) -> None:
        reports = self.reports[invariant]
        if len(reports) < MAX_REPORTS and all(r["message"] != message for r in reports):
            at = self.clock_ms() if at_ms is None else at_ms
            self._summary = None
            reports.append(
                {"invariant": invariant, "title": self.INVARIANTS[invariant], "message": message, "at_ms": round(at, 3)}
            )

    def violations(self) -> list[dict[str, Any]]:
        return [report for key in self.INVARIANTS for report in self.reports[key]]

    def summary(self) -> list[dict[str, Any]]:
        """One line per invariant. The lines change only when a report arrives,
        so they are kept until then (shared between calls: do not change them)."""
        if self._summary is None:
            self._summary = [
                {
                    "id": key,
                    "title": title,
                    "ok": not self.reports[key],
                    "detail": self.reports[key][0]["message"] if self.reports[key] else "",
                }
                for key, title in self.INVARIANTS.items()
            ]
        return list(self._summary)
