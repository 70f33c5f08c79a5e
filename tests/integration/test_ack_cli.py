"""``wardtui ack DEVICE --note TEXT``, ``ack list [--json] [--all]``, ``ack remove ID`` as an operator
runs them (subprocesses), on SQLite and PostgreSQL: a device that is DOWN or UNREACHABLE now is
acknowledged by the login name, listed (table and JSON) and removed; a device that is up or
unknown, and every other mistake, is one line and exit 2; a hostile note is printed as data,
never as terminal control or markup."""

from __future__ import annotations

import asyncio
import json
import os
import pwd
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from poller.events import State, Transition
from store.history import HistoryStore
from tests.integration.cli_run import run

HOSTILE_NOTE = "[bold]x[/] \x1b[31mred\x1b[0m\nsecond line <script>"
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
U, D, R = State.UP, State.DOWN, State.UNREACHABLE


def plain(db_url: str) -> str:
    return db_url.replace("sqlite+aiosqlite:///", "sqlite:///").replace("+asyncpg", "")


def me() -> str:
    return pwd.getpwuid(os.getuid()).pw_name


def seed(db_url: str) -> None:
    """rtr DOWN since T0, "atm [b]1" UNREACHABLE since T0, pc UP."""
    async def write() -> None:
        async with HistoryStore(db_url) as store:
            await store.write_transitions([
                Transition("rtr", "127.0.0.1", State.UNKNOWN, U, T0 - timedelta(minutes=5), None, 1.0),
                Transition("atm [b]1", "127.0.0.2", State.UNKNOWN, U, T0 - timedelta(minutes=5), None, 1.0),
                Transition("pc", "127.0.0.3", State.UNKNOWN, U, T0 - timedelta(minutes=5), None, 1.0),
                Transition("rtr", "127.0.0.1", U, D, T0 + timedelta(seconds=5), T0, None),
                Transition("atm [b]1", "127.0.0.2", U, R, T0 + timedelta(seconds=6), T0, None)])
            await store.close()

    asyncio.run(write())


def recover(db_url: str, device: str, address: str, at: datetime) -> None:
    async def write() -> None:
        async with HistoryStore(db_url) as store:
            await store.write_transitions([Transition(device, address, D, U, at, None, 1.0)])
            await store.close()

    asyncio.run(write())


def test_ack_list_remove(db_url: str, tmp_path: Path) -> None:
    seed(db_url)
    db = plain(db_url)
    # One after the other: run at once, which one gets id 1 would be a race.
    (rtr,) = run(("ack", "rtr", "--note", "on site, INC-2231", "--db", db), cwd=tmp_path)
    (atm,) = run(("ack", "atm [b]1", "--note", "behind rtr", "--db", db), cwd=tmp_path)
    assert rtr.returncode == 0, rtr.stderr
    assert rtr.stdout == (f"acknowledged rtr (DOWN since {T0:%Y-%m-%d %H:%M:%S} UTC) as 1 by {me()}; "
                          "note: on site, INC-2231\n")
    assert atm.returncode == 0, atm.stderr
    assert atm.stdout.startswith("acknowledged atm [b]1 (UNREACHABLE since ")
    table, as_json = run(("ack", "list", "--db", db), ("ack", "list", "--json", "--db", db), cwd=tmp_path)
    lines = table.stdout.splitlines()
    assert lines[0].split()[:2] == ["id", "device"] and len(lines) == 3
    assert "in force" in lines[1] and lines[1].endswith("on site, INC-2231") and "atm [b]1" in lines[2]
    records = json.loads(as_json.stdout)
    assert [(r["id"], r["device"], r["who"], r["open"]) for r in records] == [
        (1, "rtr", me(), True), (2, "atm [b]1", me(), True)]
    assert records[0]["down_since"] == T0.isoformat() and records[0]["recovered_at"] is None

    recover(db_url, "rtr", "127.0.0.1", T0 + timedelta(minutes=20))  # the ack ends with the outage
    removed = run(("ack", "remove", "2", "--db", db), cwd=tmp_path)[0]
    assert removed.returncode == 0, removed.stderr
    assert removed.stdout.startswith("removed acknowledgement 2 of atm [b]1 (down since ")
    after, everything, again, ended = run(
        ("ack", "list", "--json", "--db", db), ("ack", "list", "--json", "--all", "--db", db),
        ("ack", "remove", "2", "--db", db), ("ack", "remove", "1", "--db", db), cwd=tmp_path)
    assert json.loads(after.stdout) == []
    listed = json.loads(everything.stdout)
    assert [r["id"] for r in listed] == [1, 2]
    assert listed[0]["recovered_at"] == (T0 + timedelta(minutes=20)).isoformat() and not listed[0]["open"]
    assert listed[1]["cleared_why"] == f"removed by {me()}" and listed[1]["cleared_at"] is not None
    assert again.returncode == 2 and "acknowledgement 2 is not in force: removed by" in again.stderr
    assert ended.returncode == 2 and "acknowledgement 1 is not in force: ended: recovered" in ended.stderr
    # rtr is up now: a new acknowledgement of it is refused.
    up = run(("ack", "rtr", "--note", "late", "--db", db), cwd=tmp_path)[0]
    assert up.returncode == 2 and "cannot acknowledge rtr: is not DOWN or UNREACHABLE now" in up.stderr


