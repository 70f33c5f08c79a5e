"""Outage writes: ``store.checks.write_transitions`` on bursts of 1,000 transitions.

A history of DEVICES devices (100,000) of which OPEN (~5,000) have an open outage. Each burst is
1,000 transitions as the engine sends them at 1 % of 100,000 devices changing state each second:
half UP -> DOWN of devices that were up (each opens an outage), half DOWN -> UP of devices that
were down (each closes the outage that starts at its ``down_since``), so the open outages stay
~5,000. Per burst: wall time and this process's CPU time (the event loop and aiosqlite's thread;
``time.process_time``), and on PostgreSQL the CPU of the server backends connected to the bench's
database (``/proc``, utime + stime).

Baseline: the per-statement outage writes of commit 7caaf41 (an INSERT per DOWN, an UPDATE per
UP plus a SELECT and more when it matched nothing), copied below as ``legacy_write_transitions``,
on a fresh database built the same way in the same run. The two alternate, REPEAT times each.

SQLite is a file on disk (as the product uses: WAL, synchronous=NORMAL); PostgreSQL needs the
server at 127.0.0.1:5432 (trust auth, user postgres, admin database ``test``):
python bench/outage_writes.py [--db sqlite,postgresql] [--devices 100000] [--open 5000]
       [--burst 1000] [--bursts 10] [--repeat 3] [--section outage-writes]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import select, text, update  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncConnection  # noqa: E402

from bench._report import write_section  # noqa: E402
from bench.ingest import _TICK, _stat, scratch_db, url_of  # noqa: E402
from poller.events import State, Transition  # noqa: E402
from store import database_url  # noqa: E402
from store.checks import write_transitions  # noqa: E402
from store.database import Database  # noqa: E402
from store.models import outages_table, transitions_table  # noqa: E402

T0 = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
Writer = Callable[[Database, Sequence[Transition]], Awaitable[None]]


# -- the baseline: commit 7caaf41's write_transitions, statement per outage change -----------


async def legacy_write_transitions(db: Database, transitions: Sequence[Transition]) -> None:
    if not transitions:
        return
    ids = await db.ensure_ids((t.device, t.address) for t in transitions)
    rows = [{"device_id": ids[t.device], "from_state": t.from_state.value, "to_state": t.to_state.value,
             "at": t.at, "down_since": t.down_since, "rtt_ms": t.rtt_ms} for t in transitions]
    o = outages_table
    async with db.writing() as conn:
        await conn.execute(db.upsert(transitions_table).on_conflict_do_nothing(), rows)
        first_up = {ids[t.device] for t in transitions
                    if t.to_state is State.UP and t.from_state is State.UNKNOWN}
        if first_up:
            first_up &= set((await conn.execute(select(o.c.device_id).where(
                o.c.end.is_(None), o.c.device_id.in_(first_up)))).scalars())
        opened = db.upsert(o).on_conflict_do_nothing()
        for t in transitions:
            device_id = ids[t.device]
            if t.to_state is State.DOWN:
                await conn.execute(opened, {"device_id": device_id, "start": t.down_since or t.at})
            elif t.to_state is State.UP and t.from_state is State.DOWN and t.down_since is not None:
                await _legacy_close_outage(db, conn, device_id, t.down_since, t.at)
            elif t.to_state is State.UP and (t.from_state is State.DOWN or device_id in first_up):
                await _legacy_close_open_outage(conn, device_id, t.at)


async def _legacy_close_outage(db: Database, conn: AsyncConnection, device_id: int, start: datetime,
                               end: datetime) -> None:
    end = max(end, start)
    o = outages_table.c
    closed = await conn.execute(update(outages_table).where(
        o.device_id == device_id, o.start == start, o.end.is_(None)).values(end=end))
    if closed.rowcount:
        return
    if await conn.scalar(select(o.id).where(o.device_id == device_id, o.start == start)) is not None:
        return
    if await _legacy_close_open_outage(conn, device_id, end):
        return
    await conn.execute(db.upsert(outages_table).on_conflict_do_nothing(),
                       {"device_id": device_id, "start": start, "end": end})


async def _legacy_close_open_outage(conn: AsyncConnection, device_id: int, end: datetime) -> bool:
    o = outages_table.c
    closed = await conn.execute(update(outages_table).where(
        o.device_id == device_id, o.end.is_(None), o.start <= end).values(end=end))
    return bool(closed.rowcount)


# -- the history and the bursts ---------------------------------------------------------------


def name(i: int) -> str:
    return f"dev{i:06d}"


def address(i: int) -> str:
    return f"127.{1 + i // 65536}.{i // 256 % 256}.{i % 256}"


async def build(db: Database, devices: int, open_: int) -> dict[int, datetime]:
    """DEVICES devices, the first OPEN of them down since an open outage; device -> its start."""
    await db.ensure_ids((name(i), address(i)) for i in range(devices))
    ids = db.ids()
    starts = {i: T0 - timedelta(seconds=600 + i % 300) for i in range(open_)}
    rows = [{"device_id": ids[name(i)], "start": s} for i, s in starts.items()]
    async with db.writing() as conn:
        for k in range(0, len(rows), 5000):
            await conn.execute(db.upsert(outages_table), rows[k:k + 5000])
    return starts


def burst(down: dict[int, datetime], devices: int, size: int, at: datetime,
          cursor: list[int]) -> list[Transition]:
    """``size`` transitions: half DOWN -> UP of the longest-down devices, half UP -> DOWN of
    devices up (taken in turn after the first ``len(down)``); ``down`` is updated."""
    ups = sorted(down)[: size // 2]
    out = []
    for i in ups:
        out.append(Transition(name(i), address(i), State.DOWN, State.UP, at, down.pop(i), 0.5))
    for _ in range(size - len(ups)):
        i = cursor[0]
        cursor[0] = cursor[0] + 1 if cursor[0] + 1 < devices else 0
        while i in down:
            i = (i + 1) % devices
        down[i] = at - timedelta(seconds=3)
        out.append(Transition(name(i), address(i), State.UP, State.DOWN, at, down[i], None))
    return out


async def measure(url: str, writer: Writer, args: argparse.Namespace) -> list[tuple[float, ...]]:
    """(wall ms, process CPU ms, server CPU ms or nan, process CPU ms of the same burst written
    again as a spool replayed after a crash would) per burst, on a fresh history."""
    db = Database(url)
    await db.open()
    try:
        down = await build(db, args.devices, args.open)
        cursor = [args.open]
        results = []
        for n in range(args.bursts + 1):  # the first one warms caches up: not counted
            transitions = burst(down, args.devices, args.burst, T0 + timedelta(seconds=n + 1), cursor)
            server = await _backends(db)
            gc.collect()
            server_before = _cpu(server)
            cpu, wall = time.process_time(), time.perf_counter()
            await writer(db, transitions)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            server_ms = (_cpu(server) - server_before) * 1000 if server else float("nan")
            again = time.process_time()
            await writer(db, transitions)
            again = time.process_time() - again
            if n:
                results.append((wall * 1000, cpu * 1000, server_ms, again * 1000))
        await _check(db, len(down))
        return results
    finally:
        await db.close()


async def _check(db: Database, expected_open: int) -> None:
    async with db.engine.connect() as conn:
        got = await conn.scalar(select(text("count(*)")).select_from(outages_table).where(
            outages_table.c.end.is_(None)))
    if got != expected_open:
        raise SystemExit(f"wrong result: {got} open outages, expected {expected_open}")


async def _backends(db: Database) -> set[int]:
    if db.dialect != "postgresql":
        return set()
    async with db.engine.connect() as conn:
        return set((await conn.execute(text(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"))).scalars())


def _cpu(pids: set[int]) -> float:
    total = 0.0
    for pid in pids:
        fields = _stat(pid)
        if fields is not None:
            total += (int(fields[11]) + int(fields[12])) / _TICK
    return total


# -- the run ----------------------------------------------------------------------------------


async def one(dialect: str, writer: Writer, args: argparse.Namespace) -> list[tuple[float, ...]]:
    if dialect == "sqlite":
        with tempfile.TemporaryDirectory(prefix="wardtui-bench-outages-") as tmp:
            return await measure(database_url(str(Path(tmp) / "history.db")), writer, args)
    async with scratch_db("outages") as db_name:
        return await measure(url_of(db_name), writer, args)


def summary(runs: list[list[tuple[float, ...]]], field: int) -> tuple[float, list[float]]:
    """Median over every burst of every run, and each run's median."""
    every = [r[field] for run in runs for r in run]
    return statistics.median(every), [statistics.median(r[field] for r in run) for run in runs]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default="sqlite,postgresql")
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--open", type=int, default=5_000)
    parser.add_argument("--burst", type=int, default=1_000)
    parser.add_argument("--bursts", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--section", default="")
    args = parser.parse_args()
    writers: dict[str, Writer] = {"before (7caaf41)": legacy_write_transitions, "after": write_transitions}
    rows = []
    load_before = os.getloadavg()[0]
    for dialect in args.db.split(","):
        runs: dict[str, list[list[tuple[float, ...]]]] = {k: [] for k in writers}
        for _ in range(args.repeat):
            for label, writer in writers.items():  # alternate, so load on the machine hits both
                runs[label].append(await one(dialect, writer, args))
        medians = {}
        for label in writers:
            wall, wall_runs = summary(runs[label], 0)
            cpu, cpu_runs = summary(runs[label], 1)
            server, server_runs = summary(runs[label], 2)
            again, again_runs = summary(runs[label], 3)
            medians[label] = (wall, cpu, again)
            spread = lambda xs: f"{min(xs):.1f}-{max(xs):.1f}"  # noqa: E731
            server_text = "—" if dialect == "sqlite" else f"{server:.1f} ({spread(server_runs)})"
            rows.append(f"| {dialect} | {label} | {wall:.1f} ({spread(wall_runs)}) | "
                        f"{cpu:.1f} ({spread(cpu_runs)}) | {server_text} | "
                        f"{again:.1f} ({spread(again_runs)}) |")
            print(rows[-1], flush=True)
        (bw, bc, bg), (aw, ac, ag) = medians.values()
        rows.append(f"| {dialect} | before / after | {bw / aw:.1f}x | {bc / ac:.1f}x | | {bg / ag:.1f}x |")
        print(rows[-1], flush=True)
    load = f"{load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end"
    print(f"load average (1 min): {load}")
    command = "python bench/outage_writes.py " + " ".join(sys.argv[1:])
    body = f"""### Outage writes: bursts of {args.burst:,} transitions, {args.devices:,} devices, \
~{args.open:,} open outages

Command: `{command.strip()}`

Each burst: {args.burst // 2:,} DOWN -> UP (closing the outage that starts at their `down_since`) and
{args.burst - args.burst // 2:,} UP -> DOWN (opening one), through `store.checks.write_transitions`, one
transaction; {args.bursts} bursts per fresh database (after one not counted), {args.repeat} databases per
engine and version, alternating. Median over all bursts, and in brackets the range of the
{args.repeat} databases' medians. CPU: this process (event loop and aiosqlite's thread); server CPU:
the PostgreSQL backends of the bench's database, in the kernel's 10 ms ticks. SQLite is a file on
disk (WAL, synchronous=NORMAL). Before: the per-statement outage writes of 7caaf41 (copied into
the bench). The machine was shared with other work (load average {load}): wall times
are noisy, CPU times much less. Written again: each burst a second time right after (as a spool
replayed after a crash: every row already there), process CPU.

| database | version | wall ms per burst | process CPU ms per burst | server CPU ms per burst | \
process CPU ms, written again |
|---|---|---|---|---|---|
""" + "\n".join(rows) + "\n"
    if args.section:
        write_section(args.section, body)


if __name__ == "__main__":
    asyncio.run(main())
