"""Redis high availability (issue 16, item 4): ``redis+sentinel://`` URLs, with real parts.

A private primary, one replica and three ``redis-server --sentinel`` on free loopback ports
(tests/procs/redis.py's :class:`SentinelGroup`, down-after 1 s). The primary is killed with
SIGKILL; the Sentinels promote the replica, and:

- ``wardtui serve`` (the feed publisher, its command reader), ``wardtui events`` and an attached
  viewer (:class:`LiveFeed`) reach the new primary by themselves; the viewer reloads the snapshot;
  polling never stopped (the history's checks have no gap beyond a bound);
- two ``wardtui serve --cluster`` members keep every shard: their leases, replicated, are renewed
  on the new primary before their local deadlines; polling never stopped;
- the URL's mistakes are one line, the password hidden, exit 2.

Devices are loopback addresses (127.0.0.x) pinged from the host's namespace: only Redis fails.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import sqlite3
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis

from poller.feed import LiveFeed
from poller.live import Keys
from tests.integration.feed_fixtures import Running, wardtui
from tests.integration.postgres import pg_url  # noqa: F401  (the fixture)
from tests.ports import free_port
from tests.procs.redis import SentinelGroup, sentinel_group
from tests.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "pw-never-shown-7"
CHECKS = "SELECT d.name, c.at FROM checks c JOIN devices d ON d.id = c.device_id"
GAP_BOUND = 3.0  # seconds: the largest gap allowed between two checks of one device (interval 0.5 s)


def _env(url: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("WARDTUI_REDIS", "WARDTUI_DB")}
    env.update(PYTHONPATH=str(REPO), PYTHONDONTWRITEBYTECODE="1")
    if url is not None:
        env["WARDTUI_REDIS"] = url  # the password stays out of ps
    return env


def _inventory(path: Path, n: int) -> Path:
    rows = "".join(f"d{i},127.0.0.{20 + i},b{i},r,router,\n" for i in range(n))
    path.write_text("name,address,branch,region,type,parent\n" + rows, encoding="utf-8")
    return path


def _max_gap(times: dict[str, list[datetime]], since: datetime) -> tuple[float, str]:
    """The largest gap between two checks of one device from ``since`` on (seconds, device)."""
    worst, who = 0.0, ""
    for name, ats in times.items():
        ats = sorted(at for at in ats if at >= since)
        assert len(ats) >= 2, f"{name}: no checks since {since}"
        for a, b in itertools.pairwise(ats):
            if (b - a).total_seconds() > worst:
                worst, who = (b - a).total_seconds(), name
    return worst, who


def _promoted(group: SentinelGroup, killed: float, limit: float = 15.0) -> float:
    wait_until(lambda: group.primary_port() == group.replica.port, limit,
               "the Sentinels did not promote the replica", pace=0.05)
    return time.monotonic() - killed


@pytest.mark.alone  # timing-bound: a failover within seconds, polling with no gap beyond a bound
def test_serve_events_and_a_viewer_follow_a_sentinel_failover_and_polling_never_stops(tmp_path: Path) -> None:
    site = f"ha{uuid.uuid4().hex[:8]}"
    db = tmp_path / "history.db"
    with sentinel_group(tmp_path, password=PASSWORD) as group:
        url = group.url
        log_path = tmp_path / "serve.log"
        with log_path.open("wb") as log:
            inventory = _inventory(tmp_path / "net.csv", 12)
            serve = subprocess.Popen(
                [sys.executable, "-m", "wardtui", "serve", "--inventory", str(inventory),
                 "--site", site, "--db", f"sqlite:///{db}", "--interval", "0.5", "--timeout", "0.3",
                 "--spool", str(tmp_path / "spool")],
                cwd=REPO, env=_env(url), stdout=subprocess.DEVNULL, stderr=log)
        events: Running | None = None
        try:
            wait_until(lambda: "publishing site" in log_path.read_text(errors="replace"), 60,
                       "serve never published")
            events = Running([sys.executable, "-m", "wardtui", "events", "--jsonl", "--site", site],
                             env=_env(url))
            events.until(lambda r: r.get("type") == "gauges", 30)
            result = asyncio.run(_viewer_through_failover(group, url, site, events))
            took = result["promoted"]
            serve_back = _back_after(log_path, result["killed_at"])
            print(f"sentinel failover: replica promoted {took:.2f} s after SIGKILL; serve publishing "
                  f"again {serve_back:.2f} s after; events flowing again {result['events']:.2f} s after; "
                  f"viewer live again {result['viewer']:.2f} s after")
        finally:
            serve.terminate()
            assert serve.wait(30) == 0
            if events is not None:
                events.proc.terminate()
                events.proc.wait(10)
        log_text = log_path.read_text(errors="replace")
        assert "Traceback" not in log_text and PASSWORD not in log_text, log_text
        assert events is not None
        assert PASSWORD not in events.stderr and "Traceback" not in events.stderr, events.stderr
        assert "live feed back at" in events.stderr, events.stderr
    # Polling never depended on Redis: every device's checks went on through the failover.
    with sqlite3.connect(db) as conn:
        rows = conn.execute(CHECKS).fetchall()
    times: dict[str, list[datetime]] = {}
    for name, at in rows:
        times.setdefault(name, []).append(datetime.fromisoformat(at).replace(tzinfo=UTC))
    since = result["killed_wall"] - timedelta(seconds=2)
    gap, who = _max_gap(times, since)
    assert len(times) == 12
    assert gap <= GAP_BOUND, f"{who}: {gap:.2f} s without a check around the failover"
    print(f"largest gap between two checks of a device across the failover: {gap:.2f} s")


async def _viewer_through_failover(group: SentinelGroup, url: str, site: str,
                                   events: Running) -> dict[str, Any]:
    viewer = LiveFeed(url, Keys(site))
    await viewer.attach()
    task = asyncio.create_task(viewer.run())
    try:
        await asyncio.sleep(1.5)
        assert viewer.live
        reloads = viewer.stats.reloads
        # Nothing read before the kill counts after it.
        while not events.lines.empty():
            events.lines.get_nowait()
        killed, killed_wall = time.monotonic(), datetime.now(UTC)
        group.primary.kill()
        promoted = await asyncio.to_thread(_promoted, group, killed)

        def flowing() -> float:
            while True:  # a gauges event published after the new primary took over
                record = events.record(30)
                if record.get("type") == "gauges" and datetime.fromisoformat(record["at"]) > killed_wall:
                    return time.monotonic() - killed

        events_back = await asyncio.to_thread(flowing)
        deadline = time.monotonic() + 20
        while not (viewer.live and viewer.stats.reloads > reloads and viewer.stats.losses >= 1):
            assert time.monotonic() < deadline, f"the viewer never came back: {viewer.stats}"
            await asyncio.sleep(0.05)
        viewer_back = time.monotonic() - killed
        # It goes on following: the snapshots it reads keep moving.
        seq = viewer._seq
        await asyncio.sleep(2.5)
        assert viewer.live and viewer._seq > seq, "the viewer stopped following after the failover"
        assert all(t.state == "up" for t in viewer.trackers.values())
        # The command path: a check asked for through the new primary is read, run and answered.
        reply = await viewer.command("probe", device="d3")
        assert reply.get("ok") is True, reply
    finally:
        viewer.stop()
        await asyncio.wait_for(task, 10)
    return {"killed_at": killed, "killed_wall": killed_wall, "promoted": promoted,
            "events": events_back, "viewer": viewer_back}


def _back_after(log_path: Path, killed: float) -> float:
    """Seconds from the kill to the serve's "is back" line (its own figure is whole seconds)."""
    wait_until(lambda: "is back after" in log_path.read_text(errors="replace"), 20,
               "serve never said the feed was back")
    found = re.search(r"is back after (\d+) s", log_path.read_text(errors="replace"))
    assert found
    return float(found[1])


