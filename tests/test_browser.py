"""The Raft lab in a real headless Chromium, driven by Playwright's sync API.

Everything is real: Redis, engine worker processes, daphne, and the browser.
The learner's path is followed through the UI (catalog link, node menu,
partition picker, client form, keyboard); a handful of checks read
``window.raftLab`` (the page's own model, exposed for the console and tests)
where the DOM alone would make a wait fragile.

The tests are plain sync functions: Playwright's sync API cannot run inside a
running asyncio loop, and pytest-asyncio (auto mode) only gives async tests one.

Chromium is Debian's (/usr/bin/chromium): Playwright cannot download its own
here. ``scripts/test.sh`` installs it when it is missing.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from webapp.runtime import keys
from webapp.runtime import launch

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
VIEWPORT = {"width": 1280, "height": 720}
ELECTION_MS = 30_000  # generous: at 1x an election takes well under a second of wall time
UI_MS = 10_000

LEADERS = '#ring [data-role="leader"]'


# ---------------------------------------------------------------- fixtures
class Chromium:
    """Debian's Chromium, launched on first use, inside a test: a missing browser
    makes the test FAIL (not error, not skip) with a message that says what to do."""

    def __init__(self) -> None:
        self._playwright = None
        self._browser = None

    def get(self):
        if self._browser is None:
            if not os.path.exists(CHROMIUM):
                pytest.fail(
                    f"{CHROMIUM} is missing, so the browser tests cannot run. Run the tests with the README's "
                    "test command, scripts/test.sh, which installs Debian's chromium when it is missing."
                )
            from playwright.sync_api import sync_playwright

            self._playwright = sync_playwright().start()
            self._browser = self._playwright.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
            )
        return self._browser

    def close(self) -> None:
        if self._browser is not None:
            self._browser.close()
        if self._playwright is not None:
            self._playwright.stop()


@pytest.fixture(scope="module")
def chromium() -> Iterator[Chromium]:
    browser = Chromium()
    try:
        yield browser
    finally:
        browser.close()


@pytest.fixture
def server(clean_redis, start_worker, start_daphne):
    """One engine worker and one daphne, on an empty Redis."""
    start_worker()
    return start_daphne()


class PageErrors(list):
    """Uncaught JavaScript errors of the pages a test opened."""

    def watch(self, page) -> None:
        page.on("pageerror", lambda exc: self.append(f"{page.url}: {exc}"))


@pytest.fixture
def page_errors() -> Iterator[PageErrors]:
    errors = PageErrors()
    yield errors
    assert not errors, f"uncaught JavaScript errors: {errors}"


@pytest.fixture
def new_page(chromium, page_errors):
    """new_page() -> a page in a fresh context (its own cookies) at 1280x720."""
    contexts = []

    def make():
        context = chromium.get().new_context(viewport=VIEWPORT)
        context.set_default_timeout(UI_MS)
        contexts.append(context)
        page = context.new_page()
        page_errors.watch(page)
        return page

    yield make
    for context in contexts:
        context.close()


# ---------------------------------------------------------------- helpers
def expect(*args, **kwargs):
    from playwright.sync_api import expect as _expect

    return _expect(*args, **kwargs)


def open_lab(page, base: str) -> str:
    """Go straight to /lab/raft/ (which creates the sim); returns the sim id once connected."""
    page.goto(base + "/lab/raft/")
    return wait_connected(page)


def wait_connected(page) -> str:
    expect(page).to_have_url(re.compile(r"/lab/raft/[^/?]+/(\?watch=[^/]+)?$"))
    expect(page.locator("#conn-status")).to_have_attribute("data-state", "connected", timeout=15_000)
    wait_frames(page, 1)
    return page.locator("#lab").get_attribute("data-sim-id")


def frames(page) -> int:
    return page.evaluate("window.raftLab.model.frames")


def wait_frames(page, count: int, timeout: float = 15_000) -> None:
    """Wait until the page has received at least `count` frames in all."""
    page.wait_for_function("n => window.raftLab && window.raftLab.model.frames >= n", arg=count, timeout=timeout)


def frame_seq(page) -> int:
    return int(page.locator("#lab").get_attribute("data-frame-seq"))


def set_speed_1x(page) -> None:
    # A range input: fill() sets the value and fires input and change, as a drag does.
    page.locator("#speed").fill("0")
    expect(page.locator("#speed-label")).to_have_text("1x")
    expect(page.locator("#speed-value")).to_have_text(re.compile(r"^1x"))


def node(page, node_id: str):
    return page.locator(f'#ring [data-node-id="{node_id}"]')


def wait_one_leader(page, *, not_in: tuple[str, ...] = (), timeout: float = ELECTION_MS) -> str:
    """Wait until exactly one leader is drawn (and it is none of `not_in`); returns its id."""
    handle = page.wait_for_function(
        """excluded => {
            const leaders = document.querySelectorAll('#ring [data-role="leader"]');
            if (leaders.length !== 1) return false;
            const id = leaders[0].getAttribute('data-node-id');
            return excluded.includes(id) ? false : id;
        }""",
        arg=list(not_in),
        timeout=timeout,
    )
    leader = handle.json_value()
    expect(page.locator("#leader-value")).to_have_text(leader)
    return leader


def assert_invariants_ok(page) -> None:
    items = page.locator("#invariants li[data-invariant]")
    expect(items.first).to_be_visible()
    ids = items.evaluate_all("lis => lis.map(li => li.dataset.invariant)")
    assert "election_safety" in ids, ids
    expect(page.locator('#invariants li[data-invariant][data-ok="false"]')).to_have_count(0)
    expect(page.locator('#invariants li[data-invariant="election_safety"]')).to_have_attribute("data-ok", "true")
    states = items.locator(".inv-state").all_inner_texts()
    assert states and all(s == "holds" for s in states), states


def narration(page, kind: str, pattern: str):
    return page.locator(f'#narration li[data-kind="{kind}"] .event-text', has_text=re.compile(pattern))


def crash_through_menu(page, node_id: str) -> None:
    node(page, node_id).click()
    menu = page.locator("#node-menu")
    expect(menu).to_be_visible()
    expect(menu.locator("#node-menu-title")).to_contain_text(node_id)
    menu.get_by_role("button", name=f"Crash {node_id}", exact=True).click()
    expect(menu).to_be_hidden()
    expect(node(page, node_id)).to_have_attribute("data-alive", "false")
    expect(node(page, node_id)).to_have_attribute("data-role", "down")


def sim_owner_pid(redis_client, sim_id: str) -> str | None:
    owner = redis_client.get(keys.lease_key(sim_id))
    return redis_client.hget("lab:workers", owner) if owner else None


# ---------------------------------------------------------------- tests
def test_crash_the_leader_through_the_ui_and_see_a_new_leader(server, new_page):
    page = new_page()
    page.goto(server.url + "/")
    raft = page.locator("#catalog .card-live").get_by_role("link", name=re.compile("Raft"))
    expect(raft).to_have_count(1)
    raft.click()
    wait_connected(page)
    set_speed_1x(page)

    old = wait_one_leader(page)
    expect(node(page, old)).to_have_attribute("aria-label", re.compile(rf"^{old}, leader, term \d+$"))
    old_term = int(node(page, old).get_attribute("data-term"))

    crash_through_menu(page, old)
    new = wait_one_leader(page, not_in=(old,))
    assert new != old
    expect(node(page, old)).to_have_attribute("data-alive", "false")
    new_term = int(node(page, new).get_attribute("data-term"))
    assert new_term > old_term

    expect(narration(page, "fault", rf"^{old} crashed\b")).to_have_count(1)
    expect(narration(page, "leader", rf"^{new} won term {new_term}\b")).to_have_count(1)
    assert_invariants_ok(page)

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "raft-lab.png"))


def test_partition_the_leader_into_the_minority_then_heal(server, new_page):
    page = new_page()
    open_lab(page, server.url)
    set_speed_1x(page)
    old = wait_one_leader(page)
    old_term = int(node(page, old).get_attribute("data-term"))
    other = next(n for n in ("n1", "n2", "n3", "n4", "n5") if n != old)

    page.locator(f"#side-b-{old}").check()
    page.locator(f"#side-b-{other}").check()
    page.get_by_role("button", name="Partition", exact=True).click()
    expect(page.locator("#network-state")).to_have_attribute("data-partitioned", "true")
    expect(page.locator('#ring [data-group="B"]')).to_have_count(2)
    expect(page.locator('#ring [data-group="A"]')).to_have_count(3)
    expect(node(page, old)).to_have_attribute("data-group", "B")

    # The majority (side A) elects a leader of a higher term; the old one, cut off, still thinks it leads.
    handle = page.wait_for_function(
        """oldTerm => {
            const l = document.querySelector('#ring [data-role="leader"][data-group="A"]');
            return l && Number(l.getAttribute('data-term')) > oldTerm ? l.getAttribute('data-node-id') : false;
        }""",
        arg=old_term,
        timeout=ELECTION_MS,
    )
    majority_leader = handle.json_value()
    assert majority_leader not in (old, other)
    expect(node(page, old)).to_have_attribute("data-role", "leader")
    assert_invariants_ok(page)  # two leaders drawn, but of different terms: still safe

    page.get_by_role("button", name="Heal", exact=True).click()
    expect(page.locator("#network-state")).to_have_attribute("data-partitioned", "false")
    expect(page.locator('#ring [data-group="B"]')).to_have_count(0)
    leader = wait_one_leader(page, not_in=(old,))
    expect(node(page, old)).not_to_have_attribute("data-role", "leader")
    expect(narration(page, "election", rf"^{old} stepped down from leader\b")).to_have_count(1, timeout=ELECTION_MS)
    expect(page.locator(LEADERS)).to_have_count(1)
    expect(page.locator("#leader-value")).to_have_text(leader)
    assert_invariants_ok(page)


def test_a_put_from_the_client_panel_ends_ok_in_the_history(server, new_page):
    page = new_page()
    open_lab(page, server.url)
    set_speed_1x(page)
    wait_one_leader(page)
    page.locator("#client-key").fill("colour")
    page.locator("#client-value").fill("42")
    page.get_by_role("button", name="Put", exact=True).click()
    row = page.locator("#history tbody tr[data-status]", has_text="put colour=42")
    expect(row).to_have_count(1)
    expect(row).to_have_attribute("data-status", "ok", timeout=ELECTION_MS)
    expect(row.locator(".op-status")).to_have_text(re.compile(r"^ok \(entry \d+\)$"))
    expect(narration(page, "client", r"put colour=42 acknowledged")).to_have_count(1)
    assert_invariants_ok(page)


def test_keyboard_opens_the_node_menu_pauses_and_steps(server, new_page):
    page = new_page()
    open_lab(page, server.url)

    # Keyboard only: Tab to the skip link, Enter, then Tab reaches the first node of the ring.
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to main content")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#main")).to_be_focused()
    for _ in range(5):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.matches('#ring .node')"):
            break
    else:
        pytest.fail("Tab from the start of the lab never reached a node of the ring")
    expect(node(page, "n1")).to_be_focused()

    # Arrow keys move between nodes; Enter opens that node's menu with focus inside it.
    page.keyboard.press("ArrowRight")
    expect(node(page, "n2")).to_be_focused()
    page.keyboard.press("Enter")
    menu = page.locator("#node-menu")
    expect(menu).to_be_visible()
    expect(menu).to_have_attribute("data-node", "n2")
    expect(menu.get_by_role("button", name="Crash n2", exact=True)).to_be_focused()
    expect(menu.get_by_role("button", name="Restart n2", exact=True)).to_be_disabled()
    page.keyboard.press("Escape")
    expect(menu).to_be_hidden()
    expect(node(page, "n2")).to_be_focused()

    # Space pauses and resumes when focus is not in a field (here: the narration log).
    lab = page.locator("#lab")
    expect(lab).to_have_attribute("data-paused", "false")
    page.locator("#narration").focus()
    page.keyboard.press("Space")
    expect(lab).to_have_attribute("data-paused", "true")
    expect(page.locator("#btn-pause")).to_have_text("Resume")

    # "." steps while paused: virtual time moves on and stays paused.
    before_now = page.evaluate("window.raftLab.model.frame.now")
    before_seq = frame_seq(page)
    before_vtime = page.locator("#vtime").inner_text()
    page.keyboard.press(".")
    page.wait_for_function(
        "([seq, now]) => Number(document.getElementById('lab').dataset.frameSeq) > seq"
        " && window.raftLab.model.frame.now > now",
        arg=[before_seq, before_now],
    )
    expect(page.locator("#vtime")).not_to_have_text(before_vtime)
    expect(lab).to_have_attribute("data-paused", "true")

    # Space inside a text field types a space and does not pause or resume.
    page.locator("#client-key").fill("")
    page.locator("#client-key").press("Space")
    expect(page.locator("#client-key")).to_have_value(" ")
    expect(lab).to_have_attribute("data-paused", "true")

    page.locator("#narration").focus()
    page.keyboard.press("Space")
    expect(lab).to_have_attribute("data-paused", "false")


def test_bad_input_shows_a_readable_error_and_the_simulation_goes_on(server, new_page):
    page = new_page()
    open_lab(page, server.url)
    error = page.locator("#lab-error .lab-error-text")

    # Checked in the page: min latency above max.
    page.locator("#latency-min").fill("80")
    page.locator("#latency-max").fill("20")
    page.get_by_role("button", name="Set latency").click()
    expect(error).to_have_text("The first latency must not be larger than the second.")
    page.locator("#lab-error").get_by_role("button", name="Dismiss").click()
    expect(error).to_have_count(0)

    # Refused by the engine: restarting a node that is up, sent through the page's own socket.
    page.evaluate("window.raftLab.command({op: 'restart', node: 'n1'})")
    expect(error).to_have_text("n1 is already up; only a crashed node can restart")
    expect(page.locator("#lab-error")).to_have_attribute("role", "alert")

    # A malformed command (no op) is refused before it reaches a worker.
    page.evaluate("window.raftLab.command({node: 'n1'})")
    expect(error).to_contain_text("needs an 'op'")

    # Frames keep arriving and the cluster still runs.
    seq, count = frame_seq(page), frames(page)
    wait_frames(page, count + 5)
    assert frame_seq(page) > seq
    expect(page.locator("#conn-status")).to_have_attribute("data-state", "connected")
    set_speed_1x(page)
    wait_one_leader(page)
    assert_invariants_ok(page)


def test_the_share_link_shows_the_same_simulation_read_only(server, new_page):
    owner = new_page()
    sim_id = open_lab(owner, server.url)
    set_speed_1x(owner)
    leader = wait_one_leader(owner)
    share_url = owner.locator("#share-url").input_value()
    assert f"/lab/raft/{sim_id}/?watch=" in share_url, share_url

    viewer = new_page()  # a second context: no cookies, so no owner capability
    viewer.goto(share_url)
    assert wait_connected(viewer) == sim_id
    expect(viewer.locator("#readonly-note")).to_be_visible()
    expect(viewer.locator("#lab")).to_have_attribute("data-role", "viewer")
    for control in ("#btn-pause", "#btn-step", "#speed", "#btn-partition", "#btn-heal", "#btn-put", "#client-key"):
        expect(viewer.locator(control)).to_be_disabled()
    expect(viewer.locator("#share-url")).to_have_count(0)
    expect(viewer.locator("#speed-value")).to_have_text(re.compile(r"^1x"))

    # Frames arrive, and the viewer sees what the owner does.
    count = frames(viewer)
    wait_frames(viewer, count + 5)
    expect(viewer.locator(LEADERS)).to_have_count(1)
    victim = next(n for n in ("n1", "n2", "n3", "n4", "n5") if n != leader)
    crash_through_menu(owner, victim)
    expect(node(viewer, victim)).to_have_attribute("data-alive", "false")
    expect(node(viewer, victim)).to_have_attribute("data-role", "down")

    # Nodes do not open a menu for a viewer, and Space does not pause.
    node(viewer, "n1").click()
    expect(viewer.locator("#node-menu")).to_be_hidden()
    viewer.locator("#narration").focus()
    viewer.keyboard.press("Space")
    # The server refuses a viewer's command even if it gets past the disabled controls.
    viewer.evaluate(f"window.raftLab.command({{op: 'crash', node: '{leader}'}})")
    expect(viewer.locator("#lab-error .lab-error-text")).to_contain_text("watching read-only")
    wait_frames(viewer, frames(viewer) + 5)
    for page in (owner, viewer):
        expect(page.locator("#lab")).to_have_attribute("data-paused", "false")
        expect(node(page, leader)).to_have_attribute("data-alive", "true")


def test_the_page_reconnects_after_a_server_restart(clean_redis, start_worker, start_daphne, new_page, monkeypatch):
    page = new_page()
    start_worker()
    server = start_daphne()
    open_lab(page, server.url)
    set_speed_1x(page)
    leader = wait_one_leader(page)
    victim = next(n for n in ("n1", "n2", "n3", "n4", "n5") if n != leader)
    crash_through_menu(page, victim)

    server.stop()
    status = page.locator("#conn-status")
    expect(status).to_have_attribute("data-state", "reconnecting")
    expect(page.locator("#btn-reconnect")).to_be_visible()
    expect(status).to_contain_text("Reconnecting")

    # A new daphne on the same port (the page reconnects to where it came from).
    monkeypatch.setattr(launch, "free_port", lambda: server.port)
    again = start_daphne()
    assert again.url == server.url
    count = frames(page)
    expect(status).to_have_attribute("data-state", "connected", timeout=30_000)
    expect(page.locator("#btn-reconnect")).to_be_hidden()
    wait_frames(page, count + 5)
    expect(node(page, victim)).to_have_attribute("data-alive", "false")
    expect(page.locator("#speed-value")).to_have_text(re.compile(r"^1x"))
    wait_one_leader(page, not_in=(victim,))
    assert_invariants_ok(page)


def test_frames_resume_when_the_worker_running_the_sim_is_killed(clean_redis, start_worker, start_daphne, new_page):
    page = new_page()
    workers = [start_worker(), start_worker()]
    server = start_daphne()
    sim_id = open_lab(page, server.url)
    set_speed_1x(page)
    leader = wait_one_leader(page)
    victim = next(n for n in ("n1", "n2", "n3", "n4", "n5") if n != leader)
    crash_through_menu(page, victim)

    pid = sim_owner_pid(clean_redis, sim_id)
    doomed = next(w for w in workers if str(w.proc.pid) == pid)
    survivor = next(w for w in workers if w is not doomed)
    doomed.kill()
    killed_at = frames(page)

    # The survivor adopts the simulation once the lease (6 s) runs out and replays its log
    # up to the last checkpoint (virtual time may step back by up to ~2 s: a checkpoint is
    # written every 2 s), so the check is on frames arriving and time running, not on `now`.
    wait_frames(page, killed_at + 10, timeout=25_000)
    assert sim_owner_pid(clean_redis, sim_id) == str(survivor.proc.pid)
    resumed_now = page.evaluate("window.raftLab.model.frame.now")
    page.wait_for_function("now => window.raftLab.model.frame.now > now + 200", arg=resumed_now)
    expect(page.locator("#conn-status")).to_have_attribute("data-state", "connected")
    expect(node(page, victim)).to_have_attribute("data-alive", "false")
    expect(page.locator("#speed-value")).to_have_text(re.compile(r"^1x"))
    wait_one_leader(page, not_in=(victim,))
    assert_invariants_ok(page)
