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
DEVICES = 30  # 10 branches of 3


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
def cluster(tmp_path: Path, pg_url: str) -> Iterator[tuple[str, str, Start, list[str]]]:  # noqa: F811
    """(the Redis URL, the site, a way to start a member, the device names)."""
    rows, names = [], []
    for b in range(DEVICES // 3):
        for k in range(3):
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
            yield url, site, start, names
        finally:
            for m in members:
                m.kill()
            for m in members:
                assert "Traceback" not in m.log, m.log


def _owners(url: str, site: str) -> list[str | None]:
    client = redis.Redis(unix_socket_path=url.removeprefix("unix://"), socket_timeout=2)
    try:
        raw = client.mget([f"wardtui:{site}:shard:{s}" for s in range(SHARDS)])
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


def _merged(viewer: subprocess.Popen[bytes], out: Path, url: str, site: str, names: list[str],
            members: list[Member]) -> Callable[[], bool]:
    """True once the viewer shows every device once, up, from its lease's owner, and a live
    line for each member (and only them)."""
    ids = {m.poller_id for m in members}

    def check() -> bool:
        doc = _dump(viewer, out)
        pollers = doc["pollers"] or {}
        expected = _expected(url, site, names)
        nodes = {n["poller"]: n for n in doc["nodes"] or []}
        return (set(doc["devices"]) == set(names) and pollers == expected
                and set(expected.values()) == ids
                and all(d["state"] == "up" for d in doc["devices"].values())
                and set(nodes) == ids and all(n["live"] for n in nodes.values())
                and sum(n["devices"] for n in nodes.values()) == len(names))
    return check


@pytest.mark.alone
def test_a_viewer_merges_every_member_and_follows_joins_and_leaves(
        tmp_path: Path, cluster: tuple[str, str, Start, list[str]]) -> None:
    url, site, start, names = cluster
    members = [start(), start()]
    wait_until(lambda: all(m.poller_id for m in members), 30, "the members never joined")
    ids = {m.poller_id for m in members}
    wait_until(lambda: set(_owners(url, site)) == ids, 30, "the shards were never shared by both members")
    out = tmp_path / "viewer.json"
    viewer = subprocess.Popen([sys.executable, "-m", "tests.procs.viewer", url, site, str(out), "--cluster"],
                              cwd=REPO, env=_env())
    try:
        wait_until(out.exists, 20, "the viewer never attached")
        wait_until(_merged(viewer, out, url, site, names, members), 30,
                   f"the viewer never showed both members' devices once each: {out.read_text()}", 0.3)
        nodes = _dump(viewer, out)["nodes"]
        for node in nodes:
            assert node["shards"] > 0 and node["lease_age_s"] is not None and node["lease_age_s"] <= TTL
            assert node["lag_p99_ms"] is not None and node["skipped"] is not None

        members.append(start())  # a third joins: the viewer follows it, no restart
        wait_until(lambda: members[2].poller_id is not None, 30, "the third member never joined")
        wait_until(_merged(viewer, out, url, site, names, members), 40,
                   f"the viewer never showed the third member's share: {out.read_text()}", 0.3)

        members[0].stop()  # one leaves: its devices come from the others, once each
        left = members.pop(0)
        assert left.proc.returncode == 0, left.log
        wait_until(_merged(viewer, out, url, site, names, members), 40,
                   f"the viewer still showed the member that left: {out.read_text()}", 0.3)
        assert viewer.poll() is None
    finally:
        viewer.send_signal(signal.SIGTERM)
        viewer.wait(10)
