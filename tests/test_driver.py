"""The simulation driver: pacing, pause, step, reset, and rebuilding from a log."""

from __future__ import annotations

import json

import pytest

import patterns
from webapp.runtime.driver import LOG_IN_FRAME, SimDriver, SimSpec, decode_frame, frame_header


def spec(**kw) -> SimSpec:
    return SimSpec(sim_id="s1", kind="raft", seed=5, params={}, **kw)


def test_virtual_time_follows_wall_time_times_speed():
    driver = SimDriver(spec(speed=0.5), wall_s=100.0)
    driver.tick(100.2)
    assert driver.engine.now == pytest.approx(100.0)  # 200 ms of wall time at half speed
    driver.tick(110.0)  # a 9.8 s stall is not replayed in one burst
    assert driver.engine.now == pytest.approx(100.0 + 500 * 0.5)


def test_pause_stops_time_and_step_runs_one_event_time():
    driver = SimDriver(spec(speed=1.0), wall_s=0.0)
    driver.pause()
    driver.tick(0.3)
    assert driver.engine.now == 0.0
    next_at = driver.engine.next_event_ms()
    assert driver.step()
    assert driver.engine.now == next_at and driver.paused


def test_commands_are_logged_with_virtual_time_and_deduplicated():
    driver = SimDriver(spec(speed=1.0), wall_s=0.0)
    driver.tick(0.4)
    result, entry = driver.command({"op": "crash", "node": "n1"}, "rid-1")
    assert entry == {"at_ms": driver.engine.now, "cmd": {"op": "crash", "node": "n1"}, "rid": "rid-1"}
    again, duplicate = driver.command({"op": "crash", "node": "n1"}, "rid-1")
    assert duplicate is None  # a resent command is not applied twice
    with pytest.raises(patterns.InvalidCommand):
        driver.command({"op": "crash", "node": "n1"}, "rid-2")  # n1 is already down
    assert len(driver.log) == 1


def test_rebuilding_from_log_and_checkpoint_gives_the_same_view():
    driver = SimDriver(spec(speed=1.0), wall_s=0.0)
    for wall in (0.3, 0.6):
        driver.tick(wall)
    driver.command({"op": "put", "key": "x", "value": 1}, "a")
    driver.tick(0.9)
    driver.command({"op": "partition", "groups": [["n1", "n2"], ["n3", "n4", "n5"]]}, "b")
    driver.tick(1.2)
    checkpoint = driver.checkpoint()
    rebuilt = SimDriver(
        spec(log=driver.log, now_ms=float(checkpoint["now_ms"]), speed=1.0), wall_s=50.0
    )
    assert json.dumps(rebuilt.engine.view(), sort_keys=True) == json.dumps(driver.engine.view(), sort_keys=True)
    assert "a" in rebuilt.rids and "b" in rebuilt.rids


def test_reset_starts_a_new_epoch_with_the_given_seed():
    driver = SimDriver(spec(), wall_s=0.0)
    driver.command({"op": "crash", "node": "n2"}, None)
    driver.reset(99, 1.0)
    assert driver.seed == 99 and driver.epoch == 2 and driver.log == [] and driver.engine.now == 0.0


def test_frames_are_serialized_once_and_trim_long_logs():
    driver = SimDriver(spec(speed=1.0), wall_s=0.0)
    driver.tick(0.5)
    for i in range(60):
        driver.command({"op": "put", "key": "k", "value": i}, None)
    driver.engine.advance(3000)
    seq, data = driver.frame(wall_s=1.0, sent_at_ms=123.0)
    frame = decode_frame(data)
    assert frame["type"] == "frame" and frame["seq"] == seq and frame["sent_at"] == 123.0
    assert frame_header(data) == {k: v for k, v in frame.items() if k != "view"}  # read without inflating
    view = json.dumps(frame["view"], separators=(",", ":")).encode()
    assert len(data) < len(view) / 4  # compressed once, for every viewer
    leader = next(n for n in frame["view"]["nodes"] if n["role"] == "leader")
    assert len(leader["log"]) == LOG_IN_FRAME
    assert leader["log_offset"] + LOG_IN_FRAME == leader["commit_index"] >= 61
    assert not driver.wants_frame(1.0)  # nothing changed since


