"""wardtui in a 16-colour terminal (tmux, TERM=xterm): red means DOWN, and nothing else is red."""

from __future__ import annotations

import os
import re
import subprocess
from collections import Counter
from pathlib import Path

from tests.ui.test_terminal import _require, wait_for_exit, wardtui_in_tmux

SGR = re.compile(r"\x1b\[([0-9;]*)m")
RED = {"31", "91"}


def foreground_of_each_cell(styled: str) -> list[tuple[str, str]]:
    """(character, foreground) for each character of a ``capture-pane -e``; the foreground is
    an SGR colour code ("91"), "38;5;N" or "38;2;R;G;B", or "" for the default."""
    cells: list[tuple[str, str]] = []
    fg = ""
    pos = 0
    for match in SGR.finditer(styled):
        cells += [(ch, fg) for ch in styled[pos:match.start()] if ch != "\n"]
        pos = match.end()
        codes = match[1].split(";") if match[1] else ["0"]
        i = 0
        while i < len(codes):
            code = codes[i]
            if code in ("0", "39"):
                fg = ""
            elif code in ("38",) and i + 1 < len(codes):
                width = 3 if codes[i + 1] == "5" else 5
                fg = ";".join(codes[i:i + width])
                i += width - 1
            elif code in ("48",) and i + 1 < len(codes):
                i += 2 if codes[i + 1] == "5" else 4
            elif 30 <= int(code or 0) <= 37 or 90 <= int(code or 0) <= 97:
                fg = code
            i += 1
    cells += [(ch, fg) for ch in styled[pos:] if ch != "\n"]
    return cells


def test_in_16_colours_borders_and_keys_are_not_red(tmp_path: Path) -> None:
    """The default theme's orange accent is drawn bright red in 16 colours: the focused
    table's border and the footer's keys looked like an outage. Nothing is down here, so no
    cell may be red."""
    _require()
    inventory = tmp_path / "net.csv"
    inventory.write_text("name,address,branch,region,type\nedge-1,127.3.0.1,b1,north,router\n"
                         "edge-2,127.3.0.2,b1,north,router\n", encoding="utf-8")
    status_file = tmp_path / "exit-status"
    args = f"--inventory {inventory} --db sqlite:///{tmp_path / 'h.db'}"
    env = {"TERM": "xterm", "COLORTERM": "", "HOME": str(tmp_path)}
    with wardtui_in_tmux(f"wardtui-16-{os.getpid()}", args, status_file, 100, 30, env) as tmux:
        tmux.wait_for(lambda s: "devices 2/2" in s and "q Quit" in s and "up 2" in s)
        styled = subprocess.run(["tmux", "capture-pane", "-e", "-p", "-t", tmux.name],
                                capture_output=True, text=True, check=True).stdout
        cells = foreground_of_each_cell(styled)
        colours = Counter(fg for _, fg in cells)
        assert not any("38;" in fg for fg in colours), f"not a 16-colour screen: {colours}"
        assert any(fg and fg not in ("37", "97") for fg in colours), f"no colour at all: {colours}"
        border = {fg for ch, fg in cells if ch in "╭╮╰╯│─"}
        assert border and not border & RED, f"border colours {border}"
        red = "".join(ch for ch, fg in cells if fg in RED and not ch.isspace())
        assert not red, f"red on a screen where nothing is down: {red!r}"
        tmux.keys("q")
        assert wait_for_exit(status_file) == "0"
