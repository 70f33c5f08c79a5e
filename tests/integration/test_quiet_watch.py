"""wardtui/quiet_watch.py and wardtui/quiet_actions.py on a real history (SQLite and PostgreSQL):
what an operator adds is read at once and published once; a database that cannot be read keeps
the state read before (said once, and once when it answers again); refused actions say why and
store nothing."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from poller.bus import EventBus
from poller.events import State, Transition
from poller.quiet import QuietChanged
from store.history import HistoryStore
from wardtui.quiet_actions import acknowledge, add_maintenance
from wardtui.quiet_watch import QuietWatch

NOW = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
HOSTILE = "[bold]x[/] \x1b[31mred\x1b[0m\n<script>"
U, D = State.UP, State.DOWN


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[HistoryStore]:
    async with HistoryStore(db_url) as history:
        await history.write_transitions([
            Transition("rtr", "127.0.0.1", State.UNKNOWN, U, NOW - timedelta(minutes=5), None, 1.0),
            Transition("pc", "127.0.0.3", State.UNKNOWN, U, NOW - timedelta(minutes=5), None, 1.0),
            Transition("rtr", "127.0.0.1", U, D, NOW + timedelta(seconds=10), NOW, None)])
        try:
            yield history
        finally:
            await history.close()


def published(sub: object) -> list[QuietChanged]:
    return [e for e in sub.drain() if isinstance(e, QuietChanged)]  # type: ignore[attr-defined]


async def test_actions_are_read_at_once_and_published_once(store: HistoryStore) -> None:
    bus = EventBus()
    sub = bus.subscribe("test")
    watch = QuietWatch(store.db, bus, every=3600)
    await watch.start()
    try:
        assert published(sub) == [] and not watch.quiet  # nothing in force: nothing said
        reply = await acknowledge(store.db, "rtr", HOSTILE, "alice")
        assert reply["ok"] is True and reply["state"] == "down" and reply["note"] == HOSTILE
        assert await watch.read_now(by="alice") is True
        [event] = published(sub)
        assert event.by == "alice" and event.quiet.ack_of("rtr", NOW) is not None
        assert await watch.read_now() is False and published(sub) == []  # the same: not said again
        reply = await add_maintenance(store.db, ["branch=b1", "type=atm"], 7200, "swap " + HOSTILE, "bob")
        assert reply["ok"] is True
        assert await watch.read_now(by="bob") is True
        [event] = published(sub)
        [window] = event.quiet.windows
        assert window.note == "swap " + HOSTILE and window.created_by == "bob"
        assert window.ends_at is not None and window.starts_at is not None
        assert window.ends_at - window.starts_at == timedelta(hours=2)
    finally:
        await watch.stop()


@pytest.mark.parametrize("device, note, why", [
    ("pc", "on it", "not DOWN or UNREACHABLE"),
    ("nobody", "on it", "not in the history"),
    ("rtr", "   ", "a note is needed"),
    ("", "on it", "say which device"),
])
async def test_refused_acks_say_why_and_store_nothing(store: HistoryStore, device: str, note: str,
                                                      why: str) -> None:
    reply = await acknowledge(store.db, device, note, "alice")
    assert reply["ok"] is False and why in reply["error"], reply
    async with store.db.engine.connect() as conn:
        assert (await conn.execute(text("select count(*) from acknowledgements"))).scalar_one() == 0


@pytest.mark.parametrize("matchers, duration, note, why", [
    (["colour=red"], 3600, "x", "unknown match key"),
    ([], 3600, "x", "say which devices"),
    ("branch=b1", 3600, "x", "say which devices"),
    (["branch="], 3600, "x", "empty"),
    (["branch=b1"], 59, "x", "1 minute to 366 days"),
    (["branch=b1"], float("nan"), "x", "1 minute to 366 days"),
    (["branch=b1"], True, "x", "1 minute to 366 days"),
    (["branch=b1"], 3600, "", "a note is needed"),
])
async def test_refused_windows_say_why_and_store_nothing(store: HistoryStore, matchers: object,
                                                         duration: object, note: str, why: str) -> None:
    reply = await add_maintenance(store.db, matchers, duration, note, "alice")
    assert reply["ok"] is False and why in reply["error"], reply
    async with store.db.engine.connect() as conn:
        assert (await conn.execute(text("select count(*) from maintenance_windows"))).scalar_one() == 0


async def test_a_database_that_fails_keeps_what_was_read_said_once(store: HistoryStore,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="wardtui.quiet")
    bus = EventBus()
    sub = bus.subscribe("test")
    await acknowledge(store.db, "rtr", "on it", "alice")
    watch = QuietWatch(store.db, bus, every=3600)
    await watch.start()
    try:
        [first] = published(sub)
        async with store.db.engine.begin() as conn:
            await conn.execute(text("alter table acknowledgements rename to acks_away"))
        for _ in range(3):
            assert await watch.read_now() is False
        assert watch.quiet == first.quiet and published(sub) == []
        failures = [r for r in caplog.records if "cannot read" in r.getMessage()]
        assert len(failures) == 1
        async with store.db.engine.begin() as conn:
            await conn.execute(text("alter table acks_away rename to acknowledgements"))
        assert await watch.read_now() is False  # the same state as before the failure
        assert len([r for r in caplog.records if "read again" in r.getMessage()]) == 1
    finally:
        await watch.stop()
