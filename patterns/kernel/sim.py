"""The virtual clock and the event queue.

Time is virtual milliseconds (a float). Events are kept in a heap of
``(time, seq, timer)``: ``seq`` is a counter, so two events due at the same time
run in the order they were scheduled and the heap never compares timers.
Cancelling a timer marks it; the heap drops it when it comes up (lazy deletion).
Moving a timer later (``reschedule``, what re-arming an election timeout on every
heartbeat does) only updates the timer: its heap entry, when it comes up, goes
back in under the new time. Both keep the heap free of per-re-arm garbage.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Any


class Timer:
    """A cancellable event. ``(at, seq)`` is its key in the heap; a heap entry
    whose seq is not the timer's is stale (the timer has moved later)."""

    __slots__ = ("at", "seq", "fn", "args", "owner", "cancelled")

    def __init__(self, at: float, seq: int, fn: Callable[..., Any], args: tuple, owner: str | None):
        self.at = at
        self.seq = seq
        self.fn = fn
        self.args = args
        self.owner = owner
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Simulator:
    """A discrete-event loop over virtual time. It does no I/O and reads no clock.

    Heap entries are ``(at, seq, fn, args, timer)``. ``timer`` is None for an
    event nobody can cancel (``post``: a message on the wire), which spares the
    hot path a Timer object; ``seq`` is unique, so comparison never reaches ``fn``.
    """

    def __init__(self) -> None:
        self.now: float = 0.0
        self._heap: list[tuple[float, int, Callable[..., Any], tuple, Timer | None]] = []
        self._seq = 0
        self.events_run = 0

    def schedule(self, delay_ms: float, fn: Callable[..., Any], *args: Any, owner: str | None = None) -> Timer:
        assert delay_ms >= 0, delay_ms
        self._seq += 1
        timer = Timer(self.now + delay_ms, self._seq, fn, args, owner)
        heapq.heappush(self._heap, (timer.at, timer.seq, fn, args, timer))
        return timer

    def reschedule(self, timer: Timer, delay_ms: float, fn: Callable[..., Any], *args: Any) -> bool:
        """Move a pending timer to ``now + delay_ms`` with a new callback: the same
        as cancelling it and scheduling anew (it takes the next seq), but only
        allowed later than it was due. Returns False, changing nothing, otherwise."""
        at = self.now + delay_ms
        if at < timer.at:
            return False
        self._seq += 1
        timer.at, timer.seq, timer.fn, timer.args = at, self._seq, fn, args
        return True

    def post(self, delay_ms: float, fn: Callable[..., Any], *args: Any) -> None:
        """Schedule an event that is never cancelled (cheaper than ``schedule``)."""
        self._seq += 1
        heapq.heappush(self._heap, (self.now + delay_ms, self._seq, fn, args, None))

    def next_time(self) -> float | None:
        """When the next live event is due, or None when nothing is scheduled."""
        heap = self._heap
        while heap:
            at, seq, _, _, timer = heap[0]
            if timer is None or (seq == timer.seq and not timer.cancelled):
                return at
            if timer.cancelled:
                heapq.heappop(heap)
            else:  # moved later: requeue it under its new key
                heapq.heapreplace(heap, (timer.at, timer.seq, timer.fn, timer.args, timer))
        return None

    def run_until(self, until_ms: float) -> None:
        """Run every event due at or before ``until_ms``, then set the clock there."""
        heap = self._heap
        pop = heapq.heappop
        ran = 0
        try:
            while heap and heap[0][0] <= until_ms:
                at, seq, fn, args, timer = pop(heap)
                if timer is not None:
                    if timer.cancelled:
                        continue
                    if seq != timer.seq:  # moved later: requeue it under its new key
                        heapq.heappush(heap, (timer.at, timer.seq, timer.fn, timer.args, timer))
                        continue
                self.now = at
                ran += 1
                fn(*args)
        finally:
            self.events_run += ran
        if until_ms > self.now:
            self.now = until_ms

    def run_next(self) -> bool:
        """Run all events due at the next event time. False when the queue is empty."""
        at = self.next_time()
        if at is None:
            return False
        self.run_until(at)
        return True

    def run_one(self) -> bool:
        """Run exactly one live event. False when the queue is empty."""
        if self.next_time() is None:
            return False
        at, _, fn, args, _timer = heapq.heappop(self._heap)
        self.now = at
        self.events_run += 1
        fn(*args)
        return True
