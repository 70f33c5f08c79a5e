"""A history database holding hostile text (written by an older wardtui, another tool, or an
attacker with access to it): what the commands print and write is data, never terminal control
and never live markup (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from poller.events import InterfaceStat, SnmpPoll, State, Transition
from poller.inventory import Device
from store import HistoryStore
from store.db import database_url
from tests.integration.cli_run import run

H = timedelta(hours=1)
TITLE = "\x1b]0;pwned\x07"
CLEAR = "\x1b[2J"
CLIP = "\x1b]52;c;ZWNobyBoaQ==\x07"
NAME = f"r1{TITLE}{CLEAR}"
BRANCH = f"b1{CLIP}<script>alert(1)</script>"
REGION = "north\u202eevil[link=x](javascript:alert(1))"
RAW = ("\x1b", "\x07", "\u202e", "\x9b")


async def _seed(url: str, base: datetime) -> None:
    device = Device(NAME, "127.0.0.2", BRANCH, REGION, "router\x9b2J")
    iface = InterfaceStat(1, f"ge0{CLEAR}", f"[b]uplink[/b]{TITLE}", "up", "up", 10**9, 1000.0, 2000.0,
                          0, 0, 0, 0, True)
    async with HistoryStore(url) as store:
        await store.sync_devices([device])
        await store.write_transitions([
            Transition(NAME, "127.0.0.2", State.UNKNOWN, State.UP, base - H, None, None),
            Transition(NAME, "127.0.0.2", State.UP, State.DOWN, base + H, base + H, None),
            Transition(NAME, "127.0.0.2", State.DOWN, State.UP, base + 2 * H, None, None)])
        await store.write_snmp_polls([SnmpPoll(NAME, "127.0.0.2", base, f"sys{TITLE}", f"descr{CLEAR}",
                                               "1.3.6.1.4.1.8072", 1000.0, (iface,))])


@pytest.fixture
def base() -> datetime:
    return (datetime.now(UTC) - timedelta(days=1)).replace(minute=0, second=0, microsecond=0)


def test_commands_print_hostile_rows_without_terminal_control(db_url: str, base: datetime,
                                                             tmp_path: Path) -> None:
    asyncio.run(_seed(db_url, base))
    period = ("--from", (base - 2 * H).isoformat(), "--to", (base + 10 * H).isoformat(), "--db", db_url)
    procs = run(*(("report", *period, "--format", f, *g) for f in ("csv", "md", "html", "json")
                  for g in ((), ("--group-by", "branch"), ("--group-by", "region"))),
                ("outages", "--since", "3d", "--db", db_url),
                ("outages", "--since", "3d", "--db", db_url, "--json"),
                ("history", NAME, "--since", "3d", "--db", db_url),
                ("snmp", NAME, "--db", db_url),
                ("snmp", NAME, "--db", db_url, "--json"),
                ("report", *period, "--format", "md", "-o", str(tmp_path / "r.md")),
                ("report", *period, "--format", "csv", "-o", str(tmp_path / "r.csv")),
                cwd=tmp_path)
    for proc in procs:
        assert proc.returncode == 0, (proc.args, proc.stderr)
        for char in RAW:
            assert char not in proc.stdout + proc.stderr, (proc.args, char)
    for path in (tmp_path / "r.md", tmp_path / "r.csv"):
        text = path.read_text(encoding="utf-8")
        assert "r1\ufffd]0;pwned\ufffd" in text.replace("\\]", "]")
        assert not any(char in text for char in RAW)

    def pick(*words: str, without: str = "") -> str:
        return next(p.stdout for p in procs if all(w in p.args for w in words)
                    and (not without or without not in p.args))

    assert "r1\ufffd]0;pwned\ufffd\ufffd[2J" in pick("outages", without="--json")
    # JSON keeps the stored text exactly, JSON-escaped: a reader gets it back.
    assert json.loads(pick("snmp", "--json"))["system"]["name"] == f"sys{TITLE}"
    assert json.loads(pick("outages", "--json"))[0]["device"] == NAME
    snmp_text = pick("snmp", without="--json")
    assert "sys\ufffd]0;pwned\ufffd" in snmp_text and "[b]uplink[/b]" in snmp_text
    md_branch = pick("report", "md", "branch")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in md_branch and "<script" not in md_branch
    md_region = pick("report", "md", "region")
    assert "\\[link=x\\](javascript:" in md_region and "north\ufffdevil" in md_region
    html_branch = pick("report", "html", "branch")
    assert "&lt;script&gt;" in html_branch and "<script" not in html_branch


def test_error_lines_quote_hostile_input_escaped(tmp_path: Path) -> None:
    """What the operator typed, an inventory value or a path in an error line is escaped."""
    inventory = tmp_path / f"inv{TITLE}.csv"
    inventory.write_text("name,address,branch,region,type\n"
                         f"ok,127.0.0.1,b,r,router\nbad{CLEAR},127.0.0.2,b,r,router\n"
                         f'"r2",not-an-address{TITLE},b,r,router\n', encoding="utf-8")
    db = database_url(str(tmp_path / "h.db"))
    asyncio.run(_seed(db, datetime.now(UTC) - timedelta(days=1)))
    poll, history, report = run(("poll", "--inventory", str(inventory), "--duration", "1", "--jsonl"),
                                ("history", f"nosuch{TITLE}", "--db", db),
                                ("report", "--from", f"7d{CLEAR}", "--db", db), cwd=tmp_path)
    assert poll.returncode == 2
    assert "inv\\x1b]0;pwned\\x07.csv:3: control character U+001B (ESC) in 'name'" in poll.stderr
    assert "inv\\x1b]0;pwned\\x07.csv:4: control character U+001B (ESC) in 'address'" in poll.stderr
    assert history.returncode != 0 and "nosuch\\x1b]0;pwned\\x07" in history.stderr
    assert report.returncode == 2 and "7d\\x1b[2J" in report.stderr
    for proc in (poll, history, report):
        assert not any(char in proc.stderr + proc.stdout for char in RAW), proc.args
