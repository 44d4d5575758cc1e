"""A linearizability checker for a key-value store (Wing & Gong, Lowe, Porcupine).

A history is linearizable when every operation can be given one instant
between its invocation and its completion such that, taken in the order of
those instants, the operations are legal for a single copy of the data:
each ``get`` returns the value of the latest ``put`` before it (or ``None``
before any ``put``).

The search follows Wing & Gong (1993) with the memoization of Lowe's
"just-in-time linearization" (2017), as Porcupine does:

- Calls and returns are merged into one list ordered by time. The search
  walks it from the front, trying to linearize an operation whose call has
  been reached; reaching a return of an operation not yet linearized means
  the current partial order is a dead end, so it backtracks.
- A linearized operation is lifted out of the list (dancing links) and put
  back on backtracking.
- A (set of linearized operations, register value) pair seen before leads to
  the same future, so it is pruned. The set is an int bitmask.
- P-compositionality (Herlihy & Wing): a history is linearizable iff the
  history of each key is, so each key is checked on its own.

When every put on a key writes a distinct value (as the lab's clients and the
tests do), which put each get read from is known, and the search is replaced
by the O(n log n) test of Gibbons & Korach ("Testing shared memories", 1997):
group each put with the gets that returned its value (a cluster); the
cluster's zone runs from the earliest completion to the latest invocation
among its operations. A zone that runs forward in time marks a stretch where
that value must stay in place. The history is linearizable iff no get
completes before its put is invoked, no two forward zones overlap, and no
backward zone (a cluster whose operations all overlap) lies inside another
cluster's forward zone. Gets of the initial value form a cluster whose put is
at minus infinity. The search above stays for histories with repeated
values; its worst case is exponential in the number of overlapping operations.

Conventions:

- Pending operations (no completion yet) complete at +infinity: a pending
  ``put`` may take effect at any time after its invocation, or never (it can
  always be placed last). A pending ``get`` may return anything and changes
  nothing, so it always fits at the end and is left out of the search.
- Failed operations (``status == "fail"``) are dropped: the caller asserts
  that they had no effect.
- At equal times a call is ordered before a return, so operations that touch
  at one instant count as concurrent (as in Porcupine). This never reports a
  false violation; it only gives up a little strictness at exact ties.

Pure Python, deterministic, no Django.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

INF = math.inf
_CALL, _RETURN = 0, 1


class SearchBudgetExceeded(RuntimeError):
    """The search took more steps than ``max_steps`` allowed; no verdict."""


@dataclass(frozen=True)
class Operation:
    """One client operation on one key, with its real-time interval."""

    id: Any
    client: str
    op: str  # "put" | "get"
    key: Any
    value: Any  # the value a put writes, or the result a get returned
    invoke: float
    complete: float  # INF while pending

    @property
    def pending(self) -> bool:
        return self.complete == INF

    def describe(self) -> str:
        end = "pending" if self.pending else f"{self.complete:.3f}"
        if self.op == "put":
            what = f"put {self.key}={self.value!r}"
        elif self.pending:
            what = f"get {self.key} -> (no reply yet)"
        else:
            what = f"get {self.key} -> {self.value!r}"
        return f"#{self.id} {self.client} {what} [{self.invoke:.3f}, {end}]"


@dataclass
class KeyResult:
    key: Any
    ok: bool
    operations: int  # how many operations were searched
    steps: int  # search steps taken
    explanation: str = ""
    #: for a failure: the longest partial linearization found, as operation ids
    best_prefix: list[Any] = field(default_factory=list)
    #: for a failure: the operation that could not be placed after best_prefix
    blocked: Any = None
    #: "zones" (unique put values, polynomial) or "search" (Wing & Gong)
    method: str = "search"


@dataclass
class LinearizabilityResult:
    ok: bool
    keys: list[KeyResult]
    dropped_failed: int = 0
    dropped_pending_gets: int = 0

    def __bool__(self) -> bool:
        return self.ok

    @property
    def failures(self) -> list[KeyResult]:
        return [result for result in self.keys if not result.ok]

    @property
    def key(self) -> Any:
        """The first key that is not linearizable, or None."""
        failures = self.failures
        return failures[0].key if failures else None

    @property
    def explanation(self) -> str:
        if self.ok:
            count = sum(result.operations for result in self.keys)
            return f"linearizable: {count} operation(s) on {len(self.keys)} key(s)"
        return "\n".join(result.explanation for result in self.failures)


# -- reading a history ----------------------------------------------------------------


def operations_from_history(records: Iterable[Mapping[str, Any]]) -> tuple[list[Operation], int]:
    """Turn engine history records into operations. Returns (operations, failed ops dropped)."""
    ops: list[Operation] = []
    failed = 0
    for position, record in enumerate(records):
        status = record.get("status")
        if status == "fail":
            failed += 1
            continue
        kind = record.get("op")
        if kind not in ("put", "get"):
            raise ValueError(f"history record {position} has op {kind!r}; expected 'put' or 'get'")
        invoke = record.get("invoke")
        if not isinstance(invoke, (int, float)) or isinstance(invoke, bool):
            raise ValueError(f"history record {position} needs a numeric 'invoke', not {invoke!r}")
        if status == "pending":
            complete = INF
        elif status == "ok":
            complete = record.get("complete")
            if not isinstance(complete, (int, float)) or isinstance(complete, bool):
                raise ValueError(f"history record {position} is ok but has no numeric 'complete'")
            if complete < invoke:
                raise ValueError(f"history record {position} completes at {complete} before its invocation at {invoke}")
        else:
            raise ValueError(f"history record {position} has status {status!r}; expected ok, pending or fail")
        value = record.get("value") if kind == "put" else record.get("result")
        ops.append(
            Operation(
                id=record.get("id", position + 1),
                client=str(record.get("client", "?")),
                op=kind,
                key=record.get("key"),
                value=value,
                invoke=float(invoke),
                complete=float(complete),
            )
        )
    return ops, failed


def check_history(
    records: Iterable[Mapping[str, Any]],
    *,
    initial: Any = None,
    max_steps: int | None = None,
    method: str = "auto",
) -> LinearizabilityResult:
    """Check an engine's ``history`` (list of dicts). See the module docstring."""
    ops, failed = operations_from_history(records)
    result = check_operations(ops, initial=initial, max_steps=max_steps, method=method)
    result.dropped_failed = failed
    return result


