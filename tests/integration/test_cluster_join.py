"""A fourth ``wardtui serve --cluster`` joins three (issue 16 item 6): the shares rebalance a
bounded number of shards a round, and no device is probed by two pollers beyond one interval of
hand-over, as seen on the wire.

Real parts: four member processes in the lab's monitor namespace, one PostgreSQL database (the
shared server, through its unix socket), a private Redis (a unix socket). What each member
probes is not taken from the members' word: a recorder in the lab's hosts namespace
(tests/lab/probe_recorder.py) logs every echo request that reaches a device, with the ICMP
identifier that tells the probing processes apart (wardtui's raw socket picks one per process).
For every device, each prober's tenure (its probes, cut where it pauses for more than three
intervals) must not overlap another's for more than one interval. The same detector is shown
to catch double polling: a plain ``wardtui poll`` of the same devices (its own SQLite history)
started beside the cluster is found probing every device a member probes.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import pytest

from poller.cluster.shards import shard_of
from tests.integration.postgres import pg_url  # noqa: F401  (the fixture)
from tests.integration.test_cluster_serve import PG_SOCKET, REPO, Member, Truth, _env
from tests.lab.netns import Lab
from tests.procs.redis import unix_redis
from tests.waiting import wait_until

TTL = 3.0
INTERVAL = 0.5
SHARDS = 256
DEVICES = 200
RECORDER = REPO / "tests" / "lab" / "probe_recorder.py"
MAX_MOVES = 8  # poller/cluster/leases.py DEFAULT_MAX_MOVES
Probes = dict[str, list[tuple[float, int]]]  # address -> [(arrival, ICMP identifier)]


class Recorder:
    """tests/lab/probe_recorder.py in the lab's hosts namespace."""

    def __init__(self, lab: Lab, path: Path) -> None:
        self.path = path
        self.proc = subprocess.Popen(["ip", "netns", "exec", lab.h, sys.executable, str(RECORDER),
                                      "--out", str(path)], stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        assert line == "ready", f"the probe recorder did not start ({line!r})"

    def probes(self, since: float = 0.0) -> Probes:
        found: Probes = defaultdict(list)
        for line in self.path.read_text(encoding="ascii").splitlines():
            parts = line.split()
            if len(parts) == 4 and float(parts[0]) >= since:
                found[parts[1]].append((float(parts[0]), int(parts[2])))
        return found

    def stop(self) -> int:
        """Stops it; returns the requests its socket's buffer dropped (0: it saw every one)."""
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        last = self.path.read_text(encoding="ascii").splitlines()[-1].split()
        assert last[0] == "overflow", "the recorder did not finish its file"
        return int(last[1])


def tenures(times: list[float], gap: float) -> list[tuple[float, float]]:
    """Spans of one prober's probes of one device, cut where it paused for more than ``gap``."""
    spans: list[tuple[float, float]] = []
    for t in times:
        if spans and t - spans[-1][1] <= gap:
            spans[-1] = (spans[-1][0], t)
        else:
            spans.append((t, t))
    return spans


def double_polling(probes: Probes, interval: float) -> dict[str, float]:
    """address -> the longest time two probers' tenures of it overlapped (only devices probed by
    two or more)."""
    worst: dict[str, float] = {}
    for address, seen in probes.items():
        by_ident: dict[int, list[float]] = defaultdict(list)
        for t, ident in sorted(seen):
            by_ident[ident].append(t)
        spans = {i: tenures(ts, 3 * interval) for i, ts in by_ident.items()}
        idents = sorted(spans)
        overlap = None
        for a in idents:
            for b in idents:
                if a < b:
                    for s0, e0 in spans[a]:
                        for s1, e1 in spans[b]:
                            o = min(e0, e1) - max(s0, s1)
                            overlap = o if overlap is None else max(overlap, o)
        if overlap is not None:
            worst[address] = overlap
    return worst


def hand_over_gaps(probes: Probes, interval: float) -> list[float]:
    """For every change of prober on a device: first probe of the new one minus last of the old
    (negative: they overlapped)."""
    gaps = []
    for seen in probes.values():
        ordered = sorted(seen)
        for (t0, i0), (t1, i1) in pairwise(ordered):
            if i0 != i1:
                gaps.append(t1 - t0)
    return gaps


Site = tuple[Truth, list[str], dict[str, str], list[str]]


@pytest.fixture
def site(tmp_path: Path, lab: Lab, pg_url: str) -> Iterator[Site]:  # noqa: F811
    user, name = re.match(r"postgresql\+asyncpg://([^@]+)@[^/]+/(\w+)", pg_url).groups()  # type: ignore[union-attr]
    socket_url = f"postgresql://{user}@/{name}?host={PG_SOCKET}"
    addresses = lab.healthy(DEVICES, start=20)
    branches = {a: f"branch{i}" for i, a in enumerate(addresses)}
    inventory = tmp_path / "net.csv"
    inventory.write_text("name,address,branch,region,type,parent\n" + "".join(
        f"d{i},{a},{branches[a]},north,router,\n" for i, a in enumerate(addresses)), encoding="utf-8")
    site_name = f"cj{uuid.uuid4().hex[:8]}"
    with unix_redis(tmp_path) as sock:
        args = ["--inventory", str(inventory), "--db", socket_url, "--redis", f"unix://{sock}",
                "--site", site_name, "--lease-ttl", str(TTL), "--interval", str(INTERVAL),
                "--timeout", "0.3", "--confirm-spacing", "0.1"]
        yield Truth(sock, pg_url, site_name), args, branches, [str(inventory)]


@pytest.mark.lab
@pytest.mark.alone  # timing: hand-overs measured against one 0.5 s interval
def test_a_fourth_member_rebalances_boundedly_and_no_device_is_probed_by_two(
        site: Site, lab: Lab, tmp_path: Path) -> None:
    truth, args, branches, (inventory,) = site
    recorder = Recorder(lab, tmp_path / "probes.txt")
    members: list[Member] = []
    control: subprocess.Popen[bytes] | None = None
    try:
        members += [Member(lab, tmp_path, n, args) for n in range(3)]
        wait_until(lambda: all(m.poller_id for m in members), 60, "a member never joined")

        def shares() -> Counter[str | None]:
            return Counter(truth.owners())

        def balanced(n: int) -> bool:
            counts = shares()
            ids = {m.poller_id for m in members[:n]}
            return set(counts) == ids and all(abs(c - SHARDS / n) < 1 for c in counts.values())

        wait_until(lambda: balanced(3), 60, f"three members never balanced: {shares()}")
        time.sleep(3 * INTERVAL)  # every device probed by its settled owner
        logged = [len(m.log) for m in members]  # what the three logged before the fourth came
        joined = time.time()
        members.append(Member(lab, tmp_path, 3, args))
        wait_until(lambda: members[3].poller_id, 60, "the fourth member never joined")
        wait_until(lambda: balanced(4), 60, f"four members never balanced: {shares()}")
        balanced_at = time.time()
        final = shares()
        time.sleep(4 * INTERVAL)  # the new owners' probes, and any old owner's late ones
        probes = recorder.probes()
        owners = truth.owners()

        # Bounded moves: each old member gave back at most MAX_MOVES a round, and only to the
        # newcomer; the newcomer ended with its share, the others with theirs.
        released = [int(n) for m, before in zip(members[:3], logged, strict=True)
                    for n in re.findall(r" lost (\d+) shards \(rebalanced\)", m.log[before:])]
        assert released and max(released) <= MAX_MOVES, released
        assert sum(released) == final[members[3].poller_id], (released, final)
        assert sorted(final.values()) == [64, 64, 64, 64], final

        # On the wire: every device probed, by one prober per member, none by two at once.
        assert set(probes) == set(branches), "a device was never probed"
        worst = double_polling(probes, INTERVAL)
        over = {a: round(o, 3) for a, o in worst.items() if o > INTERVAL}
        assert not over, f"probed by two pollers for longer than one interval: {over}"
        # The identifiers are the members: the last prober of each device names the Redis owner
        # of its shard, one identifier per member.
        last_ident = {a: max(seen)[1] for a, seen in probes.items()}
        ident_owner: dict[int, set[str | None]] = defaultdict(set)
        for a, ident in last_ident.items():
            ident_owner[ident].add(owners[shard_of(branches[a], SHARDS)])
        assert all(len(o) == 1 for o in ident_owner.values()), ident_owner
        assert len(ident_owner) == 4, ident_owner
        moved = [a for a, seen in probes.items() if len({i for t, i in seen if t >= joined}) > 1]
        gaps = hand_over_gaps({a: [p for p in probes[a] if p[0] >= joined] for a in moved}, INTERVAL)
        assert moved and gaps and min(gaps) > -INTERVAL, gaps

        # The negative control: a plain poller of the same devices beside the cluster (its own
        # SQLite history): the same detector must find it probing what the members probe.
        started = time.time()
        control = lab.popen([sys.executable, "-m", "wardtui", "poll", "--inventory", inventory,
                             "--db", f"sqlite:///{tmp_path / 'control.db'}", "--interval", str(INTERVAL),
                             "--timeout", "0.3", "--jsonl"], cwd=REPO, env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
        wait_until(lambda: len(recorder.probes(started)) == DEVICES
                   and all(len({i for _, i in s}) == 2 for s in recorder.probes(started).values()),
                   60, "the control poller never probed every device")
        time.sleep(4 * INTERVAL)
        caught = double_polling(recorder.probes(started), INTERVAL)
        assert len([o for o in caught.values() if o > INTERVAL]) == DEVICES, caught
    finally:
        if control is not None:
            control.kill()
            control.wait(10)
        for m in members:
            m.kill()
        overflow = recorder.stop()
    assert overflow == 0, f"the recorder's socket dropped {overflow} requests: it did not see all"
    for m in members:
        assert "Traceback" not in m.log, m.log
    print(f"fourth member: balanced {balanced_at - joined:.2f} s after its start; releases of "
          f"{sorted(released)} shards; {len(moved)} devices moved; hand-over gaps "
          f"{min(gaps):.2f}-{max(gaps):.2f} s; worst overlap of two members "
          f"{max(worst.values(), default=float('-inf')):.2f} s; control overlap "
          f"{min(caught.values()):.2f}-{max(caught.values()):.2f} s")
