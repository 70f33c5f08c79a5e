"""A PostgreSQL outage while polling is told in one line per event, never in tracebacks."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tests.integration.postgres import PrivateCluster, checks_written, private_pg  # noqa: F401
from tests.integration.test_cli_errors import REPO


def test_a_database_outage_is_one_line_per_event(private_pg: PrivateCluster, tmp_path: Path) -> None:  # noqa: F811
    inventory = tmp_path / "net.csv"
    inventory.write_text("name,address,branch,region,type\nr1,127.0.4.1,b,r,router\n", encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(REPO), "XDG_DATA_HOME": str(tmp_path / "xdg")}
    proc = subprocess.Popen([sys.executable, "-m", "wardtui", "poll", "--inventory", str(inventory),
                             "--jsonl", "--checks", "--interval", "0.2", "--duration", "20",
                             "--db", private_pg.url], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        # Polling, with its first checks written (started late on a loaded machine, it would
        # meet the database already down and exit).
        deadline = time.monotonic() + 60
        while checks_written(private_pg.url) == 0:
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "no check written within 60 s"
            time.sleep(0.2)
        private_pg.kill()
        time.sleep(8)  # the writer and the maintenance (every 15 s) both meet the outage
        private_pg.start()
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err, err
    lines = err.splitlines()
    assert all(line.startswith("wardtui: ") for line in lines), err
    failed = [line for line in lines if "failed, will retry: " in line]
    # Whoever meets the outage first says so: the writer (a write failed), or the poller lease
    # (its connection is checked every 5 s; writes then wait for it and never meet the outage).
    lease_lost = [line for line in lines if "LOST the poller lease" in line]
    assert any("history writer" in line for line in failed) or lease_lost, err
    assert all("Error" in line.split("will retry: ", 1)[1] for line in failed), err  # the cause is named
    assert all("Error" in line for line in lease_lost), err
    assert len(lease_lost) <= 1 and len([line for line in lines if "again yet" in line]) <= 1, err
    assert any("writes resumed" in line or "history writes resume" in line for line in lines), err
