"""The dashboard attached to a cluster (issue 16 item 5): two members, each a real engine (fake
prober) with the real Publisher under its own keys and real shard leases (poller/cluster/
leases.py) on a private Redis, with hostile poller ids (markup, terminal control, bidi). The
table shows each device once with the member its shard's lease names (the ``poller`` column,
literal), the engine panel a line per member (literal), and a member that stops is dropped."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from redis.asyncio import Redis

from poller.cluster.leases import LeaseConfig, ShardLeases
from poller.cluster.shards import ShardMap
from poller.engine import Engine, EngineConfig
from poller.feed import Publisher, ServiceInfo
from poller.live import Keys
from poller.state import StateConfig
from poller.text import clean
from tests.fakes import FakeProber, make_devices
from tests.ui.test_attached import PrivateRedis, private_redis  # noqa: F401  (the fixture)
from wardtui.app import WardApp
from wardtui.attached import AttachedRuntime, Site
from wardtui.runtime import Options
from wardtui.widgets.device_table import DeviceTable
from wardtui.widgets.gauges import GaugesPanel
from wardtui.widgets.node_lines import NodeLines

N = 14
SHARDS = 16
HOSTILE = ("[@click=app.quit]evil[/]\x1b[31m:101:deadbeef", "\u202eroot[b]\x07:202:cafef00d")


class Member:
    """An engine, its Publisher under ``Keys(site).of_poller(id)``, and its shard leases, on a
    thread and loop of their own (what serve --cluster runs, without the database)."""

    def __init__(self, url: str, site: str, poller: str) -> None:
        self.poller = poller
        self.devices = make_devices(N, interval=0.2)
        self.loop = asyncio.new_event_loop()
        self.engine = Engine(self.devices, FakeProber(rtt_ms=4.0),
                             EngineConfig(interval=0.2, timeout=0.1, state=StateConfig(confirm_spacing=0.02)))
        keys = Keys(site)
        self.publisher = Publisher(self.engine, url, keys.of_poller(poller),
                                   ServiceInfo.here("test", N, poller, 1.0), period=0.2)
        self.engine.companions.append(self.publisher)
        self.client = Redis.from_url(url)
        self.leases = ShardLeases(self.client, keys, ShardMap(SHARDS), LeaseConfig(ttl=1.0), poller_id=poller)
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        async def both() -> None:
            task = self.leases.start()
            await self.engine.run()
            await self.leases.stop()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await self.client.aclose()
        self.loop.run_until_complete(both())

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.engine.stop)
        self.thread.join(10)


@dataclass
class Cluster:
    app: WardApp
    members: list[Member]

    @property
    def table(self) -> DeviceTable:
        return self.app.screen.query_one(DeviceTable)


def _owners(members: list[Member]) -> dict[int, str]:
    owned: dict[int, str] = {}
    for m in members:
        for shard in m.leases.owned():
            owned[shard] = m.poller
    return owned


@asynccontextmanager
async def cluster(tmp_path: Path, url: str) -> AsyncIterator[Cluster]:
    site = f"c{uuid.uuid4().hex[:10]}"
    members = [Member(url, site, poller) for poller in HOSTILE]
    for m in members:
        m.start()
    try:
        deadline = time.monotonic() + 15
        while not (len(_owners(members)) == SHARDS and all(m.leases.owned() for m in members)
                   and all(m.publisher.stats.snapshots >= 2 for m in members)):
            assert time.monotonic() < deadline, "the members never shared the shards"
            await asyncio.sleep(0.05)
        runtime = AttachedRuntime(Site(url, Keys(site)), Options(db=f"sqlite:///{tmp_path / 'none.db'}"),
                                  cluster=True)
        app = WardApp(runtime)
        await asyncio.wrap_future(app.engine_thread.submit(runtime.attach()))
        async with app.run_test(size=(160, 50)):
            yield Cluster(app, members)
    finally:
        for m in members:
            m.stop()


async def _until(what: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.1)


async def test_the_poller_column_and_node_lines_show_hostile_member_ids_literally(
        tmp_path: Path, private_redis: PrivateRedis) -> None:  # noqa: F811
    async with cluster(tmp_path, private_redis.url) as c:
        shards = ShardMap(SHARDS)

        def owner_shown() -> bool:
            owners = _owners(c.members)
            rows = c.table.row_order()
            return len(rows) == N and len(owners) == SHARDS and all(
                c.table.cell_text(d.name, "poller") == clean(owners[shards.of(d)].rsplit(":", 1)[0])
                and c.table.cell_text(d.name, "state") == "up" for d in c.members[0].devices)

        await _until(owner_shown)
        shown = {c.table.cell_text(d.name, "poller") for d in c.members[0].devices}
        assert shown == {clean(p.rsplit(":", 1)[0]) for p in HOSTILE}  # both members, no ESC, no BEL
        assert all("\x1b" not in s and "\x07" not in s and "\u202e" not in s for s in shown)
        lines = c.app.screen.query_one(NodeLines)
        await _until(lambda: len(lines.nodes) == 2 and all(n.lag_p99_ms is not None for n in lines.nodes))
        await _until(lambda: c.app.screen.query_one(GaugesPanel).latest is not None)  # the members' added up
        text = lines.render().plain
        assert "[@click=app.quit]evil[/]" in text and "root[b]" in text  # as written, not obeyed
        assert "\x1b" not in text and "\u202e" not in text
        assert sum(n.devices for n in lines.nodes) == N
        assert sum(n.shards for n in lines.nodes) == SHARDS
        assert all(n.lease_age_s is not None and n.lease_age_s <= 1.0 for n in lines.nodes)
        assert c.app.is_running

        c.members[0].stop()  # a member leaves: the other takes its shards, the view follows
        left = c.members.pop(0)
        await _until(lambda: [n.poller for n in lines.nodes] == [c.members[0].poller]
                     and owner_shown(), timeout=20)
        assert all(c.table.cell_text(d.name, "poller") != clean(left.poller.rsplit(":", 1)[0])
                   for d in left.devices)
