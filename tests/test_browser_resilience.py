"""The circuit breaker and saga labs in a real headless Chromium (Playwright's sync API),
and a page too slow to keep up with its frames: dropped with 4008, told why, back by itself.

Everything is real: Redis, an engine worker, daphne and the browser. Each test
follows the learner's path through the UI: the catalog link, the speed slider,
the forms and the drawn nodes' menus. Where a wait on the DOM alone would be
fragile, a check reads the page's own model (``window.lab.model.view``).

The browser, page and server fixtures are the Raft browser tests' own
(tests/test_browser.py); the small helpers are the other labs' (tests/test_browser_labs.py).
"""

from __future__ import annotations

import re

import pytest
from test_browser import (  # noqa: F401  (fixtures are used by name)
    ARTIFACTS,
    chromium,
    expect,
    new_page,
    page_errors,
    server,
)
from test_browser_labs import (
    SIM_MS,
    assert_invariants_ok,
    check_keyboard_and_node_menu,
    check_share_link_is_read_only,
    narration,
    node,
    open_from_catalog,
    screenshot,
    set_speed_1x,
    wait_virtual,
)

import patterns

pytestmark = pytest.mark.browser


def needs(kind: str):
    return pytest.mark.skipif(kind not in patterns.kinds(), reason=f"the {kind} engine is not registered")


# ---------------------------------------------------------------- circuit breaker
@needs("circuit_breaker")
def test_circuit_breaker_a_failing_downstream_opens_its_breaker_and_healing_closes_it(server, new_page):
    page = new_page()
    open_from_catalog(page, server.url, "Circuit breaker", "circuit_breaker")
    set_speed_1x(page)

    # Drawn: the front with its workers, the pipeline's stages, each downstream behind a closed breaker.
    expect(node(page, "front")).to_have_attribute("data-alive", "true")
    for d in ("d1", "d2"):
        expect(node(page, d)).to_have_attribute("data-role", "downstream")
        expect(node(page, d)).to_have_attribute("data-breaker", "closed")
        expect(node(page, d)).to_have_attribute("aria-label", re.compile(rf"^{d}, downstream, healthy, .*breaker closed$"))
        expect(page.locator(f'#breakers [data-breaker="{d}"]')).to_have_attribute("data-state", "closed")
    expect(page.locator('#layer-pipeline [data-stage="breaker"]')).to_have_attribute("data-on", "true")
    expect(page.locator("#stage-breaker")).to_be_checked()
    expect(page.locator("#policy-exponential_jitter")).to_be_checked()
    wait_virtual(page, 1500)
    expect(page.locator("#chart-load-summary")).to_contain_text("client requests: now")

    # d1 fails every call, through the fault form: its breaker opens, drawn and explained.
    page.locator("#fault-node").select_option("d1")
    page.locator("#fault-error").fill("100")
    page.get_by_role("button", name="Apply fault").click()
    expect(narration(page, "fault", r"^d1: .*100% errors")).to_have_count(1)
    expect(node(page, "d1")).to_have_attribute("data-state", "failing")
    expect(node(page, "d1")).to_have_attribute("data-breaker", "open", timeout=SIM_MS)
    expect(node(page, "d1")).to_have_attribute("aria-label", re.compile(r"breaker OPEN$"))
    card = page.locator('#breakers [data-breaker="d1"]')
    expect(card).to_have_attribute("data-state", "open")
    expect(card.locator('.sm-state.is-current')).to_have_attribute("data-sm-state", "open")
    expect(card.locator(".breaker-why")).to_contain_text(re.compile(r"^Why open: .*fail"))
    expect(card.locator(".breaker-transition").first).to_contain_text("closed → open")
    expect(narration(page, "breaker", r"^d1's breaker opened: .*fail")).to_have_count(1)
    expect(node(page, "d2")).to_have_attribute("data-breaker", "closed")  # one breaker per downstream
    page.wait_for_function("() => window.lab.model.view.stats.short_circuited > 0", timeout=SIM_MS)
    assert_invariants_ok(page)
    # Paused while we look, so the breaker is still open when d1 is healed.
    page.get_by_role("button", name="Pause").click()
    expect(page.locator("#lab")).to_have_attribute("data-paused", "true")
    expect(node(page, "d1")).to_have_attribute("data-breaker", "open")
    page.evaluate("window.scrollTo(0, 0)")
    screenshot(page, "circuit-breaker-open.png")
    page.evaluate("document.getElementById('breakers-title').scrollIntoView()")
    screenshot(page, "circuit-breaker-cards.png")

    # Heal d1: after the wait in open, probes go through (half-open) and the breaker closes.
    page.get_by_role("button", name="Heal it").click()
    expect(narration(page, "fault", r"^d1: .* 0% errors")).to_have_count(1)
    page.get_by_role("button", name="Resume").click()
    expect(page.locator("#lab")).to_have_attribute("data-paused", "false")
    expect(node(page, "d1")).to_have_attribute("data-state", "healthy")
    expect(narration(page, "breaker", r"^d1's breaker went half-open")).to_have_count(1, timeout=SIM_MS)
    expect(node(page, "d1")).to_have_attribute("data-breaker", "closed", timeout=SIM_MS)
    expect(narration(page, "breaker", r"^d1's breaker closed: ")).to_have_count(1)
    expect(card).to_have_attribute("data-state", "closed")
    expect(card.locator(".breaker-transition").first).to_contain_text("half-open → closed")
    page.wait_for_function(
        "() => { const s = window.lab.model.view.series.breaker_level.d1; return s.includes(2) && s.at(-1) === 0; }",
        timeout=SIM_MS,
    )
    assert_invariants_ok(page)
    page.evaluate("document.getElementById('charts-title').scrollIntoView()")
    screenshot(page, "circuit-breaker-charts.png")