@pytest.mark.parametrize(("args", "message"), [
    (("ack", "pc", "--note", "x"), "cannot acknowledge pc: is not DOWN or UNREACHABLE now"),
    (("ack", "nosuch\x1b[2J", "--note", "x"), "cannot acknowledge nosuch\\x1b[2J: not in the history"),
    (("ack", "rtr"), "--note: say what is being done"),
    (("ack", "rtr", "--note", "  "), "--note: say what is being done"),
    (("ack",), "say which device to acknowledge"),
    (("ack", "remove"), "ack remove needs the acknowledgement's id"),
    (("ack", "remove", "x1"), "ack remove needs the acknowledgement's id"),
    (("ack", "remove", "7"), "no acknowledgement 7"),
    (("ack", "list", "--note", "x"), "--note goes with acknowledging a device"),
    (("ack", "rtr", "extra", "--note", "x"), "one device at a time"),
    (("ack", "rtr", "--note", "x", "--json"), "--json and --all go with ack list"),
    (("ack", "rtr", "--device", "pc", "--note", "x"), "give the device once"),
    (("ack", "--device", "list", "--note", "x"), "cannot acknowledge list: not in the history"),
])
def test_mistakes_exit_2_with_one_clear_line(args: tuple[str, ...], message: str, tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'history.db'}"
    seed(url)
    proc = run((*args, "--db", plain(url)), cwd=tmp_path)[0]
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1 and "\x1b" not in proc.stderr
    listed = run(("ack", "list", "--json", "--all", "--db", plain(url)), cwd=tmp_path)[0]
    assert json.loads(listed.stdout) == []  # nothing stored for a refusal


def test_a_missing_history_is_exit_1_and_not_created(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'history.db'}"
    add, listed = run(("ack", "rtr", "--note", "x", "--db", db), ("ack", "list", "--db", db), cwd=tmp_path)
    assert add.returncode == listed.returncode == 1 and "no history at" in add.stderr
    assert not (tmp_path / "history.db").exists()


def test_a_hostile_note_is_printed_as_data(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'history.db'}"
    seed(url)
    db = plain(url)
    added = run(("ack", "rtr", "--note", HOSTILE_NOTE, "--db", db), cwd=tmp_path)[0]
    assert added.returncode == 0, added.stderr
    table, as_json = run(("ack", "list", "--db", db), ("ack", "list", "--json", "--db", db), cwd=tmp_path)
    for out in (added.stdout, table.stdout, as_json.stdout):
        assert "\x1b" not in out and "\r" not in out
    assert len(table.stdout.splitlines()) == 2  # the newline is written out, not obeyed
    assert table.stdout.splitlines()[1].endswith("[bold]x[/] \\x1b[31mred\\x1b[0m\\x0asecond line <script>")
    assert added.stdout.endswith("note: [bold]x[/] \\x1b[31mred\\x1b[0m\\x0asecond line <script>\n")
    assert json.loads(as_json.stdout)[0]["note"] == HOSTILE_NOTE  # JSON gives it back exactly


def test_the_report_lists_who_acknowledged_each_outage(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'history.db'}"
    seed(url)
    db = plain(url)
    assert run(("ack", "rtr", "--note", HOSTILE_NOTE, "--db", db), cwd=tmp_path)[0].returncode == 0
    procs = run(*[("report", "--from", "2h", "--format", fmt, "--db", db)
                  for fmt in ("json", "csv", "md", "html")], cwd=tmp_path)
    assert [p.returncode for p in procs] == [0, 0, 0, 0], [p.stderr for p in procs]
    as_json, as_csv, as_md, as_html = (p.stdout for p in procs)
    outages = {o["device"]: o for o in json.loads(as_json)["outages"]}
    assert (outages["rtr"]["acked_by"], outages["rtr"]["ack_note"]) == (me(), HOSTILE_NOTE)
    assert outages["atm [b]1"]["acked_by"] is None
    for text in (as_csv, as_md, as_html):
        assert "\x1b" not in text and me() in text
    assert "<script>" not in as_md and "<script>" not in as_html
    assert "\\[bold\\]x\\[/\\]" in as_md and "&lt;script&gt;" in as_html


def test_outages_say_who_acknowledged_each_and_the_note_as_data(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'history.db'}"
    seed(url)
    db = plain(url)
    assert run(("ack", "rtr", "--note", HOSTILE_NOTE, "--db", db), cwd=tmp_path)[0].returncode == 0
    table, as_json = run(("outages", "--db", db), ("outages", "--json", "--db", db), cwd=tmp_path)
    assert table.returncode == as_json.returncode == 0, (table.stderr, as_json.stderr)
    records = {o["device"]: o for o in json.loads(as_json.stdout)}
    assert (records["rtr"]["acked_by"], records["rtr"]["ack_note"]) == (me(), HOSTILE_NOTE)
    assert records["atm [b]1"]["acked_by"] is None and records["atm [b]1"]["ack_note"] is None
    lines = table.stdout.splitlines()
    assert len(lines) == 3 and "\x1b" not in table.stdout  # one line per outage: the newline written out
    [rtr] = [line for line in lines if line.startswith("rtr ")]
    assert rtr.endswith(f"{me()}: [bold]x[/] \\x1b[31mred\\x1b[0m\\x0asecond line <script>")
