"""History written twice is stored once: rows have keys, outages are closed by their start, and a
spool replayed again, after a crash at any step or a second time, leaves the database identical.

On both engines (``db_url``). A "crash" is an exception no layer catches, raised just before or
just after a write or a spool commit; the next "start" opens the same spool and database again.
"""

from __future__ import annotations

import shutil
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from poller.bus import EventBus
from poller.events import (
    CheckResult,
    InterfaceChange,
    InterfaceStat,
    Reboot,
    SnmpAgentChange,
    SnmpFailure,
    SnmpPoll,
    State,
    Transition,
)
from store.history import HistoryStore
from store.models import ALL_TABLES
from store.spool import Spool
from store.writer import StoreWriter

T0 = datetime(2026, 12, 5, 3, 0, tzinfo=UTC)
DEVICES = [f"atm-{i}" for i in range(4)]


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def down(device: str, when: float, since: float | None = None) -> Transition:
    began = at(since if since is not None else when)
    return Transition(device, "127.0.0.1", State.UP, State.DOWN, at(when), began, None)


def up(device: str, when: float, since: float) -> Transition:
    return Transition(device, "127.0.0.1", State.DOWN, State.UP, at(when), at(since), 0.4)


def check(device: str, when: float, ok: bool = True) -> CheckResult:
    return CheckResult(device, "127.0.0.1", at(when), 2, 2 if ok else 0, 0.4 if ok else None,
                       State.UP if ok else State.DOWN)


