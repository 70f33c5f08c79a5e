"""The dashboard's layout follows the terminal: a health line instead of the engine panel when
the window is short, the full panel when it is tall, and the switch happens on resize."""

from __future__ import annotations

import dataclasses
import gc
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from rich.text import Text
from textual.app import App, ComposeResult

from poller.events import Gauges, State, Transition
from tests.fakes import FakeProber, make_devices
from wardtui.app import WardApp
from wardtui.process import DASHBOARD
from wardtui.runtime import Options, Runtime
from wardtui.widgets.device_table import DeviceTable
from wardtui.widgets.gauges import GaugesPanel, HealthLine, health_line
from wardtui.widgets.transition_log import TransitionLog

N = 60


async def test_short_terminal_trades_the_engine_panel_for_a_health_line(tmp_path: Path) -> None:
    runtime = Runtime(Options(db=f"sqlite:///{tmp_path / 'h.db'}", interval=0.1, confirm_spacing=0.05),
                      prober=FakeProber(), devices=make_devices(N, interval=0.1))
    app = WardApp(runtime)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.dashboard
        table = screen.query_one(DeviceTable)
        deadline = time.monotonic() + 5
        while screen.query_one(HealthLine).gauges is None:
            assert time.monotonic() < deadline, "no gauges within 5 s"
            await pilot.pause(0.1)
        await pilot.pause(0.1)
        assert screen.has_class("-short")
        assert not screen.query_one(GaugesPanel).display or screen.query_one("#gauges").region.height == 0
        health = screen.query_one(HealthLine)
        assert health.region.height == 1 and health.region.width == 80
        text = str(health.render())
        assert text.startswith("up ") and "db ok" in text and len(text) <= 78  # within its padding
        short_rows = len(table.visible_rows())
        assert short_rows >= 10  # an 80x24 SSH window shows ten devices, not five
        await pilot.resize_terminal(120, 40)
        await pilot.pause(0.2)
        assert screen.has_class("-tall") and not screen.has_class("-short")
        assert screen.query_one("#gauges").region.height >= 14  # 9 figures + 3 sparklines + border
        assert health.region.height == 0
        assert len(table.visible_rows()) > short_rows
        await app.action_quit()


def test_health_line_lights_up_what_must_stay_zero() -> None:
    calm = Gauges(at=datetime.now(UTC), devices_up=870, devices_down=0, devices_unknown=0,
                  devices_flapping=0, checks_per_s=87.0, probes_per_s=87.0, in_flight=1, skipped=0,
                  skipped_late=0, skipped_busy=0, lag_p50_ms=1.0, lag_p99_ms=3.0, oldest_overdue_ms=0.0,
                  rcvbuf_drops=0, send_errors=0, store_queue=80)
    line = health_line(calm, "bold yellow")
    assert line.plain == "up 870 down 0 unknown 0 flap 0 lag99 3ms skipped 0 drops 0 queue 80 db ok"
    assert not [s for s in line.spans if s.style == "bold yellow"]
    bad = dataclasses.replace(calm, devices_down=5, rcvbuf_drops=2,
                              extra={"events_dropped": 1.0, "store_failing": 1.0})
    line = health_line(bad, "bold yellow")
    lit = [line.plain[s.start:s.end] for s in line.spans if s.style == "bold yellow"]
    assert lit == ["5", "3", "failing"]  # down; drops = rcvbuf 2 + events 1; the database
    assert isinstance(line, Text) and len(line.plain) <= 78


class LogApp(App[None]):
    def compose(self) -> ComposeResult:
        yield TransitionLog()


async def test_the_log_follows_its_newest_line_without_laying_out_the_screen() -> None:
    app = LogApp()
    layouts = 0
    async with app.run_test(size=(70, 10)) as pilot:
        log = app.query_one(TransitionLog)
        real = app.screen._refresh_layout

        def counting(*args: object, **kwargs: object) -> None:
            nonlocal layouts
            layouts += 1
            real(*args, **kwargs)  # type: ignore[arg-type]

        app.screen._refresh_layout = counting  # type: ignore[method-assign]
        at = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)
        for tick in range(8):  # eight ticks of an incident, six transitions each
            log.add_transitions([Transition(f"dev{tick}-{i}", f"127.5.{tick}.{i + 1}", State.UP, State.DOWN,
                                            at, at, None) for i in range(6)])
            log.flush()
            await pilot.pause()
        await pilot.pause(0.1)
        assert len(log.lines) == 48
        assert log.vertical_scrollbar.window_virtual_size == 48
        assert log.scroll_y == log.max_scroll_y > 0  # at the end: the newest line is on screen
        bottom = log.render_line(log.size.height - 1).text
        assert "dev7-5" in bottom, bottom
        assert layouts <= 2, layouts  # the scrollbar appearing, not once per tick


