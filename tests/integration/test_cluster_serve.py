"""``wardtui serve --cluster`` as real processes (issue 16): three members in the lab's monitor
namespace, one PostgreSQL database (the shared server, through its unix socket), one private
Redis (a unix socket: 127.0.0.1 in the namespace is the namespace's own), a short lease TTL.

One member is killed with SIGKILL while a device it polls is DOWN: every shard must be owned
again (in Redis, and its epoch taken in PostgreSQL by a live member) within 2 x TTL, and the
history must hold exactly what happened: one outage per device that went down, never opened
twice, closed once when it came back, and no device reported UP again on a hand-over. Then a
member is paused with SIGSTOP for longer than the TTL and continued: what it observed meanwhile
is refused by the database (counted), and it rejoins.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis

from poller.cluster.shards import shard_of
from tests.integration.postgres import pg_url  # noqa: F401  (the fixture)
from tests.lab.netns import Lab
from tests.ports import free_port
from tests.procs.redis import unix_redis
from tests.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]
TTL = 3.0
SHARDS = 256
PG_SOCKET = "/var/run/postgresql"


def _env() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("WARDTUI_REDIS", None)
    env.pop("WARDTUI_DB", None)
    return env


class Member:
    """One ``wardtui serve --cluster`` in the lab's monitor namespace."""

    def __init__(self, lab: Lab, tmp: Path, n: int, args: list[str]) -> None:
        self.n = n
        self.log_path = tmp / f"member{n}.log"
        self.metrics_port = free_port()
        with self.log_path.open("wb") as log:
            self.proc = lab.popen([sys.executable, "-m", "wardtui", "serve", "--cluster", *args,
                                   "--spool", str(tmp / f"spool{n}"),
                                   "--metrics", f"127.0.0.1:{self.metrics_port}"],
                                  cwd=REPO, env=_env(), stdout=subprocess.DEVNULL, stderr=log)
        self.lab = lab

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    @property
    def poller_id(self) -> str | None:
        found = re.search(r"cluster: joining site \S+ as (\S+) ", self.log)
        return found[1] if found else None

    def gauge(self, name: str) -> float:
        """A figure of the member's metrics (read inside the namespace: its 127.0.0.1)."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        out = self.lab.run([sys.executable, "-c", f"import urllib.request;print(urllib.request.urlopen("
                            f"{url!r}, timeout=5).read().decode())"], capture_output=True, text=True,
                           timeout=20)
        for line in out.stdout.splitlines():
            if line.startswith(f"wardtui_{name} ") or line.startswith(f"wardtui_{name}_total "):
                return float(line.split()[-1])
        raise AssertionError(f"no {name} in the metrics of member {self.n}:\n{out.stdout}{out.stderr}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(40)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


class Truth:
    """What Redis and PostgreSQL say, read from the test's own namespace."""

    def __init__(self, redis_socket: Path, db_url: str, site: str) -> None:
        self.redis = redis.Redis(unix_socket_path=str(redis_socket), socket_timeout=2)
        self.dsn = db_url.replace("+asyncpg", "")
        self.site = site

    def owners(self) -> list[str | None]:
        raw = self.redis.mget([f"wardtui:{{{self.site}}}:shard:{s}" for s in range(SHARDS)])
        return [None if v is None else v.decode() for v in raw]

    def sql(self, query: str, *args: Any) -> list[asyncpg.Record]:
        async def run() -> list[asyncpg.Record]:
            conn = await asyncpg.connect(self.dsn, timeout=5)
            try:
                return list(await conn.fetch(query, *args))
            except asyncpg.UndefinedTableError:
                return []
            finally:
                await conn.close()

        return asyncio.run(run())

    def epochs(self) -> dict[int, tuple[int, str]]:
        rows = self.sql("SELECT shard, epoch, owner FROM shard_epochs WHERE site = $1", self.site)
        return {r["shard"]: (r["epoch"], r["owner"]) for r in rows}

    def outages(self) -> dict[str, list[tuple[datetime, datetime | None]]]:
        rows = self.sql("SELECT d.name, o.start, o.\"end\" FROM outages o "
                        "JOIN devices d ON d.id = o.device_id ORDER BY o.start")
        found: dict[str, list[tuple[datetime, datetime | None]]] = {}
        for r in rows:
            found.setdefault(r["name"], []).append((r["start"], r["end"]))
        return found

    def transitions(self) -> dict[str, list[tuple[str, str]]]:
        rows = self.sql("SELECT d.name, t.from_state, t.to_state FROM transitions t "
                        "JOIN devices d ON d.id = t.device_id ORDER BY t.at, t.id")
        found: dict[str, list[tuple[str, str]]] = {}
        for r in rows:
            found.setdefault(r["name"], []).append((r["from_state"], r["to_state"]))
        return found


