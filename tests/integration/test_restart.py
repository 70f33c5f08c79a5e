"""History survives a restart: an outage open at shutdown stays open, until a probe ends it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from poller.events import State, Transition
from tests.fakes import FakeProber, make_devices
from wardtui.runtime import Options, Runtime, StartupError


async def _run(db: Path, prober: FakeProber, seconds: float) -> list[Transition]:
    runtime = Runtime(Options(db=f"sqlite:///{db}", interval=0.1, confirm_spacing=0.02),
                      prober=prober, devices=make_devices(3, interval=0.1))
    sub = runtime.engine.bus.subscribe("test")
    await runtime.start()
    try:
        await runtime.engine.run(seconds)
    finally:
        await runtime.close()
    return [e for e in sub.drain() if isinstance(e, Transition)]


async def test_open_outage_survives_restart_until_a_probe_ends_it(tmp_path: Path) -> None:
    db = tmp_path / "history.db"
    down = make_devices(3)[1].address
    prober = FakeProber()
    prober.down.add(down)
    first = await _run(db, prober, 0.6)
    went_down = [t for t in first if t.to_state is State.DOWN]
    assert [t.device for t in went_down] == ["dev1"]
    since = went_down[0].down_since
    assert since is not None

    # Restart while the device is still down: no new transition, the outage keeps its start.
    second = await _run(db, prober, 0.6)
    assert [t for t in second if t.device == "dev1"] == []

    # Restart and the device answers: DOWN -> UP, carrying the original down_since.
    prober.down.clear()
    third = await _run(db, prober, 0.4)
    back = [t for t in third if t.device == "dev1"]
    assert len(back) == 1
    assert (back[0].from_state, back[0].to_state, back[0].down_since) == (State.DOWN, State.UP, since)

    runtime = Runtime(Options(db=f"sqlite:///{db}"), prober=FakeProber(), devices=make_devices(3))
    await runtime.store.open()
    try:
        outages = await runtime.store.outages("dev1")
    finally:
        await runtime.store.close()
    assert len(outages) == 1
    assert outages[0].start == since and outages[0].end == back[0].at


async def test_a_second_runtime_on_the_same_sqlite_file_is_refused_by_the_lease(tmp_path: Path) -> None:
    """Two runtimes on one SQLite file: the second cannot take the database's poller lease
    (store/lease.py), says who holds it with code 2, and its gauges say history is off and
    which process holds it (this one). The first's lease is untouched and it still writes."""
    db = tmp_path / "history.db"
    first, second = (Runtime(Options(db=f"sqlite:///{db}", interval=0.1), prober=FakeProber(),
                             devices=make_devices(2, interval=0.1)) for _ in range(2))
    await first.start()
    try:
        assert first.history_off is None
        assert "store_off" not in first.engine._gauges().extra
        refusal = f"is polled by wardtui poll on .* \\(pid {os.getpid()}\\)"
        with pytest.raises(StartupError, match=refusal) as caught:
            await second.start()
        assert caught.value.code == 2
        assert second.history_off is not None and "is polled by" in second.history_off
        extra = second.engine._gauges().extra
        assert extra["store_off"] == 1.0 and extra["store_off_pid"] == float(os.getpid())
        assert first.lease.held and first.engine._gauges().extra["store_lease_lost"] == 0.0
    finally:
        await second.close()
        await first.close()


async def test_a_second_runtime_sharing_a_spool_directory_reports_history_off(tmp_path: Path) -> None:
    """Two databases, one --spool directory: the lease lets both start, the spool's lock does
    not; the second says the spool is in use and by which process (this one)."""
    spool = tmp_path / "spool"
    first, second = (Runtime(Options(db=f"sqlite:///{tmp_path / name}", interval=0.1, spool=spool),
                             prober=FakeProber(), devices=make_devices(2, interval=0.1))
                     for name in ("a.db", "b.db"))
    await first.start()
    try:
        with pytest.raises(StartupError, match="in use"):
            await second.start()
        assert second.history_off is not None and "in use" in second.history_off
        extra = second.engine._gauges().extra
        assert extra["store_off"] == 1.0 and extra["store_off_pid"] == float(os.getpid())
        assert not second.lease.held  # given back when the start failed
    finally:
        await second.close()
        await first.close()
