"""``wardtui outages``: the outage history as people and scripts read it, from a real SQLite store."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.fakes import FakeProber, make_devices
from wardtui.runtime import Options, Runtime

REPO = Path(__file__).resolve().parents[2]


async def _history(db: Path) -> None:
    """dev1 goes down and comes back; dev2 goes down and stays down."""
    prober = FakeProber()
    devices = make_devices(3, interval=0.1)
    runtime = Runtime(Options(db=f"sqlite:///{db}", interval=0.1, confirm_spacing=0.02),
                      prober=prober, devices=devices)
    await runtime.start()
    prober.down |= {devices[1].address, devices[2].address}

    async def recover() -> None:
        await asyncio.sleep(0.8)
        prober.down.discard(devices[1].address)

    task = asyncio.create_task(recover())
    await runtime.engine.run(1.5)
    await task
    await runtime.close()


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "XDG_DATA_HOME": str(cwd / "xdg")}
    return subprocess.run([sys.executable, "-m", "wardtui", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60)


async def test_outages_json_lists_closed_and_open_outages(tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    await _history(db)
    proc = run("outages", "--since", "1h", "--json", "--db", f"sqlite:///{db}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    records = {r["device"]: r for r in json.loads(proc.stdout)}
    assert set(records) == {"dev1", "dev2"}
    closed, still = records["dev1"], records["dev2"]
    assert closed["end"] is not None and still["end"] is None
    span = datetime.fromisoformat(closed["end"]) - datetime.fromisoformat(closed["start"])
    assert abs(span.total_seconds() - closed["duration_s"]) < 0.01
    assert 0.5 < closed["duration_s"] < 1.5  # down at start, back after ~0.8 s
    # One device, and a table for people.
    one = run("outages", "--device", "dev2", "--json", "--db", f"sqlite:///{db}", cwd=tmp_path)
    assert [r["device"] for r in json.loads(one.stdout)] == ["dev2"]
    table = run("outages", "--db", f"sqlite:///{db}", cwd=tmp_path)
    assert "still down" in table.stdout and "dev1" in table.stdout
    assert closed["cause"] == still["cause"] == "down" and closed["down_from"] is None
    assert table.stdout.splitlines()[0].split()[-2:] == ["cause", "acknowledged"]
    assert table.stdout.splitlines()[1].endswith("down")  # no acknowledgement: nothing after the cause


async def test_outages_say_their_cause(tmp_path: Path) -> None:
    from poller.events import State, Transition
    from store import HistoryStore, database_url

    db = tmp_path / "h.db"
    t0 = datetime.now(UTC) - timedelta(minutes=30)
    R, U, D = State.UNREACHABLE, State.UP, State.DOWN
    async with HistoryStore(database_url(f"sqlite:///{db}")) as store:
        await store.write_transitions([
            Transition("atm [b]1", "127.0.0.1", U, R, t0, t0, None),
            Transition("atm [b]1", "127.0.0.1", R, D, t0 + timedelta(minutes=5), t0, None),
            Transition("cam", "127.0.0.2", U, R, t0, t0, None)])
    proc = run("outages", "--json", "--db", f"sqlite:///{db}", cwd=tmp_path)
    records = {r["device"]: r for r in json.loads(proc.stdout)}
    assert (records["atm [b]1"]["cause"], records["cam"]["cause"]) == ("unreachable", "unreachable")
    assert records["atm [b]1"]["down_from"] == (t0 + timedelta(minutes=5)).isoformat()
    table = run("outages", "--db", f"sqlite:///{db}", cwd=tmp_path).stdout.splitlines()
    assert next(line for line in table if line.startswith("atm [b]1")).endswith("unreachable, then down")
    assert next(line for line in table if line.startswith("cam")).endswith("unreachable")


async def test_outages_errors_are_clear_and_create_nothing(tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    await _history(db)
    unknown = run("outages", "--device", "nosuch", "--db", f"sqlite:///{db}", cwd=tmp_path)
    assert unknown.returncode == 2 and "nosuch" in unknown.stderr
    bad = run("outages", "--since", "yesterday", "--db", f"sqlite:///{db}", cwd=tmp_path)
    assert bad.returncode == 2 and "--since" in bad.stderr
    missing = tmp_path / "none.db"
    absent = run("outages", "--db", f"sqlite:///{missing}", cwd=tmp_path)
    assert absent.returncode == 1 and "no history" in absent.stderr
    assert not missing.exists()
    for proc in (unknown, bad, absent):
        assert "Traceback" not in proc.stderr
