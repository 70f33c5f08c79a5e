"""A PostgreSQL outage while polling is told in one line per event, never in tracebacks."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tests.integration.postgres import PrivateCluster, private_pg  # noqa: F401
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
        time.sleep(4)
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
    assert any("history writer" in line for line in failed), err
    assert all("Error" in line.split("will retry: ", 1)[1] for line in failed), err  # the cause is named
    assert any("writes resumed" in line for line in lines), err
