"""One service, two operators, as they see it in tmux: `wardtui serve` in one window (inside the
lab's monitor namespace, probing the lab's hosts), two dashboards attached to it over Redis in
two others. A host blocked in the lab shows DOWN on both; `q` in one leaves the other and the
service running."""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.lab.netns import Lab
from tests.procs.redis import unix_redis
from tests.ui.test_terminal import ROOT, Tmux, _require, wait_for_exit, wardtui_in_tmux


@contextmanager
def serve_in_tmux(name: str, lab: Lab, args: str, log: Path) -> Iterator[Tmux]:
    """`wardtui serve ARGS` inside the lab's monitor namespace, its log (stderr, also in ``log``)
    shown in a tmux session; stopped with SIGTERM at the end, as systemd would. (Killing the
    session is no stop: the service takes the SIGHUP it gets as "reload the inventory".)"""
    env = f"env -u COLUMNS -u LINES PYTHONPATH={shlex.quote(str(ROOT))}"
    pid_file = log.with_suffix(".pid")
    command = (f"cd {shlex.quote(str(ROOT))} && (ip netns exec {lab.m} {env} {sys.executable} -m wardtui "
               f"serve {args} 2>{shlex.quote(str(log))} & echo $! > {shlex.quote(str(pid_file))}; wait) & "
               f"sleep 0.5; tail -n +1 -f {shlex.quote(str(log))}")
    subprocess.run(["tmux", "new-session", "-d", "-s", name, "-x", "120", "-y", "20", command], check=True)
    try:
        yield Tmux(name)
    finally:
        deadline = time.monotonic() + 10
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        pid = int(pid_file.read_text()) if pid_file.exists() else None
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 20
            while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
                time.sleep(0.1)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True, check=False)


def _row(screen: str, device: str, state: str) -> bool:
    return re.search(rf"{re.escape(device)}\s+{state}\b", screen) is not None


def test_a_service_and_two_attached_dashboards(tmp_path: Path, lab: Lab) -> None:
    _require()
    hosts = lab.healthy(4, start=40)
    inventory = tmp_path / "lab.csv"
    inventory.write_text("name,address,branch,region,type\n"
                         + "".join(f"lab-{i},{address},b{i},north,router\n"
                                   for i, address in enumerate(hosts)))
    db = tmp_path / "h.db"
    site = f"tmux{uuid.uuid4().hex[:8]}"
    tag = f"{os.getpid()}-{uuid.uuid4().hex[:6]}"
    victim = hosts[2]
    with unix_redis(tmp_path) as sock:
        url = f"unix://{sock}"
        with serve_in_tmux(f"wardtui-serve-{tag}", lab, f"--inventory {inventory} --db sqlite:///{db} "
                           f"--redis {url} --site {site} --interval 0.5", tmp_path / "serve.log") as service:
            service.wait_for(lambda s: "publishing site" in s, timeout=30)
            viewer = f"--redis {url} --site {site} --db sqlite:///{db}"
            with wardtui_in_tmux(f"wardtui-v1-{tag}", viewer, tmp_path / "v1-status") as one, \
                    wardtui_in_tmux(f"wardtui-v2-{tag}", viewer, tmp_path / "v2-status") as two:
                for pane in (one, two):
                    screen = pane.wait_for(lambda s: "devices 4/4" in s and _row(s, "lab-3", "up"))
                    assert f"attached to {site}, service on" in screen
                try:
                    lab.block(victim)
                    for pane in (one, two):
                        pane.wait_for(lambda s: _row(s, "lab-2", "DOWN"), timeout=20)
                    one.keys("q")
                    assert wait_for_exit(tmp_path / "v1-status") == "0"
                    lab.unblock(victim)
                    two.wait_for(lambda s: _row(s, "lab-2", "up"), timeout=20)  # still live
                    assert "publishing site" in service.capture()  # the service runs on
                    assert "stopping" not in (tmp_path / "serve.log").read_text()
                    assert "Traceback" not in (tmp_path / "serve.log").read_text()
                finally:
                    subprocess.run(["ip", "netns", "exec", lab.h, "nft", "delete", "element", "ip", "wardlab",
                                    "blocked", f"{{ {victim} }}"], capture_output=True, check=False)
                two.keys("q")
                assert wait_for_exit(tmp_path / "v2-status") == "0"
