"""The sharding and load balancer labs in a real headless Chromium (Playwright's sync API).

Everything is real: Redis, an engine worker, daphne and the browser. Each test
follows the learner's path through the UI: the catalog link, the speed slider,
the node menus and the forms. Where a wait on the DOM alone would be fragile,
a check reads the page's own model (``window.lab.model.view``, the latest
frame's view) -- the same data the page has just drawn.

The browser, page and server fixtures are the Raft browser tests' own
(tests/test_browser.py), imported so both files launch Chromium the same way.
Plain sync tests: Playwright's sync API cannot run inside pytest-asyncio's loop.
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

pytestmark = pytest.mark.browser

SIM_MS = 30_000  # generous waits for what the simulation must do at 1x


# ---------------------------------------------------------------- helpers
def open_from_catalog(page, base: str, title: str, kind: str) -> None:
    page.goto(base + "/")
    link = page.locator("#catalog .card-live").get_by_role("link", name=re.compile(title))
    expect(link).to_have_count(1)
    link.click()
    expect(page).to_have_url(re.compile(rf"/lab/{kind}/[^/?]+/$"))
    expect(page.locator("#conn-status")).to_have_attribute("data-state", "connected", timeout=15_000)
    page.wait_for_function("window.lab && window.lab.model.frames >= 1", timeout=15_000)


def set_speed_1x(page) -> None:
    page.locator("#speed").fill("0")  # a range input: fill() fires input and change, as a drag does
    expect(page.locator("#speed-label")).to_have_text("1x")
    expect(page.locator("#speed-value")).to_have_text(re.compile(r"^1x"))


def node(page, node_id: str):
    return page.locator(f'#ring [data-node-id="{node_id}"]')


def menu_action(page, node_id: str, button: str) -> None:
    """Open a drawn node's menu with a click and press one of its buttons."""
    node(page, node_id).click()
    menu = page.locator("#node-menu")
    expect(menu).to_be_visible()
    expect(menu).to_have_attribute("data-node", node_id)
    menu.get_by_role("button", name=button, exact=True).click()
    expect(menu).to_be_hidden()


def virtual_now(page) -> float:
    return page.evaluate("window.lab.model.frame.now")


def wait_virtual(page, ms: float, timeout: float = SIM_MS) -> None:
    """Wait until the simulation's clock has moved `ms` virtual milliseconds on."""
    page.wait_for_function("t => window.lab.model.frame.now >= t", arg=virtual_now(page) + ms, timeout=timeout)


def narration(page, kind: str, pattern: str):
    return page.locator(f'#narration li[data-kind="{kind}"] .event-text', has_text=re.compile(pattern))


def assert_invariants_ok(page) -> None:
    items = page.locator("#invariants li[data-invariant]")
    expect(items.first).to_be_visible()
    expect(page.locator('#invariants li[data-invariant][data-ok="false"]')).to_have_count(0)


def screenshot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name))


# ---------------------------------------------------------------- load balancer
# Mean requests in service per backend over the latest `points` samples of the series (100 ms each).
MEAN_ACTIVE = """points => {
    const s = window.lab.model.view.series, out = {};
    for (const [id, values] of Object.entries(s.active)) {
        const tail = values.slice(-points);
        out[id] = tail.reduce((a, b) => a + b, 0) / Math.max(1, tail.length);
    }
    return out;
}"""


def share_of(page, backend: str) -> float:
    """The backend's share of the requests in the 'Share of requests' bars (the latest 2 s)."""
    counts = page.locator("#share-bars li[data-bar-node]").evaluate_all(
        "lis => Object.fromEntries(lis.map(li => [li.dataset.barNode, Number(li.dataset.value)]))"
    )
    total = sum(counts.values())
    return counts[backend] / total if total else 0.0


def p99_shown(page) -> float:
    """The latest p99 the latency chart shows (its legend value, also in its summary)."""
    value = page.locator('#chart-latency .chart-legend li[data-series="p99"]').get_attribute("data-value")
    return float(value) if value else 0.0


