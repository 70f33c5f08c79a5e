"""``wardtui status``: a site's service, devices by state, stream, memory and viewers, against a
real Redis and a publishing engine (tests/integration/feed_service.py), or keys written by hand."""

from __future__ import annotations

import json
import math
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import redis

from poller.inventory import Device
from tests.integration.feed_fixtures import (
    SHARED_REDIS,
    follow,
    free_port,
    wardtui,
    write_site,
)


def test_status_shows_what_the_service_publishes(feed_site: str, service_factory: Any) -> None:
    service = service_factory(feed_site, devices=15, down=4)
    viewer = follow("--site", feed_site, "--jsonl")
    try:
        viewer.record()  # attached (it says so before it reads)
        client = redis.Redis.from_url(SHARED_REDIS)
        before = client.xlen(f"wardtui:{{{feed_site}}}:events")
        as_json = wardtui("status", "--site", feed_site, "--json")
        human = wardtui("status", "--site", feed_site)
        after = client.xlen(f"wardtui:{{{feed_site}}}:events")
        client.close()
        state = service.state()
    finally:
        assert viewer.stop() == 0
    assert as_json.returncode == 0 and human.returncode == 0, as_json.stderr + human.stderr
    assert as_json.stderr == "" and human.stderr == ""
    status = json.loads(as_json.stdout)
    assert status["live"] is True and status["site"] == feed_site and status["redis"] == SHARED_REDIS
    assert status["service"]["pid"] == service.proc.pid and status["service"]["version"] == "test"
    assert status["devices"] == {"total": 15, "up": state["up"], "down": state["down"],
                                 "unknown": state["unknown"], "flapping": state["flapping"]}
    assert (state["up"], state["down"]) == (11, 4)
    assert before <= status["stream"]["length"] <= after and before > 0
    assert 0 <= status["snapshot"]["age_s"] < 3
    assert list(status["memory_bytes"]) == ["stream", "snapshot", "delta", "inventory"]
    assert all(value > 0 for value in status["memory_bytes"].values())  # every snapshot writes a delta
    assert status["viewers"] == 1
    lines = human.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["site", "service", "devices", "snapshot", "maintenance",
                                                    "stream", "memory", "viewers"]
    assert status["quiet"] == {"windows_active": 0, "windows_to_come": 0, "acks": 0}
    assert len({line.index(line.split()[1]) for line in lines}) == 1  # aligned
    assert re.search(r"^devices +15: 11 up, 4 down, 0 unknown, 0 flapping$", human.stdout, re.M)
    assert f"pid {service.proc.pid}" in human.stdout
    assert re.search(r"^viewers +1 attached$", human.stdout, re.M)
    assert ", delta " in next(line for line in lines if line.startswith("memory"))


def test_status_counts_the_windows_and_acknowledgements_the_service_published(feed_site: str,
                                                                              service_factory: Any) -> None:
    from poller.notify.acks import Ack
    from poller.notify.model import Matcher
    from poller.notify.windows import Window
    from poller.quiet import quiet_of

    service_factory(feed_site, devices=5)
    now = datetime.now(UTC)
    on = Window(id=1, matchers=(Matcher("branch", "=", "b"),), starts_at=now - timedelta(minutes=1),
                ends_at=now + timedelta(hours=1), note="[b]x", created_by="a")
    later = Window(id=2, matchers=(Matcher("tag", "=", "t"),), cron="0 3 * * *", duration_s=600,
                   tz="Europe/Paris", note="nightly")
    ack = Ack(id=1, device="d1", down_since=now, note="n", who="w", at=now)
    client = redis.Redis.from_url(SHARED_REDIS)
    client.set(f"wardtui:{{{feed_site}}}:quiet", quiet_of([on, later], [ack], now).to_json())
    as_json = wardtui("status", "--site", feed_site, "--json")
    human = wardtui("status", "--site", feed_site)
    client.set(f"wardtui:{{{feed_site}}}:quiet", b"{not json")
    damaged = wardtui("status", "--site", feed_site, "--json")
    client.close()
    assert as_json.returncode == human.returncode == damaged.returncode == 0
    active = 1 if now.astimezone(ZoneInfo("Europe/Paris")).hour != 3 else 2
    assert json.loads(as_json.stdout)["quiet"] == {"windows_active": active, "windows_to_come": 2 - active,
                                                   "acks": 1}
    assert f"maintenance  {active} windows active, {2 - active} to come; 1 acknowledgements in force" \
        in human.stdout
    assert json.loads(damaged.stdout)["quiet"] is None  # a damaged key: not counted, not a failure


