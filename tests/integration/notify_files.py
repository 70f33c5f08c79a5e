"""A notify file for tests of `wardtui serve --notify`: one route grouped by branch to a command
receiver (a script that appends each message's JSON to a file), and what that file received."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

APPEND = "import sys\nwith open(sys.argv[1], 'a') as f:\n    f.write(sys.stdin.read().strip() + '\\n')\n"


def notify_file(tmp: Path, out: Path, *, group_wait: str = "0.3s", group_interval: str = "1s",
                repeat_interval: str = "1h") -> Path:
    """``tmp/notify.yaml``: route ``branches`` (group_by branch) to receiver ``file``, which
    appends every message to ``out``."""
    (tmp / "append.py").write_text(APPEND)
    path = tmp / "notify.yaml"
    path.write_text(f"""routes:
  - name: branches
    receivers: [file]
    group_by: [branch]
    group_wait: {group_wait}
    group_interval: {group_interval}
    repeat_interval: {repeat_interval}
receivers:
  - name: file
    kind: command
    argv: [{json.dumps(sys.executable)}, {json.dumps(str(tmp / "append.py"))}, {json.dumps(str(out))}]
    timeout: 10s
""")
    return path


def received(out: Path) -> list[dict[str, Any]]:
    """The messages the command receiver appended to ``out``, in order."""
    if not out.exists():
        return []
    return [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
