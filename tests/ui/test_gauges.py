"""The engine panel's sparklines and the 80x24 health line, drawn from given gauges."""

from __future__ import annotations

from datetime import UTC, datetime

from textual.app import App, ComposeResult
from textual.widget import Widget

from poller.events import Gauges
from wardtui.widgets.gauges import GaugesPanel, health_line


def gauges(checks: float = 87.0, lag: float = 2.0, down: int = 0, up: int = 875, unknown: int = 0) -> Gauges:
    return Gauges(at=datetime.now(UTC), devices_up=up, devices_down=down, devices_unknown=unknown,
                  devices_flapping=0, checks_per_s=checks, probes_per_s=checks, in_flight=1, skipped=0,
                  skipped_late=0, skipped_busy=0, lag_p50_ms=lag / 2, lag_p99_ms=lag, oldest_overdue_ms=0.0,
                  rcvbuf_drops=0, send_errors=0, store_queue=12)


class PanelApp(App[None]):
    def compose(self) -> ComposeResult:
        yield GaugesPanel()


def drawn(app: App[None], widget: Widget) -> str:
    """The characters the widget occupies on screen."""
    region = widget.region
    line = "".join(segment.text for segment in app.screen._compositor.render_strips()[region.y])
    return line[region.x:region.right]


async def test_sparklines_scale_from_zero() -> None:
    """checks/s between 86.9 and 87.9 is a steady line near the top, not ▁█▁█; no one down is
    the floor; a real fall to 10 checks/s goes to the floor."""
    app = PanelApp()
    async with app.run_test(size=(56, 14)) as pilot:
        panel = app.query_one(GaugesPanel)
        for i in range(40):
            panel.show(gauges(checks=86.9 if i % 2 else 87.9, lag=1.5 + 0.5 * (i % 2)))
        await pilot.pause()
        checks = drawn(app, panel.query_one("#spark-checks"))
        assert len(checks) > 30 and set(checks) <= {"▇", "█"}, checks
        assert set(drawn(app, panel.query_one("#spark-lag"))) <= {"▅", "▆", "▇", "█"}
        assert set(drawn(app, panel.query_one("#spark-down"))) == {"▁"}
        for _ in range(40):
            panel.show(gauges(checks=10.0, down=3))
        await pilot.pause()
        assert drawn(app, panel.query_one("#spark-checks"))[-1] == "▁"  # 10 of 87.9: the floor
        down = drawn(app, panel.query_one("#spark-down"))
        assert down[0] == "▁" and down[-1] == "█"


def test_the_health_line_counts_unknown_devices_and_fits_80_columns() -> None:
    """875 devices, 262 not answered yet: up + down + unknown add up, and 'db' stays on screen."""
    line = health_line(gauges(up=613, unknown=262, down=0), "bold yellow").plain
    assert "up 613" in line and "down 0" in line and "unknown 262" in line
    assert line.endswith("db ok") and len(line) <= 78, line
    assert line == "up 613 down 0 unknown 262 flap 0 lag99 2ms skipped 0 drops 0 queue 12 db ok"
    wide = health_line(gauges(up=613, unknown=262, down=0), "bold yellow", width=118).plain
    assert wide == "up 613  down 0  unknown 262  flap 0  lag99 2ms  skipped 0  drops 0  queue 12  db ok"


async def panel_text(shown: Gauges) -> str:
    """The engine panel's text, 56x14, showing ``shown``."""
    app = PanelApp()
    async with app.run_test(size=(56, 14)) as pilot:
        app.query_one(GaugesPanel).show(shown)
        await pilot.pause()
        return "\n".join("".join(s.text for s in strip) for strip in app.screen._compositor.render_strips())


async def test_a_full_spool_is_shown_as_history_at_risk() -> None:
    """The spool's disk full while the database is down: the panel's spooled figure says
    "full", and the 80-column health line says "spool FULL" beside "db failing"."""
    at_risk = gauges(up=613, unknown=262)
    at_risk.extra.update(store_spool_full=1.0, store_spool_rows=14604.0, store_failing=1.0)
    line = health_line(at_risk, "bold yellow").plain
    assert "spool FULL" in line and line.endswith("db failing") and len(line) <= 78, line
    assert "spool" not in health_line(gauges(), "bold yellow").plain
    shown = await panel_text(at_risk)
    assert "full 14604" in shown and "failing" in shown


async def test_unreachable_devices_share_the_down_figures_once_there_are_some() -> None:
    """A branch router down with 40 devices behind it: "down/unreach 1/40" in the panel and
    "unreach 40" in the 80-column line, which still ends with the database; none: as before."""
    outage = gauges(up=834, down=1)
    outage.extra.update(devices_unreachable=40.0)
    line = health_line(outage, "bold yellow").plain
    assert "down 1 unreach 40 unknown 0" in line and line.endswith("db ok") and len(line) <= 78, line
    assert "unreach" not in health_line(gauges(), "bold yellow").plain
    shown = await panel_text(outage)
    assert "down/unreach" in shown and "1/40" in shown


async def test_the_outbox_of_a_service_with_notify_is_shown_once_it_has_one() -> None:
    """``wardtui serve --notify``: messages waiting, the oldest's age, sent and failed in the
    panel (an attached dashboard shows the service's); without --notify, no such rows."""
    busy = gauges()
    busy.extra.update(notify_queued=3.0, notify_oldest_s=95.0, notify_sent=41.0, notify_failed=2.0)
    shown = await panel_text(busy)
    assert "notify queued" in shown and "95 s" in shown, shown
    assert "notify sent" in shown and "41" in shown and "notify failed" in shown, shown
    assert "notify" not in await panel_text(gauges())