def test_load_balancer_slow_backend_round_robin_feeds_it_least_connections_routes_around(server, new_page):
    page = new_page()
    open_from_catalog(page, server.url, "Load balancer", "load_balancer")
    set_speed_1x(page)

    # Everything drawn, every drawn node labelled.
    for backend in ("b1", "b2", "b3", "b4"):
        expect(node(page, backend)).to_have_attribute("data-role", "backend")
        expect(node(page, backend)).to_have_attribute("data-alive", "true")
        expect(node(page, backend)).to_have_attribute("aria-label", re.compile(rf"^{backend}, backend, healthy, "))
    expect(node(page, "lb1")).to_have_attribute("data-state", "active")
    expect(node(page, "lb1")).to_have_attribute("data-holds-vip", "true")
    expect(node(page, "lb2")).to_have_attribute("data-state", "standby")
    expect(page.locator("#algorithm-value")).to_have_text("Round robin")
    expect(page.locator("#algorithm-round_robin")).to_be_checked()

    # More traffic, so that a slow backend matters.
    page.locator("#traffic-rate").fill("200")
    expect(page.locator("#traffic-rate-label")).to_have_text("200 req/s")
    expect(narration(page, "config", r"clients now send 200 requests a second")).to_have_count(1)
    wait_virtual(page, 3000)
    baseline_p99 = p99_shown(page)
    assert 0 < baseline_p99 < 150, baseline_p99
    expect(page.locator("#chart-latency-summary")).to_contain_text("p99: now")

    # Slow b2 down through its menu: round robin keeps feeding it.
    menu_action(page, "b2", "Slow b2 down 5×")
    expect(node(page, "b2")).to_have_attribute("data-slow-factor", "5")
    expect(node(page, "b2")).to_have_attribute("aria-label", re.compile(r"^b2, backend, healthy, 5× slower, "))
    expect(narration(page, "fault", r"^b2 is now 5x slower")).to_have_count(1)
    page.wait_for_function(
        "base => { const li = document.querySelector('#chart-latency .chart-legend li[data-series=\"p99\"]');"
        " return li && Number(li.dataset.value) > Math.max(2 * base, 90); }",
        arg=baseline_p99,
        timeout=SIM_MS,
    )
    wait_virtual(page, 2500)
    active = page.evaluate(MEAN_ACTIVE, 20)
    others = max(active[b] for b in ("b1", "b3", "b4"))
    assert active["b2"] > 2 * others, active  # the slow one piles up requests in service
    rr_share = share_of(page, "b2")
    assert 0.17 < rr_share < 0.33, rr_share  # round robin: still about a quarter of the requests
    expect(page.locator("#chart-latency-summary")).to_contain_text(re.compile(r"p99: now \d"))
    screenshot(page, "load-balancer-round-robin-slow-b2.png")

    # Least connections routes around it: b2's share falls, and so does its pile.
    page.get_by_label("Least connections").check()
    expect(page.locator("#algorithm-value")).to_have_text("Least connections")
    expect(narration(page, "config", r"switched from round_robin to least_connections")).to_have_count(1)
    wait_virtual(page, 3000)
    page.wait_for_function(
        """() => {
            const counts = {};
            document.querySelectorAll('#share-bars li[data-bar-node]').forEach(li => counts[li.dataset.barNode] = Number(li.dataset.value));
            const total = Object.values(counts).reduce((a, b) => a + b, 0);
            return total > 100 && counts.b2 / total < 0.15;
        }""",
        timeout=SIM_MS,
    )
    assert share_of(page, "b2") < rr_share / 2
    lc_active = page.evaluate(MEAN_ACTIVE, 20)
    assert lc_active["b2"] < active["b2"], (lc_active, active)
    expect(page.locator("#stat-errors .stat-value")).to_have_text("0%")
    assert_invariants_ok(page)
    page.evaluate("window.scrollTo(0, 0)")
    screenshot(page, "load-balancer-lab.png")
    page.locator("#charts-title").scroll_into_view_if_needed()
    page.evaluate("document.getElementById('charts-title').scrollIntoView()")
    screenshot(page, "load-balancer-charts.png")


