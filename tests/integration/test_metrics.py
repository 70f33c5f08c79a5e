"""`wardtui serve --metrics`: real HTTP scrapes of a MetricsServer on 127.0.0.1 while an engine
(fake prober) runs on the test's loop; the scrape answers on prometheus_client's own thread."""

from __future__ import annotations

import asyncio
import errno
import socket
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest
from prometheus_client.core import Metric
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families

from poller.engine import Engine, EngineConfig
from poller.events import State
from poller.inventory import Device
from poller.metrics import MetricsServer
from poller.state import StateConfig
from tests.fakes import FakeProber, make_devices

OPENMETRICS = "application/openmetrics-text;version=1.0.0,text/plain;q=0.5"
DOWN, UNKNOWN = "dev1", "dev4"


@dataclass
class Scrape:
    """One scrape, parsed: {(metric family, sample name, frozen labels): value} and the types."""

    body: str
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float]
    types: dict[str, str]

    def value(self, name: str, **labels: str) -> float:
        return self.samples[(name, frozenset(labels.items()))]

    def device(self, name: str, device: str) -> float | None:
        for (sample, labels), value in self.samples.items():
            if sample == name and ("device", device) in labels:
                return value
        return None

    def names(self) -> set[str]:
        return {name for name, _ in self.samples}


def get(port: int, accept: str | None = None) -> str:
    headers = {"Accept": accept} if accept else {}
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers=headers)
    with urllib.request.urlopen(request, timeout=10) as reply:
        return str(reply.read().decode("utf-8"))


def parse(body: str, parser: Callable[[str], Iterable[Metric]] = text_string_to_metric_families) -> Scrape:
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    types: dict[str, str] = {}
    for family in parser(body):
        types[family.name] = family.type
        for s in family.samples:
            key = (s.name, frozenset(s.labels.items()))
            assert key not in samples, f"duplicate series {key}"
            samples[key] = s.value
    return Scrape(body, samples, types)


async def scrape(port: int, accept: str | None = None) -> Scrape:
    """From another thread, as Prometheus would, while the engine's loop goes on."""
    body = await asyncio.to_thread(get, port, accept)
    return parse(body)


def engine_config() -> EngineConfig:
    return EngineConfig(interval=0.1, timeout=0.05, gauge_period=0.1,
                        state=StateConfig(confirm_probes=1, confirm_spacing=0.01))


@dataclass
class Running:
    engine: Engine
    prober: FakeProber
    server: MetricsServer


