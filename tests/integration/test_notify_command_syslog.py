"""The command receiver runs real programs (no shell, JSON on stdin, a small environment, the
process group killed on timeout); the syslog receiver sends RFC 5424 to real listeners on
loopback, over UDP and over TCP with octet counting."""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path

import pytest

from poller.notify.command import CommandReceiver
from poller.notify.model import DeliveryError
from poller.notify.receiver_config import CommandConfig, SyslogConfig
from poller.notify.syslog_rfc5424 import SyslogReceiver, format_message
from tests.integration.notify_servers import TcpListener, UdpListener, closed_port, octet_frames
from tests.notify_samples import HOSTILE, KEY, outage, recovery

WRITE_STDIN = """\
import json, os, sys
data = sys.stdin.buffer.read()
with open(sys.argv[1], "wb") as f:
    f.write(data)
with open(sys.argv[1] + ".env", "w") as f:
    json.dump(dict(os.environ), f)
with open(sys.argv[1] + ".argv", "w") as f:
    json.dump(sys.argv[2:], f)
"""
FAIL = """\
import sys
sys.stdin.read()
sys.stderr.write("\\n  \\x1b[31mgateway refused: quota\\x1b[0m  \\nsecond line\\n")
sys.exit(3)
"""
HANG = """\
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
open(sys.argv[1], "w").write(str(child.pid))
time.sleep(60)
"""


def script(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


async def test_the_command_gets_the_json_on_stdin_and_a_small_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WARDTUI_REDIS", "redis://:service-password@127.0.0.1:1")
    out = tmp_path / "received.json"
    # A hostile argument stays one argument: no shell ever reads it.
    argv = (sys.executable, script(tmp_path, "write.py", WRITE_STDIN), str(out), HOSTILE, "$(touch pwned)")
    notification = outage(3, hostile=True)
    await CommandReceiver(CommandConfig("pager", 1, argv, env=(("TEAM", "noc"),))).send(notification)
    assert json.loads(out.read_bytes()) == notification.to_dict()
    env = json.loads((tmp_path / "received.json.env").read_text())
    assert (env["WARDTUI_NOTIFY_KEY"], env["WARDTUI_NOTIFY_STATUS"], env["TEAM"]) == (KEY, "firing", "noc")
    passed = {"PATH", "HOME", "LANG", "LC_ALL", "TZ", "TEAM", "WARDTUI_NOTIFY_KEY", "WARDTUI_NOTIFY_STATUS",
              "LC_CTYPE"}  # (Python sets LC_CTYPE in a child under the C locale)
    assert "WARDTUI_REDIS" not in env and set(env) <= passed
    assert json.loads((tmp_path / "received.json.argv").read_text()) == [HOSTILE, "$(touch pwned)"]
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()


async def test_a_failing_command_is_retryable_with_its_first_stderr_line(tmp_path: Path) -> None:
    argv = (sys.executable, script(tmp_path, "fail.py", FAIL))
    with pytest.raises(DeliveryError) as info:
        await CommandReceiver(CommandConfig("pager", 1, argv)).send(outage(1))
    message = str(info.value)
    assert info.value.retryable
    assert message.endswith("failed (exit status 3): \ufffd[31mgateway refused: quota\ufffd[0m")
    assert "second line" not in message and "\x1b" not in message


@pytest.mark.alone
async def test_a_command_past_its_timeout_is_killed_with_its_children(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    argv = (sys.executable, script(tmp_path, "hang.py", HANG), str(pid_file))
    started = time.monotonic()
    with pytest.raises(DeliveryError) as info:
        await CommandReceiver(CommandConfig("pager", 1, argv, timeout=1.0)).send(outage(1))
    took = time.monotonic() - started
    assert info.value.retryable
    assert "did not finish within 1 s: killed with its process group" in str(info.value)
    assert 1.0 <= took < 5.0, took
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _alive(child), "the command's child outlived the timeout"


def _alive(pid: int) -> bool:
    """Running (a zombie, killed and waiting for its reaper, is not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


async def test_a_program_that_is_gone_is_a_delivery_error(tmp_path: Path) -> None:
    with pytest.raises(DeliveryError) as info:
        await CommandReceiver(CommandConfig("pager", 1, (str(tmp_path / "gone"),))).send(outage(1))
    assert info.value.retryable and "cannot run" in str(info.value)


# -- syslog ----------------------------------------------------------------------------------

RFC5424 = re.compile(rb'<(\d+)>1 (\S+) (\S+) wardtui (\d+) (firing|resolved|test) (\[wardtui@32473 .*\]) '
                     rb"\xef\xbb\xbf(.*)", re.DOTALL)


async def test_syslog_over_udp_is_rfc_5424_with_everything_escaped() -> None:
    listener = UdpListener()
    try:
        config = SyslogConfig("siem", 1, "127.0.0.1", port=listener.port, hostname="noc-1")
        receiver = SyslogReceiver(config)
        notification = outage(2, hostile=True)
        await receiver.send(notification)
        await receiver.send(recovery(2))
        firing, resolved = listener.receive(), listener.receive()
    finally:
        listener.close()
    assert firing == format_message(notification, config, "noc-1", os.getpid())
    match = RFC5424.fullmatch(firing)
    assert match is not None, firing
    assert match.group(1) == b"132" and match.group(3) == b"noc-1" and int(match.group(4)) == os.getpid()
    assert match.group(2) == b"2026-12-06T05:50:30.000000Z"
    data = match.group(6).decode()
    assert f'key="{KEY}" site="bank" route="branches" receiver="hook" branch="' in data
    assert r'\\x1b[31mred\\x0anext & \"q\" \\ \] <!channel>" firing="4" resolved="0"]' in data
    text = match.group(7).decode()
    assert text.startswith("north-b002-rtr DOWN, 3 devices unreachable behind it: firing north-b002-rtr ")
    assert "[bold]x[/] <script>alert(1)</script> *_~ `c` \\x1b[31mred\\x0anext" in text
    assert b"\x1b" not in firing and b"\n" not in firing
    assert resolved.startswith(b"<133>1 ") and b" resolved [wardtui@32473 " in resolved


async def test_syslog_over_tcp_uses_octet_counting() -> None:
    listener = TcpListener()
    try:
        config = SyslogConfig("siem", 1, "127.0.0.1", port=listener.port, transport="tcp", hostname="noc-1",
                              facility=3, firing_severity=3)
        receiver = SyslogReceiver(config)
        first, second = outage(1, hostile=True), outage(40)
        await receiver.send(first)
        await receiver.send(second)
        streams = listener.wait(2)
    finally:
        listener.close()
    frames = [frame for stream in streams for frame in octet_frames(stream)]
    assert frames == [format_message(first, config, "noc-1", os.getpid()),
                      format_message(second, config, "noc-1", os.getpid())]
    assert frames[0].startswith(b"<27>1 ")  # daemon (3) * 8 + err (3)
    assert streams[0].startswith(f"{len(frames[0])} <27>1 ".encode())


async def test_syslog_over_tcp_to_nobody_is_retryable() -> None:
    config = SyslogConfig("siem", 1, "127.0.0.1", port=closed_port(), transport="tcp")
    with pytest.raises(DeliveryError) as info:
        await SyslogReceiver(config).send(outage(1))
    assert info.value.retryable and "syslog tcp://127.0.0.1:" in str(info.value)