async def test_full_collections_wait_for_the_operator_to_pause(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    runs: list[int] = []
    monkeypatch.setattr(gc, "collect", lambda generation=2: runs.append(generation) or 0)
    runtime = Runtime(Options(db=f"sqlite:///{tmp_path / 'h.db'}", interval=0.1), prober=FakeProber(),
                      devices=make_devices(5, interval=0.1))
    # The dashboard's process policy, without the exit watchdog (it would end pytest).
    app = WardApp(runtime, process=dataclasses.replace(DASHBOARD, exit_grace=None))
    async with app.run_test(size=(100, 30)) as pilot:
        assert app.collect_when_idle() is False  # before the first round: nothing to drive
        app.settle_memory()
        assert gc.get_threshold() == (50_000, 20, 1_000)  # restored by the conftest fixture
        idle = app.idle_collections
        assert idle is not None
        await pilot.press("down")  # the operator is at the keyboard
        assert app.last_input > 0
        assert app.collect_when_idle() is False and runs == []
        app.last_input -= idle.IDLE_FOR  # ... and has not pressed a key since
        assert app.collect_when_idle() is True and runs == [2]
        app.last_input = time.monotonic()  # typing without a pause for too long: it runs anyway
        idle.last_full -= idle.AT_LATEST
        assert app.collect_when_idle() is True and len(runs) == 2
        await app.action_quit()


def test_v3_agents_add_a_row_telling_capacity_skips_from_timeouts() -> None:
    import io

    from rich.console import Console

    from wardtui.widgets.gauges import _figures

    def text(extra: dict[str, float]) -> str:
        g = Gauges(at=datetime.now(UTC), devices_up=1, devices_down=0, devices_unknown=0,
                   devices_flapping=0, checks_per_s=1.0, probes_per_s=1.0, in_flight=0, skipped=0,
                   skipped_late=0, skipped_busy=0, lag_p50_ms=1.0, lag_p99_ms=1.0, oldest_overdue_ms=0.0,
                   rcvbuf_drops=0, send_errors=0, store_queue=0, extra=extra)
        console = Console(width=100, record=True, file=io.StringIO())
        console.print(_figures(g, "bold yellow"))
        return console.export_text()

    snmp = {"snmp_agents": 2000.0, "snmp_skipped": 1890.0, "snmp_timeouts": 0.0}
    assert "skip capacity" not in text(snmp)
    shown = text({**snmp, "snmp_v3_agents": 2000.0, "snmp_skipped_capacity": 1890.0,
                  "snmp_v3_in_flight": 31.0, "snmp_v3_limit": 34.0})
    line = next(x for x in shown.splitlines() if "skip capacity" in x)
    assert "1890" in line and "v3 in flight" in line and "31/34" in line


class NarrowLogApp(App[None]):
    def __init__(self, log: TransitionLog) -> None:
        super().__init__()
        self.log_widget = log

    def compose(self) -> ComposeResult:
        yield self.log_widget


async def test_a_narrow_log_wraps_and_keeps_its_last_lines() -> None:
    """A line wider than the log wraps (the "to" state stays in view); lines written before
    the log has a size wait for it; the oldest lines go beyond max_lines."""
    log = TransitionLog(max_lines=10)
    at = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)
    log.add_transition(Transition("early", "127.5.1.1", State.UNKNOWN, State.DOWN, at, None, None))
    log.flush()  # not mounted yet: no width to render at
    app = NarrowLogApp(log)
    async with app.run_test(size=(40, 12)) as pilot:
        await pilot.pause()
        assert "early" in "".join(strip.text for strip in log.lines)
        for i in range(8):
            log.add_transition(Transition(f"branch-router-{i}", f"127.5.0.{i + 1}", State.UP, State.DOWN,
                                          at, at, None))
            log.flush()
            await pilot.pause()
        await pilot.pause(0.1)
        assert len(log.lines) == 10  # 8 lines of 2 rows each, the last 10 rows kept
        assert all(strip.cell_length <= log.scrollable_content_region.width for strip in log.lines)
        rows = [log.render_line(y).text.rstrip() for y in range(log.size.height)]
        assert any("DOWN" in row for row in rows[-3:]) and "branch-router-7" in "".join(rows)
        assert log.scroll_y == log.max_scroll_y