def check_operations(
    ops: Sequence[Operation],
    *,
    initial: Any = None,
    max_steps: int | None = None,
    method: str = "auto",
) -> LinearizabilityResult:
    """Check operations on a key-value store whose keys all start as ``initial``.

    ``method``: "auto" uses the zone test on keys whose put values are all
    distinct and the search elsewhere; "search" always searches; "zones"
    raises ValueError on a key with repeated put values.
    """
    if method not in ("auto", "search", "zones"):
        raise ValueError(f"method must be auto, search or zones, not {method!r}")
    by_key: dict[Any, list[Operation]] = {}  # insertion order: keys in order of first appearance
    pending_gets = 0
    for op in ops:
        if op.op == "get" and op.pending:
            pending_gets += 1
            continue
        by_key.setdefault(op.key, []).append(op)
    results = []
    for key, key_ops in by_key.items():
        result = None if method == "search" else _check_key_zones(key, key_ops, initial)
        if result is None:
            if method == "zones":
                raise ValueError(f"key {key!r} has repeated put values; the zone test needs distinct ones")
            result = _check_key(key, key_ops, initial, max_steps)
        results.append(result)
    return LinearizabilityResult(
        ok=all(result.ok for result in results), keys=results, dropped_pending_gets=pending_gets
    )


# -- the search for one key -------------------------------------------------------------


