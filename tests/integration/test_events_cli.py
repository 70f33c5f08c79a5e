"""``wardtui events``: a site's live feed as JSON lines, against a real Redis and a publishing engine
(tests/integration/feed_service.py), or keys written by hand where a service could not write them."""

from __future__ import annotations

import getpass
import json
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from poller.events import CheckResult, State, Transition
from poller.inventory import Device
from poller.jsonl import event_record
from tests.integration.feed_fixtures import (
    REPO,
    SHARED_REDIS,
    follow,
    stream,
    wardtui,
    write_site,
)

DEVICE_KEYS = ["type", "device", "address", "branch", "region", "device_type", "state", "since",
               "last_change", "rtt_ms", "loss_pct", "jitter_ms", "flapping", "at"]


def _following(keys: Any, running: Any, timeout: float = 30.0) -> None:
    """Wait until ``wardtui events`` has taken its start position and reads the stream: it puts
    itself in the site's viewers set just before its first read (wardtui/cli/events.py,
    ``_housekeeping``), so what is streamed from then on comes after its start position."""
    import redis

    client = redis.Redis.from_url(SHARED_REDIS)
    try:
        deadline = time.monotonic() + timeout
        while not client.zcard(keys.viewers):
            assert running.proc.poll() is None, f"wardtui events exited: {running.stderr}"
            assert time.monotonic() < deadline, f"wardtui events never followed: {running.stderr}"
            time.sleep(0.02)
    finally:
        client.close()


def _records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def test_events_print_what_the_engine_published_in_poll_jsonl_schema(
        feed_site: str, service_factory: Any, tmp_path: Path) -> None:
    records = tmp_path / "published.jsonl"
    service = service_factory(feed_site, devices=10, records=records)
    events = follow("--site", feed_site, "--jsonl")
    try:
        _, seen = events.until(lambda r: r["type"] == "gauges")  # following
        service.send("down dev3")
        down, more = events.until(lambda r: r["type"] == "transition" and r["device"] == "dev3")
        service.send("probe dev4")
        check, more2 = events.until(lambda r: r["type"] == "check")
        _, more3 = events.until(lambda r: r["type"] == "gauges")
        seen += more + more2 + more3
    finally:
        assert events.stop(signal.SIGINT) == 0
    published = _records(records)
    transitions = [r for r in seen if r["type"] == "transition"]
    gauges = [r for r in seen if r["type"] == "gauges"]
    assert down["to"] == "down" and len(gauges) >= 2
    # The very records `wardtui poll --jsonl` prints for these events, key order included.
    for record in transitions + gauges:
        assert record in published, record
        assert list(record) == list(next(p for p in published if p == record))
    reference = event_record(Transition("d", "a", State.UP, State.DOWN, datetime.now(UTC), None, None))
    assert reference is not None and list(down) == list(reference)
    assert {r["type"] for r in seen} <= {"transition", "gauges", "check", "flapping"}
    # An operator's check carries who asked for it.
    check_reference = event_record(CheckResult("d", "a", datetime.now(UTC), 1, 1, 1.0, State.UP))
    assert check_reference is not None
    assert list(check) == [*check_reference, "by"]
    assert check["device"] == "dev4" and check["by"] == getpass.getuser()
    assert events.stderr == ""


def test_since_snapshot_prints_every_device_once_then_events(feed_site: str, service_factory: Any) -> None:
    service = service_factory(feed_site, devices=12, down=3)
    state = service.state()
    events = follow("--site", feed_site, "--jsonl", "--since-snapshot")
    try:
        devices = [events.record() for _ in range(12)]
        after = [events.record() for _ in range(3)]
    finally:
        assert events.stop() == 0
    assert all(list(d) == DEVICE_KEYS and d["type"] == "device" for d in devices), devices[0]
    assert sorted(d["device"] for d in devices) == sorted(state["states"])
    assert {d["device"]: d["state"] for d in devices} == state["states"]
    assert {d["device"]: d["since"] for d in devices} == state["down_since"]
    assert all(d["rtt_ms"] == 2.0 for d in devices if d["state"] == "up")
    assert all(d["loss_pct"] == 100.0 and d["rtt_ms"] is None for d in devices if d["state"] == "down")
    assert [r["type"] for r in after] == ["gauges"] * 3
    assert after[0]["devices_down"] == 3