async def dump(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every history row by what it says (names, times, values), sorted: ids left out."""
    async with HistoryStore(url) as store:
        transitions = sorted((t.device, t.from_state.value, t.to_state.value, t.at, t.down_since)
                             for t in await store.transitions())
        outages = sorted((o.device, o.start, o.end) for o in await store.outages())
        checks = []
        for name in sorted(store.device_names()):
            checks += [(c.device, c.at, c.sent, c.received, c.rtt_ms) for c in await store.checks(name)]
        snmp: list[tuple[Any, ...]] = []
        for name in sorted(store.device_names()):
            latest = await store.snmp_latest(name)
            if latest is not None and latest.status is not None:
                status = latest.status
                snmp.append((name, status.polls, status.answered, status.polled_at, status.outcome))
            snmp += [tuple(rate) for rate in await store.if_rates(name)]
        events = sorted((e.device, e.at, e.kind, e.ifindex, e.detail) for e in await store.snmp_events())
    return {"transitions": transitions, "outages": outages, "checks": checks, "snmp": snmp, "events": events}


async def wipe(url: str) -> None:
    """Empty every wardtui table (a new database, as far as history goes)."""
    async with HistoryStore(url) as store, store.writing() as conn:
        if store.dialect == "postgresql":
            names = ", ".join(t.name for t in ALL_TABLES)
            await conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            for table in reversed(ALL_TABLES):
                await conn.execute(text(f"DELETE FROM {table.name}"))


# -- the store alone -------------------------------------------------------------------------


async def test_rows_written_twice_are_stored_once(db_url: str) -> None:
    transitions = [down("atm-0", 10, 8), up("atm-0", 40, 8), down("atm-1", 20, 18)]
    checks = [check("atm-0", s, ok=not 8 <= s < 40) for s in range(0, 60, 5)]
    async with HistoryStore(db_url) as store:
        for _ in range(2):
            await store.write_transitions(transitions)
            await store.write_checks(checks)
            await store.write_checks(checks[3:7])  # a batch cut differently
    got = await dump(db_url)
    assert len(got["transitions"]) == 3 and len(got["checks"]) == len(checks)
    assert got["outages"] == [("atm-0", at(8), at(40)), ("atm-1", at(18), None)]


async def test_an_up_written_late_closes_its_own_outage_not_a_newer_one(db_url: str) -> None:
    """The spool on a full disk: a device down 28 s then 22 s was stored as one 100 s outage,
    because the first UP came in after the second DOWN and closed it."""
    async with HistoryStore(db_url) as store:
        await store.write_transitions([down("atm-0", 2, 0)])
        await store.write_transitions([down("atm-0", 52, 50)])  # newer rows written ahead
        await store.write_transitions([up("atm-0", 28, 0), up("atm-0", 72, 50)])
        await store.write_transitions([down("atm-0", 2, 0), up("atm-0", 28, 0)])  # and again
    assert (await dump(db_url))["outages"] == [("atm-0", at(0), at(28)), ("atm-0", at(50), at(72))]


async def test_an_up_whose_down_never_reached_the_database_records_the_outage(db_url: str) -> None:
    async with HistoryStore(db_url) as store:
        await store.write_transitions([up("atm-2", 30, 12)])
    assert (await dump(db_url))["outages"] == [("atm-2", at(12), at(30))]


async def test_a_restart_that_finds_a_device_still_down_keeps_the_original_outage(db_url: str) -> None:
    async with HistoryStore(db_url) as store:
        await store.write_transitions([down("atm-3", 5, 3)])
        # The next run was seeded with that outage, yet detected the device down again.
        await store.write_transitions([Transition("atm-3", "127.0.0.1", State.UNKNOWN, State.DOWN, at(200),
                                                  at(199), None)])
        await store.write_transitions([Transition("atm-3", "127.0.0.1", State.DOWN, State.UP, at(260),
                                                  at(199), 0.3)])
    assert (await dump(db_url))["outages"] == [("atm-3", at(3), at(260))]


# -- the spool, replayed again -------------------------------------------------------------


class Crash(BaseException):
    """A process killed at this point: nothing catches it."""


def history() -> tuple[list[Transition], list[CheckResult]]:
    """Four devices over ten minutes, each down twice; a check every 10 s each."""
    transitions: list[Transition] = []
    for n, device in enumerate(DEVICES):
        for start in (60 + 7 * n, 300 + 11 * n):
            transitions += [down(device, start + 2, start), up(device, start + 40, start)]
    checks = [check(device, s + n / 10) for s in range(0, 600, 10) for n, device in enumerate(DEVICES)]
    return transitions, checks


def snmp_history() -> tuple[list[SnmpPoll | SnmpFailure], list[Reboot | InterfaceChange | SnmpAgentChange]]:
    """atm-0's agent polled every 60 s (two interfaces), silent once, rebooted once."""
    polls: list[SnmpPoll | SnmpFailure] = []
    for minute in range(10):
        when = at(60 * minute + 5)
        if minute == 4:
            polls.append(SnmpFailure("atm-0", "127.0.0.1", when, "timeout", "no answer within 2 s"))
            continue
        interfaces = tuple(InterfaceStat(i, f"ge-{i}", "", "up", "up", 10**9, 1000.0 * minute, 2000.0, 0, 0,
                                         0, 0, True) for i in (1, 2))
        polls.append(SnmpPoll("atm-0", "127.0.0.1", when, "atm-0", "ATM OS", "1.3.6.1.4.1.1",
                              60.0 * minute, interfaces))
    events: list[Reboot | InterfaceChange | SnmpAgentChange] = [
        SnmpAgentChange("atm-0", "127.0.0.1", at(245), False, "timeout"),
        SnmpAgentChange("atm-0", "127.0.0.1", at(305), True, ""),
        Reboot("atm-0", "127.0.0.1", at(425), 5.0, 400.0, at(420)),
        InterfaceChange("atm-0", "127.0.0.1", at(485), 2, "ge-2", "up", "down"),
    ]
    return polls, events


def make_spool(directory: Path) -> None:
    transitions, checks = history()
    polls, events = snmp_history()
    with Spool(directory) as spool:
        for minute in range(10):  # in time order, as the writer spools them

            def this_minute(row: Any, minute: int = minute) -> bool:
                return 60 * minute <= (row.at - T0).total_seconds() < 60 * (minute + 1)

            spool.append([t for t in transitions if this_minute(t)], [c for c in checks if this_minute(c)],
                         [p for p in polls if this_minute(p)], [e for e in events if this_minute(e)])


async def replay(url: str, directory: Path, tick: Callable[[str], None] = lambda _: None) -> None:
    """A start: open the store and the spool, write the spool, stop. ``tick`` is called before
    and after each write and each commit of replay progress (where a crash may strike)."""
    async with HistoryStore(url) as store:
        spool = Spool(directory)
        try:
            for name in ("write_transitions", "write_checks", "write_snmp_polls", "write_snmp_events"):
                real: Callable[..., Awaitable[None]] = getattr(store, name)

                async def wrapped(rows: Any, real: Callable[..., Awaitable[None]] = real,
                                  name: str = name) -> None:
                    tick(f"before {name}")
                    await real(rows)
                    tick(f"after {name}")

                setattr(store, name, wrapped)
            real_commit = spool.commit

            def commit(batch: Any) -> None:
                tick("before commit")
                real_commit(batch)
                tick("after commit")

            spool.commit = commit  # type: ignore[method-assign]
            writer = StoreWriter(store, EventBus().subscribe("store"), spool=spool, batch_size=60)
            assert await writer.replay_spool()
        finally:
            spool.close()


def crash_at(point: int) -> Callable[[str], None]:
    seen = 0

    def tick(where: str) -> None:
        nonlocal seen
        seen += 1
        if seen == point:
            raise Crash(where)

    return tick


async def test_a_spool_replayed_again_after_a_crash_at_every_step_or_twice_stores_it_once(
        db_url: str, tmp_path: Path) -> None:
    original = tmp_path / "original"
    make_spool(original)
    reference_dir = tmp_path / "reference"
    shutil.copytree(original, reference_dir)
    await replay(db_url, reference_dir)
    reference = await dump(db_url)
    transitions, checks = history()
    assert len(reference["transitions"]) == len(transitions) and len(reference["checks"]) == len(checks)
    assert len(reference["outages"]) == 2 * len(DEVICES)
    assert ("atm-0", 10, 9, at(545), "answered") in reference["snmp"] and len(reference["events"]) == 4
    assert len(reference["snmp"]) == 1 + 2 * 9  # the status, and two interfaces' rates at 9 polls
    assert all(end is not None for _, _, end in reference["outages"])

    steps: list[str] = []
    await wipe(db_url)
    await replay(db_url, shutil.copytree(original, tmp_path / "count"), steps.append)
    assert len(steps) > 30  # enough batches for the crash points to matter

    for point in range(1, len(steps) + 1):
        await wipe(db_url)
        directory = shutil.copytree(original, tmp_path / f"crash-{point}")
        with pytest.raises(Crash):
            await replay(db_url, directory, crash_at(point))
        await replay(db_url, directory)  # the next start
        assert await dump(db_url) == reference, f"crash {steps[point - 1]} (step {point})"

    # The same spool, from the start, a second time over a database that holds it all.
    await replay(db_url, shutil.copytree(original, tmp_path / "again"))
    assert await dump(db_url) == reference