Site = tuple["Truth", Callable[[], Member], dict[str, Any]]


@pytest.fixture
def cluster_site(tmp_path: Path, lab: Lab, pg_url: str) -> Iterator[Site]:  # noqa: F811
    """The inventory (branches of a router and two leaves in the lab's healthy net, and dead
    devices, each its own branch), the private Redis, and a way to start members."""
    user, name = re.match(r"postgresql\+asyncpg://([^@]+)@[^/]+/(\w+)", pg_url).groups()  # type: ignore[union-attr]
    socket_url = f"postgresql://{user}@/{name}?host={PG_SOCKET}"
    hosts = lab.healthy(54, start=160)
    dead = lab.dead(6)
    rows, healthy, leaves = [], [], []
    for b in range(18):
        router, *kids = hosts[b * 3 : b * 3 + 3]
        rows.append(f"r{b},{router},branch{b},north,router,\n")
        healthy.append(f"r{b}")
        for k, address in enumerate(kids):
            rows.append(f"s{b}-{k},{address},branch{b},north,switch,r{b}\n")
            healthy.append(f"s{b}-{k}")
            leaves.append((f"s{b}-{k}", address, f"branch{b}"))
    for i, address in enumerate(dead):
        rows.append(f"dead{i},{address},dead{i},south,router,\n")
    inventory = tmp_path / "net.csv"
    inventory.write_text("name,address,branch,region,type,parent\n" + "".join(rows), encoding="utf-8")
    site = f"cl{uuid.uuid4().hex[:8]}"
    members: list[Member] = []
    with unix_redis(tmp_path) as sock:
        args = ["--inventory", str(inventory), "--db", socket_url, "--redis", f"unix://{sock}",
                "--site", site, "--lease-ttl", str(TTL), "--interval", "0.5", "--timeout", "0.3",
                "--confirm-spacing", "0.1"]

        def start() -> Member:
            members.append(Member(lab, tmp_path, len(members), args))
            return members[-1]

        info = {"healthy": healthy, "leaves": leaves, "dead": [f"dead{i}" for i in range(len(dead))]}
        try:
            yield Truth(sock, pg_url, site), start, info
        finally:
            for m in members:
                m.kill()
            for m in members:
                assert "Traceback" not in m.log, m.log


def _pid(poller_id: str | None) -> int:
    assert poller_id is not None
    return int(poller_id.split(":")[1])


def _settled(truth: Truth, members: list[Member], info: dict[str, Any]) -> bool:
    ids = {m.poller_id for m in members}
    owners = truth.owners()
    if None in owners or set(owners) != ids:
        return False
    outages, transitions = truth.outages(), truth.transitions()
    return (all(n in outages for n in info["dead"])
            and all(transitions.get(n, [("", "")])[-1][1] == "up" for n in info["healthy"]))