@needs("circuit_breaker")
def test_circuit_breaker_menu_and_pipeline_toggle(server, new_page):
    page = new_page()
    open_from_catalog(page, server.url, "Circuit breaker", "circuit_breaker")
    set_speed_1x(page)
    # Turn the breaker stage off through its checkbox: no breaker guards the calls.
    page.get_by_label("Circuit breaker", exact=True).uncheck()
    expect(page.locator('#layer-pipeline [data-stage="breaker"]')).to_have_attribute("data-on", "false")
    expect(narration(page, "config", r"^pipeline: ")).to_have_count(1)
    # Force d2's breaker open through its menu (keyboard: Enter on the focused node).
    node(page, "d2").focus()
    page.keyboard.press("Enter")
    menu = page.locator("#node-menu")
    expect(menu).to_be_visible()
    menu.get_by_role("button", name="Force the breaker open").click()
    expect(node(page, "d2")).to_have_attribute("data-breaker", "open")
    expect(page.locator('#breakers [data-breaker="d2"] .breaker-why')).to_contain_text("forced open")


# ---------------------------------------------------------------- saga
@needs("saga")
def test_saga_an_order_completes_and_a_failed_payment_is_compensated_in_reverse(server, new_page):
    page = new_page()
    open_from_catalog(page, server.url, "Saga", "saga")
    set_speed_1x(page)
    steps = ["order", "inventory", "payment", "shipping"]
    for service in steps:
        expect(node(page, service)).to_have_attribute("data-role", "service")
        expect(page.locator(f'#layer-frame [data-comp="{service}"]')).to_be_visible()
    expect(page.locator("#mode-orchestration")).to_be_checked()

    # Place an order through the form: the saga runs every step and completes.
    page.get_by_role("button", name="Place an order").click()
    first = page.locator('#sagas tbody tr[data-saga="1"]')
    expect(first).to_have_attribute("data-status", "completed", timeout=SIM_MS)
    expect(page.locator("#saga-focus")).to_have_attribute("data-status", "completed")
    for service in steps:
        expect(node(page, service)).to_have_attribute("data-status", "done")
    expect(page.locator("#stat-completed .stat-value")).to_have_text("1")
    expect(narration(page, "saga", r"^saga 1 completed")).to_have_count(1)
    expect(page.locator("#ledger-check")).to_have_attribute("data-ok", "true")
    page.evaluate("window.scrollTo(0, 0)")
    screenshot(page, "saga-completed.png")

    # Payment declines every charge (through its menu): the next saga undoes what it did, in reverse.
    node(page, "payment").click()
    menu = page.locator("#node-menu")
    expect(menu).to_be_visible()
    menu.get_by_role("button", name="Make payment fail every time").click()
    expect(narration(page, "fault", r"^'charge card' at payment fails always")).to_have_count(1)
    expect(node(page, "payment")).to_have_attribute("data-fail", "always")
    page.get_by_role("button", name="Place an order").click()
    second = page.locator('#sagas tbody tr[data-saga="2"]')
    expect(second).to_have_attribute("data-status", "compensated", timeout=SIM_MS)
    focus = page.locator("#saga-focus")
    expect(focus).to_have_attribute("data-saga", "2")
    expect(focus).to_contain_text("Undone in reverse: inventory → order.")
    expect(node(page, "payment")).to_have_attribute("data-status", "failed")
    expect(node(page, "inventory")).to_have_attribute("data-status", "compensated")
    expect(node(page, "order")).to_have_attribute("data-status", "compensated")
    expect(node(page, "shipping")).to_have_attribute("data-status", "idle")
    # the compensations are numbered in the order they ran: inventory's release first, then cancel order
    expect(page.locator('[data-comp="inventory"] .comp-order text')).to_have_text("1")
    expect(page.locator('[data-comp="order"] .comp-order text')).to_have_text("2")
    expect(page.locator('[data-comp="payment"]')).to_have_attribute("data-status", "idle")
    expect(narration(page, "saga", r"^saga 2 compensated .*release items and cancel order, in that order")).to_have_count(1)
    expect(page.locator("#stat-compensated .stat-value")).to_have_text("1")
    expect(page.locator("#ledger-check")).to_have_attribute("data-ok", "true")
    assert_invariants_ok(page)
    page.evaluate("window.scrollTo(0, 0)")
    screenshot(page, "saga-compensated.png")

    # The first saga can still be shown on the graph from the list.
    first.get_by_role("button", name="Show saga 1 on the drawing").click()
    expect(focus).to_have_attribute("data-saga", "1")
    expect(node(page, "payment")).to_have_attribute("data-status", "done")
    page.evaluate("document.getElementById('sagas-title').scrollIntoView()")
    screenshot(page, "saga-panels.png")