def _check_key(key: Any, ops: list[Operation], initial: Any, max_steps: int | None) -> KeyResult:
    n = len(ops)
    # Entries 0..2n-1 are calls and returns in time order; index 2n is the list head.
    order = sorted(
        [(op.invoke, _CALL, i) for i, op in enumerate(ops)] + [(op.complete, _RETURN, i) for i, op in enumerate(ops)]
    )
    head = 2 * n
    kind = [0] * (2 * n)
    owner = [0] * (2 * n)
    call_at = [0] * n
    return_at = [0] * n
    for position, (_, entry_kind, i) in enumerate(order):
        kind[position] = entry_kind
        owner[position] = i
        if entry_kind == _CALL:
            call_at[i] = position
        else:
            return_at[i] = position
    nxt = list(range(1, 2 * n + 1)) + [0]
    nxt[2 * n - 1] = -1  # the last entry
    nxt[head] = 0 if n else -1
    prv = [head] + list(range(0, 2 * n - 1)) + [-1]

    def lift(i: int) -> None:
        for position in (call_at[i], return_at[i]):
            after = nxt[position]
            nxt[prv[position]] = after
            if after != -1:
                prv[after] = prv[position]

    def unlift(i: int) -> None:
        for position in (return_at[i], call_at[i]):
            after = nxt[position]
            nxt[prv[position]] = position
            if after != -1:
                prv[after] = position

    state = initial
    linearized = 0
    seen: set[tuple[int, Any]] = set()
    stack: list[tuple[int, Any]] = []  # (operation, state before it)
    best_depth = -1
    best_prefix: list[int] = []
    best_state: Any = initial
    best_blocked = -1
    steps = 0
    entry = nxt[head]
    while nxt[head] != -1:
        steps += 1
        if max_steps is not None and steps > max_steps:
            raise SearchBudgetExceeded(f"key {key!r}: no verdict after {max_steps} search steps ({n} operations)")
        i = owner[entry]
        if kind[entry] == _CALL:
            op = ops[i]
            if op.op == "put":
                legal, new_state = True, op.value
            else:
                legal, new_state = op.value == state, state
            if legal:
                new_linearized = linearized | (1 << i)
                memo = (new_linearized, new_state)
                if memo not in seen:
                    seen.add(memo)
                    stack.append((i, state))
                    state, linearized = new_state, new_linearized
                    lift(i)
                    entry = nxt[head]
                    continue
            entry = nxt[entry]
        else:
            # The return of operation i, which is not linearized: it had to take
            # effect before now. This partial order is a dead end.
            if len(stack) > best_depth:
                best_depth = len(stack)
                best_prefix = [j for j, _ in stack]
                best_state = state
                best_blocked = i
            if not stack:
                break
            j, state = stack.pop()
            linearized &= ~(1 << j)
            unlift(j)
            entry = nxt[call_at[j]]
    if nxt[head] == -1:
        return KeyResult(key=key, ok=True, operations=n, steps=steps)
    return KeyResult(
        key=key,
        ok=False,
        operations=n,
        steps=steps,
        explanation=_explain(key, ops, initial, best_prefix, best_state, best_blocked),
        best_prefix=[ops[j].id for j in best_prefix],
        blocked=ops[best_blocked].id,
    )


def _explain(key: Any, ops: list[Operation], initial: Any, prefix: list[int], state: Any, blocked: int) -> str:
    op = ops[blocked]
    lines = [
        f"key {key!r} is not linearizable: no order of its {len(ops)} operations respects both "
        "real time and a single copy of the value."
    ]
    if prefix:
        lines.append(f"The longest legal order found places {len(prefix)} of them:")
        lines.extend(f"  {k}. {ops[j].describe()}" for k, j in enumerate(prefix, 1))
        lines.append(f"after which {key} = {state!r}.")
    else:
        lines.append(f"No operation can go first ({key} starts as {initial!r}).")
    if op.op == "get" and op.value != state:
        reason = f"it returned {op.value!r} but {key} is {state!r} there"
    else:
        reason = "every continuation from there was tried and fails later"
    lines.append(
        f"Next, {op.describe()} must take effect before it completed at {op.complete:.3f} ms, "
        f"and cannot: {reason}."
    )
    return "\n".join(lines)


# -- distinct put values: the zone test (Gibbons & Korach) -------------------------------------


