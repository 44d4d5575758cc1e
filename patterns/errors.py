"""Errors raised to the caller of the engine contract.

Assertions catch our bugs; these errors are for the caller's mistakes
(TigerBeetle's TIGER_STYLE). Every message is written for a learner to read.
"""


class PatternsError(ValueError):
    """Base class: bad input from a caller. The engine state is unchanged."""


class InvalidCommand(PatternsError):
    """A command passed to ``apply()`` was rejected."""


class InvalidParameter(PatternsError):
    """A parameter passed to ``create()`` was rejected."""


class UnknownKind(PatternsError):
    """``create()`` was asked for a pattern that does not exist."""
