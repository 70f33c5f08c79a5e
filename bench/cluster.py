"""Several pollers on one box (issue 16 item 7): what coordination costs, and how long failover
takes.

Every poller is a process of bench/_cluster_member.py: `wardtui serve [--cluster]` (the same
Runtime and wardtui.service.serve, PostgreSQL history, fenced writes and shard leases) with a
fake prober that sends nothing and answers every probe at once, so what the process spends is
the engine, the history writer and the cluster's work. A private redis-server on a free loopback
port; scratch databases on the PostgreSQL server at 127.0.0.1:5432 (created and dropped here).

Part ``cost``, for each poller count K of --pollers: K members of one site with the whole
inventory (--devices; 20 devices a branch), settled (every shard owned, every member one full
interval into its share); then over --window seconds: Redis commands a second (INFO commandstats
delta: commands sent by the clients, and every command run including those inside the lease
scripts), each member's process CPU (/proc/PID/stat) per 10,000 checks; then, as the baseline in
the same run, one plain poller (no --cluster, no Redis) of an inventory of devices/K devices,
same interval, same window. --repeat: the whole part again (the machine is shared).

Part ``failover``: --members members with a short --ttl; --kills times: SIGKILL a random member,
time until (a) every shard is leased in Redis by a live member and its epoch raised in
PostgreSQL to that member, and (b) the survivors poll every shard again (their
cluster_shards_owned gauges, written every 0.25 s); start a replacement and wait for the balance.
Then --default-kills more at TTL 10 s. Median and worst against 2 x TTL.

Run as root from the repository (PostgreSQL on 127.0.0.1:5432, trust auth for postgres):
    python bench/cluster.py --devices 200000 --pollers 1,2,4 --kills 20 [--write]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._report import write_section  # noqa: E402
from bench.feed import RedisServer as FeedRedisServer  # noqa: E402
from poller.live import Keys  # noqa: E402

SHARDS = 256
PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
TICK = os.sysconf("SC_CLK_TCK")


class RedisServer(FeedRedisServer):
    """bench/feed.py's private redis-server, and what this bench reads of it."""

    def commandstats(self) -> dict[str, int]:
        raw = self.client.info("commandstats")
        return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in raw.items()}

    def owners(self, site: str) -> list[str | None]:
        keys = Keys(site)  # wardtui:{SITE}:shard:N (the site is a Redis Cluster hash tag)
        raw = self.client.mget([keys.shard(s) for s in range(SHARDS)])
        return [None if v is None else v.decode() if isinstance(v, bytes) else str(v) for v in raw]


def pg(sql: str, *args: Any, db: str = "test") -> list[asyncpg.Record]:
    async def run() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(database=db, timeout=10, **PG)
        try:
            return list(await conn.fetch(sql, *args))
        finally:
            await conn.close()

    return asyncio.run(run())


def new_db() -> str:
    name = f"wardtui_bench_{uuid.uuid4().hex[:10]}"
    pg(f'CREATE DATABASE "{name}"')
    return name


def drop_db(name: str) -> None:
    pg(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def inventory(path: Path, devices: int) -> Path:
    """``devices`` devices, 20 a branch, on addresses nothing is ever sent to (fake prober)."""
    with path.open("w") as out:
        out.write("name,address,branch,region,type,parent\n")
        for i in range(devices):
            out.write(f"d{i},10.{64 + (i >> 16)}.{(i >> 8) & 255}.{i & 255},b{i // 20},north,router,\n")
    return path


def proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


class Member:
    count = 0

    def __init__(self, tmp: Path, inv: Path, db: str, interval: float, cluster: bool = True,
                 redis_url: str = "", site: str = "", ttl: float = 10.0, stats_every: float = 1.0) -> None:
        Member.count += 1
        n = Member.count
        self.stats = tmp / f"stats{n}.jsonl"
        self.log = tmp / f"member{n}.log"
        argv = [sys.executable, str(ROOT / "bench" / "_cluster_member.py"), "--inventory", str(inv),
                "--db", f"postgresql://postgres@127.0.0.1:5432/{db}", "--stats", str(self.stats),
                "--spool", str(tmp / f"spool{n}"), "--interval", str(interval),
                "--stats-every", str(stats_every)]
        if cluster:
            argv += ["--cluster", "--redis", redis_url, "--site", site, "--lease-ttl", str(ttl)]
        with self.log.open("wb") as err:
            self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err)
        self.pid = self.proc.pid

    def poller_id(self) -> str | None:
        for line in self.log.read_text(errors="replace").splitlines():
            if "cluster: joining site" in line:
                return line.split(" as ")[1].split()[0]
        return None

    def losses(self) -> int:
        """Shards this member lost other than by giving them back for the balance or at a stop:
        not renewed in time (a stalled or starved process), or found taken."""
        text = self.log.read_text(errors="replace")
        return sum(int(n) for n in re.findall(r" lost (\d+) shards \((?:expired|not renewed|taken)\)", text))

    def records(self) -> list[dict[str, Any]]:
        if not self.stats.exists():
            return []
        out = []
        for line in self.stats.read_text().splitlines():
            with contextlib.suppress(ValueError):  # a line being written
                out.append(json.loads(line))
        return out

    def last(self) -> dict[str, Any]:
        rows = self.records()
        return rows[-1] if rows else {}

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> int | None:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(120)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.wait()

    def kill(self) -> None:
        if self.alive():
            self.proc.kill()
        self.proc.wait()


