"""`wardtui serve` and viewers as separate processes: a viewer frozen for a minute while the
network churns catches up and ends state for state with the service."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.lab.netns import Lab
from tests.procs.redis import unix_redis
from tests.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]
PAUSE_S = 60.0


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def _service_states(db: Path) -> dict[str, tuple[str, str | None]]:
    """Each device's state as the service wrote it: its last transition, and the start of its
    open outage."""
    with sqlite3.connect(db) as conn:
        last = dict(conn.execute(
            "select d.name, t.to_state from transitions t join devices d on d.id = t.device_id "
            "where t.at = (select max(at) from transitions where device_id = t.device_id)").fetchall())
        open_outages = dict(conn.execute(
            "select d.name, o.start from outages o join devices d on d.id = o.device_id "
            "where o.end is null").fetchall())
    return {name: (state, open_outages.get(name)) for name, state in last.items()}


def _dump(viewer: subprocess.Popen[bytes], out: Path, pace: float = 0.2) -> dict[str, object]:
    before = out.stat().st_mtime_ns
    os.kill(viewer.pid, signal.SIGUSR1)
    wait_until(lambda: out.stat().st_mtime_ns != before, 10, "the viewer did not write its state", pace)
    doc: dict[str, object] = json.loads(out.read_text())
    return doc


@pytest.mark.lab
def test_a_viewer_frozen_a_minute_under_churn_ends_state_for_state_with_the_service(
        tmp_path: Path, lab: Lab) -> None:
    hosts = lab.healthy(24, start=120)
    names = [f"churn-{i}" for i in range(len(hosts))]
    inventory = tmp_path / "net.csv"
    rows = [f"{n},{a},b{i % 4},north,router\n" for i, (n, a) in enumerate(zip(names, hosts, strict=True))]
    inventory.write_text("name,address,branch,region,type\n" + "".join(rows))
    db = tmp_path / "h.db"
    site = f"churn{uuid.uuid4().hex[:8]}"
    blocked: set[str] = set()
    rng = random.Random(14)
    with unix_redis(tmp_path) as sock:
        url = f"unix://{sock}"
        log = (tmp_path / "serve.log").open("wb")
        service = lab.popen([sys.executable, "-m", "wardtui", "serve", "--inventory", str(inventory),
                             "--db", f"sqlite:///{db}", "--redis", url, "--site", site, "--interval", "0.5",
                             "--confirm-spacing", "0.2"], cwd=REPO, env=_env(), stderr=log)
        viewer = None
        try:
            wait_until(lambda: "publishing site" in (tmp_path / "serve.log").read_text(), 30,
                  "the service never published")
            out = tmp_path / "viewer.json"
            viewer = subprocess.Popen([sys.executable, "-m", "tests.procs.viewer", url, site, str(out)],
                                      cwd=REPO, env=_env())
            wait_until(out.exists, 20, "the viewer never attached")
            wait_until(lambda: all(s == "up" for s, _ in _service_states(db).values())
                  and len(_service_states(db)) == len(names), 20, "not every device came up")
            os.kill(viewer.pid, signal.SIGSTOP)
            end = time.monotonic() + PAUSE_S
            while time.monotonic() < end:  # churn: a host blocked or unblocked every 1.5 s
                host = rng.choice(hosts)
                if host in blocked:
                    lab.unblock(host)
                    blocked.discard(host)
                else:
                    lab.block(host)
                    blocked.add(host)
                time.sleep(1.5)
            os.kill(viewer.pid, signal.SIGCONT)
            expected = {n: ("down" if a in blocked else "up") for n, a in zip(names, hosts, strict=True)}
            wait_until(lambda: {n: s for n, (s, _) in _service_states(db).items()} == expected, 20,
                  "the service's history never settled on the blocked set")
            service_states = _service_states(db)

            def caught_up() -> dict[str, object] | None:
                """The viewer's state once every device's matches the service's: a snapshot and
                the stream's last events reach it within a second or two (more on a loaded machine);
                the assertions below then say what differs, if anything."""
                doc = _dump(viewer, out)
                shown = doc["devices"]
                assert isinstance(shown, dict)
                same = all(name in shown and shown[name]["state"] == state
                           for name, (state, _) in service_states.items())
                return doc if same else None

            deadline = time.monotonic() + 30
            while (seen := caught_up()) is None and time.monotonic() < deadline:
                time.sleep(0.5)
            if seen is None:
                seen = _dump(viewer, out)
            devices = seen["devices"]
            assert isinstance(devices, dict)
            for name, (state, outage_start) in service_states.items():
                assert devices[name]["state"] == state, (name, devices[name], state)
                if state == "down":
                    assert outage_start is not None
                    shown = devices[name]["down_since"]
                    assert shown is not None
                    # the stored outage start and the viewer's down_since are the same instant
                    assert abs(_epoch(shown) - _epoch(outage_start)) < 0.002, (name, shown, outage_start)
            assert seen["live"] is True
            assert len(blocked) > 0 and int(seen["events"]) > 0  # type: ignore[call-overload]
            assert service.poll() is None, "the service stopped"
        finally:
            for host in blocked:
                subprocess.run(["ip", "netns", "exec", lab.h, "nft", "delete", "element", "ip", "wardlab",
                                "blocked", f"{{ {host} }}"], capture_output=True, check=False)
            if viewer is not None:
                viewer.send_signal(signal.SIGCONT)
                viewer.terminate()
                viewer.wait(10)
            service.send_signal(signal.SIGTERM)
            assert service.wait(30) == 0
            log.close()
        assert "Traceback" not in (tmp_path / "serve.log").read_text()


def _epoch(text: str) -> float:
    from datetime import UTC, datetime

    value = datetime.fromisoformat(text.replace(" ", "T"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()
