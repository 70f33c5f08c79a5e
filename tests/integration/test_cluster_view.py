"""One picture of a cluster (issue 16 item 5), with real parts: two or three ``wardtui serve
--cluster`` processes polling loopback devices (127.0.0.0/8 answers every address), one private
Redis, one scratch PostgreSQL database; a headless viewer (tests/procs/viewer.py, ClusterFeed) in
a process of its own, and ``wardtui status --json``.

The viewer must see every device exactly once, each from the member whose shard lease names it,
with a line per member; a third member joining and one leaving are picked up without a restart.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from poller.cluster.shards import shard_of
from tests.integration.postgres import pg_url  # noqa: F401  (the fixture)
from tests.procs.redis import unix_redis
from tests.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]
TTL = 2.0
SHARDS = 256
BRANCHES = 30  # of 2 devices: every member of three holds some (a member misses all 30 once in ~200,000)


def _env() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("WARDTUI_REDIS", None)
    env.pop("WARDTUI_DB", None)
    return env


class Member:
    def __init__(self, tmp: Path, n: int, args: list[str]) -> None:
        self.log_path = tmp / f"member{n}.log"
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "wardtui", "serve", "--cluster", *args,
                                          "--spool", str(tmp / f"spool{n}")],
                                         cwd=REPO, env=_env(), stdout=subprocess.DEVNULL, stderr=log)

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    @property
    def poller_id(self) -> str | None:
        found = re.search(r"cluster: joining site \S+ as (\S+) ", self.log)
        return found[1] if found else None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(40)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


Start = Callable[[], Member]


@pytest.fixture
def cluster(tmp_path: Path, pg_url: str) -> Iterator[tuple[str, str, str, Start, list[str]]]:  # noqa: F811
    """(the Redis URL, the database URL, the site, a way to start a member, the device names)."""
    rows, names = [], []
    for b in range(BRANCHES):
        for k in range(2):
            name = f"b{b}-d{k}"
            rows.append(f"{name},127.0.{40 + b}.{k + 1},branch{b},north,router\n")
            names.append(name)
    inventory = tmp_path / "net.csv"
    inventory.write_text("name,address,branch,region,type\n" + "".join(rows), encoding="utf-8")
    site = f"cv{uuid.uuid4().hex[:8]}"
    members: list[Member] = []
    with unix_redis(tmp_path) as sock:
        url = f"unix://{sock}"
        args = ["--inventory", str(inventory), "--db", pg_url, "--redis", url, "--site", site,
                "--lease-ttl", str(TTL), "--interval", "0.5", "--timeout", "0.3"]

        def start() -> Member:
            members.append(Member(tmp_path, len(members), args))
            return members[-1]

        try:
            yield url, pg_url, site, start, names
        finally:
            for m in members:
                m.kill()
            for m in members:
                assert "Traceback" not in m.log, m.log


def _owners(url: str, site: str) -> list[str | None]:
    client = redis.Redis(unix_socket_path=url.removeprefix("unix://"), socket_timeout=2)
    try:
        raw = client.mget([f"wardtui:{{{site}}}:shard:{s}" for s in range(SHARDS)])
    finally:
        client.close()
    return [None if v is None else v.decode() for v in raw]


def _dump(viewer: subprocess.Popen[bytes], out: Path) -> dict[str, Any]:
    before = out.stat().st_mtime_ns
    os.kill(viewer.pid, signal.SIGUSR1)
    wait_until(lambda: out.stat().st_mtime_ns != before, 10, "the viewer did not write its state", 0.05)
    doc: dict[str, Any] = json.loads(out.read_text())
    return doc


def _expected(url: str, site: str, names: list[str]) -> dict[str, str | None]:
    """Each device's owner per the leases now (device b{B}-d{K} is in branch{B})."""
    owners = _owners(url, site)
    return {n: owners[shard_of(f"branch{n[1:].split('-')[0]}", SHARDS)] for n in names}