def test_a_control_the_learner_moved_is_not_reset_by_frames_older_than_the_command(server, new_page):
    """A command's reply and the frame that shows it travel by different paths.
    With frames late (here held 400 ms on the page, as a busy tab or a backlog
    would), the reply comes first, and the frames still on their way predate the
    command. The radio the learner picked must stay picked through them."""
    page = new_page()
    open_from_catalog(page, server.url, "Load balancer", "load_balancer")
    set_speed_1x(page)
    expect(page.locator("#algorithm-round_robin")).to_be_checked()
    page.evaluate(
        """() => {
            const sock = window.lab.socket, late = sock._onFrameBytes;
            sock._onFrameBytes = function (ws, buffer) { setTimeout(() => late.call(sock, ws, buffer), 400); };
            const radio = document.getElementById('algorithm-least_connections');
            window.__picked = [];
            window.__sampler = setInterval(() => window.__picked.push(radio.checked), 5);
        }"""
    )
    page.wait_for_timeout(600)  # let the delayed stream settle into its new pace
    page.get_by_label("Least connections").check()
    expect(page.locator("#algorithm-value")).to_have_text("Least connections")
    page.wait_for_timeout(500)
    picked = page.evaluate("() => { clearInterval(window.__sampler); return window.__picked; }")
    first = picked.index(True)
    assert all(picked[first:]), f"the radio flipped back {picked[first:].count(False)} times after the click"
    expect(page.locator("#algorithm-least_connections")).to_be_checked()


