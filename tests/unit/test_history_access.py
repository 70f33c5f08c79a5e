"""HistoryAccess, what the screens read the history through: every read on the engine's thread,
the run's retention picking the tier, a store that is not open said as a store error."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from poller.inventory import Device
from store.db import database_url
from store.history import HistoryStore
from store.queries import Retention
from store.report import Period
from wardtui.engine_thread import EngineThread
from wardtui.history_access import STORE_ERRORS, HistoryAccess, Scope

DEVICES = [Device("r1", "127.4.0.1", "b1", "north", "router"),
           Device("r2", "127.4.0.2", "b2", "south", "switch")]


@pytest.fixture
def engine() -> Iterator[EngineThread]:
    thread = EngineThread("test-history-engine")
    yield thread
    thread.close()


@pytest.fixture
def store(tmp_path: Path, engine: EngineThread) -> Iterator[HistoryStore]:
    opened = HistoryStore(database_url(str(tmp_path / "h.db")))
    engine.submit(opened.open()).result(10)
    engine.submit(opened.sync_devices(DEVICES)).result(10)
    yield opened
    engine.submit(opened.close()).result(10)


def record(store: HistoryStore, names: list[str], seen: list[tuple[str, str]],
           monkeypatch: pytest.MonkeyPatch) -> None:
    """Note, in ``seen``, each call of the store's methods ``names`` and the thread it ran on."""
    for name in names:
        method: Callable[..., Awaitable[Any]] = getattr(store, name)

        async def noted(*args: Any, _name: str = name, _method: Any = method, **kwargs: Any) -> Any:
            seen.append((_name, threading.current_thread().name))
            return await _method(*args, **kwargs)

        monkeypatch.setattr(store, name, noted)


def test_every_read_runs_on_the_engine_thread(store: HistoryStore, engine: EngineThread,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The store belongs to the engine's loop: a read from the screen's loop hops onto it."""
    seen: list[tuple[str, str]] = []
    reads = ["checks", "rollups", "outages", "snmp_latest", "if_rates", "if_rollups"]
    record(store, reads, seen, monkeypatch)
    access = HistoryAccess(store, engine)
    now = datetime.now(UTC)

    async def reads() -> None:
        day = await access.device("r1", timedelta(hours=1))
        week = await access.device("r1", timedelta(days=3))
        assert (day.history.tier, week.history.tier, day.outages) == ("raw", "1m", [])
        snmp = await access.snmp("r1")
        assert (snmp.latest, snmp.events) == (None, [])  # never polled: no events read
        assert (await access.interface("r1", 1, timedelta(hours=1))).tier == "raw"
        assert (await access.interface("r1", 1, timedelta(days=30))).tier == "1h"
        south = Scope(group=("region", "south"))
        report = await access.availability(Period(now - timedelta(days=1), now), south)
        assert [row.name for row in report.rows] == ["r2"]

    asyncio.run(reads())
    assert [name for name, _ in seen] == ["checks", "outages", "rollups", "outages", "snmp_latest",
                                          "if_rates", "if_rollups", "outages"]
    assert {thread for _, thread in seen} == {"test-history-engine"}


def test_the_runs_retention_picks_the_tier(store: HistoryStore, engine: EngineThread) -> None:
    """With raw checks kept 6 h, the last 24 h come from 1-minute rollups (as the charts say)."""
    short = HistoryAccess(store, engine, Retention(raw=timedelta(hours=6)))
    default = HistoryAccess(store, engine)

    async def tiers() -> tuple[str, str, str]:
        return ((await short.device("r1", timedelta(hours=24))).history.tier,
                (await default.device("r1", timedelta(hours=24))).history.tier,
                (await short.interface("r1", 1, timedelta(hours=24))).tier)

    assert asyncio.run(tiers()) == ("1m", "raw", "1m")


def test_a_store_not_open_yet_is_a_store_error(tmp_path: Path, engine: EngineThread) -> None:
    """What the drill-down shows as "history unavailable" while the store is still opening."""
    access = HistoryAccess(HistoryStore(database_url(str(tmp_path / "h.db"))), engine)
    with pytest.raises(STORE_ERRORS, match="not open"):
        asyncio.run(access.device("r1", timedelta(hours=1)))


def test_the_app_hands_the_runs_retention_to_the_screens(tmp_path: Path) -> None:
    """--keep-raw 6h: the drill-down's charts pick their tier by it, as maintenance deletes by it."""
    from tests.fakes import FakeProber
    from wardtui.app import WardApp
    from wardtui.runtime import Options, Runtime

    options = Options(db=f"sqlite:///{tmp_path / 'h.db'}", keep_raw=timedelta(hours=6),
                      keep_1h=timedelta(days=400))
    runtime = Runtime(options, prober=FakeProber(), devices=DEVICES)
    app = WardApp(runtime)
    try:
        history = app.dashboard.history
        assert history is not None
        assert history.retention == Retention(raw=timedelta(hours=6), minute=timedelta(days=90),
                                              hour=timedelta(days=400))
    finally:
        app.engine_thread.close()
        runtime.prober.close()