class _Cluster:
    """A put and the gets that returned its value."""

    __slots__ = ("value", "put", "gets", "first_return", "last_call", "returner", "caller")

    def __init__(self, value: Any, put: Operation | None) -> None:
        self.value = value
        self.put = put  # None for the initial value: a put at minus infinity
        self.gets: list[Operation] = []
        self.first_return = -INF if put is None else put.complete
        self.last_call = -INF if put is None else put.invoke
        self.returner = put  # the operation that returns first
        self.caller = put  # the operation invoked last

    def add(self, get: Operation) -> None:
        self.gets.append(get)
        if get.complete < self.first_return:
            self.first_return, self.returner = get.complete, get
        if get.invoke > self.last_call:
            self.last_call, self.caller = get.invoke, get

    @property
    def forward(self) -> bool:
        return self.first_return < self.last_call

    def name(self, key: Any) -> str:
        return f"the value {self.value!r}" + (f" (written by {self.put.describe()})" if self.put else f" (the initial {key})")


def _check_key_zones(key: Any, ops: list[Operation], initial: Any) -> KeyResult | None:
    """The polynomial test, or None when the key's put values are not all distinct."""
    clusters: dict[Any, _Cluster] = {}
    try:
        for op in ops:
            if op.op == "put":
                if op.value in clusters or op.value == initial:
                    return None
                clusters[op.value] = _Cluster(op.value, op)
        initial_cluster = _Cluster(initial, None)
        for op in ops:
            if op.op != "get":
                continue
            if op.value == initial:
                initial_cluster.add(op)
            elif op.value in clusters:
                clusters[op.value].add(op)
            else:
                return _zone_failure(key, ops, op, f"{op.describe()} returned {op.value!r}, which no put on {key} wrote")
    except TypeError:  # unhashable values
        return None
    everything = list(clusters.values())
    if initial_cluster.gets:
        everything.append(initial_cluster)
    forward, backward = [], []
    for cluster in everything:
        if cluster.put is not None:
            for get in cluster.gets:
                if get.complete < cluster.put.invoke:
                    return _zone_failure(
                        key, ops, get,
                        f"{get.describe()} returned {get.value!r} and completed before {cluster.put.describe()} "
                        "was invoked",
                    )
            if cluster.put.pending and not cluster.gets:
                continue  # never seen: it may take effect last, or never
        (forward if cluster.forward else backward).append(cluster)
    # No two forward zones may overlap (touching is fine: operations at one instant may go in either order).
    forward.sort(key=lambda c: (c.first_return, c.last_call))
    widest: _Cluster | None = None
    for cluster in forward:
        if widest is not None and cluster.first_return < widest.last_call:
            return _zone_failure(
                key, ops, cluster.returner,
                f"{widest.name(key).capitalize()} must stay in place from {_since(widest)} until "
                f"{widest.caller.describe()} was invoked at {widest.last_call:.3f} ms, and {cluster.name(key)} "
                f"from {_since(cluster)} until {cluster.last_call:.3f} ms; the two stretches "
                "overlap, so one value would have to come back after being overwritten",
            )
        if widest is None or cluster.last_call > widest.last_call:
            widest = cluster
    # No backward zone may lie inside a forward zone.
    starts = [c.first_return for c in forward]
    for cluster in backward:
        at = bisect.bisect_left(starts, cluster.last_call) - 1
        if at >= 0:
            outer = forward[at]
            if outer.first_return < cluster.last_call and cluster.first_return < outer.last_call:
                culprit = cluster.put or cluster.gets[0]
                return _zone_failure(
                    key, ops, culprit,
                    f"{cluster.name(key).capitalize()} can only take effect between {cluster.last_call:.3f} and "
                    f"{cluster.first_return:.3f} ms, but all of that lies inside the stretch from "
                    f"{_since(outer)} to {outer.last_call:.3f} ms where {key} must hold {outer.value!r} "
                    f"({outer.caller.describe()} reads it)",
                )
    return KeyResult(key=key, ok=True, operations=len(ops), steps=len(ops), method="zones")


def _since(cluster: _Cluster) -> str:
    if cluster.returner is None:
        return "the start"
    return f"{cluster.first_return:.3f} ms (when {cluster.returner.describe()} completed)"


def _zone_failure(key: Any, ops: list[Operation], culprit: Operation, reason: str) -> KeyResult:
    text = (
        f"key {key!r} is not linearizable: no order of its {len(ops)} operations respects both "
        f"real time and a single copy of the value.\n{reason}."
    )
    return KeyResult(
        key=key, ok=False, operations=len(ops), steps=len(ops), explanation=text, blocked=culprit.id, method="zones"
    )