@needs("circuit_breaker")
def test_circuit_breaker_retry_storm_amplifies_load_until_the_breaker_sheds_it(server, new_page):
    page = new_page()
    open_from_catalog(page, server.url, "Circuit breaker", "circuit_breaker")
    set_speed_1x(page)
    # No breaker, no retry budget: every failed call is tried three times.
    page.get_by_label("Circuit breaker", exact=True).uncheck()
    expect(page.locator('#layer-pipeline [data-stage="breaker"]')).to_have_attribute("data-on", "false")
    page.locator("#retry-budget").fill("0")
    page.get_by_role("button", name="Set retry").click()
    expect(narration(page, "config", r"^retry: .*no budget")).to_have_count(1)
    page.locator("#fault-node").select_option("d1")
    page.locator("#fault-error").fill("100")
    page.get_by_role("button", name="Apply fault").click()
    page.wait_for_function("() => Number(document.getElementById('cb-stats').dataset.amplification) > 1.5", timeout=SIM_MS)
    expect(page.locator("#stat-amplification")).to_have_attribute("data-level", re.compile(r"^(warn|bad)$"))
    expect(node(page, "d1")).to_have_attribute("aria-label", re.compile(r"breaker off$"))
    page.evaluate("document.getElementById('charts-title').scrollIntoView()")
    screenshot(page, "circuit-breaker-retry-storm.png")
    # The breaker back on: it opens and the calls to d1 stop, so the amplification falls.
    page.get_by_label("Circuit breaker", exact=True).check()
    expect(node(page, "d1")).to_have_attribute("data-breaker", "open", timeout=SIM_MS)
    page.wait_for_function("() => Number(document.getElementById('cb-stats').dataset.amplification) < 1.1", timeout=SIM_MS)
    assert_invariants_ok(page)
    page.evaluate("window.scrollTo(0, 0)")
    page.locator("html").evaluate("h => h.classList.add('high-contrast')")
    screenshot(page, "circuit-breaker-high-contrast.png")