# -- a cluster ------------------------------------------------------------------------------------


class Member:
    def __init__(self, tmp: Path, n: int, args: list[str], url: str) -> None:
        self.log_path = tmp / f"member{n}.log"
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "wardtui", "serve", "--cluster", *args,
                                          "--spool", str(tmp / f"spool{n}")],
                                         cwd=REPO, env=_env(url), stdout=subprocess.DEVNULL, stderr=log)

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    @property
    def poller_id(self) -> str | None:
        found = re.search(r"cluster: joining site \S+ as (\S+) ", self.log)
        return found[1] if found else None


def _owners(port: int, site: str) -> list[str | None]:
    client = redis.Redis(host="127.0.0.1", port=port, password=PASSWORD, socket_timeout=2)
    try:
        raw = client.mget([f"{Keys(site).prefix}shard:{s}" for s in range(256)])
    finally:
        client.close()
    return [None if v is None else v.decode() for v in raw]


@pytest.mark.alone  # timing-bound: leases renewed on the promoted replica before their deadlines
def test_cluster_members_keep_their_shards_through_a_sentinel_failover(tmp_path: Path, pg_url: str) -> None:  # noqa: F811
    site = f"hc{uuid.uuid4().hex[:8]}"
    ttl = 8.0
    db = pg_url.replace("+asyncpg", "")
    with sentinel_group(tmp_path, password=PASSWORD) as group:
        args = ["--inventory", str(_inventory(tmp_path / "net.csv", 16)), "--db", db, "--site", site,
                "--lease-ttl", str(ttl), "--interval", "0.5", "--timeout", "0.3",
                "--metrics", f"127.0.0.1:{free_port()}"]
        members = [Member(tmp_path, 0, args, group.url)]
        members.append(Member(tmp_path, 1, [*args[:-1], f"127.0.0.1:{free_port()}"], group.url))
        try:
            wait_until(lambda: all(m.poller_id for m in members), 60, "a member never joined")
            ids = {m.poller_id for m in members}
            wait_until(lambda: set(_owners(group.primary.port, site)) == ids, 60,
                       "the members never shared the shards")
            before = _owners(group.primary.port, site)
            time.sleep(1.0)
            killed, killed_wall = time.monotonic(), datetime.now(UTC)
            group.primary.kill()
            promoted = _promoted(group, killed)
            # Both members renew on the new primary: the same owner for every shard, no shard lost.
            wait_until(lambda: all("reaches Redis again" in m.log for m in members), 20,
                       "a member never reached the new primary")
            recovered = time.monotonic() - killed
            def members_publish() -> bool:
                # Each member's own live feed is back on the new primary: both live in `status`.
                proc = wardtui("status", "--site", site, "--json", env=_env(group.url))
                said[:] = [proc.stdout[-1500:], proc.stderr]
                if proc.returncode != 0:
                    return False
                cluster = json.loads(proc.stdout).get("cluster") or {}
                live = {p["id"] for p in cluster.get("pollers", []) if p["live"]}
                return live == ids and cluster.get("unowned") == []

            said: list[str] = []
            try:
                wait_until(members_publish, 20, "the members' feeds were not live again on the new primary")
            except AssertionError as exc:
                raise AssertionError(f"{exc}: {said}") from None
            published = time.monotonic() - killed
            assert _owners(group.replica.port, site) == before
            time.sleep(ttl)  # past every lease's life: renewed there, not left over from the old one
            assert _owners(group.replica.port, site) == before
            for m in members:
                assert re.search(r"lost \d+ shards", m.log) is None, m.log
            without = [float(x) for m in members
                       for x in re.findall(r"reaches Redis again after ([\d.]+) s", m.log)]
            print(f"sentinel failover under a cluster: promoted {promoted:.2f} s after SIGKILL; both members "
                  f"renewing on the new primary {recovered:.2f} s after (without Redis: {without} s); "
                  f"no shard lost (TTL {ttl:g} s); both members' feeds live in `wardtui status` "
                  f"{published:.2f} s after")
        finally:
            for m in members:
                m.proc.terminate()
            for m in members:
                assert m.proc.wait(40) == 0, m.log
        for m in members:
            assert "Traceback" not in m.log and PASSWORD not in m.log, m.log

    async def checks() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(db, timeout=5)
        try:
            return list(await conn.fetch(CHECKS))
        finally:
            await conn.close()

    times: dict[str, list[datetime]] = {}
    for row in asyncio.run(checks()):
        times.setdefault(row["name"], []).append(row["at"])
    assert len(times) == 16
    gap, who = _max_gap(times, killed_wall - timedelta(seconds=2))
    assert gap <= GAP_BOUND, f"{who}: {gap:.2f} s without a check around the failover"
    print(f"largest gap between two checks of a device across the failover: {gap:.2f} s")


