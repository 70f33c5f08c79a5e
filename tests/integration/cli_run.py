"""Running ``wardtui`` subcommands as subprocesses, several at once, for the CLI tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def run(*argsets: tuple[str, ...], cwd: Path) -> list[subprocess.CompletedProcess[str]]:
    """``wardtui ARGS...`` for each of ``argsets``, all at once (each start costs ~0.7 s)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "XDG_DATA_HOME": str(cwd / "xdg"),
           "PYTHONDONTWRITEBYTECODE": "1"}
    procs = [(args, subprocess.Popen([sys.executable, "-m", "wardtui", *args], cwd=cwd, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
             for args in argsets]
    done = []
    for args, proc in procs:
        out, err = proc.communicate(timeout=60)
        assert "Traceback" not in err, err
        done.append(subprocess.CompletedProcess(list(args), proc.returncode, out, err))
    return done


def json_of(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The JSON a successful run printed."""
    assert proc.returncode == 0, proc.stderr
    data: dict[str, Any] = json.loads(proc.stdout)
    return data
