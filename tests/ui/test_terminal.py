"""wardtui in a real terminal (tmux), as an operator sees it: keys in, screen out, SIGTERM saves."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
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

    def wait_for(self, predicate: Callable[[str], bool], timeout: float = 15.0) -> str:
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.capture()
            if predicate(screen):
                return screen
            time.sleep(0.2)
        raise AssertionError(f"screen never matched; last capture:\n{screen}")

    def exit_status(self) -> str:
        """'' while running; the exit status (or 'signal N') once the pane's process ended."""
        out = subprocess.run(["tmux", "display", "-p", "-t", self.name,
                              "#{pane_dead}:#{pane_dead_status}:#{pane_dead_signal}"],
                             capture_output=True, text=True, check=True).stdout.strip()
        dead, status, sig = out.split(":")
        if dead != "1":
            return ""
        return f"signal {sig}" if sig else status

    def pane_pid(self) -> int:
        out = subprocess.run(["tmux", "display", "-p", "-t", self.name, "#{pane_pid}"],
                             capture_output=True, text=True, check=True).stdout
        return int(out.strip())


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[tuple[Tmux, Path]]:
    _require()
    inventory = tmp_path / "net.csv"
    inventory.write_text("name,address,branch,region,type\n"
                         + "".join(f"edge-{i},127.3.0.{i + 1},b{i % 3},north,router\n" for i in range(12))
                         + "atm-lobby,127.3.1.1,b1,north,atm\n")
    db = tmp_path / "h.db"
    name = f"wardtui-test-{os.getpid()}"
    # exec: the pane's process is wardtui itself, so SIGTERM reaches it directly.
    command = (f"cd {ROOT} && exec env PYTHONPATH={ROOT} TERM=xterm-256color {sys.executable} -m wardtui "
               f"--inventory {inventory} --db sqlite:///{db} --interval 0.5")
    subprocess.run(["tmux", "new-session", "-d", "-s", name, "-x", "110", "-y", "32", command], check=True)
    # Keep the pane after wardtui exits, so the test can read how it exited.
    subprocess.run(["tmux", "set-option", "-t", name, "remain-on-exit", "on"], check=True)
    try:
        yield Tmux(name), db
    finally:
        subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True, check=False)


def test_operator_filters_then_sigterm_saves_history(terminal: tuple[Tmux, Path]) -> None:
    tmux, db = terminal
    screen = tmux.wait_for(lambda s: "atm-lobby" in s and "edge-0" in s and "up                    13" in s)
    assert "Filter" in screen and "Quit" in screen  # keys listed in the footer
    tmux.keys("/")
    tmux.keys("-l", "lobby")
    screen = tmux.wait_for(lambda s: "edge-0" not in s and "atm-lobby" in s)
    assert "1/13" in screen
    tmux.keys("Escape")
    tmux.wait_for(lambda s: "edge-0" in s and "13/13" in s)
    pid = tmux.pane_pid()
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while not (status := tmux.exit_status()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert status == "0", f"wardtui should save and exit 0 on SIGTERM, got {status or 'still running'}"
    with sqlite3.connect(db) as conn:
        ups = conn.execute("select count(*) from transitions where to_state = 'up'").fetchone()[0]
        checks = conn.execute("select count(*) from checks").fetchone()[0]
    assert ups == 13
    assert checks >= 13
