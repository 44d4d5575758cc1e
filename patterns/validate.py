"""Checks for commands and parameters. Each raises an error a learner can read.

Every check runs before any state changes, so a rejected command leaves the
engine exactly as it was.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from .errors import InvalidCommand


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def only_keys(cmd: Mapping[str, Any], allowed: Sequence[str], *, error: type[ValueError] = InvalidCommand) -> None:
    extra = [key for key in cmd if key != "op" and key not in allowed]
    if extra:
        what = f"'{cmd.get('op')}'" if "op" in cmd else "this pattern"
        expected = ", ".join(allowed) if allowed else "no other fields"
        raise error(f"{what} does not take {', '.join(repr(k) for k in extra)}; it takes: {expected}")


def number(
    cmd: Mapping[str, Any],
    key: str,
    *,
    lo: float,
    hi: float,
    integer: bool = False,
    default: Any = None,
    error: type[ValueError] = InvalidCommand,
) -> Any:
    if key not in cmd:
        if default is None:
            raise error(f"'{key}' is required")
        return default
    value = cmd[key]
    if not _is_number(value) or (integer and not float(value).is_integer()):
        kind = "a whole number" if integer else "a number"
        raise error(f"'{key}' must be {kind}, not {value!r}")
    if not lo <= value <= hi:
        raise error(f"'{key}' must be between {lo:g} and {hi:g}, not {value!r}")
    return int(value) if integer else float(value)


def number_pair(
    cmd: Mapping[str, Any],
    key: str,
    *,
    lo: float,
    hi: float,
    default: Any = None,
    error: type[ValueError] = InvalidCommand,
) -> tuple[float, float]:
    if key not in cmd:
        if default is None:
            raise error(f"'{key}' is required")
        return default
    value = cmd[key]
    if not isinstance(value, (list, tuple)) or len(value) != 2 or not all(_is_number(v) for v in value):
        raise error(f"'{key}' must be a pair [min, max] of numbers, not {value!r}")
    a, b = float(value[0]), float(value[1])
    if not (lo <= a <= hi and lo <= b <= hi):
        raise error(f"'{key}' values must be between {lo:g} and {hi:g}, not {list(value)!r}")
    if a > b:
        raise error(f"'{key}' must be [min, max] with min <= max, not {list(value)!r}")
    return (a, b)


def text(
    cmd: Mapping[str, Any],
    key: str,
    *,
    max_len: int = 64,
    default: str | None = None,
    choices: Sequence[str] | None = None,
    error: type[ValueError] = InvalidCommand,
) -> str:
    if key not in cmd:
        if default is None:
            raise error(f"'{key}' is required")
        return default
    value = cmd[key]
    if not isinstance(value, str):
        raise error(f"'{key}' must be text, not {value!r}")
    if choices is not None and value not in choices:
        raise error(f"'{key}' must be one of {', '.join(choices)}, not {value!r}")
    if not value or len(value) > max_len:
        raise error(f"'{key}' must be 1 to {max_len} characters long")
    return value


def flag(cmd: Mapping[str, Any], key: str, *, default: bool, error: type[ValueError] = InvalidCommand) -> bool:
    value = cmd.get(key, default)
    if not isinstance(value, bool):
        raise error(f"'{key}' must be true or false, not {value!r}")
    return value