def test_a_recovered_simulation_catches_up_on_the_wall_time_since_its_checkpoint():
    driver = SimDriver(spec(speed=0.5), wall_s=0.0)
    driver.tick(0.4)
    fields = driver.checkpoint(epoch_ms=10_000.0)
    assert fields["checkpoint_epoch_ms"] == "10000.0"
    recovered = SimDriver(
        spec(speed=0.5, now_ms=float(fields["now_ms"]), checkpoint_epoch_ms=10_000.0), wall_s=0.0, epoch_ms=12_000.0
    )
    assert recovered.engine.now == pytest.approx(driver.engine.now + 2000 * 0.5)  # no turning back the clock
    paused = SimDriver(
        spec(speed=0.5, paused=True, now_ms=float(fields["now_ms"]), checkpoint_epoch_ms=10_000.0), wall_s=0.0, epoch_ms=12_000.0
    )
    assert paused.engine.now == driver.engine.now  # a paused simulation stays where it was


def test_the_frame_rate_halves_when_the_worker_falls_behind_and_comes_back_when_it_has_room():
    from webapp.runtime.driver import FrameRate

    rate = FrameRate(20.0, 5.0, window_s=2.0, hold_s=30.0)
    now = cpu = 0.0

    def run(cpu_share: float, late_share: float, seconds: float) -> list[float]:
        nonlocal now, cpu
        seen, tick = [], 0
        end = now + seconds
        while now < end:
            now += 0.05  # the worker ticks 20 times a second whatever its frame rate
            cpu += cpu_share * 0.05
            tick += 1
            rate.record(now, cpu, late=(tick % 100) < late_share * 100)
            seen.append(rate.hz)
        return seen

    assert set(run(0.5, 0.0, 10)) == {20.0}  # keeping up: the full rate
    assert run(0.5, 0.3, 3)[-1] == 10.0  # ticks late: half the rate
    assert run(0.9, 0.0, 10)[-1] == 5.0  # a core's worth of work: halves each window, to the floor
    assert run(0.9, 0.3, 4)[-1] == 5.0  # and no lower
    assert run(0.5, 0.0, 20)[-1] == 5.0  # room again, but it holds on for hold_s after a step down
    assert run(0.5, 0.0, 40)[-1] == 20.0  # then steps back up, a window at a time
    assert run(0.7, 0.0, 40)[-1] == 20.0  # between the thresholds: stays (no flapping)
    assert run(0.9, 0.0, 10)[-1] == 5.0
    back = run(0.1, 0.0, 12)  # the load has gone (a burst of sandboxes closed): twice the rate fits easily
    assert back[-1] == 20.0 and back.index(20.0) < 10 * 20, back.index(20.0)  # well before hold_s
    assert run(0.9, 0.0, 10)[-1] == 5.0
    assert run(0.35, 0.0, 20)[-1] == 5.0  # twice 35% would not fit under CPU_UP: the long hold


def test_a_paused_simulation_sends_no_frames_but_a_rare_keepalive():
    from webapp.runtime.driver import KEEPALIVE_S

    driver = SimDriver(spec(speed=1.0), wall_s=0.0)
    driver.pause()
    driver.frame(wall_s=0.0, sent_at_ms=0.0)  # the frame that shows the pause
    sent = 0
    for tick in range(1, 20 * 60 + 1):  # a minute of 20 Hz ticks
        wall = tick / 20
        driver.tick(wall)
        if driver.wants_frame(wall):
            driver.frame(wall_s=wall, sent_at_ms=wall * 1000)
            sent += 1
    assert sent == int(60 // KEEPALIVE_S)  # one keep-alive every KEEPALIVE_S, nothing else
    assert driver.engine.now == 0.0
