"""The linearizability checker on hand-made histories, and against brute force."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from patterns.checkers import Operation, SearchBudgetExceeded, check_history, check_operations


def put(id, key, value, invoke, complete, client="c1", status=None):
    status = status or ("pending" if complete is None else "ok")
    return {"id": id, "client": client, "op": "put", "key": key, "value": value,
            "invoke": invoke, "complete": complete, "status": status}


def get(id, key, result, invoke, complete, client="c2", status=None):
    status = status or ("pending" if complete is None else "ok")
    return {"id": id, "client": client, "op": "get", "key": key, "result": result,
            "invoke": invoke, "complete": complete, "status": status}


# -- linearizable histories -------------------------------------------------------------


def test_empty_history_is_linearizable():
    result = check_history([])
    assert result.ok and result.keys == []


def test_sequential_history():
    h = [put(1, "x", 1, 0, 10), get(2, "x", 1, 11, 20), put(3, "x", 2, 21, 30), get(4, "x", 2, 31, 40)]
    assert check_history(h).ok


def test_read_of_unwritten_key_returns_none():
    assert check_history([get(1, "x", None, 0, 1)]).ok
    assert not check_history([get(1, "x", 0, 0, 1)]).ok


def test_concurrent_put_and_get_may_see_either_value():
    # The get overlaps the put: it may linearize before or after it.
    before = [put(1, "x", 1, 0, 10), put(2, "x", 2, 20, 40), get(3, "x", 1, 25, 30)]
    after = [put(1, "x", 1, 0, 10), put(2, "x", 2, 20, 40), get(3, "x", 2, 25, 30)]
    assert check_history(before).ok
    assert check_history(after).ok


def test_concurrent_puts_order_is_decided_by_later_reads():
    h = [
        put(1, "x", "a", 0, 50, client="c1"),
        put(2, "x", "b", 10, 40, client="c2"),
        get(3, "x", "a", 60, 70),  # so b went first, then a
        get(4, "x", "a", 80, 90),
    ]
    assert check_history(h).ok


def test_reads_that_see_two_orders_of_concurrent_puts_are_not_linearizable():
    h = [
        put(1, "x", "a", 0, 50, client="c1"),
        put(2, "x", "b", 10, 40, client="c2"),
        get(3, "x", "a", 60, 70),
        get(4, "x", "b", 80, 90),  # b after a? then a get at 60-70 saw a after b... contradiction
    ]
    result = check_history(h)
    assert not result.ok
    assert result.key == "x"


def test_pending_write_that_later_becomes_visible():
    # c1's put never got a reply (pending), but a later read sees it: it took effect.
    h = [put(1, "x", 1, 0, 10), put(2, "x", 2, 20, None), get(3, "x", 2, 100, 110), get(4, "x", 2, 120, 130)]
    assert check_history(h).ok


def test_pending_write_that_never_becomes_visible():
    h = [put(1, "x", 1, 0, 10), put(2, "x", 2, 20, None), get(3, "x", 1, 100, 110)]
    assert check_history(h).ok


def test_pending_write_cannot_become_visible_before_its_invocation():
    h = [put(1, "x", 1, 0, 10), get(2, "x", 2, 15, 18), put(3, "x", 2, 20, None)]
    result = check_history(h)
    assert not result.ok
    assert "#2" in result.explanation


def test_pending_write_once_visible_stays_visible():
    # Seen at 100-110, then the old value at 120-130: the pending put cannot take effect twice.
    h = [put(1, "x", 1, 0, 10), put(2, "x", 2, 20, None), get(3, "x", 2, 100, 110), get(4, "x", 1, 120, 130)]
    assert not check_history(h).ok


def test_pending_get_accepts_any_result():
    h = [put(1, "x", 1, 0, 10), get(2, "x", "anything", 20, None)]
    result = check_history(h)
    assert result.ok
    assert result.dropped_pending_gets == 1


def test_failed_operations_are_dropped():
    h = [put(1, "x", 1, 0, 10), put(2, "x", 2, 20, 30, status="fail"), get(3, "x", 1, 40, 50)]
    result = check_history(h)
    assert result.ok
    assert result.dropped_failed == 1


def test_touching_intervals_count_as_concurrent():
    # The put completes at exactly the instant the get is invoked (Porcupine's convention).
    h = [put(1, "x", 1, 0, 10), put(2, "x", 2, 10, 20), get(3, "x", 1, 5, 10)]
    assert check_history(h).ok


# -- not linearizable ------------------------------------------------------------------------


def test_stale_read_after_a_completed_write():
    h = [put(1, "x", 1, 0, 10), put(2, "x", 2, 20, 30), get(3, "x", 1, 40, 50)]
    result = check_history(h, method="search")
    assert not result.ok
    assert result.key == "x"
    failure = result.failures[0]
    assert failure.blocked == 3
    assert failure.best_prefix == [1, 2]
    text = result.explanation
    assert "key 'x' is not linearizable" in text
    assert "#3 c2 get x -> 1 [40.000, 50.000]" in text
    assert "it returned 1 but x is 2 there" in text
    # The zone test (distinct put values) blames the put that the stale read skips over.
    zones = check_history(h)
    assert zones.failures[0].method == "zones" and not zones.ok
    assert zones.failures[0].blocked == 2
    assert "The value 2 (written by #2 c1 put x=2 [20.000, 30.000]) can only take effect between" in zones.explanation
    assert "where x must hold 1 (#3 c2 get x -> 1 [40.000, 50.000] reads it)" in zones.explanation


def test_zone_explanations():
    never = check_history([put(1, "x", 1, 0, 10), get(2, "x", 7, 20, 30)])
    assert "#2 c2 get x -> 7 [20.000, 30.000] returned 7, which no put on x wrote" in never.explanation
    early = check_history([get(1, "x", 1, 0, 10), put(2, "x", 1, 20, 30)])
    assert "completed before #2 c1 put x=1 [20.000, 30.000] was invoked" in early.explanation
    overlap = check_history([
        put(1, "x", "a", 0, 10), put(2, "x", "b", 0, 10),
        get(3, "x", "a", 20, 30), get(4, "x", "b", 40, 50), get(5, "x", "a", 60, 70),
    ])
    assert not overlap.ok and "overlap, so one value would have to come back" in overlap.explanation
    inside = check_history([put(1, "x", "a", 0, 10), put(2, "x", "b", 20, 30), get(3, "x", "a", 40, 50)])
    assert not inside.ok and "lies inside the stretch" in inside.explanation


def test_read_of_a_value_never_written():
    result = check_history([put(1, "x", 1, 0, 10), get(2, "x", 7, 20, 30)])
    assert not result.ok
    assert "returned 7" in result.explanation


def test_read_from_the_future():
    # The get completes before the put that wrote its value was even invoked.
    result = check_history([get(1, "x", 1, 0, 10), put(2, "x", 1, 20, 30)], method="search")
    assert not result.ok
    assert "No operation can go first" in result.explanation


def test_non_monotonic_reads():
    h = [
        put(1, "x", 1, 0, 10),
        put(2, "x", 2, 15, 100),  # long and concurrent with both reads
        get(3, "x", 2, 20, 30, client="c2"),
        get(4, "x", 1, 40, 50, client="c3"),  # goes back to 1 after 2 was seen
    ]
    assert not check_history(h).ok


def test_keys_are_checked_separately_and_the_bad_one_is_named():
    h = [
        put(1, "a", 1, 0, 10),
        put(2, "b", 1, 0, 10),
        get(3, "a", 1, 20, 30),
        put(4, "b", 2, 20, 30),
        get(5, "b", 1, 40, 50),  # stale
    ]
    result = check_history(h)
    assert not result.ok
    assert result.key == "b"
    assert [k.key for k in result.keys] == ["a", "b"]
    assert [k.ok for k in result.keys] == [True, False]
    assert "key 'a'" not in result.explanation


def test_same_value_on_different_keys_is_not_confused():
    h = [put(1, "a", 5, 0, 10), get(2, "b", 5, 20, 30)]
    result = check_history(h)
    assert not result.ok and result.key == "b"


def test_bad_records_raise_value_error():
    with pytest.raises(ValueError):
        check_history([{"op": "cas", "key": "x", "invoke": 0, "complete": 1, "status": "ok"}])
    with pytest.raises(ValueError):
        check_history([put(1, "x", 1, 0, None, status="ok")])
    with pytest.raises(ValueError):
        check_history([put(1, "x", 1, 10, 5)])
    with pytest.raises(ValueError):
        check_history([put(1, "x", 1, 0, 5, status="maybe")])


def test_budget_stops_a_long_search():
    # Many concurrent puts of distinct values and a read of a value none of them wrote.
    h = [put(i, "x", i, 0, 100, client=f"c{i}") for i in range(1, 15)] + [get(99, "x", -1, 200, 210)]
    with pytest.raises(SearchBudgetExceeded):
        check_history(h, max_steps=1000, method="search")
    assert not check_history(h, method="search").ok  # memoization keeps the full search tractable
    assert not check_history(h).ok  # distinct values: the zone test, no search at all


def test_many_concurrent_operations_stay_fast():
    # 16 overlapping puts then reads: without memoization this is 16! orders.
    h = [put(i, "x", i, 0, 100, client=f"c{i}") for i in range(1, 17)]
    h += [get(100 + i, "x", 16, 200 + 10 * i, 205 + 10 * i) for i in range(5)]
    result = check_history(h, max_steps=2_000_000, method="search")
    assert result.ok
    assert check_history(h).keys[0].method == "zones"


def test_method_argument():
    h = [put(1, "x", 1, 0, 10), put(2, "x", 1, 20, 30), get(3, "x", 1, 40, 50)]
    assert check_history(h).keys[0].method == "search"  # repeated value: falls back
    with pytest.raises(ValueError, match="repeated put values"):
        check_history(h, method="zones")
    with pytest.raises(ValueError, match="method must be"):
        check_history(h, method="magic")


# -- against brute force ---------------------------------------------------------------------


def brute_force(ops: list[Operation]) -> bool:
    ops = [op for op in ops if not (op.op == "get" and op.pending)]
    keys = {op.key for op in ops}
    for key in keys:
        mine = [op for op in ops if op.key == key]
        if not any(_legal(order) for order in itertools.permutations(mine) if _respects_real_time(order)):
            return False
    return True


def _respects_real_time(order) -> bool:
    for later_pos, later in enumerate(order):
        for earlier in order[later_pos + 1:]:
            if earlier.complete < later.invoke:  # `earlier` finished before `later` began
                return False
    return True


def _legal(order) -> bool:
    value = None
    for op in order:
        if op.op == "put":
            value = op.value
        elif op.value != value:
            return False
    return True


@st.composite
def small_histories(draw):
    n = draw(st.integers(1, 6))
    ops = []
    for i in range(n):
        invoke = draw(st.integers(0, 20))
        length = draw(st.integers(0, 10))
        pending = draw(st.booleans()) and draw(st.booleans())
        kind = draw(st.sampled_from(["put", "get"]))
        key = draw(st.sampled_from(["x", "x", "y"]))
        value = draw(st.sampled_from([None, 1, 2, 3])) if kind == "get" else draw(st.sampled_from([1, 2, 3]))
        ops.append(Operation(i + 1, f"c{i}", kind, key, value, float(invoke),
                             float("inf") if pending else float(invoke + length)))
    return ops


@settings(max_examples=400, deadline=None)
@given(small_histories())
def test_agrees_with_brute_force(ops):
    assert check_operations(ops).ok == brute_force(ops)
    assert check_operations(ops, method="search").ok == brute_force(ops)


@st.composite
def unique_value_histories(draw):
    """Distinct put values, small integer times (many ties), pending puts and gets."""
    n = draw(st.integers(1, 7))
    ops = []
    written = 0
    for i in range(n):
        invoke = draw(st.integers(0, 12))
        length = draw(st.integers(0, 6))
        pending = draw(st.integers(0, 4)) == 0
        if draw(st.booleans()):
            written += 1
            kind, value = "put", written
        else:
            kind, value = "get", draw(st.integers(0, 4).map(lambda v: None if v == 0 else v))
        key = draw(st.sampled_from(["x", "x", "x", "y"]))
        ops.append(Operation(i + 1, f"c{i}", kind, key, value, float(invoke),
                             float("inf") if pending else float(invoke + length)))
    return ops


@settings(max_examples=800, deadline=None)
@given(unique_value_histories())
def test_zone_test_agrees_with_search_and_brute_force(ops):
    expected = brute_force(ops)
    zones = check_operations(ops, method="zones")
    assert zones.ok == expected
    assert check_operations(ops, method="search").ok == expected
    if not expected:
        assert zones.explanation and zones.failures[0].blocked is not None


# -- on real engine histories ------------------------------------------------------------------


def engine_history(seed: int) -> list[dict]:
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from raft_helpers import new_engine, random_schedule, repair, run_schedule, settle

    eng = new_engine(seed, nodes=5, clients=3)
    run_schedule(eng, random_schedule(seed, list(eng.nodes), 3, 150))
    repair(eng)
    assert settle(eng)
    return eng.history


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_engine_histories_pass_and_corrupted_ones_fail(seed):
    history = engine_history(seed)
    assert check_history(history).ok
    gets = [r for r in history if r["op"] == "get" and r["status"] == "ok"]
    assert gets
    # A read of a value nobody wrote.
    corrupted = [dict(r) for r in history]
    victim = next(r for r in corrupted if r["id"] == gets[-1]["id"])
    victim["result"] = "never written"
    result = check_history(corrupted)
    assert not result.ok and result.key == victim["key"]
    # A read that returns the initial value after a completed write to its key.
    puts = [r for r in history if r["op"] == "put" and r["status"] == "ok"]
    late = [g for g in gets if any(p["key"] == g["key"] and p["complete"] < g["invoke"] for p in puts)]
    assert late
    corrupted = [dict(r) for r in history]
    victim = next(r for r in corrupted if r["id"] == late[-1]["id"])
    victim["result"] = None
    assert not check_history(corrupted).ok
