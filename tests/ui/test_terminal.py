"""wardtui in a real terminal (tmux), as an operator sees it: keys in, screen out, SIGTERM saves."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _require() -> None:
    missing = [why for ok, why in ((shutil.which("tmux"), "tmux is not installed"),
                                   (os.geteuid() == 0, "not root (ICMP to loopback needs raw sockets)"))
               if not ok]
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail("; ".join(missing) + " (CI=true: this test must run)", pytrace=False)
        pytest.skip("; ".join(missing))


class Tmux:
    def __init__(self, name: str) -> None:
        self.name = name

    def capture(self) -> str:
        return subprocess.run(["tmux", "capture-pane", "-p", "-t", self.name],
                              capture_output=True, text=True, check=True).stdout

    def keys(self, *keys: str) -> None:
        subprocess.run(["tmux", "send-keys", "-t", self.name, *keys], check=True)

    def wait_for(self, predicate: Callable[[str], bool], timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.capture()
            if predicate(screen):
                return screen
            time.sleep(0.2)
        raise AssertionError(f"screen never matched; last capture:\n{screen}")

    def wardtui_pid(self) -> int:
        """wardtui runs under the pane's shell (which records its exit status)."""
        shell = subprocess.run(["tmux", "display", "-p", "-t", self.name, "#{pane_pid}"],
                               capture_output=True, text=True, check=True).stdout.strip()
        children = subprocess.run(["pgrep", "-P", shell], capture_output=True, text=True,
                                  check=True).stdout.split()
        assert len(children) == 1, children
        return int(children[0])


@contextmanager
def wardtui_in_tmux(name: str, args: str, status: Path, width: int = 110, height: int = 32,
                    env: Mapping[str, str] | None = None) -> Iterator[Tmux]:
    """``wardtui ARGS`` (this interpreter, this checkout) in a detached tmux session of
    ``width``x``height``; its exit status is written to ``status``; the session is killed after."""
    # The shell records wardtui's exit status (tmux's own pane_dead_status proved unreliable:
    # a pane can be marked dead before tmux has reaped the process, and then stay blank).
    variables = {"PYTHONPATH": str(ROOT), "TERM": "xterm-256color", **(env or {})}
    assignments = " ".join(f"{key}={shlex.quote(value)}" for key, value in variables.items())
    # COLUMNS/LINES would override the pane's size in Textual, and pytest plugins set them
    # (80x24) in the environment the tmux server inherits.
    command = (f"cd {shlex.quote(str(ROOT))} && env -u COLUMNS -u LINES {assignments} "
               f"{sys.executable} -m wardtui {args}; "
               f"echo $? > {shlex.quote(str(status))}; sleep 60")
    subprocess.run(["tmux", "new-session", "-d", "-s", name, "-x", str(width), "-y", str(height), command],
                   check=True)
    try:
        yield Tmux(name)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True, check=False)


def wait_for_exit(status_file: Path, timeout: float = 20.0) -> str:
    """wardtui's exit status as the pane's shell recorded it, or why there is none."""
    deadline = time.monotonic() + timeout  # generous: CI may run this on a loaded machine
    while time.monotonic() < deadline:
        # The shell's redirection makes the file before echo writes to it: an empty one is not
        # the status yet (a loaded machine read it so, once).
        if status_file.exists() and (status := status_file.read_text().strip()):
            return status
        time.sleep(0.1)
    return f"still running after {timeout:g} s"


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[tuple[Tmux, Path, Path]]:
    _require()
    inventory = tmp_path / "net.csv"
    inventory.write_text("name,address,branch,region,type\n"
                         + "".join(f"edge-{i},127.3.0.{i + 1},b{i % 3},north,router\n" for i in range(12))
                         + "atm-lobby,127.3.1.1,b1,north,atm\n")
    db = tmp_path / "h.db"
    status = tmp_path / "exit-status"
    with wardtui_in_tmux(f"wardtui-test-{os.getpid()}",
                         f"--inventory {inventory} --db sqlite:///{db} --interval 0.5", status) as tmux:
        yield tmux, db, status


def test_operator_filters_then_sigterm_saves_history(terminal: tuple[Tmux, Path, Path]) -> None:
    tmux, db, status_file = terminal
    screen = tmux.wait_for(lambda s: "atm-lobby" in s and "edge-0" in s
                           and re.search(r"│ up +13 ", s) is not None)  # the gauges: 13 devices up
    assert "Filter" in screen and "Quit" in screen  # keys listed in the footer
    tmux.keys("/")
    tmux.keys("-l", "lobby")
    screen = tmux.wait_for(lambda s: "edge-0" not in s and "atm-lobby" in s)
    assert "1/13" in screen
    tmux.keys("Escape")
    tmux.wait_for(lambda s: "edge-0" in s and "13/13" in s)
    os.kill(tmux.wardtui_pid(), signal.SIGTERM)
    status = wait_for_exit(status_file)
    assert status == "0", f"wardtui should save and exit 0 on SIGTERM, got {status}"
    with sqlite3.connect(db) as conn:
        ups = conn.execute("select count(*) from transitions where to_state = 'up'").fetchone()[0]
        checks = conn.execute("select count(*) from checks").fetchone()[0]
    assert ups == 13
    assert checks >= 13


def test_a_dropped_session_saves_history_and_leaves_no_process(terminal: tuple[Tmux, Path, Path]) -> None:
    """SIGHUP, as when the operator's SSH session drops: history saved, and the process gone
    even if Textual's shutdown cannot finish writing to a terminal that no longer exists."""
    tmux, db, _ = terminal
    tmux.wait_for(lambda s: "atm-lobby" in s and re.search(r"│ up +13 ", s) is not None)
    pid = tmux.wardtui_pid()
    subprocess.run(["tmux", "kill-session", "-t", tmux.name], check=True)  # the terminal goes away
    deadline = time.monotonic() + 25
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not Path(f"/proc/{pid}").exists(), "wardtui still runs after its terminal went away"
    with sqlite3.connect(db) as conn:
        assert conn.execute("select count(*) from transitions where to_state = 'up'").fetchone()[0] == 13
