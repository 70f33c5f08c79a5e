"""``wardtui serve --cluster --notify FILE`` as real processes (issue 15 item 6, issue 16 item
5): three members in the lab's monitor namespace, each given the notify file, one PostgreSQL
database, one private Redis, and a webhook receiver (a recording HTTP server, also in the
namespace: its 127.0.0.1 is the members').

Exactly one member holds the notifier lease. A leaf on the shards of a member that does *not*
hold it goes down: exactly one message, sent by the holder (it learnt the transition from the
committed history). The holder is then killed with SIGKILL: another member takes the notifier
lease (and its epoch) and, when the leaf comes back, the recovery is sent exactly once (a
message at most once more with the same idempotency key, the outbox's promise). A holder paused
with SIGSTOP while it groups a problem: another member takes over and sends the message once;
continued, the paused one sends nothing (its lease expired; a write it tries is refused). A
maintenance window added with ``wardtui maintenance`` (the database only: a cluster has no command
path) silences a device another member polls; removed, its open problem is notified once. Two
leaves polled by two members, in one region grouped by region: one message, one recovery. An
acknowledgement written by ``wardtui ack`` reaches the holder: the recovery carries who and why.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from poller.cluster.shards import shard_of
from tests.integration.postgres import pg_url  # noqa: F401  (the fixture)
from tests.integration.test_cluster_serve import PG_SOCKET, REPO, Member, Truth, _env
from tests.lab.netns import Lab
from tests.ports import free_port
from tests.procs.redis import unix_redis
from tests.waiting import wait_until

TTL = 5.0

RECORDER = """
import json, sys
from http.server import BaseHTTPRequestHandler, HTTPServer

out = open(sys.argv[2], "a")

class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        out.write(json.dumps({"key": self.headers.get("Idempotency-Key"),
                              "body": json.loads(body)}) + "\\n")
        out.flush()
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass

HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""


