"""Hostile text in a real terminal (tmux), as an operator would meet it: an inventory of markup
names, a real SNMP agent (snmpsim) whose every string holds markup and escape sequences, and a
history database holding raw escapes. The terminal's title never changes, the screen is never
cleared, nothing becomes a link or an action, the dashboard stays up and shows the text."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from poller.events import InterfaceStat, SnmpPoll
from poller.inventory import Device
from store import HistoryStore
from store.db import database_url
from tests.lab.snmp_agents import RATE64, SimDevice, SnmpsimAgent, snmpsim_missing, write_credentials_file
from tests.ui.test_terminal import Tmux, _require, wait_for_exit, wardtui_in_tmux

TITLE = "\x1b]0;pwned\x07"
CLEAR = "\x1b[2J"
CLIP = "\x1b]52;c;ZWNobyBoaQ==\x07"
SYS_NAME = f"[link=http://x]n[/link]{TITLE}"
SYS_DESCR = f"[@click=app.quit]x[/] {CLEAR}{CLIP}"
IF_NAME = f"[/zz]{CLEAR}"
IF_ALIAS = f"[red]alias[/red]{TITLE}"


class HostileSim(SimDevice):
    """RATE64's recording with markup and escapes in sysDescr, sysName, sysContact,
    sysLocation and every interface's ifDescr, ifName and ifAlias (sent as raw bytes)."""

    def snmprec(self) -> str:
        rows = dict(line.split("|", 1) for line in super().snmprec().splitlines())
        strings = {"1.3.6.1.2.1.1.1.0": SYS_DESCR, "1.3.6.1.2.1.1.4.0": TITLE,
                   "1.3.6.1.2.1.1.5.0": SYS_NAME, "1.3.6.1.2.1.1.6.0": CLEAR}
        for i in self.interfaces:
            strings |= {f"1.3.6.1.2.1.2.2.1.2.{i.index}": IF_NAME,
                        f"1.3.6.1.2.1.31.1.1.1.1.{i.index}": IF_NAME,
                        f"1.3.6.1.2.1.31.1.1.1.18.{i.index}": IF_ALIAS}
        rows |= {oid: "4x|" + text.encode().hex() for oid, text in strings.items()}
        return "".join(f"{oid}|{rows[oid]}\n" for oid in rows)


HOSTILE = HostileSim("hostile", RATE64.description, RATE64.interfaces[:2])


@pytest.fixture
def agent() -> Iterator[SnmpsimAgent]:
    missing = snmpsim_missing()
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail("; ".join(missing) + " (CI=true: this test must run)", pytrace=False)
        pytest.skip("; ".join(missing))
    with SnmpsimAgent(devices=(HOSTILE,), recorded=False) as sim:
        yield sim


async def _seed(url: str) -> None:
    """A device without SNMP credentials whose stored SNMP facts hold raw escapes."""
    now = datetime.now(UTC)
    iface = InterfaceStat(1, f"db-if{CLEAR}", f"db-alias{TITLE}", "up", "up", 10**9, 1.0, 2.0,
                          0, 0, 0, 0, True)
    async with HistoryStore(url) as store:
        await store.sync_devices([Device("[/]stored", "127.4.0.9", "b", "r", "router")])
        await store.write_snmp_polls([SnmpPoll("[/]stored", "127.4.0.9", now - timedelta(minutes=1),
                                               f"db-sys{TITLE}", f"db-descr{CLIP}", "1.3.6.1.4.1.8072", 1.0,
                                               (iface,))])


def command(tmux: Tmux, line: str) -> None:
    """``:`` then ``line`` and Enter, once the command line has the focus (keys typed sooner
    would reach the dashboard)."""
    tmux.keys(":")
    tmux.wait_for(lambda s: "device NAME · sort COLUMN" in s)
    tmux.keys("-l", line)
    tmux.wait_for(lambda s: f": {line}" in s)
    tmux.keys("Enter")


def title_of(tmux: Tmux) -> str:
    return subprocess.run(["tmux", "display", "-p", "-t", tmux.name, "#{pane_title}"],
                          capture_output=True, text=True, check=True).stdout.strip()


def test_hostile_inventory_agent_and_database_in_a_real_terminal(agent: SnmpsimAgent, tmp_path: Path) -> None:
    _require()
    credentials = write_credentials_file(tmp_path / "credentials.yaml", {"lab": agent.v2c("hostile")})
    inventory = tmp_path / "net.csv"
    inventory.write_text(
        "name,address,branch,region,type,snmp_credential,snmp_port\n"
        f'"[/]",127.0.0.1,"[link=http://evil]click[/link]","[@click=app.quit]q[/]",router,lab,{agent.port}\n'
        '"[/]stored",127.4.0.9,b,r,router,,\n'
        '"[b]bold",127.4.0.10,"<script>",r,atm,,\n', encoding="utf-8")
    db = tmp_path / "h.db"
    asyncio.run(_seed(database_url(str(db))))
    status = tmp_path / "exit-status"
    args = (f"--inventory {inventory} --db sqlite:///{db} --interval 0.5 --credentials {credentials} "
            "--snmp-interval 1")
    with wardtui_in_tmux(f"wardtui-hostile-{os.getpid()}", args, status, width=140, height=40) as tmux:
        screen = tmux.wait_for(lambda s: "[b]bold" in s and "[link=http://evil]click" in s
                               and "snmp polls/s" in s)
        title = title_of(tmux)
        assert "[@click=app.quit]q[" in screen and "<script>" in screen
        # Operator input that is markup: the filter, the : line, an unknown device.
        tmux.keys("/")
        tmux.wait_for(lambda s: "words must all match" in s)  # the filter has the focus
        tmux.keys("-l", "[/]")
        tmux.wait_for(lambda s: "filter: [/]" in s and "[b]bold" not in s)
        tmux.keys("Enter")
        tmux.wait_for(lambda s: "s Sort" in s)  # the table has the focus again: its keys in the footer
        command(tmux, "device [/zz]")
        tmux.wait_for(lambda s: "no device named '[/zz]'" in s)
        # The drill-down of the device whose agent sends escapes, once it has been polled.
        command(tmux, "device [/]")
        screen = tmux.wait_for(lambda s: "sysName [link=http://x]n[/link]\ufffd]0;pwned\ufffd" in s
                               and "[/zz]\ufffd[2J" in s, timeout=40)
        assert "[@click=app.quit]x[/] \ufffd[2J\ufffd]52;c;" in screen
        assert "[red]alias[/red]" in screen
        tmux.keys("Escape")
        tmux.wait_for(lambda s: "filter: [/]" in s)
        # The device whose SNMP facts come only from the database.
        command(tmux, "device [/]stored")
        screen = tmux.wait_for(lambda s: "db-sys\ufffd]0;pwned\ufffd" in s and "db-if\ufffd[2J" in s)
        assert "db-descr\ufffd]52;c;" in screen
        tmux.keys("Escape")
        tmux.wait_for(lambda s: "filter: [/]" in s)
        assert title_of(tmux) == title != "pwned"
        tmux.keys("q")
        assert wait_for_exit(status) == "0"