# ---------------------------------------------------------------- sharding
def test_sharding_add_a_node_and_watch_about_one_sixth_of_the_keys_move(server, new_page):
    page = new_page()
    open_from_catalog(page, server.url, "Sharded key-value store", "sharding")
    set_speed_1x(page)
    ids = ["n1", "n2", "n3", "n4", "n5"]
    for node_id in ids:
        expect(node(page, node_id)).to_have_attribute("data-alive", "true")
        expect(node(page, node_id)).to_have_attribute("data-keys", "0")
    expect(page.locator("#strategy-consistent")).to_be_checked()
    expect(page.locator("#ring")).to_have_attribute("data-strategy", "consistent")
    tokens = page.locator("#layer-tokens .ring-tick").count()
    assert tokens >= 5 * 8, tokens  # every node's virtual-node tokens are drawn on the ring

    # Load 200 keys through the form: every node holds some, the bars say how many.
    page.locator("#load-keys").fill("200")
    page.get_by_role("button", name="Load keys").click()
    expect(narration(page, "load", r"^loaded 200 keys")).to_have_count(1)
    expect(page.locator("#stat-keys .stat-value")).to_have_text("200")
    before = {}
    for node_id in ids:
        expect(node(page, node_id)).not_to_have_attribute("data-keys", "0")
        before[node_id] = int(node(page, node_id).get_attribute("data-keys"))
    assert sum(before.values()) == 600, before  # 3 replicas of each key
    expect(page.locator('#key-bars li[data-bar-node="n1"]')).to_have_attribute("data-value", str(before["n1"]))

    # Add a node through the UI: it is drawn, keys move to it, and the banner counts them.
    page.get_by_role("button", name="Add a node").click()
    expect(node(page, "n6")).to_be_visible()
    expect(node(page, "n6")).to_have_attribute("data-alive", "true")
    expect(node(page, "n6")).to_have_attribute("aria-label", re.compile(r"^n6, up, \d+ keys, "))
    banner = page.locator("#placement-banner")
    expect(banner).to_have_attribute("data-moved", re.compile(r"^[1-9]\d*$"))
    expect(banner).to_have_attribute("data-strategy", "consistent")
    moved, total = int(banner.get_attribute("data-moved")), int(banner.get_attribute("data-total"))
    assert total == 600 and 0 < moved < total / 3, (moved, total)  # about 1/6 of the copies, far from "most"
    line = page.locator("#placement-change")
    expect(line).to_contain_text(re.compile(rf"^n6 joined: moved {moved} of 600 copies \(\d+(\.\d)?%\)"))
    expect(line).to_contain_text("Expected about 1/(N+1) = 1/6 = 16.7% for consistent hashing; hash mod N moves most.")
    rebalance = page.locator("#rebalance")
    expect(rebalance).to_have_attribute("data-in-progress", "false", timeout=SIM_MS)
    expect(rebalance).to_have_attribute("data-moved", str(moved))
    expect(page.locator("#rebalance-text")).to_have_text(re.compile(rf"^done: {moved} of {moved} copies moved"))
    page.wait_for_function("() => Number(document.querySelector('#ring [data-node-id=\"n6\"]').dataset.keys) > 0")
    assert int(node(page, "n6").get_attribute("data-keys")) == moved  # the new node holds what moved
    expect(page.locator('#key-bars li[data-bar-node="n6"]')).to_have_attribute("data-value", str(moved))
    expect(page.locator("#balance")).to_contain_text("Balance: busiest node")
    assert_invariants_ok(page)
    page.evaluate("document.getElementById('placement-banner').scrollIntoView()")
    screenshot(page, "sharding-lab.png")

    # A hot key melts the nodes that hold it: their load climbs, the chart shows it.
    page.locator("#hot-key").fill("user:42")
    page.locator("#hot-rate").fill("500")
    page.get_by_role("button", name="Make it hot").click()
    expect(page.locator('#hot-keys li[data-key="user:42"]')).to_contain_text("user:42: 500 req/s to ")
    hot = page.wait_for_function(
        "() => { const h = document.querySelector('#ring [data-state=\"hot\"]'); return h && h.dataset.nodeId; }",
        timeout=SIM_MS,
    ).json_value()
    expect(page.locator(f'#load-bars li[data-bar-node="{hot}"]')).to_have_class(re.compile(r"\bis-hot\b"))
    expect(page.locator("#chart-load-summary")).to_contain_text(re.compile(rf"\b{hot}: now \d+ req/s"))
    page.evaluate("document.getElementById('keys-title').scrollIntoView()")
    screenshot(page, "sharding-hot-key.png")


def test_sharding_modulo_moves_most_keys_and_small_quorums_warn(server, new_page):
    page = new_page()
    open_from_catalog(page, server.url, "Sharded key-value store", "sharding")
    set_speed_1x(page)
    page.get_by_role("button", name="Load keys").click()
    expect(page.locator("#stat-keys .stat-value")).to_have_text("200")

    # hash mod N: adding a sixth node reshuffles far more than 1/6.
    page.get_by_label("hash mod N").check()
    expect(page.locator("#ring")).to_have_attribute("data-strategy", "modulo")
    expect(page.locator("#strategy-value")).to_have_text("hash(key) mod N")
    expect(page.locator("#rebalance")).to_have_attribute("data-in-progress", "false", timeout=SIM_MS)
    page.get_by_role("button", name="Add a node").click()
    banner = page.locator("#placement-banner")
    expect(page.locator("#placement-change")).to_contain_text(re.compile(r"^n6 joined: moved \d+ of 600 copies"))
    expect(banner).to_have_attribute("data-strategy", "modulo")
    moved = int(banner.get_attribute("data-moved"))
    assert moved > 600 / 3, moved
    expect(page.locator("#placement-change")).to_contain_text("hash mod N moves most")

    # Quorums that cannot overlap are called out in words.
    page.locator("#quorum-w").select_option("1")
    page.locator("#quorum-r").select_option("1")
    page.get_by_role("button", name="Set quorum").click()
    expect(page.locator("#quorum-note")).to_have_attribute("data-level", "bad")
    expect(page.locator("#quorum-note")).to_contain_text("W + R = 2 ≤ 3 replicas")
    expect(page.locator("#layer-center")).to_contain_text("W = 1, R = 1")
    assert_invariants_ok(page)


