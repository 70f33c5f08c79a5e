"""Traps absorbed beside the checks: the engine's scheduling lag p99 and its CPU, quiet and while
SOURCES inventory devices send RATE v2c traps a second in all (linkDown/linkUp in turn, each
within its source's rate limit, so every one is accepted, decoded, published as a Trap and an
InterfaceChange, and asks for a check and a poll, held to one a second per device by min_gap).

The engine checks DEVICES other devices every INTERVAL s through the FakeProber (1 ms replies,
a task per probe), beside an SnmpPoller (FakeSnmpClient) of the trap senders. The sender is
another process (fork): one UDP socket per source address 127.3.x.y, paced every 10 ms.

Prints, for each phase, the median and worst of the engine's per-second lag p99 and the
process's CPU; then the ratio flood/quiet (the issue's target: within 1.2x).

python bench/traps.py [--rate 5000] [--sources 100] [--devices 5000] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import socket
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from poller.credentials import V2c  # noqa: E402
from poller.engine import Engine, EngineConfig  # noqa: E402
from poller.inventory import Device  # noqa: E402
from poller.snmp_poller import SnmpConfig, SnmpPoller  # noqa: E402
from poller.snmp_source import Agent  # noqa: E402
from poller.snmp_traps import TrapConfig, TrapReceiver, trap_sources  # noqa: E402
from poller.snmp_v2c import _integer, _tlv, encode_oid  # noqa: E402
from tests.fakes import FakeProber, FakeSnmpClient, make_devices  # noqa: E402

COMMUNITY = b"bench-traps"


def trap(n: int, kind: int, ifindex: int) -> bytes:
    def varbind(oid: tuple[int, ...], value: bytes) -> bytes:
        return _tlv(0x30, _tlv(0x06, encode_oid(oid)) + value)

    varbinds = (varbind((1, 3, 6, 1, 2, 1, 1, 3, 0), _tlv(0x43, n.to_bytes(4, "big")))
                + varbind((1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0),
                          _tlv(0x06, encode_oid((1, 3, 6, 1, 6, 3, 1, 1, 5, kind))))
                + varbind((1, 3, 6, 1, 2, 1, 2, 2, 1, 1, ifindex), _integer(ifindex)))
    pdu = _tlv(0xA7, _integer(n) + _integer(0) + _integer(0) + _tlv(0x30, varbinds))
    return _tlv(0x30, _integer(1) + _tlv(0x04, COMMUNITY) + pdu)


def address(i: int) -> str:
    return f"127.3.{i // 250}.{i % 250 + 1}"


def send(port: int, sources: int, rate: int, seconds: float) -> None:
    """RATE traps a second from SOURCES addresses in turn, for SECONDS (in a child process)."""
    socks = []
    for i in range(sources):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((address(i), 0))
        socks.append(s)
    packets = [trap(i, 3 + i % 2, 1) for i in range(64)]
    per_tick = max(1, rate // 100)
    start = time.monotonic()
    n = 0
    while time.monotonic() - start < seconds:
        for _ in range(per_tick):
            socks[n % sources].sendto(packets[n % 64], ("127.0.0.1", port))
            n += 1
        time.sleep(max(0.0, start + n / rate - time.monotonic()))


async def phase(engine: Engine, seconds: float) -> tuple[list[float], float]:
    """The engine's per-second lag p99 (ms) over ``seconds``, and the process's CPU share."""
    lags: list[float] = []
    cpu, wall = time.process_time(), time.monotonic()
    seen = engine.last_gauges
    while time.monotonic() - wall < seconds:
        await asyncio.sleep(0.05)
        if engine.last_gauges is not seen and engine.last_gauges is not None:
            seen = engine.last_gauges
            lags.append(seen.lag_p99_ms)
    return lags, (time.process_time() - cpu) / (time.monotonic() - wall)


async def main(args: argparse.Namespace) -> None:
    senders = [Device(f"sw{i}", address(i), "b", "r", "switch", snmp_credential="v2", interval=60.0)
               for i in range(args.sources)]
    devices = [*make_devices(args.devices, interval=args.interval), *senders]
    agents = [Agent(d.name, d.address, 161, V2c("v2", COMMUNITY.decode())) for d in senders]
    engine = Engine(devices, FakeProber(), EngineConfig(interval=args.interval))
    engine.bus.subscribe("sink", maxsize=1_000_000, samples=False)  # a consumer, drained below
    snmp = SnmpPoller(agents, FakeSnmpClient(), engine.bus, config=SnmpConfig(interval=60.0))
    engine.add_companion(snmp)
    receiver = TrapReceiver(trap_sources(devices, agents), engine.bus, engine, lambda: snmp,
                            TrapConfig(port=0, rate=args.rate / args.sources * 2, burst=200))
    port = receiver.bind()[1]
    engine.add_companion(receiver)
    run = asyncio.create_task(engine.run())

    async def drain() -> None:
        sub = engine.bus.subscriptions[0]
        while True:
            await asyncio.sleep(0.1)
            sub.drain()

    drainer = asyncio.create_task(drain())
    await asyncio.sleep(args.interval + 2)  # the first round
    quiet, quiet_cpu = await phase(engine, args.seconds)
    before = receiver.accepted
    child = multiprocessing.get_context("fork").Process(
        target=send, args=(port, args.sources, args.rate, args.seconds + 1))
    child.start()
    await asyncio.sleep(0.5)
    flood, flood_cpu = await phase(engine, args.seconds)
    accepted = receiver.accepted - before
    await asyncio.to_thread(child.join)
    engine.stop()
    await run
    drainer.cancel()
    g = receiver.gauges()
    print(f"{args.devices} devices every {args.interval:g} s; {args.sources} trap sources, "
          f"{args.rate}/s in all")
    for name, lags, cpu in (("quiet", quiet, quiet_cpu), ("flood", flood, flood_cpu)):
        print(f"  {name}: engine lag p99 median {statistics.median(lags):.2f} ms, worst {max(lags):.2f} ms; "
              f"CPU {cpu * 100:.0f} %")
    print(f"  traps accepted {accepted / (args.seconds + 0.5):.0f}/s (of {g['traps_received']:.0f} received, "
          f"{g['traps_rate_limited']:.0f} rate-limited); checks asked {g['traps_checks']:.0f}, "
          f"polls {g['traps_polls']:.0f}, coalesced {g['traps_coalesced']:.0f}")
    print(f"  lag p99 flood/quiet: {statistics.median(flood) / max(statistics.median(quiet), 1e-9):.2f}x "
          f"(median of per-second p99s)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=int, default=5000)
    parser.add_argument("--sources", type=int, default=100)
    parser.add_argument("--devices", type=int, default=5000)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    asyncio.run(main(parser.parse_args()))