class _Merged:
    """True once the viewer shows every device once, up, from its lease's owner, and a live line
    for each member (and only them); :attr:`last` says what differed at the last look."""

    def __init__(self, viewer: subprocess.Popen[bytes], out: Path, url: str, site: str, names: list[str],
                 members: list[Member]) -> None:
        self.viewer, self.out, self.url, self.site, self.names = viewer, out, url, site, names
        self.ids = {m.poller_id for m in members}
        self.last = ""
        self.moves: dict[str, list[str]] = {}  # each device's members, as shown, in order
        self.leases: dict[str, str | None] = {}  # each device's lease owner at the last look

    def _never_stale(self, pollers: dict[str, str], leases: dict[str, str | None]) -> None:
        """A device's member, as shown, changes only to its lease's owner: never to (or back to)
        a member that does not hold it while the lease stays put."""
        for name, poller in pollers.items():
            seen = self.moves.setdefault(name, [])
            if seen and seen[-1] != poller:
                lease, before = leases.get(name), self.leases.get(name)
                assert poller == lease or lease != before, \
                    f"{name} went to {poller} after {seen} while its lease stayed with {lease}"
            if not seen or seen[-1] != poller:
                seen.append(poller)
        self.leases = dict(leases)

    def __call__(self) -> bool:
        doc = _dump(self.viewer, self.out)
        pollers = doc["pollers"] or {}
        expected = _expected(self.url, self.site, self.names)
        self._never_stale(pollers, expected)
        nodes = {n["poller"]: n for n in doc["nodes"] or []}
        checks = {
            "devices": set(doc["devices"]) == set(self.names),
            "owners": pollers == expected,
            "owners are the members": set(expected.values()) == self.ids,
            "all up": all(d["state"] == "up" for d in doc["devices"].values()),
            "a line per member": set(nodes) == self.ids and all(n["live"] for n in nodes.values()),
            "lines add up": sum(n["devices"] for n in nodes.values()) == len(self.names),
        }
        failing = [k for k, ok in checks.items() if not ok]
        self.last = f"failing: {failing}; shown {pollers}; leases {expected}; nodes {list(nodes.values())}"
        return all(checks.values())

    def __str__(self) -> str:
        return self.last


def _wait(merged: _Merged, timeout: float, why: str) -> None:
    try:
        wait_until(merged, timeout, why, 0.3)
    except AssertionError as exc:
        raise AssertionError(f"{why}: {exc}; last look: {merged}") from None


def _events_since_snapshot(tmp_path: Path, url: str, site: str, names: list[str],
                           members: list[Member]) -> None:
    """``wardtui events --jsonl --since-snapshot``: every device once, first, from its owner; then
    the members' events, each naming its member."""
    out = tmp_path / "events.jsonl"
    with out.open("wb") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "wardtui", "events", "--jsonl", "--since-snapshot",
                                 "--redis", url, "--site", site], cwd=REPO, env=_env(), stdout=sink,
                                stderr=subprocess.PIPE)
        try:
            wait_until(lambda: len(out.read_text().splitlines()) >= len(names), 20,
                       "wardtui events printed no device lines")
            expected = _expected(url, site, names)
            # a gauges line from each member within a few seconds: the streams are followed
            ids = {m.poller_id for m in members}
            wait_until(lambda: ids <= {json.loads(line).get("poller") for line in out.read_text().splitlines()
                                       if json.loads(line)["type"] == "gauges"}, 15,
                       f"not every member's stream was followed: {out.read_text()[-2000:]}")
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    devices = lines[:len(names)]
    assert all(d["type"] == "device" for d in devices), (err, [(d["type"], d.get("device")) for d in lines])
    assert sorted(d["device"] for d in devices) == sorted(names)  # each once
    assert {d["device"]: d["poller"] for d in devices} == expected
    assert all(line.get("poller") in ids for line in lines)
    gauges = [line for line in lines if line["type"] == "gauges"]
    assert all(g["cluster_shards_owned"] > 0 and g["cluster_refused_writes"] == 0 for g in gauges)


