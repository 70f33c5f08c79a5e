"""checks/s and probes/s are rates over a few seconds, not over one gauge period."""

from __future__ import annotations

from poller.engine import Engine, EngineConfig
from poller.events import Gauges
from poller.state import StateConfig
from tests.fakes import FakeProber, make_devices


async def test_a_small_inventory_gets_a_steady_rate_not_zero_then_a_burst() -> None:
    """2 devices every 0.5 s: 4 checks/s. Counted over one 0.1 s gauge period the rate read
    0, 10, 0, 0, 10, ... (the dashboard's 1.0/0.0 with 13 devices); over a 1 s window it
    stays near 4."""
    config = EngineConfig(interval=0.5, timeout=0.05, gauge_period=0.1, rate_window=1.0,
                          state=StateConfig(confirm_probes=2, confirm_spacing=0.01, up_after=1))
    engine = Engine(make_devices(2, interval=0.5), FakeProber(rtt_ms=1.0), config)
    sub = engine.bus.subscribe("test")
    await engine.run(3.0)
    gauges = [e for e in sub.drain() if isinstance(e, Gauges)][:-1]  # the last one is at stop
    assert len(gauges) >= 20
    steady = [g.checks_per_s for g in gauges[12:]]  # the window has filled
    assert all(2.5 <= rate <= 6.0 for rate in steady), steady
    assert all(2.5 <= g.probes_per_s <= 6.0 for g in gauges[12:])
    early = gauges[2].checks_per_s  # before the window fills: the rate since the start
    assert 1.0 <= early <= 25.0, early