async def wait_for(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


@asynccontextmanager
async def start_engine(devices: list[Device], per_device: bool = True) -> AsyncIterator[Running]:
    prober = FakeProber(rtt_ms=2.0)
    addresses = {d.name: d.address for d in devices}
    if DOWN in addresses:
        prober.down.add(addresses[DOWN])
    never = addresses.get(UNKNOWN)
    # The down set never answers; UNKNOWN's first probe is still waiting when the test ends.
    prober.behaviour = lambda address, _n: (None if address in prober.down else
                                            1e9 if address == never else prober.rtt_ms)
    engine = Engine(devices, prober, engine_config())
    task = asyncio.create_task(engine.run())
    server = MetricsServer(engine, per_device=per_device, cache_seconds=0.0)
    server.start("127.0.0.1", 0)
    try:
        settled = len(devices) - (1 if never else 0)
        await wait_for(lambda: sum(1 for t in engine.trackers.values() if t.state is not State.UNKNOWN)
                       == settled and all(t.loss_pct is not None for t in engine.trackers.values()
                                          if t.device.address != never))
        gauges_before = engine.last_gauges
        # A gauge period after the states settled, so that the counts include them.
        await wait_for(lambda: engine.last_gauges is not gauges_before)
        yield Running(engine, prober, server)
    finally:
        server.close()
        engine.stop()
        await asyncio.wait_for(task, 5)


@pytest.fixture
async def running() -> AsyncIterator[Running]:
    async with start_engine(make_devices(5)) as r:
        yield r


async def test_scrape_matches_the_trackers_and_the_gauges(running: Running) -> None:
    engine = running.engine
    checks_before = engine.checks_done
    got = await scrape(running.server.port)
    gauges = engine.last_gauges
    assert gauges is not None
    # Device states are settled: the counts do not move between the scrape and now.
    assert got.value("wardtui_devices", state="up") == gauges.devices_up == 3
    assert got.value("wardtui_devices", state="down") == gauges.devices_down == 1
    assert got.value("wardtui_devices", state="unknown") == gauges.devices_unknown == 1
    assert got.value("wardtui_devices_flapping") == 0
    # Cumulative figures are counters named _total, the rest gauges; milliseconds become seconds.
    assert got.types["wardtui_checks"] == "counter"
    assert checks_before <= got.value("wardtui_checks_total") <= engine.checks_done
    for counter in ("skipped", "skipped_late", "skipped_busy", "rcvbuf_drops", "send_errors", "late_replies",
                    "send_waits"):
        assert got.types[f"wardtui_{counter}"] == "counter", counter
        assert f"wardtui_{counter}_total" in got.names()
    for gauge in ("checks_per_s", "probes_per_s", "in_flight", "store_queue", "probes_in_flight",
                  "events_dropped", "lag_p50_seconds", "lag_p99_seconds", "oldest_overdue_seconds"):
        assert got.types[f"wardtui_{gauge}"] == "gauge", gauge
    assert "wardtui_lag_p50_ms" not in got.names()
    assert got.value("wardtui_checks_per_s") > 0
    assert 0 <= got.value("wardtui_lag_p99_seconds") < 1  # seconds, not milliseconds
    assert abs(got.value("wardtui_gauges_timestamp_seconds") - gauges.at.timestamp()) < 5

    labels = {"branch": "b0", "region": "north", "type": "router"}
    assert got.value("wardtui_device_up", device="dev0", **labels) == 1
    assert got.value("wardtui_device_rtt_seconds", device="dev0", **labels) == pytest.approx(0.002)
    assert got.value("wardtui_device_loss_ratio", device="dev0", **labels) == 0
    assert got.value("wardtui_device_flapping", device="dev0", **labels) == 0
    # The down device: 0, all its probes lost, no RTT (it has never answered; a stale one would mislead).
    assert got.device("wardtui_device_up", DOWN) == 0
    assert got.device("wardtui_device_loss_ratio", DOWN) == 1
    assert got.device("wardtui_device_rtt_seconds", DOWN) is None
    # Not yet checked: no up/down series, no RTT, no loss; counted under state="unknown".
    assert got.device("wardtui_device_up", UNKNOWN) is None
    assert got.device("wardtui_device_rtt_seconds", UNKNOWN) is None
    assert got.device("wardtui_device_loss_ratio", UNKNOWN) is None
    assert got.device("wardtui_device_flapping", UNKNOWN) == 0
    for tracker in engine.trackers.values():
        name = tracker.device.name
        if tracker.state is not State.UNKNOWN:
            assert got.device("wardtui_device_up", name) == (1 if tracker.state is State.UP else 0)
            loss = (tracker.loss_pct or 0) / 100
            assert got.device("wardtui_device_loss_ratio", name) == pytest.approx(loss)


async def test_a_device_that_goes_down_shows_0_at_the_next_scrape(running: Running) -> None:
    assert (await scrape(running.server.port)).device("wardtui_device_up", "dev2") == 1
    running.prober.down.add(running.engine.trackers["dev2"].device.address)
    await wait_for(lambda: running.engine.trackers["dev2"].state is State.DOWN)
    got = await scrape(running.server.port)
    assert got.device("wardtui_device_up", "dev2") == 0
    assert got.device("wardtui_device_rtt_seconds", "dev2") is None


async def test_openmetrics_scrape_parses_too(running: Running) -> None:
    """Prometheus 3 asks for OpenMetrics first; prometheus_client answers in it."""
    body = await asyncio.to_thread(get, running.server.port, OPENMETRICS)
    assert body.endswith("# EOF\n")
    got = parse(body, parse_openmetrics)
    assert got.device("wardtui_device_up", DOWN) == 0
    assert got.value("wardtui_devices", state="up") == 3


async def test_without_device_metrics_there_is_no_per_device_series() -> None:
    async with start_engine(make_devices(5), per_device=False) as r:
        got = await scrape(r.server.port)
        assert got.value("wardtui_devices", state="down") == 1
        assert not [name for name in got.names() if name.startswith("wardtui_device_")]
        assert not [labels for _, labels in got.samples if any(k == "device" for k, _ in labels)]
        assert "device=" not in got.body


async def test_close_frees_the_port_and_a_new_server_can_take_it(running: Running) -> None:
    port = running.server.port
    await scrape(port)  # leaves a connection behind in TIME_WAIT on the server's side
    running.server.close()
    running.server.close()  # twice is harmless
    assert running.server.port == 0
    with pytest.raises(urllib.error.URLError) as refused:
        await asyncio.to_thread(get, port)
    assert isinstance(refused.value.reason, ConnectionRefusedError)
    again = MetricsServer(running.engine, cache_seconds=0.0)
    again.start("127.0.0.1", port)  # what a restarted `wardtui serve` does
    try:
        assert again.port == port
        assert (await scrape(port)).device("wardtui_device_up", DOWN) == 0
    finally:
        again.close()


def test_a_port_in_use_is_a_clear_oserror() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = MetricsServer(Engine(make_devices(1), FakeProber()))
        with pytest.raises(OSError) as caught:
            server.start("127.0.0.1", port)
        assert caught.value.errno == errno.EADDRINUSE
        message = f"metrics: cannot listen on 127.0.0.1:{port}: Address already in use"
        assert str(caught.value) == message
        assert server.port == 0
        server.close()  # not started: nothing to do


HOSTILE = [
    Device(name='quote"d', address="127.2.0.1", branch='b","device="forged', region="r{1}", type="t}"),
    Device(name="back\\slash\\", address="127.2.0.2", branch="\\n", region="\\", type='\\"'),
    Device(name="new\nline", address="127.2.0.3", branch="line\n# TYPE evil gauge\nevil 1", region="x",
           type="y"),
    Device(name="Zürich-北京 🚀", address="127.2.0.4", branch="Ωmega",
           region="\u0440\u0435\u0301\u0433\u0438\u043e\u043d", type="\u200bzw"),  # Cyrillic, zero-width
    Device(name="} 1\nwardtui_devices{state=\"up\"} 99", address="127.2.0.5", branch="{", region="}",
           type="="),
]


@pytest.mark.parametrize("accept", [None, OPENMETRICS])
async def test_hostile_label_text_round_trips(accept: str | None) -> None:
    """Inventory text is data: quotes, backslashes, braces, newlines (the inventory refuses
    those, escaped anyway) and any unicode come back from the parser exactly as they went in,
    and nothing in them makes a series of its own."""
    async with start_engine(HOSTILE) as r:
        body = await asyncio.to_thread(get, r.server.port, accept)
        got = parse(body, parse_openmetrics if accept else text_string_to_metric_families)
        for device in HOSTILE:
            labels = {"device": device.name, "branch": device.branch, "region": device.region,
                      "type": device.type}
            assert got.value("wardtui_device_up", **labels) == 1, device.name
            assert got.value("wardtui_device_flapping", **labels) == 0
        assert got.value("wardtui_devices", state="up") == len(HOSTILE)
        assert "evil" not in got.names() and "evil" not in got.types
        # One line per series: no label value broke a line.
        per_device = [line for line in body.splitlines() if line.startswith("wardtui_device_")]
        assert len(per_device) == 4 * len(HOSTILE)
        # As the format writes them: backslash, newline and quote escaped, the rest as it is.
        assert 'device="back\\\\slash\\\\"' in body
        assert 'device="new\\nline"' in body
        assert 'device="quote\\"d"' in body
        assert 'device="Zürich-北京 🚀"' in body
