"""Small helpers for narration: every engine writes sentences for learners."""

from __future__ import annotations


def and_list(items: list[str]) -> str:
    """'n1', 'n1 and n2', 'n1, n2 and n3'."""
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]