def test_sharding_a_stale_read_is_marked_and_explained(server, new_page):
    """W = R = 1 with a replica cut off: a write through it is acknowledged, a read elsewhere misses it."""
    page = new_page()
    open_from_catalog(page, server.url, "Sharded key-value store", "sharding")
    set_speed_1x(page)
    page.get_by_role("button", name="Load keys").click()
    expect(page.locator("#stat-keys .stat-value")).to_have_text("200")

    def client(op: str, key: str, *, value: str = "", via: str = "", who: str = "c1") -> None:
        page.locator("#client-id").select_option(who)
        page.locator("#client-via").select_option(via)
        page.locator("#client-key").fill(key)
        if op == "put":
            page.locator("#client-value").fill(value)
            page.get_by_role("button", name="Put", exact=True).click()
        else:
            page.get_by_role("button", name="Get", exact=True).click()

    def last_op():
        return page.evaluate("window.lab.model.view.history.at(-1) || null")

    # W = 3 first: the put's acknowledgements name the key's three replicas.
    page.locator("#quorum-w").select_option("3")
    page.locator("#quorum-r").select_option("1")
    page.get_by_role("button", name="Set quorum").click()
    expect(page.locator("#layer-center")).to_contain_text("W = 3, R = 1")
    client("put", "k0001", value="1")
    page.wait_for_function("() => { const h = window.lab.model.view.history.at(-1); return h && h.status === 'ok'; }", timeout=SIM_MS)
    replicas = last_op()["acks"]
    assert len(replicas) == 3, replicas
    cut_off = replicas[0]

    # W = R = 1, and that replica alone on side B of a partition.
    page.locator("#quorum-w").select_option("1")
    page.get_by_role("button", name="Set quorum").click()
    expect(page.locator("#quorum-note")).to_contain_text("W + R = 2 ≤ 3 replicas")
    page.locator(f"#side-b-{cut_off}").check()
    page.get_by_role("button", name="Partition", exact=True).click()
    expect(page.locator("#network-state")).to_have_attribute("data-partitioned", "true")

    # A write through the cut-off replica is acknowledged by it alone ...
    client("put", "k0001", value="2", via=cut_off)
    row = page.locator("#history tbody tr[data-status]", has_text="put k0001=2")
    expect(row).to_have_attribute("data-status", "ok", timeout=SIM_MS)
    expect(row.locator(".op-via")).to_have_text(f" via {cut_off}")
    # ... and a read through another node misses it.
    other = next(n for n in ("n1", "n2", "n3", "n4", "n5") if n != cut_off)
    client("get", "k0001", via=other, who="c2")
    stale = page.locator('#history tbody tr[data-stale="true"]')
    expect(stale).to_have_count(1, timeout=SIM_MS)
    expect(stale.locator(".op-what")).to_contain_text("get k0001")
    expect(stale.locator(".stale-badge")).to_have_text("STALE")
    expect(stale.locator(".op-result")).to_contain_text(re.compile(r"^1 · v\d+"))
    expect(page.locator("#stale-note")).to_be_visible()
    expect(page.locator("#stale-note")).to_contain_text("1 stale read below")
    expect(page.locator("#stale-note")).to_contain_text("W + R ≤ 3 replicas")
    expect(narration(page, "stale", r"^c2's get k0001 returned version .* the read quorum missed the newest copy")).to_have_count(1)
    expect(page.locator("#stat-stale .stat-value")).to_have_text("1")
    expect(page.locator("#stat-stale")).to_have_attribute("data-level", "bad")
    page.wait_for_function(
        "() => { const li = document.querySelector('#chart-stale .chart-legend li[data-series=\"stale\"]');"
        " return li && Number(li.dataset.value) >= 1; }"
    )
    # The quorum invariant only promises fresh reads when R + W > N: it still holds.
    assert_invariants_ok(page)
    page.evaluate("document.getElementById('client-title').scrollIntoView()")
    screenshot(page, "sharding-stale-read.png")


