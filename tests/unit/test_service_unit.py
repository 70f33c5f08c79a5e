"""packaging/: wardtui.service, wardtui.slice and the Redis drop-in: the keys the operations guide
relies on, and systemd's own verdict."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

PACKAGING = Path(__file__).resolve().parents[2] / "packaging"
UNIT = PACKAGING / "wardtui.service"
SLICE = PACKAGING / "wardtui.slice"
REDIS_DROP_IN = PACKAGING / "redis-slice.conf"


def entries(path: Path = UNIT) -> dict[str, dict[str, list[str]]]:
    """section -> key -> every value given (Environment= may come more than once)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"{line!r} outside a section"
        key, sep, value = line.partition("=")
        assert sep, f"not KEY=VALUE: {line!r}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def test_the_unit_says_what_the_service_needs() -> None:
    service = entries()["Service"]
    expected = {
        "User": "wardtui", "AmbientCapabilities": "CAP_NET_RAW", "CapabilityBoundingSet": "CAP_NET_RAW",
        "StateDirectory": "wardtui", "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
        "NoNewPrivileges": "yes", "Restart": "on-failure", "RestartSec": "5",
        "ExecReload": "/bin/kill -HUP $MAINPID", "KillSignal": "SIGTERM", "TimeoutStopSec": "30",
        "EnvironmentFile": "-/etc/wardtui/wardtui.env",
        # the poller before the dashboards (docs/OPERATIONS.md, bench/feed.py --service-nice -10)
        "Nice": "-10", "CPUWeight": "400", "Slice": "wardtui.slice",
    }
    for key, value in expected.items():
        assert service.get(key) == [value], (key, service.get(key))
    assert "WARDTUI_DB=sqlite:////var/lib/wardtui/history.db" in service["Environment"]
    (start,) = service["ExecStart"]
    assert start.startswith("/opt/wardtui/bin/wardtui serve --inventory ")
    # the history is written within the stop timeout: wardtui gives a silent database 10 s
    from wardtui.runtime import STOP_TIMEOUT

    assert int(service["TimeoutStopSec"][0]) > STOP_TIMEOUT
    assert entries()["Install"]["WantedBy"] == ["multi-user.target"]


def test_the_slice_puts_the_poller_and_its_redis_before_the_sessions() -> None:
    """wardtui.slice is a top-level slice (a peer of system.slice and user.slice, whose default
    weight is 100) weighing 4x; the Redis drop-in puts redis-server.service in it."""
    assert entries(SLICE)["Slice"] == {"CPUWeight": ["400"]}
    assert entries(SLICE)["Unit"]["Before"] == ["slices.target"]
    assert entries(REDIS_DROP_IN) == {"Service": {"Slice": ["wardtui.slice"]}}


@pytest.mark.parametrize("name", ["wardtui.service", "wardtui.slice"])
def test_systemd_analyze_verify_accepts_it(tmp_path: Path, name: str) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        (pytest.fail if os.environ.get("CI") == "true" else pytest.skip)("systemd-analyze is not installed")
    # verify also checks that ExecStart's program exists: the venv is not in /opt here.
    for source in (UNIT, SLICE):
        text = source.read_text(encoding="utf-8").replace("/opt/wardtui/bin/wardtui", "/bin/true")
        (tmp_path / source.name).write_text(text, encoding="utf-8")
    proc = subprocess.run([analyze, "verify", str(tmp_path / name)], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    said = [line for line in (proc.stdout + proc.stderr).splitlines() if name in line]
    assert said == [], said  # no unknown key, no bad value