def _received(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _notifier_id(member: Member) -> str | None:
    found = re.search(r"the notifier lease \(this one: (\S+)\)", member.log)
    return found[1] if found else None


Site = tuple[Truth, Callable[[], Member], dict[str, Any]]


@pytest.fixture
def notify_site(tmp_path: Path, lab: Lab, pg_url: str) -> Iterator[Site]:  # noqa: F811
    user, name = re.match(r"postgresql\+asyncpg://([^@]+)@[^/]+/(\w+)", pg_url).groups()  # type: ignore[union-attr]
    socket_url = f"postgresql://{user}@/{name}?host={PG_SOCKET}"
    hosts = lab.healthy(36, start=120)
    rows, leaves = [], []
    for b in range(12):
        router, *kids = hosts[b * 3 : b * 3 + 3]
        rows.append(f"r{b},{router},branch{b},north,router,\n")
        for k, address in enumerate(kids):
            rows.append(f"s{b}-{k},{address},branch{b},north,switch,r{b}\n")
            leaves.append((f"s{b}-{k}", address, f"branch{b}"))
    inventory = tmp_path / "net.csv"
    inventory.write_text("name,address,branch,region,type,parent\n" + "".join(rows), encoding="utf-8")
    port = free_port()
    received = tmp_path / "received.jsonl"
    (tmp_path / "recorder.py").write_text(RECORDER)
    recorder = lab.popen([sys.executable, str(tmp_path / "recorder.py"), str(port), str(received)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    notify = tmp_path / "notify.yaml"
    notify.write_text(f"""routes:
  - name: branches
    receivers: [hook]
    group_by: [branch]
    group_wait: 1s
    group_interval: 2s
    repeat_interval: 1h
receivers:
  - name: hook
    kind: webhook
    url: http://127.0.0.1:{port}/hook
""")
    site = f"cn{uuid.uuid4().hex[:8]}"
    members: list[Member] = []
    try:
        with unix_redis(tmp_path) as sock:
            args = ["--inventory", str(inventory), "--db", socket_url, "--redis", f"unix://{sock}",
                    "--site", site, "--lease-ttl", str(TTL), "--interval", "0.5", "--timeout", "0.3",
                    "--confirm-spacing", "0.1", "--notify", str(notify)]

            def start() -> Member:
                members.append(Member(lab, tmp_path, len(members), args))
                return members[-1]

            info = {"leaves": leaves, "received": received, "routers": [f"r{b}" for b in range(12)],
                    "notify": notify}
            try:
                yield Truth(sock, pg_url, site), start, info
            finally:
                for m in members:
                    m.kill()
                for m in members:
                    assert "Traceback" not in m.log, m.log
    finally:
        recorder.kill()
        recorder.wait()


def _holder(truth: Truth, members: list[Member]) -> Member | None:
    raw = truth.redis.get(f"wardtui:{{{truth.site}}}:notifier")
    if raw is None:
        return None
    held = raw.decode()
    for m in members:
        if _notifier_id(m) == held and m.proc.poll() is None and "runs the notifier (epoch" in m.log:
            return m
    return None


def _why(truth: Truth, members: list[Member]) -> str:
    key = f"wardtui:{{{truth.site}}}:notifier"
    lines = [f"{key} = {truth.redis.get(key)!r} (pttl {truth.redis.pttl(key)})"]
    for m in members:
        lines.append(f"member {m.n} ({_notifier_id(m)}, exit {m.proc.poll()}):")
        lines += [line for line in m.log.splitlines() if "notif" in line or "Redis" in line][-12:]
    return "\n".join(lines)


@pytest.mark.lab
@pytest.mark.alone  # group_wait and lease deadlines under load
def test_one_notifier_for_the_site_its_holder_killed_the_recovery_still_sent_once(notify_site: Site) -> None:
    truth, start, info = notify_site
    members = [start() for _ in range(3)]
    wait_until(lambda: all(m.poller_id and _notifier_id(m) for m in members), 60, "a member never joined")
    ids = {m.poller_id for m in members}
    wait_until(lambda: set(truth.owners()) == ids, 90, "the shards were never shared by all three")
    holder = wait_until(lambda: _holder(truth, members), 30, "nobody runs the notifier")
    wait_until(lambda: all(truth.transitions().get(n, [("", "")])[-1][1] == "up" for n in info["routers"]),
               60, "the routers never came up")
    received: Path = info["received"]
    assert _received(received) == []  # UNKNOWN -> UP is no problem
    others = [m for m in members if m is not holder]
    assert [m.gauge("notify_lease_held") for m in others] == [0.0, 0.0]
    owners = truth.owners()
    # A leaf polled by a member that does not hold the notifier lease.
    name, address, branch = next(leaf for leaf in info["leaves"]
                                 if owners[shard_of(leaf[2])] != holder.poller_id)
    observer = next(m for m in members if m.poller_id == owners[shard_of(branch)])
    lab = holder.lab
    lab.block(address)
    try:
        wait_until(lambda: _received(received), 30, f"no message for {name}: {_why(truth, members)}")
        time.sleep(3.5)  # past group_interval: nothing more comes for the same outage
        messages = _received(received)
        assert len(messages) == 1, messages
        firing = messages[0]["body"]
        assert firing["status"] == "firing" and firing["group"] == {"branch": branch}, firing
        assert [(a["device"], a["state"]) for a in firing["firing"]] == [(name, "down")]
        assert messages[0]["key"] == firing["key"]
        assert holder.gauge("notify_sent") == 1.0  # the holder sent it, not the observer
        assert observer.gauge("notify_lease_held") == 0.0
        holder.kill()
        killed = time.monotonic()
        survivors = [m for m in members if m is not holder]
        successor = wait_until(lambda: _holder(truth, survivors), 4 * TTL + 10,
                               f"no member took the notifier lease over: {_why(truth, members)}")
        took = time.monotonic() - killed
        epochs = truth.sql("SELECT epoch, owner FROM shard_epochs WHERE site = $1 AND shard = -1", truth.site)
        assert epochs[0]["owner"] == _notifier_id(successor) and epochs[0]["epoch"] >= 2
    finally:
        lab.unblock(address)
    wait_until(lambda: len({m["key"] for m in _received(received)}) >= 2, 30, "no recovery")
    time.sleep(3.5)
    messages = _received(received)
    keys = [m["key"] for m in messages]
    distinct = list(dict.fromkeys(keys))
    assert len(distinct) == 2, messages  # the firing message and its recovery, nothing else
    assert all(keys.count(k) <= 2 for k in distinct), keys  # at most one repeat, same key
    recovery = next(m["body"] for m in messages if m["key"] == distinct[1])
    assert recovery["status"] == "resolved" and recovery["firing"] == [], recovery
    assert [a["device"] for a in recovery["resolved"]] == [name]
    assert successor.gauge("notify_sent") >= 1.0
    for m in survivors:
        assert m.stop() == 0, m.log
    rows = truth.sql("SELECT status, count(*) AS n FROM notification_outbox WHERE site = $1 GROUP BY status",
                     truth.site)
    assert {r["status"]: r["n"] for r in rows} == {"sent": 2}
    print(f"notifier lease taken over {took:.2f} s after SIGKILL (TTL {TTL} s)")


@pytest.mark.lab
@pytest.mark.alone  # group_wait and lease deadlines under load
def test_a_holder_paused_while_grouping_is_replaced_and_sends_nothing_when_continued(
        notify_site: Site) -> None:
    truth, start, info = notify_site
    notify: Path = info["notify"]
    notify.write_text(notify.read_text().replace("group_wait: 1s", "group_wait: 4s"))
    members = [start() for _ in range(3)]
    wait_until(lambda: all(m.poller_id and _notifier_id(m) for m in members), 60, "a member never joined")
    wait_until(lambda: set(truth.owners()) == {m.poller_id for m in members}, 90,
               "the shards were never shared")
    holder = wait_until(lambda: _holder(truth, members), 30, "nobody runs the notifier")
    wait_until(lambda: all(truth.transitions().get(n, [("", "")])[-1][1] == "up" for n in info["routers"]),
               60, "the routers never came up")
    received: Path = info["received"]
    owners = truth.owners()
    name, address, _branch = next(leaf for leaf in info["leaves"]
                                  if owners[shard_of(leaf[2])] != holder.poller_id)
    lab = holder.lab
    lab.block(address)
    try:
        wait_until(lambda: truth.outages().get(name), 20, f"{name} never went down")
        time.sleep(1.0)  # the holder has read it (every 0.5 s) and waits group_wait (4 s)
        os.kill(holder.proc.pid, signal.SIGSTOP)
        try:
            others = [m for m in members if m is not holder]
            successor = wait_until(lambda: _holder(truth, others), 4 * TTL + 10,
                                   f"no member took the notifier lease over: {_why(truth, members)}")
            wait_until(lambda: _received(received), 30, f"no message for {name}: {_why(truth, members)}")
        finally:
            os.kill(holder.proc.pid, signal.SIGCONT)
        wait_until(lambda: "no longer holds the notifier lease" in holder.log, 20,
                   f"the paused holder did not stop: {holder.log}")
        time.sleep(3.0)  # the woken holder's timers have run: whatever it tried, nothing more came
        messages = _received(received)
        assert len({m["key"] for m in messages}) == 1 and len(messages) <= 2, messages
        assert [(a["device"], a["state"]) for a in messages[0]["body"]["firing"]] == [(name, "down")]
        assert holder.gauge("notify_lease_held") == 0.0 and successor.gauge("notify_lease_held") == 1.0
    finally:
        lab.unblock(address)
    wait_until(lambda: len({m["key"] for m in _received(received)}) >= 2, 30, "no recovery")
    time.sleep(3.0)
    keys = [m["key"] for m in _received(received)]
    assert len(set(keys)) == 2 and all(keys.count(k) <= 2 for k in keys), keys
    for m in members:
        assert m.stop() == 0, m.log
    print(f"paused holder: refused outbox writes {holder.log.count('notify outbox: ')}")


def _wardtui(*args: str, db: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "wardtui", *args, "--db", db], cwd=REPO, env=_env(),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.lab
@pytest.mark.alone  # group_wait and the holder's 2 s re-read of the windows
def test_a_window_written_to_the_database_silences_the_cluster_and_its_end_notifies_once(
        notify_site: Site, pg_url: str) -> None:  # noqa: F811
    truth, start, info = notify_site
    members = [start() for _ in range(2)]
    wait_until(lambda: all(m.poller_id and _notifier_id(m) for m in members), 60, "a member never joined")
    wait_until(lambda: set(truth.owners()) == {m.poller_id for m in members}, 90,
               "the shards were never shared")
    holder = wait_until(lambda: _holder(truth, members), 30, "nobody runs the notifier")
    wait_until(lambda: all(truth.transitions().get(n, [("", "")])[-1][1] == "up" for n in info["routers"]),
               60, "the routers never came up")
    owners = truth.owners()
    name, address, _branch = next(leaf for leaf in info["leaves"]
                                  if owners[shard_of(leaf[2])] != holder.poller_id)
    db = pg_url.replace("+asyncpg", "")
    added = _wardtui("maintenance", "add", "--match", f"device={name}", "--duration", "1h", "--note", "CHG-1",
                     db=db)
    window = int(re.search(r"added maintenance window (\d+)", added)[1])  # type: ignore[index]
    time.sleep(3.0)  # the holder reads the windows every 2 s
    received: Path = info["received"]
    lab = holder.lab
    lab.block(address)
    try:
        wait_until(lambda: truth.outages().get(name), 20, f"{name} never went down")
        time.sleep(4.0)  # past group_wait (1 s) and the tail's read: nothing may come
        assert _received(received) == []
        _wardtui("maintenance", "remove", str(window), db=db)
        wait_until(lambda: _received(received), 20,
                   f"the window's end was not notified: {_why(truth, members)}")
        time.sleep(3.5)
        messages = _received(received)
        assert len(messages) == 1, messages
        assert [(a["device"], a["state"]) for a in messages[0]["body"]["firing"]] == [(name, "down")]
    finally:
        lab.unblock(address)
    for m in members:
        assert m.stop() == 0, m.log


@pytest.mark.lab
@pytest.mark.alone  # group_wait
def test_problems_seen_by_two_members_are_grouped_into_one_message(notify_site: Site) -> None:
    """A route grouped by region: two leaves of the region polled by two different members go
    down together: one message names both (the holder groups the site's transitions, whichever
    member observed them); they come back: one recovery names both."""
    truth, start, info = notify_site
    notify: Path = info["notify"]
    notify.write_text(notify.read_text().replace("group_by: [branch]", "group_by: [region]")
                      .replace("group_wait: 1s", "group_wait: 3s"))
    members = [start() for _ in range(2)]
    wait_until(lambda: all(m.poller_id and _notifier_id(m) for m in members), 60, "a member never joined")
    wait_until(lambda: set(truth.owners()) == {m.poller_id for m in members}, 90,
               "the shards were never shared")
    wait_until(lambda: _holder(truth, members), 30, "nobody runs the notifier")
    wait_until(lambda: all(truth.transitions().get(n, [("", "")])[-1][1] == "up" for n in info["routers"]),
               60, "the routers never came up")
    owners = truth.owners()
    leaves = [next(leaf for leaf in info["leaves"] if owners[shard_of(leaf[2])] == m.poller_id)
              for m in members]
    received: Path = info["received"]
    lab = members[0].lab
    for _name, address, _branch in leaves:
        lab.block(address)
    try:
        wait_until(lambda: _received(received), 30, f"no message: {_why(truth, members)}")
        time.sleep(3.0)  # past group_interval: nothing more
        messages = _received(received)
        assert len(messages) == 1, messages
        body = messages[0]["body"]
        assert body["group"] == {"region": "north"}
        assert sorted(a["device"] for a in body["firing"]) == sorted(n for n, _a, _b in leaves)
    finally:
        for _name, address, _branch in leaves:
            lab.unblock(address)
    wait_until(lambda: len(_received(received)) >= 2, 30, "no recovery")
    time.sleep(3.0)
    messages = _received(received)
    assert len(messages) == 2, messages
    assert sorted(a["device"] for a in messages[1]["body"]["resolved"]) == sorted(n for n, _a, _b in leaves)
    for m in members:
        assert m.stop() == 0, m.log


@pytest.mark.lab
@pytest.mark.alone  # group_wait and the holder's 2 s re-read of the acknowledgements
def test_an_acknowledgement_written_to_the_database_reaches_the_recovery(
        notify_site: Site, pg_url: str) -> None:  # noqa: F811
    truth, start, info = notify_site
    members = [start() for _ in range(2)]
    wait_until(lambda: all(m.poller_id and _notifier_id(m) for m in members), 60, "a member never joined")
    wait_until(lambda: set(truth.owners()) == {m.poller_id for m in members}, 90,
               "the shards were never shared")
    holder = wait_until(lambda: _holder(truth, members), 30, "nobody runs the notifier")
    wait_until(lambda: all(truth.transitions().get(n, [("", "")])[-1][1] == "up" for n in info["routers"]),
               60, "the routers never came up")
    owners = truth.owners()
    name, address, _branch = next(leaf for leaf in info["leaves"]
                                  if owners[shard_of(leaf[2])] != holder.poller_id)
    received: Path = info["received"]
    lab = holder.lab
    lab.block(address)
    try:
        wait_until(lambda: _received(received), 30, f"no message for {name}: {_why(truth, members)}")
        _wardtui("ack", name, "--note", "on it: CHG-7", db=pg_url.replace("+asyncpg", ""))
        time.sleep(3.0)  # the holder reads the acknowledgements every 2 s
    finally:
        lab.unblock(address)
    wait_until(lambda: len(_received(received)) >= 2, 30, "no recovery")
    time.sleep(3.0)
    messages = _received(received)
    assert len(messages) == 2, messages
    (item,) = messages[1]["body"]["resolved"]
    assert item["device"] == name and item["ack_note"] == "on it: CHG-7" and item["acked_by"], item
    for m in members:
        assert m.stop() == 0, m.log
