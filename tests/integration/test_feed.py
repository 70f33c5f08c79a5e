"""The live feed on real Redis: a viewer's copy equals the service's state after churn, trims,
Redis killed, restarted empty or paused; commands; bad passwords; keys written by hand.

The shared Redis at 127.0.0.1:6379 is used with a site of its own per test (its keys deleted
after); faults use private ``redis-server`` processes on free loopback ports. Without Redis the
tests skip, or fail under CI=true."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import shutil
import struct
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.asyncio import Redis
from redis.exceptions import RedisError

from poller.engine import Engine, EngineConfig
from poller.events import (
    CheckResult,
    Event,
    Gauges,
    InterfaceChange,
    Reboot,
    SnmpAgentChange,
    SnmpPoll,
    State,
    Transition,
)
from poller.feed import (
    COMMAND_MAX_AGE,
    READ_PACE,
    FeedStatus,
    LiveFeed,
    NoService,
    Publisher,
    ServiceInfo,
    client_for,
    describe_error,
    send_command,
    shown_url,
)
from poller.inventory import Device
from poller.live import (
    EVENTS_PER_ENTRY,
    FLAPPING,
    RTT_UNIT,
    Columns,
    DeltaHeader,
    FeedFormatError,
    Keys,
    decode_snapshot,
    encode_entry,
    encode_event,
    encode_inventory,
    encode_snapshot,
    entry_events,
    event_extra,
    peek_delta,
)
from poller.state import StateConfig
from tests.fakes import FakeProber, make_devices
from tests.procs.redis import LoopbackRedis
from tests.runqueue import Waited

MAIN_URL = "redis://127.0.0.1:6379"
log_name = "wardtui.feed"


def _require(what: str, problem: str | None) -> None:
    if problem is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{what}: {problem} (CI=true: live feed tests must run, not skip)", pytrace=False)
    pytest.skip(f"{what}: {problem}")


def _main_redis_problem() -> str | None:
    try:
        redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=1, socket_timeout=1).ping()
    except (RedisError, OSError) as exc:
        return f"Redis at 127.0.0.1:6379 does not answer ({exc})"
    return None


@pytest.fixture
def keys() -> Iterator[Keys]:
    """A site of its own on the shared Redis; its keys are deleted after the test."""
    _require("Redis", _main_redis_problem())
    site = Keys(f"feedtest-{uuid.uuid4().hex[:12]}")
    yield site
    client = redis.Redis(host="127.0.0.1", port=6379)
    stale = list(client.scan_iter(match=f"{site.prefix}*", count=1000))
    if stale:
        client.delete(*stale)
    client.close()


class PrivateRedis(LoopbackRedis):
    """A redis-server of the test's own on a free loopback port: killed, restarted empty, paused
    (tests/procs/redis.py: the server answering is checked to be this one, not another run's that
    took the port while it was down)."""

    def __init__(self, workdir: Path, password: str | None = None) -> None:
        super().__init__(password=password, workdir=workdir)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    _require("redis-server", None if shutil.which("redis-server") else "not installed")
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.kill()


# -- a service and its viewers -------------------------------------------------------------------


class Service:
    """An engine on a scripted prober (each device its own constant RTT) with a Publisher."""

    def __init__(self, url: str, keys: Keys, devices: list[Device], timeout: float | None = None,
                 interval: float = 0.5) -> None:
        self.devices = devices
        self.rtts = {d.address: 0.2 + (i % 37) * 0.0131 for i, d in enumerate(devices)}
        self.prober = FakeProber()
        self.prober.behaviour = self._reply
        state = StateConfig(confirm_probes=1, confirm_spacing=0.05)
        self.engine = Engine(devices, self.prober, EngineConfig(interval=interval, timeout=0.2, state=state))
        factory = None if timeout is None else (lambda: client_for(url, timeout))
        self.publisher = Publisher(self.engine, url, keys, ServiceInfo.here("test", len(devices)),
                                   client_factory=factory)
        self.engine.companions.append(self.publisher)
        self.engine.gauge_sources.append(self.publisher.gauges)
        self.bus = self.engine.bus.subscribe("test", maxsize=1_000_000)
        self.task: asyncio.Task[None] | None = None

    def _reply(self, address: str, _n: int) -> float | None:
        return None if address in self.prober.down else self.rtts[address]

    async def __aenter__(self) -> Service:
        self.task = asyncio.create_task(self.engine.run())
        assert await eventually(lambda: self.publisher.stats.snapshots >= 1, 5), "no snapshot published"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.engine.stop()
        assert self.task is not None
        await asyncio.wait_for(self.task, 10)

    async def all_checked(self, timeout: float = 5) -> None:
        """Every device out of UNKNOWN, and a snapshot taken after that."""
        assert await eventually(lambda: self.engine.state_counts[State.UNKNOWN] == 0, timeout)
        seen = self.publisher.stats.snapshots
        assert await eventually(lambda: self.publisher.stats.snapshots > seen + 1, 3)


class Viewer:
    def __init__(self, url: str, keys: Keys, timeout: float | None = None) -> None:
        factory = None if timeout is None else (lambda: client_for(url, timeout))
        self.feed = LiveFeed(url, keys, viewer=f"test-{uuid.uuid4().hex[:6]}", client_factory=factory)
        self.bus = self.feed.bus.subscribe("test", maxsize=1_000_000)
        self.task: asyncio.Task[None] | None = None
        self.seen: list[Any] = []

    async def __aenter__(self) -> Viewer:
        if not self.feed.live:
            await self.feed.attach()
        self.task = asyncio.create_task(self.feed.run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.feed.stop()
        if self.task is not None:
            await asyncio.wait_for(self.task, 10)

    def take(self) -> list[Any]:
        self.seen.extend(self.bus.drain())
        return self.seen

    def statuses(self) -> list[bool]:
        return [e.live for e in self.take() if isinstance(e, FeedStatus)]


async def eventually(condition: Callable[[], bool], timeout: float, step: float = 0.05) -> bool:
    """Whether ``condition`` held within ``timeout`` seconds of the loop's own time: wall time
    minus what its thread waited for a CPU meanwhile (other work on the machine; tests/runqueue.py)."""
    waited, started = Waited(), time.monotonic()
    while True:
        if condition():
            return True
        if time.monotonic() - started - waited.loop() > timeout:
            return False
        await asyncio.sleep(step)


def differences(engine: Engine, feed: LiveFeed) -> list[str]:
    """What the viewer shows differently from the service (RTTs within the quantisation)."""
    out = []
    if feed.trackers.keys() != engine.trackers.keys():
        out.append(f"devices differ: {len(feed.trackers)} vs {len(engine.trackers)}")
    for name, mine in engine.trackers.items():
        theirs = feed.trackers.get(name)
        if theirs is None:
            continue
        a = (mine.state, mine.flapping, mine.down_since, mine.last_change)
        b = (theirs.state, theirs.flapping, theirs.down_since, theirs.last_change)
        if a != b:
            out.append(f"{name}: service {a} viewer {b}")
        for attr in ("last_rtt_ms", "avg_rtt_ms", "jitter_ms"):
            x, y = getattr(mine, attr), getattr(theirs, attr)
            if (x is None) != (y is None) or (x is not None and abs(x - y) > RTT_UNIT / 2 + 1e-9):
                out.append(f"{name}.{attr}: service {x} viewer {y}")
    return out


async def converge(engine: Engine, feed: LiveFeed, timeout: float = 6) -> None:
    ok = await eventually(lambda: not differences(engine, feed), timeout, step=0.1)
    assert ok, differences(engine, feed)[:5]


async def churn(service: Service, seconds: float, rounds: int, seed: int = 1) -> None:
    """Devices go down and come back: a tenth at random each round, the first five every round
    (they end flapping)."""
    rng = random.Random(seed)
    addresses = [d.address for d in service.devices]
    for k in range(rounds):
        down = set(rng.sample(addresses, len(addresses) // 10))
        if k % 2 == 0:
            down |= set(addresses[:5])
        else:
            down -= set(addresses[:5])
        service.prober.down = down
        await asyncio.sleep(seconds / rounds)


async def slow_down(service: Service, period: float) -> None:
    """Snapshots every ``period`` seconds from now: the next one is that far away."""
    before, service.publisher.period = service.publisher.period, period
    seen = service.publisher.stats.snapshots
    assert await eventually(lambda: service.publisher.stats.snapshots > seen, before + 1)


# -- state ---------------------------------------------------------------------------------------


async def test_viewer_equals_service_after_churn(keys: Keys) -> None:
    async with Service(MAIN_URL, keys, make_devices(600, interval=0.5)) as service:
        await service.all_checked()
        service.bus.drain()
        async with Viewer(MAIN_URL, keys) as viewer:
            await churn(service, 4.0, 8)
            await converge(service.engine, viewer.feed)
            engine = service.engine
            assert engine.state_counts[State.DOWN] > 20 and engine.flapping >= 5, engine.state_counts
            # Every transition the engine made reached the viewer's bus, once and in order.
            made = [(e.device, e.to_state, e.at) for e in service.bus.drain() if isinstance(e, Transition)]
            seen = [(e.device, e.to_state, e.at) for e in viewer.take() if isinstance(e, Transition)]
            assert len(made) > 100 and seen == made
            assert viewer.feed.stats.reloads == 1  # the attach: no gap, no reload
            # Refreshed from the deltas (the whole snapshot only now and then, if at all).
            stats = viewer.feed.stats
            assert stats.deltas >= 3 and stats.deltas >= stats.refreshes - 2, stats
        async with Viewer(MAIN_URL, keys) as late:  # from the snapshot alone
            await converge(service.engine, late.feed, timeout=3)


async def test_trimmed_stream_reloads_and_ends_equal(keys: Keys) -> None:
    async with Service(MAIN_URL, keys, make_devices(200, interval=0.5)) as service:
        await service.all_checked()
        viewer = Viewer(MAIN_URL, keys)
        await viewer.feed.attach()  # ... and falls asleep: its stream position is left behind
        await churn(service, 2.0, 4)
        client = Redis.from_url(MAIN_URL)
        assert await client.xlen(keys.events) > 20
        await client.xtrim(keys.events, maxlen=2, approximate=False)
        await client.aclose()
        assert viewer.feed.stats.reloads == 1
        async with viewer:  # wakes up: its first read shows the gap
            assert await eventually(lambda: viewer.feed.stats.reloads >= 2, 3), viewer.feed.stats
            await converge(service.engine, viewer.feed)
            # Reloaded once, or twice when the snapshot was itself older than the trimmed end
            # (then the stream is taken as it is): never again and again.
            assert viewer.feed.stats.reloads <= 4, viewer.feed.stats


async def test_snapshot_older_than_an_applied_event_never_regresses_a_state(keys: Keys) -> None:
    """A refresh whose snapshot covers the stream only up to before an event the viewer applied
    keeps what the event said; a snapshot that covers the event is taken."""
    run = "2026-12-05T12:00:00+00:00"
    device = Device("d1", "127.0.0.9", "b", "r", "t")
    inventory_id, inventory = encode_inventory([device])
    client = Redis.from_url(MAIN_URL)

    async def publish(seq: int, stream_id: str, state: State, flapping: bool = False, rtt: int = 100) -> None:
        columns = Columns.empty(1)
        columns.flags[0] = {State.UP: 1, State.DOWN: 2}[state] | (FLAPPING if flapping else 0)
        columns.last_rtt[0] = rtt  # RTT_UNIT ms
        at = datetime.now(UTC)
        info = ServiceInfo("h", 1, "v", run, 1, at.isoformat())
        await client.mset({keys.inventory: inventory, keys.service: info.to_json(),
                           keys.snapshot: encode_snapshot(seq, stream_id, at, inventory_id, run, None,
                                                          columns, None)})

    await publish(1, "1000-0", State.UP)
    async with Viewer(MAIN_URL, keys) as viewer:
        feed = viewer.feed
        assert feed.trackers["d1"].state is State.UP
        down = Transition("d1", "127.0.0.9", State.UP, State.DOWN, datetime.now(UTC),
                          datetime.now(UTC) - timedelta(seconds=3), None)
        await client.xadd(keys.events, {"e": encode_event(down, n=1, r=run)}, id="3000-0")
        assert await eventually(lambda: feed.trackers["d1"].state is State.DOWN, 2)
        # A newer snapshot (other figures) from an older stream position: its figures are
        # taken, not its state.
        await publish(2, "2000-0", State.UP, rtt=250)
        assert await eventually(lambda: feed.trackers["d1"].last_rtt_ms == pytest.approx(2.5), 3)
        assert feed.stats.refreshes >= 1
        assert feed.trackers["d1"].state is State.DOWN
        assert feed.trackers["d1"].down_since == down.down_since
        assert not feed.trackers["d1"].flapping
        await publish(3, "3000-0", State.DOWN, flapping=True)  # covers the event: taken
        assert await eventually(lambda: feed.trackers["d1"].flapping, 3)
        assert feed.trackers["d1"].state is State.DOWN
    await client.aclose()


async def test_a_viewer_takes_a_busy_stream_in_paced_reads(keys: Keys) -> None:
    """Entries written one every 4 ms (the service's pipelines at 1,000 transitions a second) are
    read a few pipelines at a time: one read per READ_PACE at most (each one read apart was
    ~250 here), every event applied in order."""
    run = "2026-12-05T12:00:00+00:00"
    device = Device("d1", "127.0.0.9", "b", "r", "t")
    inventory_id, inventory = encode_inventory([device])
    client = Redis.from_url(MAIN_URL)
    columns = Columns.empty(1)
    at = datetime.now(UTC)
    await client.mset({keys.inventory: inventory,
                       keys.service: ServiceInfo("h", 1, "v", run, 1, at.isoformat()).to_json(),
                       keys.snapshot: encode_snapshot(1, "1000-0", at, inventory_id, run, None, columns, None,
                                                      event_n=0)})
    async with Viewer(MAIN_URL, keys) as viewer:
        feed = viewer.feed
        assert feed.read_pace == pytest.approx(READ_PACE) and READ_PACE > 0.02
        reads = 0
        assert feed._client is not None
        xread = feed._client.xread

        async def counted(*args: Any, **kwargs: Any) -> Any:
            nonlocal reads
            reads += 1
            return await xread(*args, **kwargs)

        feed._client.xread = counted  # type: ignore[method-assign]
        written = 250
        start = time.monotonic()
        for n in range(1, written + 1):
            to, old = (State.DOWN, State.UP) if n % 2 else (State.UP, State.DOWN)
            event = Transition("d1", "127.0.0.9", old, to, datetime.now(UTC), None, None)
            await client.xadd(keys.events, {"e": encode_event(event, n=n, r=run)})
            await asyncio.sleep(0.004)
        assert await eventually(lambda: feed.stats.events == written, 2)
        elapsed = time.monotonic() - start
        assert feed.trackers["d1"].state is State.UP
        assert reads <= elapsed / READ_PACE + 5, (reads, elapsed)
    await client.aclose()


async def test_a_viewer_reads_each_snapshot_just_after_the_service_writes_it(keys: Keys) -> None:
    """The refresh follows the service's snapshots (by the heartbeat's age, written with each):
    a viewer that attached 0.7 s after one reads the next ones ~REFRESH_AFTER after they are
    written, not 0.7 s after, and takes each one."""
    run = "2026-12-05T12:00:00+00:00"
    device = Device("d1", "127.0.0.9", "b", "r", "t")
    inventory_id, inventory = encode_inventory([device])
    client = Redis.from_url(MAIN_URL)
    written: dict[int, float] = {}

    async def publish(seq: int) -> None:
        columns = Columns.empty(1)
        columns.flags[0] = 1
        columns.last_rtt[0] = seq
        at = datetime.now(UTC)
        pipe = client.pipeline(transaction=True)
        pipe.set(keys.inventory, inventory)
        pipe.set(keys.snapshot, encode_snapshot(seq, "1000-0", at, inventory_id, run, None, columns, [0],
                                                event_n=0))
        pipe.set(keys.service, ServiceInfo("h", 1, "v", run, 1, at.isoformat()).to_json(), ex=15)
        await pipe.execute()
        written[seq] = time.monotonic()

    await publish(1)
    await asyncio.sleep(0.7)
    async with Viewer(MAIN_URL, keys) as viewer:
        feed = viewer.feed
        taken: dict[int, float] = {}

        async def watch() -> None:
            while True:
                taken.setdefault(feed._seq, time.monotonic())
                await asyncio.sleep(0.01)

        watcher = asyncio.create_task(watch())
        for seq in range(2, 6):
            await asyncio.sleep(written[seq - 1] + 1.0 - time.monotonic())
            await publish(seq)
        await asyncio.sleep(0.6)
        watcher.cancel()
        assert sorted(taken) == [1, 2, 3, 4, 5]
        late = {seq: round(taken[seq] - written[seq], 3) for seq in range(3, 6)}
        assert all(s < 0.45 for s in late.values()), late
        assert feed.trackers["d1"].last_rtt_ms == pytest.approx(5 * RTT_UNIT)
    await client.aclose()


async def test_snmp_events_reach_viewers(keys: Keys) -> None:
    """Every streamed kind goes through the real publisher (an InterfaceChange once killed it)."""
    async with Service(MAIN_URL, keys, make_devices(5, interval=1.0)) as service:
        await service.all_checked()
        async with Viewer(MAIN_URL, keys) as viewer:
            now = datetime.now(UTC)
            sent: list[Event] = [
                InterfaceChange("dev1", "127.2.0.2", now, 3, "Gi0/3 [uplink]", "up", "lowerLayerDown"),
                Reboot("dev2", "127.2.0.3", now, 12.0, 86400.0, now - timedelta(seconds=12)),
                SnmpAgentChange("dev3", "127.2.0.4", now, False, "timeout"),
                SnmpPoll("dev3", "127.2.0.4", now, "sw", "descr", "1.3.6", 5.0, ()),
            ]
            for event in sent:
                service.engine.bus.publish(event)

            def snmp_seen() -> list[Event]:
                return [e for e in viewer.take() if isinstance(e, InterfaceChange | Reboot | SnmpAgentChange)]

            assert await eventually(lambda: len(snmp_seen()) == 3, 3)
            assert snmp_seen() == sent[:3]
            assert service.task is not None and not service.task.done()
            assert service.publisher.stats.up


# -- Redis goes away -----------------------------------------------------------------------------


def feed_up_values(events: list[Event]) -> list[float]:
    values = [e.extra.get("feed_up") for e in events if isinstance(e, Gauges)]
    out: list[float] = []
    for v in values:
        if v is not None and (not out or out[-1] != v):
            out.append(v)
    return out


def publisher_lines(caplog: pytest.LogCaptureFixture, *words: str) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == log_name and r.getMessage().startswith("live feed: Redis")
            and any(w in r.getMessage() for w in words)]


async def test_redis_killed_then_restarted_empty(private_redis: PrivateRedis,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=log_name)
    keys = Keys("site1")
    url = private_redis.url
    async with Service(url, keys, make_devices(300, interval=0.5), timeout=2.0) as service:
        await service.all_checked()
        async with Viewer(url, keys, timeout=2.0) as viewer:
            private_redis.kill()
            checks = service.engine.checks_done
            assert await eventually(lambda: not service.publisher.stats.up, 3)
            service.prober.down = {d.address for d in service.devices[:30]}  # while Redis is away
            assert await eventually(lambda: False in viewer.statuses(), 3)
            await asyncio.sleep(1.5)
            assert service.engine.checks_done > checks + 300  # polling goes on
            private_redis.start()  # empty
            restarted = time.monotonic()
            present: list[set[bytes]] = []
            assert await eventually(lambda: keys.snapshot.encode() in present[-1] if present.append(
                set(private_redis.keys_present())) is None else False, 4, step=0.01)
            back = time.monotonic() - restarted
            assert keys.inventory.encode() in present[-1]  # with the first snapshot, not after it
            assert await eventually(lambda: viewer.statuses()[-1:] == [True], 10, step=0.1)
            await converge(service.engine, viewer.feed)
            async with Viewer(url, keys) as late:
                await converge(service.engine, late.feed)
        assert viewer.statuses() == [False, True]
    assert back < 4.5
    assert len(publisher_lines(caplog, "lost", "unreachable")) == 1, caplog.text
    assert len(publisher_lines(caplog, "is back")) == 1, caplog.text
    assert feed_up_values(service.bus.drain()) == [1.0, 0.0, 1.0]


@pytest.mark.alone  # the engine's checks per second and event-loop lag over 8 s
async def test_redis_paused_does_not_block_the_engine(private_redis: PrivateRedis,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=log_name)
    keys = Keys("site2")
    url = private_redis.url
    async with Service(url, keys, make_devices(300, interval=0.5), timeout=1.5) as service:
        await service.all_checked()
        async with Viewer(url, keys, timeout=1.5) as viewer:
            service.bus.drain()
            waited = Waited()  # the loop's waits for a CPU (other work on the machine): tests/runqueue.py
            service.engine.gauge_sources.append(lambda: {"test_waited": waited.loop()})
            private_redis.pause()
            checks = service.engine.checks_done
            paused = time.monotonic()
            await asyncio.sleep(8)
            during = [e for e in service.bus.drain() if isinstance(e, Gauges)]
            w = waited.loop()
            private_redis.resume()
            assert time.monotonic() - paused < 9 + w
            assert len(during) >= 7, len(during)  # one a second, not held up
            # Lag p99 under 150 ms, plus what the loop waited for a CPU over that gauge's period
            # and the one before (a check late from then is counted now).
            marks = [0.0, 0.0] + [g.extra["test_waited"] for g in during]
            lags = [(round(g.lag_p99_ms), round((marks[i + 2] - marks[i]) * 1000))
                    for i, g in enumerate(during)]
            assert all(lag < 150 + slack for lag, slack in lags), lags
            assert service.engine.checks_done - checks > 300 * 2 * 7 * 0.8 * (8 - w) / 8, w
            assert during[-1].extra["feed_up"] == 0.0
            assert await eventually(lambda: service.publisher.stats.up, 6, step=0.1)
            snapshots = service.publisher.stats.snapshots
            assert await eventually(lambda: service.publisher.stats.snapshots > snapshots + 1, 3)
            assert await eventually(lambda: viewer.statuses()[-1:] == [True], 10, step=0.1)
            assert viewer.statuses() == [False, True]
            service.prober.down = {d.address for d in service.devices[:10]}
            await converge(service.engine, viewer.feed)
    assert len(publisher_lines(caplog, "lost", "unreachable")) == 1, caplog.text


async def test_bad_password_is_never_shown(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _require("redis-server", None if shutil.which("redis-server") else "not installed")
    server = PrivateRedis(tmp_path, password="the-right-one")
    server.start()
    try:
        caplog.set_level(logging.DEBUG)
        for url in (f"redis://:hunter2-wrong@127.0.0.1:{server.port}/0",
                    f"redis://user:wr0ng%2Fpa%3Fss@127.0.0.1:{server.port}"):
            with pytest.raises(RedisError) as raised:
                await LiveFeed(url, Keys("s")).attach()
            shown = describe_error(raised.value, url) + " " + shown_url(url)
            assert "hunter2" not in shown and "wr0ng" not in shown, shown
            assert f"127.0.0.1:{server.port}" in shown_url(url)
            service = Service(url, Keys("s"), make_devices(3), timeout=1.0)
            task = asyncio.create_task(service.engine.run())
            await asyncio.sleep(1.2)
            service.engine.stop()
            await task
            assert service.publisher.stats.losses == 1 and not service.publisher.stats.up
        assert "unreachable" in caplog.text
        assert "hunter2" not in caplog.text and "wr0ng" not in caplog.text, caplog.text
    finally:
        server.kill()
    # URLs no parser reads as having a password still never show it.
    for url in ("redis://:pa/ss@127.0.0.1:6379", "redis://u:p#w@127.0.0.1", "redis://:x?y@h:1/0",
                "rediss://user:s3cret@[::1]:6380/2"):
        shown = shown_url(url)
        assert not any(p in shown for p in ("pa/ss", "p#w", "x?y", "s3cret")), shown


# -- commands ------------------------------------------------------------------------------------


async def test_probe_now_reaches_every_viewer(keys: Keys, caplog: pytest.LogCaptureFixture) -> None:
    async with Service(MAIN_URL, keys, make_devices(50, interval=2.0)) as service:
        await service.all_checked()
        async with Viewer(MAIN_URL, keys) as one, Viewer(MAIN_URL, keys) as two:
            name = service.devices[7].name
            reply = await one.feed.command("probe", device=name)
            assert reply["ok"] is True and reply["result"]["device"] == name, reply
            assert service.engine.checks_on_demand == 1

            def asked(viewer: Viewer) -> list[CheckResult]:
                return [e for e in viewer.take() if isinstance(e, CheckResult) and e.device == name]

            for viewer in (one, two):
                assert await eventually(lambda v=viewer: len(asked(v)) == 1, 3)  # type: ignore[misc]
                result = asked(viewer)[0]
                assert result.at.isoformat() == reply["result"]["at"] and result.rtt_ms == pytest.approx(
                    service.rtts[service.devices[7].address])
            client = Redis.from_url(MAIN_URL)
            entries = await client.xrange(keys.events)
            docs = [doc for _, f in entries for doc in (entry_events(f) or (0, "", []))[2]]
            extras = [event_extra(doc) for doc in docs if doc.get("t") == "CheckResult"]
            await client.aclose()
            assert len(extras) == 1 and extras[0]["by"] and extras[0]["by"] != "?", extras

            unknown = await two.feed.command("probe", device="no-such[device]")
            assert unknown["ok"] is False and "no-such[device]" in unknown["error"]
            assert service.engine.checks_on_demand == 1


def command_doc(**kw: Any) -> dict[str, Any]:
    return {"id": uuid.uuid4().hex, "cmd": "probe", "user": "tester", "host": "h", "at": time.time(), **kw}


async def test_stale_and_garbage_commands(keys: Keys, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=log_name)
    async with Service(MAIN_URL, keys, make_devices(20, interval=2.0)) as service:
        await service.all_checked()
        client = Redis.from_url(MAIN_URL)
        name = service.devices[0].name

        async def ask(doc: dict[str, Any]) -> dict[str, Any]:
            await client.xadd(keys.commands, {"c": json.dumps(doc)})
            answer = await client.blpop([keys.reply(doc["id"])], timeout=3)
            assert answer is not None, doc
            reply: dict[str, Any] = json.loads(answer[1])
            return reply

        stale = await ask(command_doc(device=name, at=time.time() - COMMAND_MAX_AGE - 5))
        assert stale["ok"] is False and "not run" in stale["error"], stale
        assert service.engine.checks_on_demand == 0
        huge = "x" * 1_000_000
        for fields in ({"c": "not json"}, {"c": "[1, 2]"}, {"c": "null"}, {"other": "field"},
                       {"c": json.dumps({"id": "../../etc", "cmd": "probe", "device": name})},
                       {"c": json.dumps({"id": 5, "cmd": "probe"})},
                       {"c": json.dumps(command_doc(device=name, at="yesterday"))},
                       {"c": json.dumps(command_doc(device=name, at=[1]))},
                       {"c": json.dumps(command_doc(device=name, user=huge, host=huge, cmd=huge))},
                       {"c": json.dumps(command_doc(device=huge, extra=huge))},
                       {"c": b"\xff\xfe\x00binary"}):
            await client.xadd(keys.commands, fields)
        ok = await ask(command_doc(device=name))
        assert ok["ok"] is True, ok
        assert service.engine.checks_on_demand >= 1
        assert service.task is not None and not service.task.done()
        await client.aclose()
    longest = max(len(r.getMessage()) for r in caplog.records)
    assert longest < 2000, longest  # a remote field never floods the log


async def test_no_service_command_times_out(keys: Keys) -> None:
    client = Redis.from_url(MAIN_URL)
    started = time.monotonic()
    reply = await send_command(client, keys, "probe", timeout=1.0, device="x")
    elapsed = time.monotonic() - started
    await client.aclose()
    assert reply == {"ok": False, "error": "the service did not answer within 1 s"}
    assert 0.9 < elapsed < 1.5, elapsed
    # A client whose reads time out sooner than the slices BLPOP waits in.
    quick = client_for(MAIN_URL, timeout=0.5)
    reply = await send_command(quick, keys, "probe", timeout=1.5, device="x")
    await quick.aclose()
    assert reply == {"ok": False, "error": "the service did not answer within 1.5 s"}
    feed = LiveFeed(MAIN_URL, keys)
    assert (await feed.command("probe", device="x"))["ok"] is False  # not attached: said, not raised


# -- keys written by hand ------------------------------------------------------------------------


def _delta_blob(header: dict[str, Any], body: bytes) -> bytes:
    head = json.dumps(header).encode()
    return b"WTD1" + struct.pack("<I", len(head)) + head + body


async def test_hostile_keys_make_a_format_error_or_a_loss(keys: Keys) -> None:
    odd = [Device("rtr \"quoted\" [bold]x[/] \u00e9\u2603", "127.2.0.1", "b[1]", "r", "t",
                  tags=("[link=x]", "\x1b[31m")),
           Device("it's\tme\\", "::1", "", "", "", parents=("rtr \"quoted\" [bold]x[/] \u00e9\u2603",))]
    async with Service(MAIN_URL, keys, odd) as service:
        await service.all_checked()
        client = Redis.from_url(MAIN_URL)
        async with Viewer(MAIN_URL, keys) as viewer:
            feed = viewer.feed
            assert [t.device for t in feed.trackers.values()] == odd  # data, as it was
            await converge(service.engine, feed)
            # Events nobody can read, or of another run, in the stream: the viewer goes on.
            for raw in (b"not json", b"[1]", b'{"t":"Transition","device":["x"],"n":1}', b"\xff"):
                await client.xadd(keys.events, {"e": raw})
            await client.xadd(keys.events, {"other": b"x"})
            await asyncio.sleep(1.5)
            assert viewer.task is not None and not viewer.task.done()
            # A snapshot written by hand (and no delta, so that the viewer reads it): a loss, said
            # once, then the service's next one heals it.
            await slow_down(service, 3.0)
            await client.set(keys.snapshot, b"WTS1 but not really")
            await client.delete(keys.delta)
            assert await eventually(lambda: False in viewer.statuses(), 3)
            assert await eventually(lambda: viewer.statuses()[-1:] == [True], 10, step=0.1)
            assert viewer.task is not None and not viewer.task.done()
            # A delta written by hand, in every way wrong: a loss each time, healed the same way.
            await converge(service.engine, feed)
            def forgeries(head: DeltaHeader) -> list[bytes]:
                forged = {"v": 1, "seq": head.seq + 1, "id": "0-1", "inventory": head.inventory_id,
                          "started": head.started, "n": head.n, "rows": 1, "event_n": None}
                return [b"WTD1 but not really", _delta_blob(forged, b"x\x9cgarbage"),
                        # (2 rows: a bitmap of one byte, then one row's 31 bytes of figures)
                        _delta_blob(forged, zlib.compress(b"\x01" + b"\x00" * 30)),  # a byte short
                        _delta_blob(forged, zlib.compress(b"\x04" + b"\x01" + b"\x00" * 30)),  # row 2 of 2
                        _delta_blob(forged, zlib.compress(b"\x01" + b"\x07" + b"\x00" * 30)),  # no such state
                        _delta_blob({**forged, "rows": head.n + 1}, b""),
                        _delta_blob({**forged, "id": "[bold]x"}, b"")]

            for k in range(7):
                await slow_down(service, 3.0)
                assert await eventually(lambda: feed._seq == service.publisher._seq, 2)
                current = await client.get(keys.delta)
                assert isinstance(current, bytes)
                bad = forgeries(peek_delta(current))[k]
                losses = viewer.statuses().count(False)
                await client.set(keys.delta, bad)
                lost = lambda n=losses: viewer.statuses().count(False) > n  # noqa: E731
                assert await eventually(lost, 3), bad
                assert await eventually(lambda: viewer.statuses()[-1:] == [True], 10, step=0.1)
                assert viewer.task is not None and not viewer.task.done()
            service.prober.down = {"::1"}
            await converge(service.engine, feed)
        await slow_down(service, 60.0)  # the service stops rewriting its keys meanwhile
        # Attaching to damaged keys: FeedFormatError, never another exception.
        good_snapshot = await client.get(keys.snapshot)
        good_inventory = await client.get(keys.inventory)
        for key, value in ((keys.snapshot, b"garbage"), (keys.snapshot, good_snapshot[:40]),
                           (keys.inventory, b"x\x9cgarbage"), (keys.inventory, b"[]")):
            await client.mset({keys.snapshot: good_snapshot, keys.inventory: good_inventory, key: value})
            with pytest.raises(FeedFormatError):
                await LiveFeed(MAIN_URL, keys).attach()
        # Another inventory than the snapshot's: the service is writing it, try again.
        await client.mset({keys.snapshot: good_snapshot, keys.inventory: encode_inventory(odd[:1])[1]})
        with pytest.raises(NoService, match="changing its inventory"):
            await LiveFeed(MAIN_URL, keys).attach()
        await client.aclose()


async def test_keys_of_another_type_or_a_bad_heartbeat(keys: Keys, caplog: pytest.LogCaptureFixture) -> None:
    """A site key of another type (written by hand) is said once and does not stop the rest: no
    reconnection loop (it spun at ~500 a second on the viewers key), no viewer loss. A heartbeat
    the viewer cannot read is a service that is not there, not a crash."""
    caplog.set_level(logging.INFO, logger=log_name)
    async with Service(MAIN_URL, keys, make_devices(20, interval=0.5)) as service:
        await service.all_checked()
        client = Redis.from_url(MAIN_URL)
        async with Viewer(MAIN_URL, keys) as viewer:
            snapshots = service.publisher.stats.snapshots
            await client.set(keys.viewers, "not a sorted set")
            await asyncio.sleep(2)
            assert viewer.statuses() == []  # the viewer does not depend on being counted
            await client.set(keys.events, "not a stream")  # ... but follows the stream
            await asyncio.sleep(2)
            assert viewer.statuses() == [False]  # lost, and not again and again
            with pytest.raises(FeedFormatError, match="not a stream"):
                await LiveFeed(MAIN_URL, keys).attach()
            stats = service.publisher.stats
            assert stats.losses == 0 and stats.up and stats.snapshots >= snapshots + 3, stats
            refusals = [r for r in caplog.records if r.name == log_name and r.levelno >= logging.WARNING
                        and "live feed: Redis" in r.getMessage()]
            assert 1 <= len(refusals) <= 3, [r.getMessage() for r in refusals]
            assert caplog.text.count("the event stream refused") == 1
            await client.delete(keys.viewers, keys.events)
            assert await eventually(lambda: "takes the site's keys again" in caplog.text, 3)
            assert await eventually(lambda: viewer.statuses()[-1:] == [True], 10, step=0.1)
            assert viewer.task is not None and not viewer.task.done()
            await slow_down(service, 60.0)
            heartbeat = json.loads(await client.get(keys.service))
            for bad in ({**heartbeat, "snapshot_at": "garbage"}, {**heartbeat, "snapshot_at": 5},
                        {**heartbeat, "snapshot_at": "2026-12-05T12:00:00"}, [heartbeat], "text"):
                await client.set(keys.service, json.dumps(bad))
                assert await eventually(lambda: viewer.statuses()[-1:] == [False], 3), bad
                assert viewer.task is not None and not viewer.task.done()
                with pytest.raises(NoService):
                    await LiveFeed(MAIN_URL, keys).attach()
                await client.set(keys.service, json.dumps(heartbeat))
        await client.aclose()


async def test_snapshot_rows_must_match_the_inventory(keys: Keys) -> None:
    devices = make_devices(3)
    inventory_id, inventory = encode_inventory(devices)
    run, at = "r", datetime.now(UTC)
    client = Redis.from_url(MAIN_URL)
    info = ServiceInfo("h", 1, "v", run, 3, at.isoformat())
    for n in (2, 4):
        await client.mset({keys.inventory: inventory, keys.service: info.to_json(),
                           keys.snapshot: encode_snapshot(1, "1-0", at, inventory_id, run, None,
                                                          Columns.empty(n), None)})
        with pytest.raises(FeedFormatError):
            await LiveFeed(MAIN_URL, keys).attach()
    await client.aclose()


def test_stream_entries_that_are_not_events_are_skipped_in_place() -> None:
    """What anyone may write into the stream: skipped (read past), never raised, the numbering
    untouched; the next real event applies."""
    run = "2026-12-05T12:00:00+00:00"
    feed = LiveFeed(MAIN_URL, Keys("unused"))
    device = Device("d1", "127.0.0.9", "b", "r", "t")
    feed._set_inventory("i", [device], Columns.empty(1))
    feed._run, feed._last_n = run, 0
    good = encode_event(Transition("d1", "127.0.0.9", State.UP, State.DOWN, datetime.now(UTC), None, None),
                        n=1, r=run)
    for k, raw in enumerate([b"", b"not json", b"[1]", b"\xff\xfe", b" " + good.encode(),
                             good.encode() + b" x", good.encode() + b"{}", b'{"n":"x","r":"r"}', b'{"n":1}',
                             b"[" * 100_000]):
        assert feed._apply_event(f"{10 + k}-0".encode(), {b"e": raw}), raw[:20]
        assert feed._last_id == (10 + k, 0) and feed._last_n == 0
    assert feed.trackers["d1"].state is State.UNKNOWN
    assert feed._apply_event(b"50-0", {b"e": good.encode()})
    assert feed.trackers["d1"].state is State.DOWN and feed._last_n == 1


def test_entries_of_several_events_apply_each_and_count_their_numbers() -> None:
    """An entry carrying several events (field b) applies each in order and takes their numbers:
    the next entry must start after its last, a gap reloads; the single-event entries of before
    (field e) are read too. What is not an entry of events is skipped in place, the numbering
    untouched; events in an entry that are not events are skipped, their numbers taken."""
    run = "2026-12-05T12:00:00+00:00"
    feed = LiveFeed(MAIN_URL, Keys("unused"))
    seen = feed.bus.subscribe("test")
    devices = [Device("d1", "127.0.0.9", "b", "r", "t"), Device("[red]d2[/]", "127.0.0.8", "b", "r", "t")]
    feed._set_inventory("i", devices, Columns.empty(2))
    feed._run, feed._last_n = run, 0
    now = datetime.now(UTC)

    def tr(name: str, to: State) -> str:
        before = State.UP if to is State.DOWN else State.DOWN
        since = now if to is State.DOWN else None
        return encode_event(Transition(name, "127.0.0.9", before, to, now, since, None))

    assert feed._apply_event(b"10-0", {b"b": encode_entry([tr("d1", State.DOWN), tr("[red]d2[/]", State.DOWN),
                                                           tr("d1", State.UP)], 1, run).encode()})
    assert feed._last_n == 3 and feed._last_id == (10, 0) and feed.stats.events == 3
    assert feed.trackers["d1"].state is State.UP and feed.trackers["[red]d2[/]"].state is State.DOWN
    assert feed.trackers["d1"].position == (10, 0)
    assert [e.device for e in seen.drain() if isinstance(e, Transition)] == ["d1", "[red]d2[/]", "d1"]
    assert feed._apply_event(b"11-0", {b"e": encode_event(Transition(
        "d1", "a", State.UP, State.DOWN, now, now, None), n=4, r=run).encode()})  # as before
    assert feed._last_n == 4 and feed.trackers["d1"].state is State.DOWN
    r = json.dumps(run)
    for k, raw in enumerate([b"", b"not json", b"[1]", b"[" * 100_000,
                             f'{{"r":{r},"n":5,"e":[]}}'.encode(), f'{{"r":{r},"n":5,"e":"x"}}'.encode(),
                             f'{{"r":{r},"n":"5","e":[{{}}]}}'.encode(),
                             f'{{"r":{r},"n":true,"e":[{{}}]}}'.encode(), b'{"r":5,"n":5,"e":[{}]}',
                             f'{{"r":{r},"n":-1,"e":[{{}}]}}'.encode()]):
        assert feed._apply_event(f"{20 + k}-0".encode(), {b"b": raw}), raw[:20]
        assert feed._last_id == (20 + k, 0) and feed._last_n == 4
    # Not events, and one that is: numbers 5-8 taken, the event applied, nothing raised.
    assert feed._apply_event(b"40-0", {b"b": encode_entry(["1", '"x"', '{"t":"Transition","device":["x"]}',
                                                           tr("d1", State.UP)], 5, run).encode()})
    assert feed._last_n == 8 and feed.trackers["d1"].state is State.UP
    # A gap (9 is missing): reload.
    assert not feed._apply_event(b"41-0", {b"b": encode_entry([tr("d1", State.DOWN)], 10, run).encode()})
    assert feed.trackers["d1"].state is State.UP


async def test_the_service_streams_its_events_in_numbered_entries(keys: Keys) -> None:
    """The publisher's entries: several events each when they come together (EVENTS_PER_ENTRY at
    most), numbered on from entry to entry; the snapshot names the last number its entry holds."""
    async with Service(MAIN_URL, keys, make_devices(300, interval=0.5)) as service:
        await service.all_checked()
        await churn(service, 3.0, 60)
        client = Redis.from_url(MAIN_URL)
        entries = await client.xrange(keys.events)
        decoded = [(entry_id, entry_events(fields)) for entry_id, fields in entries]
        assert all(entry is not None for _, entry in decoded)
        sizes = [len(entry[2]) for _, entry in decoded if entry is not None]
        numbers = [entry[0] for _, entry in decoded if entry is not None]
        assert max(sizes) > 1 and max(sizes) <= EVENTS_PER_ENTRY, sizes
        assert numbers[0] == 1, numbers
        follow = zip(numbers[:-1], numbers[1:], sizes[:-1], strict=True)
        assert all(b == a + size for a, b, size in follow), numbers
        assert len(entries) < sum(sizes)
        await slow_down(service, 30.0)  # no more snapshots: the last one and the stream agree
        blob = await client.get(keys.snapshot)
        assert isinstance(blob, bytes)
        snap = decode_snapshot(blob)
        covered = [entry for entry_id, entry in decoded if entry_id.decode() == snap.stream_id]
        if covered and covered[0] is not None:
            assert snap.event_n == covered[0][0] + len(covered[0][2]) - 1
        else:  # sent after the XRANGE above
            assert snap.event_n is not None and snap.event_n >= numbers[-1] + sizes[-1] - 1
        await client.aclose()