def test_a_reader_that_goes_away_ends_it_quietly(feed_site: str, service_factory: Any) -> None:
    service_factory(feed_site, devices=5)
    started = time.monotonic()
    pipeline = f"{sys.executable} -m wardtui events --site {feed_site} --jsonl --since-snapshot | head -n 3"
    proc = subprocess.run(["bash", "-o", "pipefail", "-c", pipeline],
                          cwd=REPO, capture_output=True, text=True, timeout=60,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert len(proc.stdout.splitlines()) == 3
    assert time.monotonic() - started < 15


def test_no_service_bad_options_and_their_exit_codes(feed_site: str) -> None:
    none = wardtui("events", "--site", feed_site, "--jsonl")
    assert none.returncode == 1
    assert none.stderr == f"wardtui: no wardtui serve publishes site {feed_site} on {SHARED_REDIS}\n"
    assert none.stdout == ""
    no_format = wardtui("events", "--site", feed_site)
    assert no_format.returncode == 2 and "only --jsonl output exists" in no_format.stderr
    bad_site = wardtui("events", "--site", "a b\x1b[2J", "--jsonl")
    assert bad_site.returncode == 2 and "\x1b" not in bad_site.stderr
    bad_url = wardtui("events", "--jsonl", "--redis", "http://:hunter2@127.0.0.1")
    assert bad_url.returncode == 2 and "hunter2" not in bad_url.stderr and "***" in bad_url.stderr
    # The environment's URL when no --redis, else the default.
    env_url = wardtui("events", "--site", feed_site, "--jsonl", env={"WARDTUI_REDIS": "redis://127.0.0.1:1"})
    assert env_url.returncode == 1 and "redis://127.0.0.1:1" in env_url.stderr


def test_a_wrong_password_exits_2_and_is_never_printed(private_redis: Any) -> None:
    server = private_redis(password="s3cret-right")
    for url in (f"redis://:s3cret-wrong@127.0.0.1:{server.port}", f"redis://127.0.0.1:{server.port}"):
        via_option = wardtui("events", "--jsonl", "--redis", url)
        via_env = wardtui("events", "--jsonl", env={"WARDTUI_REDIS": url})
        for proc in (via_option, via_env):
            assert proc.returncode == 2, proc.stderr
            assert len(proc.stderr.splitlines()) == 1, proc.stderr
            assert "s3cret" not in proc.stderr + proc.stdout
            assert "password" in proc.stderr


def test_redis_lost_and_back_is_said_and_the_device_lines_come_again(
        feed_site: str, service_factory: Any, private_redis: Any) -> None:
    server = private_redis()
    service_factory(feed_site, devices=6, redis_url=server.url)
    events = follow("--site", feed_site, "--jsonl", "--since-snapshot", env={"WARDTUI_REDIS": server.url})
    try:
        first = [events.record() for _ in range(6)]
        events.until(lambda r: r["type"] == "gauges")
        server.kill()
        time.sleep(3)  # the service drops what it would stream meanwhile: gauges, every second
        restarted = datetime.now(UTC)
        server.start()  # empty
        again, seen = events.until(lambda r: r["type"] == "device", timeout=30)
        rest = [events.record() for _ in range(5)]
        events.until(lambda r: r["type"] == "gauges"
                                and datetime.fromisoformat(r["at"]) > restarted + timedelta(seconds=1))
    finally:
        assert events.stop() == 0
    assert [d["device"] for d in first] == [d["device"] for d in [again, *rest]]
    assert all(r["type"] == "gauges" for r in seen[:-1])
    err = events.stderr
    assert "live feed lost at" in err and "live feed back at" in err, err
    assert "not on the stream any more" in err and "the device lines follow again" in err, err
    assert "Traceback" not in err


def test_missing_events_and_a_restart_are_said_on_stderr(feed_site: str) -> None:
    now = datetime.now(UTC)
    keys = write_site(feed_site, [Device("r1", "127.0.0.1", "b", "r", "router")])
    down = Transition("r1", "127.0.0.1", State.UP, State.DOWN, now, now, None)
    up = Transition("r1", "127.0.0.1", State.DOWN, State.UP, now, None, 1.5)
    stream(keys, up, 1)
    events = follow("--site", feed_site, "--jsonl")
    try:
        _following(keys, events)  # started: at the stream's end
        stream(keys, down, 2)
        stream(keys, up, 6)  # 3, 4 and 5 are not there
        stream(keys, down, 1, run="run\x1b[2J-2")
        lines = [events.record() for _ in range(3)]
        time.sleep(0.5)
    finally:
        assert events.stop() == 0
    assert lines == [event_record(down), event_record(up), event_record(down)]
    # (A heartbeat written once goes stale in 5 s: on a slow machine a "waiting for it" line too.)
    err = [line for line in events.stderr.splitlines() if "waiting for it" not in line]
    assert len(err) == 2, err
    assert "3 events of" in err[0] and "not shown" in err[0]
    assert "the service restarted" in err[1]
    assert "\x1b" not in events.stderr and "run\\x1b[2J-2" in err[1]  # data from Redis: escaped


# No newline: the inventory refuses control characters, and the feed's inventory encoding
# (columns joined by newlines) refuses to write one (tests/unit/test_live_codec.py).
HOSTILE = ["quote\"d 'name'", "[red]markup[/red]", "\x1b]0;retitled\x07esc", "bidi\u202eevil",
           "tab\there", "ünïcødé 日本", "\x9bc1", "back\\slash"]


def test_hostile_names_from_redis_print_as_json_data(feed_site: str) -> None:
    devices = [Device(name, f"127.0.0.{i + 1}", "br\x1b[2J", "reg", "t\x07")
               for i, name in enumerate(HOSTILE)]
    keys = write_site(feed_site, devices, host="evil\x1b[31mhost")
    events = follow("--site", feed_site, "--jsonl", "--since-snapshot")
    try:
        printed = [events.line() for _ in HOSTILE]
        now = datetime.now(UTC)
        stream(keys, Transition(HOSTILE[2], "127.0.0.3", State.UP, State.DOWN, now, now, None), 1)
        stream(keys, CheckResult(HOSTILE[3], "127.0.0.4", now, 1, 1, 2.0, State.UP), 2, by="mallory\x1b[5m")
        printed += [events.line(), events.line()]
    finally:
        assert events.stop() == 0
    records = [json.loads(line) for line in printed]
    assert [r["device"] for r in records[:len(HOSTILE)]] == HOSTILE
    assert records[0]["branch"] == "br\x1b[2J" and records[0]["device_type"] == "t\x07"
    assert records[-2]["device"] == HOSTILE[2] and records[-1]["by"] == "mallory\x1b[5m"
    for line in printed:  # JSON escapes: nothing a terminal would obey, nothing but ASCII
        assert line.endswith("\n") and all(0x20 <= ord(c) < 0x7f for c in line[:-1]), repr(line)
    assert events.stderr == ""


def _wait_for(running: Any, text: str, timeout: float = 15.0, meanwhile: Any = None) -> None:
    deadline = time.monotonic() + timeout
    while text not in running.stderr:
        assert time.monotonic() < deadline, running.stderr
        if meanwhile is not None:
            meanwhile()
        time.sleep(0.2)


def test_a_service_that_stops_and_comes_back_is_said(feed_site: str) -> None:
    import redis

    device = Device("r1", "127.0.0.1", "b", "r", "router")
    keys = write_site(feed_site, [device])
    events = follow("--site", feed_site, "--jsonl")
    client = redis.Redis.from_url(SHARED_REDIS)
    try:
        _following(keys, events)  # started while the service was live
        client.delete(keys.service)  # what a service that stops does on its way out
        _wait_for(events, "waiting for it")
        # A heartbeat as a service keeps it: fresh (one left alone is stale in 5 s).
        _wait_for(events, "publishes again",
                  meanwhile=lambda: write_site(feed_site, [device], host="second-host"))
    finally:
        client.close()
        assert events.stop() == 0
    err = events.stderr.splitlines()
    assert err == [f"wardtui: no wardtui serve publishes site {feed_site} on {SHARED_REDIS}; waiting for it",
                   f"wardtui: site {feed_site}: wardtui serve on second-host (pid 4242) publishes again"]


def test_a_restarted_service_brings_the_device_lines_again(feed_site: str, service_factory: Any) -> None:
    first = service_factory(feed_site, devices=4, down=1)
    events = follow("--site", feed_site, "--jsonl", "--since-snapshot")
    try:
        before = [events.record() for _ in range(4)]
        events.until(lambda r: r["type"] == "gauges")
        assert first.stop() == 0
        service_factory(feed_site, devices=4, down=2)  # its devices start unknown, then their checks
        again, _ = events.until(lambda r: r["type"] == "device", timeout=30)
        after = [again, *(events.record() for _ in range(3))]
        _, tail = events.until(lambda r: r["type"] == "gauges" and r["devices_down"] == 2)
    finally:
        assert events.stop() == 0
    assert [d["device"] for d in before] == [d["device"] for d in after]
    assert "device" not in {r["type"] for r in tail}
    err = [line for line in events.stderr.splitlines() if "waiting for it" not in line
           and "publishes again" not in line]
    assert len(err) == 1 and "the service restarted" in err[0], events.stderr
    # Started after the restart: nothing to say.
    late = follow("--site", feed_site, "--jsonl")
    try:
        late.until(lambda r: r["type"] == "gauges")
        late.until(lambda r: r["type"] == "gauges")
    finally:
        assert late.stop() == 0
    assert late.stderr == ""


def test_a_restart_before_it_started_is_not_reported(feed_site: str) -> None:
    now = datetime.now(UTC)
    device = Device("r1", "127.0.0.1", "b", "r", "router")
    keys = write_site(feed_site, [device], run="run-1")
    up = Transition("r1", "127.0.0.1", State.DOWN, State.UP, now, None, 1.5)
    stream(keys, up, 41, run="run-1")
    write_site(feed_site, [device], run="run-2")  # restarted, nothing streamed yet
    events = follow("--site", feed_site, "--jsonl")
    try:
        _following(keys, events)  # started: at the stream's end
        stream(keys, up, 1, run="run-2")
        stream(keys, up, 3, run="run-2")  # 2 is missing
        lines = [events.record(), events.record()]
        time.sleep(0.5)
    finally:
        assert events.stop() == 0
    assert lines == [event_record(up)] * 2
    err = [line for line in events.stderr.splitlines() if "waiting for it" not in line]
    assert len(err) == 1 and "1 event of" in err[0], err


def _stream_entry(keys: Any, body: str | bytes) -> None:
    import redis

    client = redis.Redis.from_url(SHARED_REDIS)
    client.xadd(keys.events, {"b": body})
    client.close()


def test_entries_of_several_events_print_a_line_each_and_are_counted_by_number(feed_site: str) -> None:
    """The service puts the events it takes together in one entry: one line per event, in order;
    the numbers go on across entries (a gap is said with its count), and the single-event
    entries of before still print."""
    from poller.live import encode_entry, encode_event

    now = datetime.now(UTC)
    keys = write_site(feed_site, [Device("r1", "127.0.0.1", "b", "r", "router")])
    down = Transition("r1", "127.0.0.1", State.UP, State.DOWN, now, now, None)
    up = Transition("r1", "127.0.0.1", State.DOWN, State.UP, now, None, 1.5)
    check = CheckResult("r1", "127.0.0.1", now, 1, 1, 2.0, State.UP)
    stream(keys, up, 1)
    events = follow("--site", feed_site, "--jsonl")
    try:
        _following(keys, events)  # started: at the stream's end
        _stream_entry(keys, encode_entry([encode_event(down), encode_event(up),
                                          encode_event(check, by="alice")], 2, "run-1"))
        stream(keys, down, 5)  # the single-event entry of before
        _stream_entry(keys, encode_entry([encode_event(up)], 9, "run-1"))  # 6, 7 and 8 are not there
        lines = [events.record() for _ in range(5)]
        time.sleep(0.5)
    finally:
        assert events.stop() == 0
    check_line = {**(event_record(check) or {}), "by": "alice"}
    assert lines == [event_record(down), event_record(up), check_line, event_record(down), event_record(up)]
    err = [line for line in events.stderr.splitlines() if "waiting for it" not in line]
    assert len(err) == 1 and "3 events of" in err[0] and "not shown" in err[0], err


def test_forged_entries_of_several_events_are_data_or_skipped(feed_site: str) -> None:
    from poller.live import encode_entry, encode_event

    now = datetime.now(UTC)
    keys = write_site(feed_site, [Device("r1", "127.0.0.1", "b", "r", "router")])
    up = Transition("r1", "127.0.0.1", State.DOWN, State.UP, now, None, 1.5)
    marked = Transition("[red]x\x1b[2J", "127.0.0.1", State.DOWN, State.UP, now, None, 1.5)
    stream(keys, up, 1)
    events = follow("--site", feed_site, "--jsonl")
    try:
        _following(keys, events)  # started: at the stream's end
        for body in (b"not json", b"[" * 100_000, '{"r":"run-1","n":2,"e":[]}', '{"r":"run-1","n":2,"e":"x"}',
                     '{"r":"run-1","n":"2","e":[{}]}', '{"r":5,"n":2,"e":[{}]}'):
            _stream_entry(keys, body)  # not entries of events: skipped, the numbers untouched
        # Events that are not events, beside one that is: the numbers counted, the real one printed.
        _stream_entry(keys, encode_entry(["1", '"x"', '{"t":"Transition","device":["x"]}',
                                          encode_event(marked, by="\x1b[5m")], 2, "run-1"))
        _stream_entry(keys, encode_entry([encode_event(up)], 6, "run-1"))
        lines = [events.line() for _ in range(2)]
        time.sleep(0.5)
    finally:
        assert events.stop() == 0
    assert [json.loads(line) for line in lines] == [event_record(marked), event_record(up)]
    for line in lines:  # JSON escapes: nothing a terminal would obey
        assert all(0x20 <= ord(c) < 0x7f for c in line[:-1]), repr(line)
    err = [line for line in events.stderr.splitlines() if "waiting for it" not in line]
    assert len(err) == 1 and "cannot be read" in err[0] and "not shown" not in err[0], err
