"""Help that teaches: ``wardtui --help`` and every command's help end with runnable examples."""

from __future__ import annotations

import argparse

import pytest

from wardtui.cli import build_parser

COMMANDS = ["poll", "serve", "events", "status", "history", "outages", "snmp", "report", "db", "generate",
            "doctor", "notify", "maintenance", "ack"]


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def test_every_command_is_covered() -> None:
    assert sorted(_subparsers(build_parser())) == sorted(COMMANDS)


@pytest.mark.parametrize("path", [[], *([c] for c in COMMANDS), ["db", "upgrade"], ["db", "current"],
                                  ["notify", "test"], ["notify", "check"], ["maintenance", "add"],
                                  ["maintenance", "list"], ["maintenance", "remove"]])
def test_help_shows_examples_of_itself(path: list[str]) -> None:
    parser = build_parser()
    for name in path:
        parser = _subparsers(parser)[name]
    text = parser.format_help()
    examples = text[text.index("examples:"):]
    command = " ".join(["wardtui", *path])
    runnable = [line.strip() for line in examples.splitlines() if line.strip().startswith(command)]
    assert len(runnable) >= 2, examples