@pytest.mark.lab
@pytest.mark.alone  # a deadline: every shard owned again within 2 x TTL
def test_a_killed_member_s_shards_are_taken_over_within_two_ttls_and_the_history_stays_exact(
        cluster_site: Site, lab: Lab) -> None:
    truth, start, info = cluster_site
    members = [start() for _ in range(3)]
    wait_until(lambda: all(m.poller_id for m in members), 60, "a member never joined")
    wait_until(lambda: _settled(truth, members, info), 90,
          f"the cluster never settled: owners {sorted(set(map(str, truth.owners())))}")
    dead_starts = {n: truth.outages()[n] for n in info["dead"]}
    # The victim: the owner of a dead device's shard; the device blocked: a leaf on its shards.
    owners = truth.owners()
    victim_id = owners[shard_of("dead0")]
    victim = next(m for m in members if m.poller_id == victim_id)
    mine = [s for s, o in enumerate(owners) if o == victim_id]
    leaf = next(((n, a) for n, a, b in info["leaves"] if shard_of(b) in mine), None)
    assert leaf is not None, "the victim polls no leaf (18 branches on 256 shards: rare); run again"
    name, address = leaf
    lab.block(address)
    try:
        opened = wait_until(lambda: truth.outages().get(name), 20, f"{name} never went down")
        assert len(opened) == 1 and opened[0][1] is None
        before = truth.epochs()
        killed = time.monotonic()
        victim.kill()
        survivors = {m.poller_id for m in members if m is not victim}

        def taken_over() -> bool:
            owners = truth.owners()
            if any(o not in survivors for o in owners):
                return False
            epochs = truth.epochs()
            return all(epochs[s][1] == owners[s] and epochs[s][0] > before[s][0] for s in mine)

        wait_until(taken_over, 4 * TTL, "the victim's shards were not taken over", pace=0.05)
        took = time.monotonic() - killed
        assert took <= 2 * TTL, f"takeover took {took:.2f} s, over 2 x TTL ({2 * TTL} s)"
        time.sleep(2.0)  # the new owner polls the blocked leaf: it must stay DOWN, one outage
        assert truth.outages()[name] == opened
    finally:
        lab.unblock(address)
    wait_until(lambda: truth.outages()[name][0][1] is not None, 20, f"{name}'s outage never closed")
    for m in members:
        if m is not victim:
            assert m.stop() == 0, m.log
    outages, transitions = truth.outages(), truth.transitions()
    assert outages[name] == [(opened[0][0], outages[name][0][1])]
    assert transitions[name] == [("unknown", "up"), ("up", "down"), ("down", "up")]
    for n in info["dead"]:
        assert outages[n] == dead_starts[n] and outages[n][0][1] is None, n
        assert transitions[n] == [("unknown", "down")], n
    for n in info["healthy"]:
        if n != name:
            assert transitions[n] == [("unknown", "up")], (n, transitions[n])
            assert n not in outages, n
    print(f"takeover after SIGKILL: {took:.2f} s (TTL {TTL} s); shards moved: {len(mine)}")


@pytest.mark.lab
@pytest.mark.alone  # a deadline: a paused member's shards owned again within 2 x TTL
def test_a_refused_write_stands_the_member_down_and_a_paused_member_loses_its_shards_and_rejoins(
        cluster_site: Site, lab: Lab) -> None:
    """Refused: the epoch of a shard a member polls is raised under it in PostgreSQL (what a Redis
    failover that lost the lease and a takeover by another would do); the member's next write of
    that shard is refused, counted, it stands down, and the shard is taken again (a new epoch)
    and its outage recorded once. Paused: SIGSTOP longer than the TTL: the other member owns
    every shard within 2 x TTL; continued, the paused one drops what it held at its local
    deadlines and takes shards again."""
    truth, start, info = cluster_site
    members = [start() for _ in range(2)]
    wait_until(lambda: all(m.poller_id for m in members), 60, "a member never joined")
    wait_until(lambda: _settled(truth, members, info), 90, "the cluster never settled")
    owners = truth.owners()
    p, q = members
    name, address, branch = next(leaf for leaf in info["leaves"] if owners[shard_of(leaf[2])] == p.poller_id)
    shard = shard_of(branch)
    bumped = truth.sql("UPDATE shard_epochs SET epoch = epoch + 1, owner = 'a stolen lease' "
                       "WHERE site = $1 AND shard = $2 RETURNING epoch", truth.site, shard)[0]["epoch"]
    lab.block(address)
    try:
        wait_until(lambda: p.gauge("cluster_refused_writes") >= 1, 30, "the stale write was not refused")
        assert p.gauge("cluster_refused_transitions") >= 1
        assert "standing down from 1 shards" in p.log
        opened = wait_until(lambda: truth.outages().get(name), 30, f"{name}'s outage was never recorded")
        epoch, owner = truth.epochs()[shard]
        assert epoch > bumped and owner in (p.poller_id, q.poller_id)
    finally:
        lab.unblock(address)
    wait_until(lambda: truth.outages()[name][0][1] is not None, 20, f"{name}'s outage never closed")
    assert len(truth.outages()[name]) == 1 and truth.outages()[name][0][0] == opened[0][0]

    os.kill(p.proc.pid, signal.SIGSTOP)
    paused = time.monotonic()
    try:
        wait_until(lambda: set(truth.owners()) == {q.poller_id}, 4 * TTL, "Q never took every shard",
                   pace=0.05)
        took = time.monotonic() - paused
        assert took <= 2 * TTL, f"takeover from a paused member took {took:.2f} s"
        time.sleep(max(0.0, 2.5 * TTL - took))
    finally:
        os.kill(p.proc.pid, signal.SIGCONT)
    wait_until(lambda: "(expired)" in p.log, 10, "the paused member did not drop its shards")
    wait_until(lambda: p.poller_id in truth.owners(), 30, "the paused member never rejoined")
    wait_until(lambda: p.gauge("cluster_shards_owned") >= 1, 30, "the paused member polls nothing again")
    time.sleep(1.0)
    for m in members:
        assert m.stop() == 0, m.log
    outages, transitions = truth.outages(), truth.transitions()
    assert transitions[name] == [("unknown", "up"), ("up", "down"), ("down", "up")]
    for n in info["dead"]:
        assert len(outages[n]) == 1 and outages[n][0][1] is None, n
        assert transitions[n] == [("unknown", "down")], n
    for n in info["healthy"]:
        if n != name:
            assert transitions[n] == [("unknown", "up")], (n, transitions[n])
            assert n not in outages, n
    print(f"takeover from a paused member: {took:.2f} s (TTL {TTL} s); refused writes "
          f"{p.log.count('write refused')}")