# -- mistakes ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("url, says", [
    (f"redis+sentinel://:{PASSWORD}@127.0.0.1:26379", "no service name"),
    (f"redis+sentinel://:{PASSWORD}@127.0.0.1:99999/svc", "the port is not a number"),
    (f"redis+sentinel://:{PASSWORD}@127.0.0.1:1,,127.0.0.1:2/svc", "HOST[:PORT] is empty"),
    (f"redis+sentinel://:{PASSWORD}@127.0.0.1:1/svc/db0", "only a database number"),
])
def test_a_bad_sentinel_url_is_one_line_without_its_password_and_exit_2(tmp_path: Path, url: str,
                                                                        says: str) -> None:
    inventory = _inventory(tmp_path / "net.csv", 1)
    for argv in (["serve", "--inventory", str(inventory), "--db", f"sqlite:///{tmp_path}/h.db"],
                 ["serve", "--cluster", "--inventory", str(inventory), "--db", "postgresql://u@127.0.0.1/x"],
                 ["events", "--jsonl"], ["status"], ["--inventory", str(inventory)]):
        proc = wardtui(*argv, env=_env(url), timeout=60)
        assert proc.returncode == 2, (argv, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and says in lines[0] and PASSWORD not in proc.stderr, (argv, proc.stderr)
        assert ":***@" in lines[0], (argv, lines)
    doctor = wardtui("doctor", "--redis", url, "--db", f"sqlite:///{tmp_path}/h.db")
    assert says in doctor.stdout and PASSWORD not in doctor.stdout + doctor.stderr, doctor.stdout


def test_no_sentinel_and_an_unknown_service_are_one_line_without_the_password(tmp_path: Path) -> None:
    """No Sentinel answers: like a Redis that cannot be reached (exit 1 for a reader; a service
    goes on polling and retries). Sentinels that answer but monitor no such service: the
    operator's mistake, exit 2."""
    ports = [free_port(), free_port()]
    url = f"redis+sentinel://:{PASSWORD}@127.0.0.1:{ports[0]},127.0.0.1:{ports[1]}/svc"
    for argv in (["events", "--jsonl"], ["status"]):
        proc = wardtui(*argv, env=_env(url))
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 1 and len(lines) == 1, (argv, proc.stderr)
        assert "no Sentinel answered" in lines[0] and PASSWORD not in proc.stderr, lines
    with sentinel_group(tmp_path, password=PASSWORD) as group:
        wrong = group.url.replace(f"/{group.service}", "/no-such-service")
        for argv in (["events", "--jsonl"], ["status"]):
            proc = wardtui(*argv, env=_env(wrong))
            lines = proc.stderr.strip().splitlines()
            assert proc.returncode == 2 and len(lines) == 1, (argv, proc.stderr)
            assert "none monitors a service 'no-such-service'" in lines[0] and PASSWORD not in proc.stderr
        proc = wardtui("serve", "--inventory", str(_inventory(tmp_path / "net.csv", 1)), "--site", "x",
                       "--db", f"sqlite:///{tmp_path}/h.db", env=_env(wrong), timeout=60)
        assert proc.returncode == 2 and "no-such-service" in proc.stderr, proc.stderr
        assert PASSWORD not in proc.stderr
        doctor = wardtui("doctor", "--redis", group.url, "--db", f"sqlite:///{tmp_path}/h.db")
        said = f"primary now 127.0.0.1:{group.primary.port}, from the Sentinels"
        assert said in doctor.stdout, doctor.stdout
        assert PASSWORD not in doctor.stdout
