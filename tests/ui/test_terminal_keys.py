"""The operator's round trip in a real terminal (tmux) on the bundled example: filter, drill-down,
back, export, quit, at 120x40 in 256 colours and at 80x24 with NO_COLOR."""

from __future__ import annotations

import csv
import io
import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.ui.test_terminal import ROOT, Tmux, _require, wait_for_exit, wardtui_in_tmux

EXAMPLE = ROOT / "examples" / "bank.csv"
FILTER = "b001-atm"

SGR = re.compile(r"\x1b\[([0-9;]*)m")
GREYS = {0, 7, 8, 15, 16, 231, *range(232, 256)}  # xterm-256 indices without hue


def example_devices() -> list[dict[str, str]]:
    with EXAMPLE.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def hues(styled: str) -> set[str]:
    """Colours with a hue in SGR sequences of a ``capture-pane -e``: ``38;5;214``, ``48;2;r;g;b``…"""
    found: set[str] = set()
    for params in SGR.findall(styled):
        codes = [int(c) if c else 0 for c in params.split(";")]
        i = 0
        while i < len(codes):
            code = codes[i]
            if code in (38, 48) and i + 2 < len(codes) and codes[i + 1] == 5:
                if codes[i + 2] not in GREYS:
                    found.add(f"{code};5;{codes[i + 2]}")
                i += 3
            elif code in (38, 48) and i + 4 < len(codes) and codes[i + 1] == 2:
                r, g, b = codes[i + 2:i + 5]
                if not r == g == b:
                    found.add(f"{code};2;{r};{g};{b}")
                i += 5
            else:
                if 31 <= code <= 36 or 41 <= code <= 46 or 91 <= code <= 96 or 101 <= code <= 106:
                    found.add(str(code))
                i += 1
    return found


def styled_capture(tmux: Tmux) -> str:
    return subprocess.run(["tmux", "capture-pane", "-e", "-p", "-t", tmux.name],
                          capture_output=True, text=True, check=True).stdout


def box_is_whole(screen: str, title: str) -> bool:
    """The box whose top border carries ``title`` is closed on the right (not cut by the edge).

    The dashboard shows through around a box (dimmed), so its borders may follow on the line.
    """
    top = next((line.rstrip() for line in screen.splitlines() if f"╭─ {title}" in line), "")
    border = top[top.find(f"╭─ {title}"):] if top else ""
    return bool(re.match(rf"╭─ {re.escape(title)}[^╮│]*─╮", border))


@pytest.mark.parametrize(("width", "height", "no_color"),
                         [(120, 40, False), (80, 24, True)], ids=["120x40-colour", "80x24-NO_COLOR"])