@needs("saga")
def test_saga_choreography_and_a_crashed_orchestrator(server, new_page):
    page = new_page()
    open_from_catalog(page, server.url, "Saga", "saga")
    set_speed_1x(page)
    # Choreography: no coordinator; the services react to each other's events on the bus.
    page.get_by_label(re.compile(r"Choreography \(")).check()
    expect(page.locator("#mode-value")).to_have_text("choreography")
    expect(page.locator('#ring [data-node-id="orchestrator"]')).to_have_class(re.compile(r"\bis-idle-mode\b"))
    page.locator("#fail-service").select_option("shipping")
    page.locator("#fail-mode").select_option("once")
    page.get_by_role("button", name="Set failure").click()
    expect(node(page, "shipping")).to_have_attribute("data-fail", "once")
    page.get_by_role("button", name="Place an order").click()
    row = page.locator('#sagas tbody tr[data-saga="1"]')
    expect(row).to_have_attribute("data-status", "compensated", timeout=SIM_MS)
    expect(page.locator("#saga-focus")).to_contain_text("Undone in reverse: payment → inventory → order.")
    expect(page.locator('[data-comp="payment"] .comp-order text')).to_have_text("1")
    expect(page.locator('[data-comp="order"] .comp-order text')).to_have_text("3")
    page.evaluate("window.scrollTo(0, 0)")
    screenshot(page, "saga-choreography.png")
    # Orchestration again, the orchestrator crashed: a new saga waits; a restart resumes it from the log.
    page.get_by_label(re.compile(r"Orchestration \(")).check()
    expect(page.locator("#mode-value")).to_have_text("orchestration")
    page.locator('#ring [data-node-id="orchestrator"]').click()
    page.locator("#node-menu").get_by_role("button", name="Crash the orchestrator").click()
    expect(page.locator('#ring [data-node-id="orchestrator"]')).to_have_attribute("data-alive", "false")
    page.get_by_role("button", name="Place an order").click()
    wait_virtual(page, 1500)
    page.locator('#ring [data-node-id="orchestrator"]').click()
    page.locator("#node-menu").get_by_role("button", name="Restart the orchestrator").click()
    expect(page.locator('#sagas tbody tr[data-saga="2"]')).to_have_attribute("data-status", "completed", timeout=SIM_MS)
    expect(page.locator("#ledger-check")).to_have_attribute("data-ok", "true")
    assert_invariants_ok(page)
    page.evaluate("document.getElementById('sagas-title').scrollIntoView()")
    screenshot(page, "saga-after-restart.png")


@pytest.mark.parametrize(
    ("kind", "title", "first", "action", "controls"),
    [
        ("circuit_breaker", "Circuit breaker", "front", "Crash the front",
         ("#btn-fault", "#stage-breaker", "#policy-fixed", "#traffic-rate", "#btn-retry", "#btn-breaker", "#btn-pause")),
        ("saga", "Saga", "order", "Make order fail every time",
         ("#btn-place-order", "#btn-fail", "#mode-choreography", "#traffic-rate", "#dup-rate", "#btn-pause")),
    ],
)
def test_keyboard_and_read_only_viewers_on_the_resilience_labs(server, new_page, kind, title, first, action, controls):
    if kind not in patterns.kinds():
        pytest.skip(f"the {kind} engine is not registered")
    owner = new_page()
    open_from_catalog(owner, server.url, title, kind)
    check_keyboard_and_node_menu(owner, first, action, min_nodes=3)
    # Large type: the whole page, for a look.
    owner.locator("html").evaluate("h => h.classList.add('large-type')")
    owner.evaluate("window.scrollTo(0, 0)")
    owner.screenshot(path=str(ARTIFACTS / f"{kind}-large-type-full.png"), full_page=True)

    check_share_link_is_read_only(new_page, owner, first, controls)