def check_keyboard_and_node_menu(owner, first: str, action: str, *, min_nodes: int) -> None:
    """Tab reaches the drawing's nodes (each named, with its state), arrows move
    between them, Enter opens the node menu on its first action, Escape closes it."""
    drawn = owner.locator("#ring [data-node-id][role=button]")
    assert drawn.count() >= min_nodes
    for i in range(drawn.count()):
        item = drawn.nth(i)
        assert item.get_attribute("aria-label"), item.get_attribute("data-node-id")
        assert item.get_attribute("data-alive") in ("true", "false")
        assert item.get_attribute("data-state")
    node(owner, first).focus()
    owner.keyboard.press("ArrowRight")
    second = drawn.nth(1).get_attribute("data-node-id")
    expect(node(owner, second)).to_be_focused()
    owner.keyboard.press("ArrowLeft")
    expect(node(owner, first)).to_be_focused()
    owner.keyboard.press("Enter")
    menu = owner.locator("#node-menu")
    expect(menu).to_be_visible()
    expect(menu.get_by_role("button", name=action, exact=True)).to_be_focused()
    owner.keyboard.press("Escape")
    expect(menu).to_be_hidden()
    expect(node(owner, first)).to_be_focused()


def check_share_link_is_read_only(new_page, owner, first: str, controls) -> object:
    """The owner's share link opens the same simulation read-only: live frames,
    the note, every control disabled, no share link, no node menu. Returns the page."""
    share = owner.locator("#share-url").input_value()
    viewer = new_page()
    viewer.goto(share)
    expect(viewer.locator("#conn-status")).to_have_attribute("data-state", "connected", timeout=15_000)
    viewer.wait_for_function("window.lab && window.lab.model.frames >= 2")
    expect(viewer.locator("#readonly-note")).to_be_visible()
    expect(viewer.locator("#lab")).to_have_attribute("data-role", "viewer")
    for control in controls:
        expect(viewer.locator(control)).to_be_disabled()
    expect(viewer.locator("#share-url")).to_have_count(0)
    node(viewer, first).click()
    expect(viewer.locator("#node-menu")).to_be_hidden()
    expect(node(viewer, first)).not_to_have_attribute("aria-haspopup", "dialog")
    return viewer


def test_keyboard_menus_and_read_only_viewers_on_both_labs(server, new_page):
    for kind, title, first, action, controls in (
        ("sharding", "Sharded key-value store", "n1", "Crash n1",
         ("#btn-add-node", "#btn-load", "#btn-quorum", "#btn-hot-key", "#strategy-modulo", "#btn-put", "#btn-pause", "#btn-heal")),
        ("load_balancer", "Load balancer", "lb1", "Crash lb1",
         ("#btn-add-backend", "#algorithm-least_connections", "#traffic-rate", "#btn-slow", "#btn-health", "#btn-pause", "#btn-heal")),
    ):
        owner = new_page()
        open_from_catalog(owner, server.url, title, kind)

        check_keyboard_and_node_menu(owner, first, action, min_nodes=5)

        # Space pauses and "." steps, from anywhere but a text field.
        owner.locator("#narration").focus()
        owner.keyboard.press("Space")
        expect(owner.locator("#lab")).to_have_attribute("data-paused", "true")
        before = virtual_now(owner)
        owner.keyboard.press(".")
        owner.wait_for_function("t => window.lab.model.frame.now > t", arg=before)
        expect(owner.locator("#lab")).to_have_attribute("data-paused", "true")
        owner.keyboard.press("Space")
        expect(owner.locator("#lab")).to_have_attribute("data-paused", "false")

        check_share_link_is_read_only(new_page, owner, first, controls).close()
        owner.close()
