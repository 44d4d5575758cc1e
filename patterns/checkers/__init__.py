"""Checkers that judge a run from outside the protocol code.

``linearizability`` decides whether a key-value history (what clients invoked,
when, and what they got back) can be explained by one copy of the data.
"""

from .linearizability import (
    KeyResult,
    LinearizabilityResult,
    Operation,
    SearchBudgetExceeded,
    check_history,
    check_operations,
    operations_from_history,
)

__all__ = [
    "KeyResult",
    "LinearizabilityResult",
    "Operation",
    "SearchBudgetExceeded",
    "check_history",
    "check_operations",
    "operations_from_history",
]
