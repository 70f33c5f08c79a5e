"""poller/metrics.py without HTTP: names, counter or gauge, the per-device cache, a tracker dict
that changes size under a scrape."""

from __future__ import annotations

import re
import threading
import time
from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from poller.events import Gauges, State
from poller.metrics import COUNTERS, EngineCollector, MetricsServer, metric_name
from poller.state import DeviceTracker, StateConfig
from tests.fakes import make_devices

REPO = Path(__file__).resolve().parents[2]


class FakeEngine:
    def __init__(self, n: int = 3) -> None:
        self.trackers = {d.name: DeviceTracker(d, StateConfig()) for d in make_devices(n)}
        self.last_gauges: Gauges | None = None
        self.checks_done = 0


def gauges(**extra: float) -> Gauges:
    return Gauges(at=datetime.now(UTC), devices_up=2, devices_down=1, devices_unknown=0, devices_flapping=0,
                  checks_per_s=3.5, probes_per_s=4.0, in_flight=1, skipped=7, skipped_late=5, skipped_busy=2,
                  lag_p50_ms=1.5, lag_p99_ms=12.0, oldest_overdue_ms=0.0, rcvbuf_drops=3, send_errors=4,
                  store_queue=9, extra=dict(extra))


def scrape(server: MetricsServer) -> dict[str, tuple[str, list[tuple[dict[str, str], float]]]]:
    text = generate_latest(server.registry).decode()
    return {f.name: (f.type, [(s.labels, s.value) for s in f.samples])
            for f in text_string_to_metric_families(text)}


def check(tracker: DeviceTracker, ok: bool) -> None:
    now = datetime.now(UTC)
    tracker.record_probe(1.0 if ok else None)
    tracker.apply_check(ok, now, now, time.monotonic(), 1.0 if ok else None)


def test_milliseconds_become_seconds_and_names_stay_legal() -> None:
    assert metric_name("lag_p99_ms") == ("lag_p99_seconds", 0.001)
    assert metric_name("snmp_lag_p99_ms") == ("snmp_lag_p99_seconds", 0.001)
    assert metric_name("store_spool_rows") == ("store_spool_rows", 1.0)
    assert metric_name("a-b.c é") == ("a_b_c__", 1.0)


def test_every_counter_is_a_figure_the_engine_or_its_sources_publish() -> None:
    """A renamed figure must not leave its counter entry behind (it would silently turn into a gauge)."""
    sources = "".join((REPO / p).read_text() for p in ("poller/engine.py", "poller/snmp_poller.py",
                                                        "poller/feed.py", "store/writer.py",
                                                        "poller/snmp_traps.py", "wardtui/cluster.py",
                                                        "store/fencing.py", "store/fenced_history.py"))
    published = {f.name for f in fields(Gauges)} | set(re.findall(r'"([a-z0-9_]+)":', sources))
    assert published >= COUNTERS, COUNTERS - published


def test_cumulative_figures_are_counters_others_gauges_in_base_units() -> None:
    engine = FakeEngine()
    engine.last_gauges = gauges(snmp_timeouts=11, snmp_lag_p99_ms=250.0, store_spool_rows=40,
                                store_samples_dropped=6, events_dropped=2, some_new_figure=1.25)
    engine.checks_done = 123
    got = scrape(MetricsServer(engine, per_device=False))
    assert got["wardtui_checks"] == ("counter", [({}, 123.0)])
    assert got["wardtui_skipped"] == ("counter", [({}, 7.0)])
    assert got["wardtui_rcvbuf_drops"] == ("counter", [({}, 3.0)])
    assert got["wardtui_snmp_timeouts"] == ("counter", [({}, 11.0)])
    assert got["wardtui_store_samples_dropped"] == ("counter", [({}, 6.0)])
    assert got["wardtui_events_dropped"] == ("gauge", [({}, 2.0)])  # falls when a consumer leaves
    assert got["wardtui_lag_p99_seconds"] == ("gauge", [({}, 0.012)])
    assert got["wardtui_snmp_lag_p99_seconds"] == ("gauge", [({}, 0.25)])
    assert got["wardtui_store_spool_rows"] == ("gauge", [({}, 40.0)])
    assert got["wardtui_some_new_figure"] == ("gauge", [({}, 1.25)])
    assert got["wardtui_devices"][1] == [({"state": "up"}, 2.0), ({"state": "down"}, 1.0),
                                         ({"state": "unknown"}, 0.0), ({"state": "unreachable"}, 0.0)]
    assert "wardtui_devices_up" not in got and "wardtui_at" not in got