@pytest.mark.lab
def test_a_parent_on_another_member_s_shard_makes_its_children_unreachable_not_down(
        tmp_path: Path, lab: Lab, pg_url: str) -> None:  # noqa: F811
    """Shards go by branch, so a branch router whose parent is the region's core (another
    branch) is often on another member than the core: that member does not poll the core. It
    used to judge the routers DOWN when the core failed (146 of examples/bank.csv's 875 devices
    have such a parent): a false DOWN, and a page, for every branch behind a core. Now a router
    failing probes its remote parent before it is declared: UNREACHABLE, recorded so."""
    user, name = re.match(r"postgresql\+asyncpg://([^@]+)@[^/]+/(\w+)", pg_url).groups()  # type: ignore[union-attr]
    core, *routers = lab.healthy(9, start=230)
    rows = [f"core,{core},core,north,router,\n"]
    rows += [f"r{i},{address},site{i},north,router,core\n" for i, address in enumerate(routers)]
    inventory = tmp_path / "net.csv"
    inventory.write_text("name,address,branch,region,type,parent\n" + "".join(rows), encoding="utf-8")
    site = f"cl{uuid.uuid4().hex[:8]}"
    with unix_redis(tmp_path) as sock:
        args = ["--inventory", str(inventory), "--db", f"postgresql://{user}@/{name}?host={PG_SOCKET}",
                "--redis", f"unix://{sock}", "--site", site, "--lease-ttl", str(TTL), "--interval", "0.5",
                "--timeout", "0.3", "--confirm-spacing", "0.1"]
        members = [Member(lab, tmp_path, n, args) for n in range(2)]
        truth = Truth(sock, pg_url, site)
        blocked: list[str] = []
        try:
            names = ["core", *(f"r{i}" for i in range(len(routers)))]
            wait_until(lambda: len({o for o in truth.owners()} - {None}) == 2
                       and all(truth.transitions().get(n, [("", "")])[-1][1] == "up" for n in names),
                       90, "the cluster never settled")
            owners = truth.owners()
            core_owner = owners[shard_of("core")]
            remote = [f"r{i}" for i in range(len(routers)) if owners[shard_of(f"site{i}")] != core_owner]
            assert remote, "every branch landed with the core (8 branches, 2 members: rare); run again"
            for address in (core, *routers):
                lab.block(address)
                blocked.append(address)
            wait_until(lambda: all(n in truth.outages() for n in names), 30, "not every device went out")
            time.sleep(1.0)  # two more intervals: nothing changes
            transitions = truth.transitions()
            assert transitions["core"] == [("unknown", "up"), ("up", "down")]
            for n in names[1:]:
                assert transitions[n] == [("unknown", "up"), ("up", "unreachable")], (n, transitions[n],
                                                                                      n in remote)
        finally:
            for address in blocked:
                lab.unblock(address)
            for m in members:
                m.kill()
        for m in members:
            assert "Traceback" not in m.log, m.log
