"""Issue 15 item 6, one team, one truth: an acknowledgement or a maintenance window reaches the
running service and every attached viewer within a second, through the service's command path.
`wardtui serve` in a lab namespace (a host blocked with nft is DOWN), two viewers as processes
of their own (tests/procs/viewer.py), `wardtui ack` and `wardtui maintenance` as an operator runs
them, and the `maintenance` command as an attached dashboard's `m` sends it."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from poller.feed import client_for, send_command
from poller.live import Keys
from tests.integration.test_service_viewers import _dump as dump
from tests.integration.test_service_viewers import _env
from tests.lab.netns import Lab
from tests.procs.redis import unix_redis
from tests.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]
HOSTILE = "[bold red]PAGE[/] \x1b[2J\x07 ticket\u202e 42"


def _dump(viewer: subprocess.Popen[bytes], out: Path) -> dict[str, Any]:
    doc: dict[str, Any] = dump(viewer, out, 0.01)
    return doc


def _down_in_history(db: Path, name: str) -> bool:
    with sqlite3.connect(db) as conn:
        row = conn.execute("select 1 from outages o join devices d on d.id = o.device_id "
                           "where d.name = ? and o.end is null", (name,)).fetchone()
    return row is not None


def _seen_by_both(viewers: list[tuple[subprocess.Popen[bytes], Path]], test: Any, since: float) -> float:
    """Seconds from ``since`` until every viewer's dump passes ``test`` (polled every 50 ms)."""
    for viewer, out in viewers:
        wait_until(lambda v=viewer, o=out: test(_dump(v, o)["quiet"]), 10, "a viewer never saw the change",
                   0.05)
    return time.monotonic() - since


@pytest.mark.lab
@pytest.mark.alone
def test_ack_and_window_reach_the_service_and_every_viewer_within_a_second(tmp_path: Path, lab: Lab) -> None:
    up_host, down_host = lab.healthy(2, start=140)
    inventory = tmp_path / "net.csv"
    inventory.write_text("name,address,branch,region,type\n"
                         f"q-up,{up_host},qb1,north,router\nq-down,{down_host},qb2,north,atm\n")
    db = tmp_path / "h.db"
    site = f"quiet{uuid.uuid4().hex[:8]}"
    lab.block(down_host)
    with unix_redis(tmp_path) as sock:
        url = f"unix://{sock}"
        log = (tmp_path / "serve.log").open("wb")
        service = lab.popen([sys.executable, "-m", "wardtui", "serve", "--inventory", str(inventory),
                             "--db", f"sqlite:///{db}", "--redis", url, "--site", site, "--interval", "0.5",
                             "--confirm-spacing", "0.2"], cwd=REPO, env=_env(), stderr=log)
        viewers: list[tuple[subprocess.Popen[bytes], Path]] = []
        try:
            wait_until(lambda: "publishing site" in (tmp_path / "serve.log").read_text(), 30,
                  "the service never published")
            for k in range(2):
                out = tmp_path / f"viewer{k}.json"
                viewers.append((subprocess.Popen([sys.executable, "-m", "tests.procs.viewer", url, site,
                                                  str(out)], cwd=REPO, env=_env()), out))
            for _, out in viewers:
                wait_until(out.exists, 20, "a viewer never attached")
            wait_until(lambda: _down_in_history(db, "q-down"), 30, "q-down never went DOWN in the history")

            # `wardtui ack` writes the database and tells the service: both viewers have it at once.
            acked = subprocess.run([sys.executable, "-m", "wardtui", "ack", "q-down", "--note", HOSTILE,
                                    "--db", f"sqlite:///{db}", "--redis", url, "--site", site],
                                   cwd=REPO, env=_env(), capture_output=True, text=True, timeout=60)
            done = time.monotonic()
            assert acked.returncode == 0, acked.stderr
            assert "has read it" in acked.stderr, acked.stderr
            took = _seen_by_both(viewers, lambda q: [a["device"] for a in q["acks"]] == ["q-down"], done)
            assert took <= 1.0, f"the acknowledgement took {took:.2f} s to reach both viewers"
            [ack] = _dump(*viewers[0])["quiet"]["acks"]
            assert ack["note"] == HOSTILE  # data, as typed: the screens escape it where shown

            # An attached dashboard's `m`: the command travels to the service, which stores the
            # window (as the operator who sent it) and publishes it.
            async def command() -> dict[str, Any]:
                client = client_for(url)
                try:
                    return await send_command(client, Keys(site), "maintenance", matchers=["branch=qb1"],
                                              duration_s=3600, note="router swap " + HOSTILE)
                finally:
                    await client.aclose()

            sent = time.monotonic()
            reply = asyncio.run(command())
            assert reply["ok"] is True, reply
            took = _seen_by_both(viewers, lambda q: [w["matchers"] for w in q["windows"]] == [["branch=qb1"]],
                                 sent)
            assert took <= 1.0, f"the window took {took:.2f} s to reach both viewers"
            with sqlite3.connect(db) as conn:
                [(note, who)] = conn.execute("select note, created_by from maintenance_windows").fetchall()
            assert note == "router swap " + HOSTILE and who == reply["who"]

            # Refused ones say why and change nothing.
            async def refused() -> list[dict[str, Any]]:
                client = client_for(url)
                try:
                    return [await send_command(client, Keys(site), "ack", device="q-up", note="x"),
                            await send_command(client, Keys(site), "maintenance", matchers=["colour=red"],
                                               duration_s=60, note="x"),
                            await send_command(client, Keys(site), "maintenance", matchers=["device=q-up"],
                                               duration_s=10 ** 9, note="x"),
                            await send_command(client, Keys(site), "ack", device="q-down", note="  ")]
                finally:
                    await client.aclose()

            answers = asyncio.run(refused())
            assert [a["ok"] for a in answers] == [False] * 4, answers
            assert "not DOWN or UNREACHABLE" in answers[0]["error"]
            assert "unknown match key" in answers[1]["error"]

            # `wardtui maintenance remove` tells the service too; a viewer that attaches later
            # loads the state with the snapshot.
            window_id = _dump(*viewers[0])["quiet"]["windows"][0]["id"]
            removed = subprocess.run([sys.executable, "-m", "wardtui", "maintenance", "remove",
                                      str(window_id), "--db", f"sqlite:///{db}", "--redis", url,
                                      "--site", site],
                                     cwd=REPO, env=_env(), capture_output=True, text=True, timeout=60)
            done = time.monotonic()
            assert removed.returncode == 0, removed.stderr
            took = _seen_by_both(viewers, lambda q: q["windows"] == [], done)
            assert took <= 1.0, f"the removal took {took:.2f} s to reach both viewers"
            late = tmp_path / "late.json"
            viewers.append((subprocess.Popen([sys.executable, "-m", "tests.procs.viewer", url, site,
                                              str(late)], cwd=REPO, env=_env()), late))
            wait_until(late.exists, 20, "the late viewer never attached")
            assert [a["device"] for a in json.loads(late.read_text())["quiet"]["acks"]] == ["q-down"]
            assert service.poll() is None, "the service stopped"
        finally:
            lab.unblock(down_host)
            for viewer, _ in viewers:
                viewer.terminate()
                viewer.wait(10)
            service.send_signal(signal.SIGTERM)
            assert service.wait(30) == 0
            log.close()
        text = (tmp_path / "serve.log").read_text()
        assert "Traceback" not in text
        for command_name in ("ack", "maintenance", "quiet"):
            assert f"command {command_name} from" in text, text
        assert "\x1b" not in text  # the hostile note is logged escaped, if at all
