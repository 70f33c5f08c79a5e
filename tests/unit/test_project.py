"""The project's promises about itself: README's two commands and CI running the second verbatim."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _quick_start_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
    return [line for block in blocks for line in block.splitlines() if line and not line.startswith("#")]


def test_readme_quick_start_has_exactly_two_commands() -> None:
    commands = _quick_start_commands()
    assert len(commands) == 2, commands
    assert "wardtui" in commands[0] and "pytest" in commands[1]


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    test_command = _quick_start_commands()[1]
    assert test_command in ci, "the last command of .ci/run must be README's test command, unchanged"


def test_wheel_carries_the_example_and_the_stylesheets(tmp_path: Path) -> None:
    """README's first command installs a wheel (not editable): it must hold what the app reads."""
    build = f"from hatchling.build import build_wheel; print(build_wheel({str(tmp_path)!r}))"
    proc = subprocess.run([sys.executable, "-c", build], cwd=ROOT, capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    wheel = tmp_path / proc.stdout.strip().splitlines()[-1]
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "wardtui/data/bank.csv" in names
    tcss = {p.relative_to(ROOT).as_posix() for p in (ROOT / "wardtui").rglob("*.tcss")}
    assert tcss and tcss <= names
    for package in ("poller", "store", "wardtui"):
        sources = {p.relative_to(ROOT).as_posix() for p in (ROOT / package).rglob("*.py")}
        assert sources <= names, sources - names
    assert not any(n.startswith(("tests/", "bench/")) for n in names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "wardtui = wardtui.start:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