def test_unreachable_devices_are_a_state_of_their_own() -> None:
    engine = FakeEngine(2)
    engine.last_gauges = gauges(devices_unreachable=40.0, checks_for_dependencies=3.0)
    tracker = engine.trackers["dev1"]
    now = datetime.now(UTC)
    tracker.record_probe(None)
    tracker.apply_check(False, now, now, time.monotonic(), None, unreachable=True)
    got = scrape(MetricsServer(engine))
    assert ({"state": "unreachable"}, 40.0) in got["wardtui_devices"][1]
    assert "wardtui_devices_unreachable" not in got  # not a second series of the same figure
    assert got["wardtui_checks_for_dependencies"] == ("counter", [({}, 3.0)])
    assert [v for labels, v in got["wardtui_device_up"][1] if labels["device"] == "dev1"] == [0.0]


def test_an_extra_figure_named_like_another_series_is_left_out() -> None:
    engine = FakeEngine(1)
    engine.last_gauges = gauges(checks=1.0, devices=2.0, device_up=3.0, **{"lag-p50_ms": 4.0})
    engine.checks_done = 5
    got = scrape(MetricsServer(engine))  # the parser would see a duplicate family, and fail
    assert got["wardtui_checks"] == ("counter", [({}, 5.0)])
    assert len(got["wardtui_devices"][1]) == 4
    assert got["wardtui_lag_p50_seconds"] == ("gauge", [({}, 0.0015)])  # the field, not the extra


def test_before_the_first_gauges_only_checks_and_devices() -> None:
    engine = FakeEngine(2)
    check(engine.trackers["dev0"], ok=False)
    got = scrape(MetricsServer(engine))
    assert set(got) == {"wardtui_checks", "wardtui_device_up", "wardtui_device_rtt_seconds",
                        "wardtui_device_loss_ratio", "wardtui_device_flapping"}
    assert got["wardtui_device_up"][1] == [({"device": "dev0", "branch": "b0", "region": "north",
                                             "type": "router"}, 0.0)]
    assert got["wardtui_device_rtt_seconds"][1] == []


def test_the_per_device_part_is_kept_for_cache_seconds() -> None:
    engine = FakeEngine(2)
    tracker = engine.trackers["dev1"]
    check(tracker, ok=True)
    server = MetricsServer(engine, cache_seconds=0.3)
    assert scrape(server)["wardtui_device_up"][1][0][1] == 1.0
    check(tracker, ok=False)
    assert tracker.state is State.DOWN
    assert scrape(server)["wardtui_device_up"][1][0][1] == 1.0  # within the cache's second
    time.sleep(0.35)
    assert scrape(server)["wardtui_device_up"][1][0][1] == 0.0
    assert server.collector.last_device_build_s > 0


def test_a_tracker_dict_that_changes_size_during_scrapes() -> None:
    """An inventory reload on the engine's thread adds and removes trackers while a scrape
    walks them on another: each scrape still gets a consistent list (no RuntimeError)."""
    engine = FakeEngine(20_000)
    spare = {d.name: DeviceTracker(d, StateConfig()) for d in make_devices(500, prefix="new")}
    stop = threading.Event()

    def reload() -> None:
        while not stop.is_set():
            engine.trackers.update(spare)
            for name in spare:
                del engine.trackers[name]

    collector = EngineCollector(engine, cache_seconds=0.0)
    mutator = threading.Thread(target=reload)
    mutator.start()
    try:
        for _ in range(10):
            families = list(collector.collect())
            flapping = next(f for f in families if f.name == "wardtui_device_flapping")
            assert 20_000 <= len(flapping.samples) <= 20_500
    finally:
        stop.set()
        mutator.join()