def test_no_service_exits_1_and_says_so(feed_site: str) -> None:
    none = wardtui("status", "--site", feed_site)
    assert none.returncode == 1 and none.stdout == ""
    assert none.stderr == f"wardtui: no wardtui serve publishes site {feed_site} on {SHARED_REDIS}\n"
    as_json = wardtui("status", "--site", feed_site, "--json")
    assert as_json.returncode == 1 and json.loads(as_json.stdout)["live"] is False
    # A heartbeat that stopped moving: what Redis holds is shown, and the exit status is 1.
    written = time.monotonic()
    write_site(feed_site, [Device("r1", "127.0.0.1", "b", "r", "router")],
               at=datetime.now(UTC) - timedelta(seconds=60))
    stale = wardtui("status", "--site", feed_site)
    # 60 s, plus the time the command took to start and read it (~1 s quiet, more on a busy machine)
    late = math.ceil(time.monotonic() - written)
    assert stale.returncode == 1
    told = re.search(r"has not published for (\d+) s$", stale.stderr)
    assert told and 60 <= int(told[1]) <= 60 + late and "pid 4242" in stale.stderr, (stale.stderr, late)
    shown = re.search(r"stopped publishing (\d+) s ago", stale.stdout)
    assert shown and 60 <= int(shown[1]) <= 60 + late, (stale.stdout, late)


def test_bad_options_url_and_password_exit_2_and_hide_it(private_redis: Any) -> None:
    server = private_redis(password="t0psecret")
    wrong = f"redis://:wrongsecret@127.0.0.1:{server.port}"
    runs = [wardtui("status", "--redis", wrong), wardtui("status", "--json", env={"WARDTUI_REDIS": wrong}),
            wardtui("status", "--redis", f"redis://127.0.0.1:{server.port}"),
            wardtui("status", "--redis", "ftp://:wrongsecret@x"), wardtui("status", "--site", "x/y")]
    for proc in runs:
        assert proc.returncode == 2, proc.args
        assert len(proc.stderr.splitlines()) == 1 and proc.stdout == ""
        assert "secret" not in proc.stderr
    right = wardtui("status", "--redis", server.url, "--site", "nothing-here")
    assert right.returncode == 1 and "t0psecret" not in right.stderr and ":***@" in right.stderr
    unreachable = wardtui("status", "--redis", f"redis://127.0.0.1:{free_port()}")
    assert unreachable.returncode == 1 and "cannot read Redis" in unreachable.stderr


def test_hostile_heartbeat_text_is_not_obeyed(feed_site: str) -> None:
    write_site(feed_site, [Device("r\x1b[2J", "127.0.0.1", "b", "r", "router")],
               host="evil\x1b]0;t\x07\u202e")
    human = wardtui("status", "--site", feed_site)
    as_json = wardtui("status", "--site", feed_site, "--json")
    assert human.returncode == 0 and as_json.returncode == 0
    assert "\x1b" not in human.stdout and "\x07" not in human.stdout and "\u202e" not in human.stdout
    assert "evil" in human.stdout
    assert json.loads(as_json.stdout)["service"]["host"] == "evil\x1b]0;t\x07\u202e"
    assert all(0x20 <= ord(c) < 0x7f for c in as_json.stdout.rstrip("\n"))