def test_operator_filters_drills_down_exports_and_quits(tmp_path: Path, width: int, height: int,
                                                        no_color: bool) -> None:
    _require()
    devices = example_devices()
    total = len(devices)
    matching = sorted(d["name"] for d in devices if any(FILTER in value.lower() for value in d.values()))
    assert 0 < len(matching) < 40, "the filter should leave a few devices of the example"
    env = {"HOME": str(tmp_path / "home"), "XDG_DATA_HOME": str(tmp_path / "data"),
           "XDG_CONFIG_HOME": str(tmp_path / "config")}
    if no_color:
        env["NO_COLOR"] = "1"
    report = tmp_path / "out" / "atm-report.csv"
    report.parent.mkdir()
    status_file = tmp_path / "exit-status"
    name = f"wardtui-keys-{os.getpid()}-{width}x{height}"

    # No --inventory: the bundled example, with the history under XDG_DATA_HOME (in tmp_path).
    with wardtui_in_tmux(name, "", status_file, width, height, env) as tmux:
        # The table, with every device of the example.
        screen = tmux.wait_for(lambda s: f"devices {total}/{total}" in s and "capital-b001-ap1" in s)
        footer = screen.rstrip("\n").splitlines()[-1]
        assert "q Quit" in footer and "/ Filter" in footer, footer
        assert "Traceback" not in screen
        # The pane's size, not an inherited COLUMNS/LINES, sets the layout.
        assert max(len(line.rstrip()) for line in screen.splitlines()) == width
        assert len(screen.rstrip("\n").splitlines()) == height
        colours = hues(styled_capture(tmux))
        if no_color:
            assert not colours, f"NO_COLOR=1 but coloured cells on screen: {sorted(colours)[:10]}"
        else:
            assert colours, "no colour at all in a 256-colour terminal"

        # ? shows the help, whole (it used to be cut at 80 columns); Esc closes it.
        tmux.keys("?")
        screen = tmux.wait_for(lambda s: "wardtui keys" in s)
        assert box_is_whole(screen, "wardtui keys"), screen
        assert all(len(line.rstrip()) <= width for line in screen.splitlines())
        tmux.keys("Escape")
        tmux.wait_for(lambda s: "wardtui keys" not in s and f"devices {total}/{total}" in s)

        # / filters live; the count in the table's border title follows.
        tmux.keys("/")
        tmux.wait_for(lambda s: "filter /" in s)
        tmux.keys("-l", FILTER)
        screen = tmux.wait_for(lambda s: f"devices {len(matching)}/{total}" in s and f"filter: {FILTER}" in s)
        assert "capital-b001-ap1" not in screen and matching[0] in screen
        # Enter keeps the filter and goes back to the table (the footer offers the table's keys again).
        tmux.keys("Enter")
        tmux.wait_for(lambda s: "s Sort" in s.rstrip("\n").splitlines()[-1])

        # Enter on the first row (sorted by name) drills down into that device.
        tmux.keys("Enter")
        tmux.wait_for(lambda s: f"device {matching[0]}" in s and "RTT ms (average)" in s and "esc Back" in s)
        if height >= 40:  # at 80x24 the loss chart and the outages are below the fold
            tmux.wait_for(lambda s: "loss % · last 1 h" in s and "outages" in s)

        # Esc goes back to the dashboard, the filter still applied.
        tmux.keys("Escape")
        screen = tmux.wait_for(lambda s: f"devices {len(matching)}/{total}" in s)
        assert f"filter: {FILTER}" in screen and "capital-b001-ap1" not in screen

        # e: export the view. Tab to the format list, Space picks csv (the highlighted first choice;
        # the suggested file name follows the format), Tab to the file, replace it, Enter writes.
        tmux.keys("e")
        screen = tmux.wait_for(lambda s: "export report" in s)
        assert f"{len(matching)} of {total} devices shown" in screen
        assert box_is_whole(screen, "export report")
        tmux.keys("Tab")
        tmux.keys("Tab")
        tmux.keys("Space")
        tmux.wait_for(lambda s: re.search(r"wardtui-report-\S+\.csv", s) is not None)
        tmux.keys("Tab")
        tmux.keys("End", "C-u")
        tmux.wait_for(lambda s: "wardtui-report-" not in s)
        tmux.keys("-l", str(report))
        tmux.wait_for(lambda s: report.name in s)
        tmux.keys("Enter")
        screen = tmux.wait_for(lambda s: "report written" in s and "export report" not in s)
        assert report.exists(), screen
        rows_text = report.read_text(encoding="utf-8").split("\n\n", 1)[0]
        names = sorted(row["name"] for row in csv.DictReader(io.StringIO(rows_text)))
        assert names == matching

        # q quits: history saved, exit status 0.
        tmux.keys("q")
        status = wait_for_exit(status_file)
        assert status == "0", f"wardtui should exit 0 on q, got {status}; screen:\n{tmux.capture()}"
    assert (tmp_path / "data" / "wardtui" / "history.db").exists()


def test_tab_in_the_command_line_completes_in_a_real_terminal(tmp_path: Path) -> None:
    """`:dev` Tab `qa` Tab Enter opens qa-lab. Tab used to move the focus out of the line, and
    the q typed next quit wardtui."""
    _require()
    inventory = tmp_path / "net.csv"
    inventory.write_text("name,address,branch,region,type\nedge-1,127.3.0.1,b1,north,router\n"
                         "qa-lab,127.3.0.2,b1,north,server\n", encoding="utf-8")
    status_file = tmp_path / "exit-status"
    args = f"--inventory {inventory} --db sqlite:///{tmp_path / 'h.db'}"
    with wardtui_in_tmux(f"wardtui-tab-{os.getpid()}", args, status_file, 100, 30) as tmux:
        tmux.wait_for(lambda s: "devices 2/2" in s and "qa-lab" in s)
        tmux.keys(":")
        tmux.wait_for(lambda s: "device NAME" in s)  # the line's placeholder
        tmux.keys("-l", "dev")
        tmux.keys("Tab")
        tmux.keys("-l", "qa")
        tmux.keys("Tab")
        tmux.wait_for(lambda s: ": device qa-lab" in s)
        tmux.keys("Enter")
        screen = tmux.wait_for(lambda s: "device qa-lab" in s and "esc Back" in s)
        assert not status_file.exists(), screen  # still running: q did not quit
        tmux.keys("q")
        assert wait_for_exit(status_file) == "0"
