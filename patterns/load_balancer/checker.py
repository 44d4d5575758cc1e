"""The load balancer's invariants, checked from outside the node code.

- no_forward_to_ejected: when a balancer forwards a request, the backend is in
  its pool and its own health table says healthy (read at that instant).
- capacity: a backend never serves more jobs at once than its capacity.
- single_vip: at most one live balancer holds the VIP. This one breaks under a
  partition between the balancers (split brain): that is a lesson, not a bug.
  Two standbys whose takeover timers fire within one network latency of each
  other both become active until the next heartbeat, when the lower priority
  steps down (VRRP behaves the same). Such an overlap is shown at once
  (``now_ok`` and the engine's warnings) but is recorded as a violation only
  when it lasts longer than ``grace_ms`` (two heartbeats): by then each side
  has sent a heartbeat the other did not hear.
- exactly_once: every request the clients sent ends exactly once, ok or error;
  none ends twice and none is still open after its timeout.

A report keeps the first moment each distinct problem was seen (at most 50 per
invariant). ``summary()`` is what the page shows: red once broken, with the
first detail; ``now_ok`` says whether it holds at this moment.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..checkers.base import InvariantChecker

if TYPE_CHECKING:  # pragma: no cover
    from .backend import BackendNode
    from .balancer import BalancerNode

INVARIANTS = {
    "no_forward_to_ejected": "No request is forwarded to a backend the balancer has ejected",
    "capacity": "A backend never serves more requests at once than its capacity",
    "single_vip": "At most one balancer holds the virtual IP",
    "exactly_once": "Every request ends exactly once (ok or error)",
}
SLACK_MS = 1e-6


class LoadBalancerChecker(InvariantChecker):
    INVARIANTS = INVARIANTS

    def __init__(
        self,
        balancers: dict[str, BalancerNode],
        backends: dict[str, BackendNode],
        *,
        timeout_ms: float,
        grace_ms: float,
    ) -> None:
        super().__init__()
        self.balancers = balancers
        self.backends = backends
        self.timeout_ms = timeout_ms
        self.grace_ms = grace_ms
        self.now = 0.0
        self.open: dict[int, float] = {}  # request id -> deadline, in sending order
        self.last_sent = 0
        self.completed = 0
        self.vip_holders: list[str] = []
        self.split_since: float | None = None
        self.split_holders: list[str] = []

    # -- reporting ---------------------------------------------------------------------
    def clock_ms(self) -> float:
        return self.now

    def summary(self) -> list[dict[str, Any]]:
        out = []
        for key, title in INVARIANTS.items():
            reports = self.reports[key]
            now_ok = len(self.vip_holders) <= 1 if key == "single_vip" else not reports
            out.append(
                {
                    "id": key,
                    "title": title,
                    "ok": not reports,
                    "now_ok": now_ok,
                    "count": len(reports),
                    "detail": reports[0]["message"] if reports else "",
                }
            )
        return out

    # -- facts -------------------------------------------------------------------------------
    def on_forward(self, balancer_id: str, backend: str) -> None:
        balancer = self.balancers[balancer_id]
        if backend not in balancer.cfg.pool or backend not in self.backends:
            self._report("no_forward_to_ejected", f"{balancer_id} forwarded a request to {backend}, which is not in its pool")
            return
        state = balancer.health.get(backend)
        if state is None or not state.healthy:
            self._report(
                "no_forward_to_ejected", f"{balancer_id} forwarded a request to {backend}, which it had ejected"
            )

    def on_started(self, backend: str, active: int) -> None:
        capacity = self.backends[backend].spec.capacity
        if active > capacity:
            self._report("capacity", f"{backend} served {active} requests at once; its capacity is {capacity}")

    def on_sent(self, req: int) -> None:
        if req <= self.last_sent:
            self._report("exactly_once", f"request #{req} was sent twice")
        self.last_sent = max(self.last_sent, req)
        self.open[req] = self.now + self.timeout_ms

    def on_done(self, req: int) -> None:
        if self.open.pop(req, None) is None:
            if req <= self.last_sent:
                self._report("exactly_once", f"request #{req} ended twice")
            else:
                self._report("exactly_once", f"request #{req} ended but was never sent")
            return
        self.completed += 1

    def on_vip_change(self) -> None:
        holders = [b.id for b in self.balancers.values() if b.holds_vip]
        if len(holders) > 1:
            if self.split_since is None:
                self.split_since = self.now
                self.split_holders = holders
        else:
            self._check_split(self.now)
            self.split_since = None
        self.vip_holders = holders

    def _check_split(self, now: float) -> None:
        since = self.split_since
        if since is not None and now - since > self.grace_ms:
            self._report(
                "single_vip",
                f"{' and '.join(self.split_holders)} both held the VIP from {since / 1000:.3f} s, "
                f"longer than {self.grace_ms:g} ms (split brain)",
                at_ms=since + self.grace_ms,
            )

    # -- between events -----------------------------------------------------------------------
    def check(self, now: float) -> None:
        self.now = now
        self._check_split(now)
        for req, deadline in self.open.items():
            if deadline + SLACK_MS < now:
                self._report("exactly_once", f"request #{req} never ended: still open after its timeout")
            break  # deadlines come in sending order; the oldest is enough