def wait(what: Any, timeout: float, why: str, pace: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = what()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(why)
        time.sleep(pace)


def settled(members: list[Member], total: int, interval: float) -> bool:
    """Every device polled by one member, each member one full interval into its share."""
    for m in members:
        if not m.alive():
            tail = m.log.read_text(errors="replace").splitlines()[-5:]
            raise RuntimeError(f"a poller exited ({m.proc.returncode}): " + " / ".join(tail))
    lasts = [m.last() for m in members]
    if any(not r for r in lasts) or sum(r.get("polled", 0) for r in lasts) != total:
        return False
    for m in members:
        rows = m.records()
        mine = rows[-1]["polled"]
        since = [r for r in rows if r["polled"] == mine]
        # stable for over an interval, and checks done in that time cover the share
        if since[-1]["t"] - since[0]["t"] < 1.5 * interval:
            return False
        if since[-1]["checks_done"] - since[0]["checks_done"] < 0.9 * mine:
            return False
    return True


def window(members: list[Member], server: RedisServer | None, seconds: float) -> dict[str, Any]:
    stats0 = server.commandstats() if server else {}
    rcpu0 = server.cpu_s() if server else 0.0
    cpu0 = [proc_cpu(m.pid) for m in members]
    done0 = [m.last().get("checks_done", 0) for m in members]
    lost0 = [m.losses() for m in members]
    t0 = time.monotonic()
    time.sleep(seconds)
    took = time.monotonic() - t0
    cpu1 = [proc_cpu(m.pid) for m in members]
    lasts = [m.last() for m in members]
    out: dict[str, Any] = {"seconds": took, "members": []}
    out["lease_losses"] = sum(m.losses() for m in members) - sum(lost0)
    for c0, c1, d0, r in zip(cpu0, cpu1, done0, lasts, strict=True):
        checks = r.get("checks_done", 0) - d0
        out["members"].append({"polled": r.get("polled", 0), "cpu_pct": 100 * (c1 - c0) / took,
                               "cpu_per_10k": 1e4 * (c1 - c0) / checks if checks else float("nan"),
                               "checks_per_s": checks / took, "skipped": r.get("skipped", 0),
                               "lag_p99_ms": r.get("lag_p99_ms", 0.0), "rss_mb": r.get("rss_mb", 0.0),
                               "shards": r.get("cluster_shards_owned")})
    if server:
        stats1 = server.commandstats()
        delta = {k: v - stats0.get(k, 0) for k, v in stats1.items()}
        delta = {k: v for k, v in delta.items() if v and k not in ("info", "ping")}
        # The lease scripts' inner commands are counted too (GET, PEXPIRE, DEL, ZADD, ..., and the
        # view's SET of the shard count, which commandstats cannot tell from a client's SET NX):
        # what the clients send in steady state is EVALSHA, two a round per member.
        sent = {k: v for k, v in delta.items() if k in ("evalsha", "script|load", "zrem")}
        out["redis_all_per_s"] = sum(delta.values()) / took
        out["redis_sent_per_s"] = sum(sent.values()) / took
        out["redis_commands"] = {k: round(v / took, 2) for k, v in sorted(delta.items())}
        out["redis_cpu_pct"] = 100 * (server.cpu_s() - rcpu0) / took
    return out


def cost_part(args: argparse.Namespace, tmp: Path, server: RedisServer, full: Path) -> list[dict[str, Any]]:
    rows = []
    for k in args.pollers:
        for attempt in (1, 2):
            try:
                rows.append(cost_row(args, tmp, server, full, k))
                break
            except (RuntimeError, TimeoutError) as exc:  # e.g. PostgreSQL too slow to answer a start
                print(f"{k} pollers, attempt {attempt}: {exc}", flush=True)
                if attempt == 2:  # said in the report, and the other counts still measured
                    rows.append({"pollers": k, "failed": str(exc)[:300]})
    return rows


def cost_row(args: argparse.Namespace, tmp: Path, server: RedisServer, full: Path, k: int) -> dict[str, Any]:
    db = new_db()
    site = f"b{uuid.uuid4().hex[:6]}"
    members = [Member(tmp, full, db, args.interval, True, server.url, site, args.ttl) for _ in range(k)]
    try:
        t0 = time.monotonic()
        wait(lambda: settled(members, args.devices, args.interval), args.settle_timeout,
             f"{k} members never settled: {[m.last() for m in members]}", pace=1.0)
        settle_s = time.monotonic() - t0
        time.sleep(args.interval)
        w = window(members, server, args.window)
        w["settle_s"] = settle_s
        w["shares"] = sorted(Counter(server.owners(site)).values())
    finally:
        for m in members:
            m.stop()
        drop_db(db)
    # The baseline: one plain poller of devices/K devices (as many as each member polls).
    db = new_db()
    part = inventory(tmp / f"part{k}.csv", args.devices // k)
    plain = Member(tmp, part, db, args.interval, cluster=False)
    try:
        wait(lambda: settled([plain], args.devices // k, args.interval), args.settle_timeout,
             f"the plain poller of {args.devices // k} never settled", pace=1.0)
        time.sleep(args.interval)
        b = window([plain], None, args.window)
    finally:
        plain.stop()
        drop_db(db)
    row = {"pollers": k, "cluster": w, "plain": b}
    print(json.dumps(row), flush=True)
    return row


def leased_again(server: RedisServer, site: str, db: str, live: set[str | None], shards: list[int],
                 before: dict[int, int]) -> bool:
    """Redis names a live member for every shard, and PostgreSQL holds that member's raised epoch
    for each of ``shards`` (the killed member's)."""
    owners = server.owners(site)
    if any(o not in live for o in owners):
        return False
    rows = pg("SELECT shard, epoch, owner FROM shard_epochs WHERE site = $1 AND shard = ANY($2)",
              site, shards, db=db)
    return len(rows) == len(shards) and all(
        r["epoch"] > before[r["shard"]] and r["owner"] == owners[r["shard"]] for r in rows)


def polling_again(survivors: list[Member], killed: float) -> float | None:
    """The first moment (by the members' clocks) the survivors' cluster_shards_owned gauges add up
    to every shard: their engines poll every device again."""
    series = [[(r["t"], r.get("cluster_shards_owned", 0)) for r in m.records() if r["t"] >= killed]
              for m in survivors]
    for t in sorted({t for s in series for t, _ in s}):
        total = 0.0
        for s in series:
            at = [v for ts, v in s if ts <= t]
            total += at[-1] if at else 0.0
        if total == SHARDS:
            return t
    return None


def failover_part(args: argparse.Namespace, tmp: Path, server: RedisServer, inv: Path, devices: int,
                  ttl: float, kills: int, rng: random.Random) -> list[dict[str, float]]:
    db = new_db()
    site = f"f{uuid.uuid4().hex[:6]}"
    n = args.members

    def start() -> Member:
        return Member(tmp, inv, db, args.interval, True, server.url, site, ttl, stats_every=0.25)

    members = [start() for _ in range(n)]
    results = []

    def balanced() -> bool:
        for idx, m in enumerate(members):
            if not m.alive():  # a start refused (PostgreSQL slow to answer on a loaded box): again
                print(f"a member exited ({m.proc.returncode}); starting another", flush=True)
                members[idx] = start()
        ids = {m.poller_id() for m in members}
        counts = Counter(server.owners(site))
        even = all(abs(c - SHARDS / n) < 1 for c in counts.values())
        return (None not in ids and set(counts) == ids and even
                and sum(m.last().get("polled", 0) for m in members) == devices)

    try:
        wait(balanced, args.settle_timeout, "the failover site never balanced", pace=0.5)
        for i in range(kills):
            time.sleep(rng.uniform(0, ttl / 3))  # not in step with the lease rounds
            victim = rng.choice(members)
            vid = victim.poller_id()
            survivors = [m for m in members if m is not victim]
            sids = {m.poller_id() for m in survivors}
            before = {r["shard"]: r["epoch"] for r in
                      pg("SELECT shard, epoch FROM shard_epochs WHERE site = $1", site, db=db)}
            mine = [s for s, o in enumerate(server.owners(site)) if o == vid]
            lost0 = sum(m.losses() for m in survivors)
            victim.kill()
            killed = time.time()

            wait(functools.partial(leased_again, server, site, db, sids, mine, before), 10 * ttl,
                 f"kill {i}: shards not taken over", pace=0.02)
            leased_s = time.time() - killed
            polled_at = wait(functools.partial(polling_again, survivors, killed), 10 * ttl,
                             f"kill {i}: survivors never polled every shard", pace=0.1)
            churn = sum(m.losses() for m in survivors) - lost0
            results.append({"leased_s": leased_s, "polling_s": polled_at - killed, "moved": len(mine),
                            "survivor_losses": churn})
            print(f"ttl {ttl}: kill {i + 1}/{kills}: {len(mine)} shards; leased again {leased_s:.2f} s, "
                  f"polled again {polled_at - killed:.2f} s; survivors lost {churn} of their own", flush=True)
            members = [*survivors, start()]
            wait(balanced, args.settle_timeout, f"kill {i}: the site never balanced again", pace=0.5)
    finally:
        for m in members:
            m.stop()
        drop_db(db)
    return results


def spread(values: list[float]) -> str:
    return f"{min(values):.2f}-{max(values):.2f}"


Fails = dict[float, list[dict[str, float]]]


def report(args: argparse.Namespace, cost: list[list[dict[str, Any]]], fails: Fails, command: str) -> str:
    parts = []
    if cost:
        parts.append(f"coordination cost at {args.devices:,} devices")
    if fails:
        parts.append(f"failover at {args.failover_devices:,} devices")
    lines = [f"### Cluster: {' and '.join(parts)}, fake prober", "", f"Command (as root): `{command}`", "",
             f"Pollers are processes of bench/_cluster_member.py (`wardtui serve`'s Runtime and `serve()`, "
             f"PostgreSQL history on 127.0.0.1:5432, a fake prober that answers every probe at once: no "
             f"network), interval {args.interval:g} s, {SHARDS} shards, 20 devices a branch; a private "
             f"redis-server. All processes at nice 19 on a machine shared with other work (load average "
             f"{args.load[0]:.1f} at the start, {os.getloadavg()[0]:.1f} at the end, on {os.cpu_count()} "
             f"cores): CPU time is the process's own, wall times include waiting for a CPU.", ""]
    if cost:
        lines += [f"Lease TTL {args.ttl:g} s. Each row: a {args.window:g} s window after the members "
                  f"settled (every device polled by one member, each a full interval into its share); the "
                  f"baseline is one plain `serve` (no `--cluster`, no Redis) of devices/K devices, right "
                  f"after, in the same run.", ""]
    if cost:
        lines += ["| run | pollers K | shares | Redis: EVALSHA/s sent (all commands run/s, in scripts too) "
                  "| "
                  "Redis CPU % | "
                  "member CPU % (each) | member CPU s / 10k checks | plain poller of devices/K: CPU % | "
                  "plain: CPU s / 10k checks | member / plain per check | skipped (members) | "
                  "member lag p99 ms | "
                  "shards lost in the window (not renewed in time) |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for run, rows in enumerate(cost, 1):
            for row in rows:
                if "failed" in row:
                    lines.append(f"| {run} | {row['pollers']} | did not settle in two attempts of "
                                 f"{args.settle_timeout:g} s: {row['failed']} |")
                    continue
                c, p = row["cluster"], row["plain"]["members"][0]
                per = [m["cpu_per_10k"] for m in c["members"]]
                each = ", ".join(f"{m['cpu_pct']:.1f}" for m in c["members"])
                skipped = ", ".join(str(int(m["skipped"])) for m in c["members"])
                lags = ", ".join(f"{m['lag_p99_ms']:.0f}" for m in c["members"])
                lines.append(
                    f"| {run} | {row['pollers']} | {'/'.join(map(str, c['shares']))} | "
                    f"{c['redis_sent_per_s']:.2f} ({c['redis_all_per_s']:.1f}) | {c['redis_cpu_pct']:.2f} | "
                    f"{each} | "
                    f"{', '.join(f'{v:.3f}' for v in per)} | {p['cpu_pct']:.1f} | {p['cpu_per_10k']:.3f} | "
                    f"{statistics.median(per) / p['cpu_per_10k']:.2f}x | "
                    f"{skipped} | {lags} | {c.get('lease_losses', '')} |")
        measured = [row for rows in cost for row in rows if "cluster" in row]
        if measured:
            last = measured[-1]["cluster"]["redis_commands"]
            lines += ["", f"Redis commands a second in the last measured row, by command: "
                      f"{json.dumps(last)}.", ""]
    for ttl, res in fails.items():
        leased = [r["leased_s"] for r in res]
        polled = [r["polling_s"] for r in res]
        lines += [f"**Failover, TTL {ttl:g} s (2 x TTL = {2 * ttl:g} s), {len(res)} SIGKILLs of one of "
                  f"{args.members} members ({args.failover_devices:,} devices):** shards leased again and "
                  f"epochs "
                  f"raised: median {statistics.median(leased):.2f} s, worst {max(leased):.2f} s "
                  f"({max(leased) / (2 * ttl):.0%} of 2 x TTL); survivors polling every shard again: median "
                  f"{statistics.median(polled):.2f} s, worst {max(polled):.2f} s "
                  f"({max(polled) / (2 * ttl):.0%} of 2 x TTL). All (polling again, s): "
                  f"{', '.join(f'{v:.2f}' for v in sorted(polled))}. Kills during which a survivor also "
                  f"lost shards of its own (not renewed in time): "
                  f"{sum(1 for r in res if r.get('survivor_losses'))}.", ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=200_000)
    parser.add_argument("--pollers", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2, 4])
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--ttl", type=float, default=10.0, help="lease TTL of the cost part")
    parser.add_argument("--window", type=float, default=30.0)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--settle-timeout", type=float, default=600.0)
    parser.add_argument("--members", type=int, default=3)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--failover-ttl", type=float, default=2.0)
    parser.add_argument("--failover-devices", type=int, default=20_000)
    parser.add_argument("--default-kills", type=int, default=0, help="more kills at TTL 10 s")
    parser.add_argument("--parts", default="cost,failover")
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--section", default="cluster")
    args = parser.parse_args()
    args.load = os.getloadavg()
    command = "python bench/cluster.py " + " ".join(sys.argv[1:])
    rng = random.Random(args.seed)
    cost: list[list[dict[str, Any]]] = []
    fails: dict[float, list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="wardtui-cluster-bench-") as d:
        tmp = Path(d)
        server = RedisServer(tmp)
        try:
            if "cost" in args.parts:
                full = inventory(tmp / "full.csv", args.devices)
                for _ in range(args.repeat):
                    cost.append(cost_part(args, tmp, server, full))
            if "failover" in args.parts:
                inv = inventory(tmp / "failover.csv", args.failover_devices)
                if args.kills:
                    fails[args.failover_ttl] = failover_part(args, tmp, server, inv, args.failover_devices,
                                                             args.failover_ttl, args.kills, rng)
                if args.default_kills:
                    fails[10.0] = failover_part(args, tmp, server, inv, args.failover_devices, 10.0,
                                                args.default_kills, rng)
        finally:
            server.stop()
            if os.environ.get("BENCH_KEEP"):
                os.system(f"cp -r {tmp} /tmp/cluster-bench-kept")
    body = report(args, cost, fails, command)
    print(body)
    if args.write:
        write_section(args.section, body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
