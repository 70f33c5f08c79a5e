"""The project's promises about itself: README's two commands and CI running the second verbatim."""

from __future__ import annotations

import re
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


def test_bundled_example_is_packaged() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '"examples/bank.csv" = "wardtui/data/bank.csv"' in pyproject
    assert (ROOT / "examples" / "bank.csv").is_file()