def _status(url: str, site: str, db: str, members: list[Member]) -> None:
    """``wardtui status --json``: the pollers, their shards (all 256, none twice), lease ages and
    epochs (from PostgreSQL: each shard's last taker is its owner in Redis, once settled)."""
    ids = {m.poller_id for m in members}

    def read() -> dict[str, Any]:
        proc = subprocess.run([sys.executable, "-m", "wardtui", "status", "--json", "--redis", url,
                               "--site", site, "--db", db], cwd=REPO, env=_env(), capture_output=True,
                              text=True, timeout=30)
        assert proc.returncode == 0, proc.stderr
        doc: dict[str, Any] = json.loads(proc.stdout)
        return doc

    def settled() -> dict[str, Any] | None:  # no shard between two members, epochs taken
        d = read()
        pollers = d["cluster"]["pollers"]
        agree = not d["cluster"]["unowned"] and all(not p["epochs_elsewhere"] for p in pollers)
        return d if agree else None

    doc = wait_until(settled, 15, "the epochs never agreed with the leases")
    assert doc["live"] is False and doc["service"] is None  # no site-wide service: members
    cluster = doc["cluster"]
    assert cluster["shard_count"] == SHARDS and cluster["unowned"] == [] and cluster["epochs_read"]
    pollers = {p["id"]: p for p in cluster["pollers"]}
    assert set(pollers) == ids
    shards = sorted(s for p in pollers.values() for s in p["shards"])
    assert shards == list(range(SHARDS))
    for poller, p in pollers.items():
        assert p["live"] and p["host"] and p["pid"] == int(poller.split(":")[-2]) and p["since"]
        assert p["shards_owned"] == len(p["shards"]) > 0
        assert 0 <= p["lease_age_s"] <= TTL
        assert set(p["epochs"]) == {str(s) for s in p["shards"]} and all(e >= 1 for e in p["epochs"].values())
        assert {"shards_owned", "takeovers", "refused_writes"} <= set(p["gauges"])
        assert p["gauges"]["refused_writes"] == 0
    text = subprocess.run([sys.executable, "-m", "wardtui", "status", "--redis", url, "--site", site,
                           "--db", db], cwd=REPO, env=_env(), capture_output=True, text=True, timeout=30)
    assert text.returncode == 0, text.stderr
    assert all(f"{poller}: " in text.stdout for poller in ids), text.stdout
    assert f"2 pollers live, 256 shards, lease TTL {TTL:g} s, 0 unowned" in text.stdout


@pytest.mark.alone
def test_a_viewer_merges_every_member_and_follows_joins_and_leaves(
        tmp_path: Path, cluster: tuple[str, str, str, Start, list[str]]) -> None:
    url, db, site, start, names = cluster
    members = [start(), start()]
    wait_until(lambda: all(m.poller_id for m in members), 30, "the members never joined")
    ids = {m.poller_id for m in members}
    wait_until(lambda: set(_owners(url, site)) == ids, 30, "the shards were never shared by both members")
    out = tmp_path / "viewer.json"
    viewer = subprocess.Popen([sys.executable, "-m", "tests.procs.viewer", url, site, str(out), "--cluster"],
                              cwd=REPO, env=_env())
    try:
        wait_until(out.exists, 20, "the viewer never attached")
        merged = _Merged(viewer, out, url, site, names, members)
        _wait(merged, 30, "the viewer never showed both members' devices once each")
        nodes = _dump(viewer, out)["nodes"]
        for node in nodes:
            assert node["shards"] > 0 and node["lease_age_s"] is not None and node["lease_age_s"] <= TTL
            assert node["lag_p99_ms"] is not None and node["skipped"] is not None
        _events_since_snapshot(tmp_path, url, site, names, members)
        _status(url, site, db, members)

        members.append(start())  # a third joins: the viewer follows it, no restart
        wait_until(lambda: members[2].poller_id is not None, 30, "the third member never joined")
        merged.ids = {m.poller_id for m in members}
        _wait(merged, 40, "the viewer never showed the third member's share")

        members[0].stop()  # one leaves: its devices come from the others, once each
        left = members.pop(0)
        assert left.proc.returncode == 0, left.log
        merged.ids = {m.poller_id for m in members}
        _wait(merged, 40, "the viewer still showed the member that left")
        assert any(len(seen) > 1 for seen in merged.moves.values())  # devices moved, never to a stale one
        assert viewer.poll() is None
    finally:
        viewer.send_signal(signal.SIGTERM)
        viewer.wait(10)
