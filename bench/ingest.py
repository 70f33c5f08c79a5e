"""PostgreSQL ingest: check results through wardtui's path beside raw COPY of the same rows.

Part 1, throughput: ROWS synthetic ``CheckResult`` events for DEVICES devices are published on
a real ``poller.bus.EventBus`` to the ``StoreWriter`` wired as the runtime wires it
(``sample_batch=1000``, batch 5,000), which writes them with ``HistoryStore.write_checks``
(binary COPY into the day partitions of ``checks``). Beside it, the same tuples in the same
batches go through asyncpg's ``copy_records_to_table`` on one connection into an identically
created database. Every measurement gets a fresh scratch database (``wardtui_bench_*``,
migrated by ``HistoryStore.open``, devices synced), dropped at the end; the two alternate.

Part 2, CPU at a steady rate: 100,000 devices on a 30 s interval (3,333 results/s) fed on
the loop every 10 ms for SECONDS, as the engine would; the process's CPU time over wall time,
the PostgreSQL server's CPU (utime + stime of its processes, exited ones included), the
writer's batch times and the loop's stalls. Baseline: the same feeder with no writer.

Needs PostgreSQL at 127.0.0.1:5432 (trust auth, user postgres, admin database ``test``):
python bench/ingest.py [--rows 2000000] [--devices 10000] [--repeat 3] [--seconds 60]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import os
import pstats
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._report import write_section  # noqa: E402
from poller.bus import EventBus  # noqa: E402
from poller.events import CheckResult, State, Transition  # noqa: E402
from poller.generate import loopback  # noqa: E402
from poller.inventory import Device  # noqa: E402
from store import partitions  # noqa: E402
from store.history import HistoryStore  # noqa: E402
from store.writer import StoreWriter  # noqa: E402

HOST, PORT, USER, ADMIN_DB = "127.0.0.1", 5432, "postgres", "test"
COLUMNS = ("device_id", "at", "sent", "received", "rtt_ms")
SAMPLE_BATCH = 1000  # as wardtui.runtime subscribes the writer
BATCH = 5000  # StoreWriter's default batch_size


# -- scratch databases ----------------------------------------------------------------------


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(host=HOST, port=PORT, user=USER, database=ADMIN_DB, timeout=10)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def scratch_db(tag: str) -> AsyncIterator[str]:
    """A fresh database ``wardtui_bench_<tag>_<hex>`` (its name), dropped on the way out."""
    name = f"wardtui_bench_{tag}_{uuid.uuid4().hex[:8]}"
    await _admin(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def url_of(name: str) -> str:
    return f"postgresql+asyncpg://{USER}@{HOST}:{PORT}/{name}"


def devices_of(n: int) -> list[Device]:
    return [Device(name=f"dev{i:06d}", address=loopback(i), branch=f"b{i // 8}", region=f"r{i % 10}",
                   type="atm") for i in range(n)]


async def prepared_store(name: str, devices: Sequence[Device]) -> HistoryStore:
    """Migrate the empty database through ``HistoryStore.open`` and sync the inventory, as a start does."""
    store = HistoryStore(url_of(name))
    await store.open()
    await store.sync_devices(devices)
    return store


# -- postgres CPU ---------------------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2:].split()  # fields from 3 (state) on


def postgres_cpu() -> dict[int, float]:
    """pid -> CPU seconds of every postgres process; the postmaster's entry adds its reaped
    children's (so backends and workers that exit during a measurement still count)."""
    stats: dict[int, list[str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            comm = Path(f"/proc/{entry}/comm").read_text().strip()
        except OSError:
            continue
        fields = _stat(int(entry)) if comm == "postgres" else None
        if fields is not None:
            stats[int(entry)] = fields
    found: dict[int, float] = {}
    for pid, fields in stats.items():
        # fields[0] is /proc's field 3 (state): ppid is 4, utime/stime 14/15, cutime/cstime 16/17.
        ticks = int(fields[11]) + int(fields[12])
        if int(fields[1]) not in stats:  # the postmaster
            ticks += int(fields[13]) + int(fields[14])
        found[pid] = ticks / _TICK
    return found


def cpu_between(before: dict[int, float], after: dict[int, float], pids: set[int] | None = None) -> float:
    total = 0.0
    for pid, seconds in after.items():
        if pids is None or pid in pids:
            total += seconds - before.get(pid, 0.0)
    return total


async def backend_pids(dbname: str) -> set[int]:
    conn = await asyncpg.connect(host=HOST, port=PORT, user=USER, database=ADMIN_DB, timeout=10)
    try:
        rows = await conn.fetch("SELECT pid FROM pg_stat_activity WHERE datname = $1", dbname)
    finally:
        await conn.close()
    return {r["pid"] for r in rows}


# -- the sink the writer sees: the store, with each batch timed ------------------------------


class TimedStore:
    """``HistoryStore`` as the writer uses it, recording how long each ``write_checks`` took."""

    def __init__(self, store: HistoryStore) -> None:
        self.store = store
        self.batches: list[tuple[float, int]] = []  # (seconds, rows)

    async def write_checks(self, results: Sequence[CheckResult]) -> None:
        t0 = time.perf_counter()
        await self.store.write_checks(results)
        self.batches.append((time.perf_counter() - t0, len(results)))

    async def write_transition(self, transition: Transition) -> None:
        await self.store.write_transition(transition)

    async def write_transitions(self, transitions: Sequence[Transition]) -> None:
        await self.store.write_transitions(transitions)


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


# -- part 1: throughput ---------------------------------------------------------------------


def make_events(devices: Sequence[Device], rows: int, interval: float, start: datetime) -> list[CheckResult]:
    """``rows`` results, round after round over ``devices``, each device at its own offset in
    the interval; ~1 % lost (no RTT)."""
    n = len(devices)
    events = []
    step = timedelta(seconds=interval)
    for k in range(rows):
        rnd, i = divmod(k, n)
        d = devices[i]
        lost = (k * 7919) % 100 == 0
        at = start + rnd * step + timedelta(seconds=interval * i / n)
        events.append(CheckResult(device=d.name, address=d.address, at=at, sent=1, received=0 if lost else 1,
                                  rtt_ms=None if lost else 0.05 + (k % 997) / 100, state=State.UP))
    return events


async def run_wardtui(events: list[CheckResult], devices: Sequence[Device], chunk: int,
                      profile: cProfile.Profile | None) -> dict[str, float]:
    async with scratch_db("ingest") as name:
        store = await prepared_store(name, devices)
        try:
            await _admin("CHECKPOINT")
            bus = EventBus()
            sub = bus.subscribe("store", sample_batch=SAMPLE_BATCH)
            sink = TimedStore(store)
            writer = StoreWriter(sink, sub)
            limit = sub.maxsize - chunk
            publish = bus.publish
            feed = 0.0
            gc.collect()
            if profile:
                profile.enable()
            cpu0, t0 = time.process_time(), time.perf_counter()
            writer.start()
            for i in range(0, len(events), chunk):
                while len(sub) > limit:
                    await asyncio.sleep(0.001)
                f0 = time.perf_counter()
                for event in events[i:i + chunk]:
                    publish(event)
                feed += time.perf_counter() - f0
                await asyncio.sleep(0)
            await writer.stop()
            wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
            if profile:
                profile.disable()
            if writer.written_checks != len(events) or writer.dropped or sub.dropped:
                raise RuntimeError(f"wardtui wrote {writer.written_checks} of {len(events)} "
                                   f"(dropped {writer.dropped} + {sub.dropped}): {writer.last_error}")
            stored = await count_rows(name)
        finally:
            await store.close()
    if stored != len(events):
        raise RuntimeError(f"wardtui: {stored} rows in checks, expected {len(events)}")
    times = [s for s, _ in sink.batches]
    return {"wall": wall, "rate": len(events) / wall, "cpu": cpu, "feed": feed, "batches": len(times),
            "batch_p50_ms": 1000 * pct(times, 50), "batch_p99_ms": 1000 * pct(times, 99)}


async def run_raw(events: list[CheckResult], devices: Sequence[Device], batch: int) -> dict[str, float]:
    async with scratch_db("ingest_raw") as name:
        store = await prepared_store(name, devices)  # the identical schema and devices
        await store.close()
        conn = await asyncpg.connect(host=HOST, port=PORT, user=USER, database=name)
        try:
            ids = dict(await conn.fetch("SELECT name, id FROM devices"))
            records = [(ids[e.device], e.at, e.sent, e.received, e.rtt_ms) for e in events]
            for day in sorted({partitions.day_of(e.at) for e in events}):
                await conn.execute(partitions.create_sql("checks", day))
            await _admin("CHECKPOINT")
            gc.collect()
            times = []
            cpu0, t0 = time.process_time(), time.perf_counter()
            for i in range(0, len(records), batch):
                b0 = time.perf_counter()
                await conn.copy_records_to_table("checks", records=records[i:i + batch], columns=COLUMNS)
                times.append(time.perf_counter() - b0)
            wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
            stored = await conn.fetchval("SELECT count(*) FROM checks")
        finally:
            await conn.close()
    if stored != len(events):
        raise RuntimeError(f"raw COPY: {stored} rows in checks, expected {len(events)}")
    return {"wall": wall, "rate": len(events) / wall, "cpu": cpu, "batches": len(times),
            "batch_p50_ms": 1000 * pct(times, 50), "batch_p99_ms": 1000 * pct(times, 99)}


async def count_rows(name: str) -> int:
    conn = await asyncpg.connect(host=HOST, port=PORT, user=USER, database=name)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM checks"))
    finally:
        await conn.close()


# -- part 2: CPU at a steady rate -------------------------------------------------------------


async def feed_at_rate(bus: EventBus, events: list[CheckResult], devices: int, interval: float,
                       tick: float = 0.01) -> dict[str, float]:
    """Publish each device's result when it falls due (device i at i/n of the interval), checking
    every ``tick``; results are made ahead, so only publishing costs. Returns the loop's stalls."""
    n, total = devices, len(events)
    loop = asyncio.get_running_loop()
    late: list[float] = []
    t0 = loop.time()
    sent = 0
    publish = bus.publish
    next_tick = t0
    while sent < total:
        next_tick += tick
        await asyncio.sleep(max(0.0, next_tick - loop.time()))
        now = loop.time()
        late.append(now - next_tick)
        due = min(total, int((now - t0) * n / interval))
        for event in events[sent:due]:
            publish(event)
        sent = max(sent, due)
    return {"published": sent, "wall": loop.time() - t0,
            "late_p99_ms": 1000 * pct(late, 99), "late_max_ms": 1000 * max(late)}


async def run_rate(devices: Sequence[Device], interval: float, seconds: float,
                   with_writer: bool) -> dict[str, float]:
    async with scratch_db("rate") as name:
        store = await prepared_store(name, devices)
        try:
            await _admin("CHECKPOINT")
            bus = EventBus()
            sink = TimedStore(store)
            writer = None
            if with_writer:
                writer = StoreWriter(sink, bus.subscribe("store", sample_batch=SAMPLE_BATCH))
                writer.start()
                await asyncio.sleep(0.1)
            events = make_events(devices, int(seconds * len(devices) / interval), interval, datetime.now(UTC))
            gc.collect()
            gc.freeze()  # as the commands' process policy does once the store has started
            pg0 = postgres_cpu()
            cpu0, t0 = time.process_time(), time.perf_counter()
            fed = await feed_at_rate(bus, events, len(devices), interval)
            wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
            pg1 = postgres_cpu()
            mine = await backend_pids(name)
            queue_end = writer.queue_depth if writer else 0
            if writer:
                await writer.stop()
                if writer.written_checks != fed["published"] or writer.dropped:
                    raise RuntimeError(f"writer wrote {writer.written_checks} of {fed['published']}")
            gc.unfreeze()
        finally:
            await store.close()
    times = [s for s, _ in sink.batches]
    rows = [r for _, r in sink.batches]
    return {**fed, "rate": fed["published"] / wall, "cpu_pct": 100 * cpu / wall,
            "pg_pct": 100 * cpu_between(pg0, pg1) / wall,
            "pg_backend_pct": 100 * cpu_between(pg0, pg1, mine) / wall,
            "batches": len(times), "batch_rows": statistics.mean(rows) if rows else 0,
            "batch_p50_ms": 1000 * pct(times, 50), "batch_p99_ms": 1000 * pct(times, 99),
            "batch_max_ms": 1000 * max(times) if times else float("nan"), "queue_end": queue_end}


# -- main -------------------------------------------------------------------------------------


async def throughput(args: argparse.Namespace) -> tuple[list[dict[str, float]], list[dict[str, float]]]:
    devices = devices_of(args.devices)
    start = partitions.day_of(datetime.now(UTC)) + timedelta(hours=1)  # one day's partition
    print(f"making {args.rows:,} events for {args.devices:,} devices ...", flush=True)
    events = make_events(devices, args.rows, 10.0, start)
    ours, raw = [], []
    profile = cProfile.Profile() if args.profile else None
    for rep in range(args.repeat):
        order = ("wardtui", "raw") if rep % 2 == 0 else ("raw", "wardtui")
        for which in order:
            if which == "wardtui":
                result = await run_wardtui(events, devices, args.chunk, profile if rep == 0 else None)
                ours.append(result)
            else:
                result = await run_raw(events, devices, BATCH)
                raw.append(result)
            print(f"  rep {rep + 1} {which:8s} {result['rate']:>10,.0f} results/s  "
                  f"wall {result['wall']:.2f} s  "
                  f"cpu {result['cpu']:.2f} s  batch p50/p99 {result['batch_p50_ms']:.1f}/"
                  f"{result['batch_p99_ms']:.1f} ms", flush=True)
    if profile:
        stats = pstats.Stats(profile)
        stats.sort_stats("tottime").print_stats(25)
        stats.sort_stats("cumulative").print_stats(40)
    return ours, raw


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--chunk", type=int, default=1000, help="events published between yields")
    parser.add_argument("--rate-devices", type=int, default=100_000)
    parser.add_argument("--rate-interval", type=float, default=30.0)
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the steady-rate run")
    parser.add_argument("--skip-rate", action="store_true")
    parser.add_argument("--profile", action="store_true", help="cProfile wardtui's first run")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()

    started = time.monotonic()
    ours, raw = asyncio.run(throughput(args))
    med_ours = statistics.median(r["rate"] for r in ours)
    med_raw = statistics.median(r["rate"] for r in raw)
    ratio = med_ours / med_raw
    print(f"median: wardtui {med_ours:,.0f}/s, raw COPY {med_raw:,.0f}/s, ratio {ratio:.2f}x", flush=True)

    rate: dict[str, float] = {}
    idle: dict[str, float] = {}
    if not args.skip_rate:
        devices = devices_of(args.rate_devices)
        for with_writer in (False, True):
            label = "writer" if with_writer else "feeder only"
            print(f"steady rate, {label}: {args.rate_devices:,} devices / {args.rate_interval:g} s "
                  f"for {args.seconds:g} s ...", flush=True)
            result = asyncio.run(run_rate(devices, args.rate_interval, args.seconds, with_writer))
            print("  " + ", ".join(f"{k} {v:.2f}" for k, v in result.items()), flush=True)
            (rate if with_writer else idle).update(result)
    elapsed = time.monotonic() - started

    command = (f"python bench/ingest.py --rows {args.rows} --devices {args.devices} --repeat {args.repeat}"
               + ("" if args.skip_rate else f" --seconds {args.seconds:g}"))
    rows = ["| run | wardtui results/s | raw COPY results/s | ratio | wardtui batch p50 / p99 ms "
            "| raw batch p50 / p99 ms | wardtui CPU s | raw CPU s |",
            "|---|---|---|---|---|---|---|---|"]
    for i, (o, r) in enumerate(zip(ours, raw, strict=True)):
        rows.append(f"| {i + 1} | {o['rate']:,.0f} | {r['rate']:,.0f} | {o['rate'] / r['rate']:.2f}x | "
                    f"{o['batch_p50_ms']:.1f} / {o['batch_p99_ms']:.1f} | {r['batch_p50_ms']:.1f} / "
                    f"{r['batch_p99_ms']:.1f} | {o['cpu']:.2f} | {r['cpu']:.2f} |")
    feed = statistics.median(o["feed"] for o in ours)
    cpu_ours, cpu_raw = (statistics.median(x["cpu"] for x in runs) for runs in (ours, raw))
    extra = 1e6 * (cpu_ours - cpu_raw) / args.rows
    body = (f"### Ingest into PostgreSQL: {args.rows:,} check results, {args.devices:,} devices\n\n"
            f"Command: `{command}` (whole run {elapsed / 60:.1f} min)\n\n"
            "wardtui: synthetic `CheckResult`s published on a real `EventBus` to the `StoreWriter` as the "
            f"runtime wires it (`sample_batch={SAMPLE_BATCH}`, batches of {BATCH:,}), writing through "
            "`HistoryStore.write_checks` (binary COPY into the day partitions). Raw: asyncpg "
            f"`copy_records_to_table` of the same tuples in the same batches of {BATCH:,}, one "
            "connection. Each run on a fresh database migrated by `HistoryStore.open` with the devices "
            "synced; the two alternate; a CHECKPOINT before each.\n\n"
            + "\n".join(rows) + "\n\n"
            f"**Median: wardtui {med_ours:,.0f} results/s, raw COPY {med_raw:,.0f} results/s: "
            f"{ratio:.2f}x**, {'meeting' if ratio >= 0.5 else 'missing'} the target (>= 0.5x). "
            f"wardtui's process spent {extra:.1f} µs of CPU per result "
            "more than raw COPY's (median runs), of which publishing on the bus "
            f"{1e6 * feed / args.rows:.1f} µs; the writer prepares a batch and then waits for its COPY, "
            "so that time adds to the wall time.\n")
    if rate:
        def line(label: str, r: dict[str, float]) -> str:
            batches = (f"{r['batches']:.0f} | {r['batch_rows']:,.0f} | {r['batch_p50_ms']:.1f} / "
                       f"{r['batch_p99_ms']:.1f} / {r['batch_max_ms']:.1f}") if r["batches"] else "— | — | —"
            return (f"| {label} | {r['cpu_pct']:.1f} | {r['pg_pct']:.1f} / {r['pg_backend_pct']:.1f} | "
                    f"{batches} | {r['late_p99_ms']:.1f} / {r['late_max_ms']:.1f} |")

        body += (f"\n#### Steady rate: {args.rate_devices:,} devices at a {args.rate_interval:g} s interval "
                 f"({rate['rate']:,.0f} results/s) for {rate['wall']:.0f} s\n\n"
                 "Results fed on the loop every 10 ms as they fall due (made ahead). CPU is the "
                 "wardtui process's `time.process_time()` over wall time (100 % = one core); the "
                 "server's is utime + stime of every postgres process (exited ones through the "
                 "postmaster's children), and of this database's backends alone. Baseline: the same "
                 "feeder with no writer subscribed, in the same run.\n\n"
                 "| run | wardtui CPU % | PostgreSQL CPU % (all / this db's backends) | batches "
                 "| rows per batch | batch p50 / p99 / max ms | loop late p99 / max ms |\n"
                 "|---|---|---|---|---|---|---|\n"
                 + line("feeder only", idle) + "\n" + line("feeder + writer", rate) + "\n\n"
                 f"**The writer's share: {rate['cpu_pct'] - idle['cpu_pct']:.1f} % of one core in wardtui, "
                 f"PostgreSQL {rate['pg_pct']:.1f} % (its backend {rate['pg_backend_pct']:.1f} %); one "
                 f"batch p99 {rate['batch_p99_ms']:.1f} ms** (of {rate['batches']:.0f} batches). The writer "
                 "prepares each batch on the loop it shares with the engine: see the loop's lateness.\n")
    print(body)
    if not args.no_write:
        write_section("ingest", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