# ---------------------------------------------------------------- a viewer too slow to keep up
STUCK_AFTER_S = 3


@pytest.fixture
def quick_stuck_server(clean_redis, start_worker, start_daphne):
    """One engine worker and one daphne that drops a viewer stuck for 3 s (not 15)."""
    start_worker()
    return start_daphne(LAB_STUCK_AFTER_S=str(STUCK_AFTER_S))


def test_a_page_that_stops_acknowledging_is_told_why_and_reconnects(quick_stuck_server, new_page):
    from test_browser import open_lab, set_speed_1x, wait_frames

    page = new_page()
    open_lab(page, quick_stuck_server.url)
    set_speed_1x(page)
    status = page.locator("#conn-status")
    # Record every text the status line shows (the reconnect delay can be short, so a
    # poll from here could miss it) and every close the socket sees.
    page.evaluate(
        """() => {
            const el = document.getElementById('conn-status');
            window.__shown = [];
            new MutationObserver(() => window.__shown.push(
                {state: el.dataset.state, code: el.dataset.closeCode, text: el.textContent}
            )).observe(el, {subtree: true, childList: true, characterData: true, attributes: true});
            window.__closes = [];
            const sock = window.raftLab.socket, onClose = sock._onClose;
            sock._onClose = function (event) {
                window.__closes.push({code: event.code, reason: event.reason});
                return onClose.call(this, event);
            };
        }"""
    )
    window = page.evaluate("window.raftLab.socket.limits.frame_window")
    wait_frames(page, page.evaluate("window.raftLab.model.frames") + 10)

    # The page keeps drawing frames but stops acknowledging them: the LabSocket's one
    # way out for acks, shadowed on this instance (the prototype's stays intact).
    page.evaluate("() => { window.raftLab.socket._ackNow = function () {}; }")
    stalled = page.evaluate("window.raftLab.model.frames")
    page.wait_for_function("() => window.__closes.length > 0", timeout=(STUCK_AFTER_S + 4) * 1000)
    closes = page.evaluate("window.__closes")
    assert [c["code"] for c in closes] == [4008], closes
    # Without acks the server sent at most a window of frames.
    got = page.evaluate("window.raftLab.model.frames") - stalled
    assert got <= window, f"{got} frames arrived after the page stopped acknowledging (window {window})"

    # The learner is told why, in the status line, in the server's words (sent as a
    # "closing" message, since daphne drops close reasons).
    shown = page.evaluate("window.__shown")
    told = [s for s in shown if s["state"] == "reconnecting" and s["code"] == "4008"]
    assert told, shown
    assert re.search(r"Too slow: no frame acknowledged for 3 s", told[0]["text"]), told[0]
    assert "Reconnecting" in told[0]["text"], told[0]
    print(f"\nclosed {closes[0]}, {got} frames after the stall; the status line said {told[0]['text']!r}")
    expect(status).to_be_visible()
    expect(status).to_have_attribute("role", "status")

    # Acknowledging again, the page reconnects by itself and frames flow for longer than
    # the stuck limit, on one connection.
    page.evaluate("() => { delete window.raftLab.socket._ackNow; }")
    expect(status).to_have_attribute("data-state", "connected", timeout=15_000)
    expect(status.locator(".conn-text")).to_have_text("Connected")
    reconnected = page.evaluate("window.raftLab.model.frames")
    wait_frames(page, reconnected + 20 * (STUCK_AFTER_S + 1), timeout=15_000)
    again = page.evaluate("window.__closes")[1:]
    assert not again, f"the connection was dropped again after acks resumed: {again}"
    expect(status).to_have_attribute("data-state", "connected")
