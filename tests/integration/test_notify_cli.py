"""``wardtui notify test`` and ``wardtui notify check`` as an operator runs them (subprocesses), with
real receivers on loopback: exit codes, one line per receiver, every file:line problem."""

from __future__ import annotations

import hashlib
import hmac
import json
import sys
from pathlib import Path

from tests.integration.cli_run import run
from tests.integration.notify_servers import HttpReceiver, UdpListener, closed_port

SECRET = "cli-hmac-secret-value"

# One file per route: two commands run at once must not write into the same file.
WRITE_STDIN = """\
import json, sys
data = sys.stdin.buffer.read()
open(sys.argv[1] + "." + json.loads(data)["route"], "wb").write(data)
"""


def notify_file(tmp_path: Path, http: str, udp: int, dead: int) -> Path:
    (tmp_path / "write.py").write_text(WRITE_STDIN, encoding="utf-8")
    text = f"""\
routes:
  - name: noc
    match: [type=router]
    receivers: [hook, script, siem]
  - name: broken
    receivers: [dead, script]
receivers:
  - name: hook
    kind: webhook
    url: {http}/wardtui
    hmac_secret: hook-hmac
  - name: script
    kind: command
    argv: [{sys.executable}, write.py, {tmp_path / "got.json"}]
  - name: siem
    kind: syslog
    host: 127.0.0.1
    port: {udp}
  - name: dead
    kind: webhook
    url: http://127.0.0.1:{dead}/nobody
"""
    path = tmp_path / "notify.yaml"
    path.write_text(text, encoding="utf-8")
    credentials = tmp_path / "credentials.yaml"
    credentials.write_text(f"hook-hmac:\n  kind: secret\n  secret: {SECRET}\n", encoding="utf-8")
    credentials.chmod(0o600)
    return path


def test_notify_test_sends_to_every_receiver_of_the_route(tmp_path: Path) -> None:
    listener = UdpListener()
    try:
        with HttpReceiver() as http:
            path = notify_file(tmp_path, http.url, listener.port, closed_port())
            creds = str(tmp_path / "credentials.yaml")
            good, bad, unknown = run(
                ("notify", "test", "noc", "--notify", str(path), "--credentials", creds,
                 "--site", "paris-dc1"),
                ("notify", "test", "broken", "--notify", str(path), "--credentials", creds),
                ("notify", "test", "nope", "--notify", str(path), "--credentials", creds), cwd=tmp_path)
            requests = list(http.requests)
        datagram = listener.receive()
    finally:
        listener.close()
    assert good.returncode == 0, good.stderr
    assert good.stdout.splitlines() == ["hook (webhook): sent", "script (command): sent",
                                        "siem (syslog): sent"]
    (request,) = requests
    body = json.loads(request.body)
    assert (body["status"], body["site"], body["route"], body["receiver"]) == \
        ("test", "paris-dc1", "noc", "hook")
    assert body["title"] == "wardtui test notification (route noc)" and body["firing"] == []
    assert request.headers["idempotency-key"] == body["key"] and body["key"].startswith("paris-dc1:noc:hook:")
    assert request.headers["x-wardtui-signature"] == \
        "sha256=" + hmac.new(SECRET.encode(), request.body, hashlib.sha256).hexdigest()
    assert json.loads((tmp_path / "got.json.noc").read_bytes())["status"] == "test"
    assert json.loads((tmp_path / "got.json.broken").read_bytes())["route"] == "broken"
    assert datagram.startswith(b"<132>1 ") and b" test [wardtui@32473 " in datagram
    assert bad.returncode == 1
    dead, script = bad.stdout.splitlines()
    assert dead.startswith("dead (webhook): failed: POST to http://127.0.0.1:")
    assert dead.endswith("(retryable)")
    assert "/nobody" not in dead and script == "script (command): sent"
    assert unknown.returncode == 2 and unknown.stdout == ""
    assert f"{path}: no route named 'nope' (routes: noc, broken)" in unknown.stderr


def test_notify_check_lists_routes_or_every_problem(tmp_path: Path) -> None:
    path = notify_file(tmp_path, "http://127.0.0.1:9", 9, 9)
    bad = tmp_path / "bad.yaml"
    bad.write_text("routes:\n  - name: a\n    receivers: [ghost]\n    group_wait: 0s\nreceivers:\n"
                   "  - name: h\n    kind: syslog\n    host: 127.0.0.1\n    colour: red\n", encoding="utf-8")
    creds = str(tmp_path / "credentials.yaml")
    good, broken, no_credentials = run(
        ("notify", "check", str(path), "--credentials", creds), ("notify", "check", str(bad)),
        ("notify", "check", str(path), "--credentials", str(tmp_path / "none.yaml")), cwd=tmp_path)
    assert good.returncode == 0, good.stderr
    lines = good.stdout.splitlines()
    assert lines[0] == f"{path}: 2 routes, 4 receivers"
    assert lines[1] == ("route noc: match type=router -> hook, script, siem; group by branch; wait 30s, "
                        "interval 5m, repeat 4h")
    assert "receiver hook: webhook http://127.0.0.1:9 (json, signed)" in lines
    assert SECRET not in good.stdout
    assert broken.returncode == 2 and broken.stdout == ""
    assert broken.stderr.splitlines() == [
        f"wardtui: {bad}:3: route 'a': no receiver named 'ghost' (receivers: h)",
        f"wardtui: {bad}:4: route 'a': 'group_wait' must be longer than 0",
        f"wardtui: {bad}:9: receiver 'h': 'colour' is not a setting of a syslog receiver (known: host, port, "
        "transport, facility, firing_severity, resolved_severity, hostname, max_length, timeout, parallel)",
    ]
    assert no_credentials.returncode == 2
    assert f"{tmp_path / 'none.yaml'}: cannot read the credentials file" in no_credentials.stderr
