"""A stand-in for ``wardtui serve`` in the live-feed CLI tests: an Engine on a FakeProber with a
Publisher for one site, as a subprocess (python -m tests.integration.feed_service ...).

It prints ``ready`` once every device has a state and a snapshot says so, then obeys lines on
stdin: ``down NAME`` / ``up NAME`` (the fake prober's answers), ``state`` (prints the engine's
figures as one JSON line), ``probe NAME USER`` (an operator's "probe now", through the command
stream as a viewer sends it). EOF or SIGTERM stops it. With ``--records FILE`` every event the
engine publishes is written there as ``wardtui poll --jsonl`` prints it (poller/jsonl.py), for
the tests to compare what ``wardtui events`` printed with."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from typing import Any

from poller.bus import Subscription
from poller.engine import Engine, EngineConfig
from poller.events import CheckResult, State
from poller.feed import Publisher, ServiceInfo, client_for, send_command
from poller.jsonl import event_record
from poller.live import Keys
from poller.state import StateConfig
from tests.fakes import FakeProber, make_devices


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def _records(sub: Subscription, path: str) -> None:
    with open(path, "w", encoding="utf-8") as out:
        while True:
            batch = await sub.get_batch(1000)
            if not batch:
                return
            for event in batch:
                record = None if isinstance(event, CheckResult) else event_record(event)
                if record is not None:
                    out.write(json.dumps(record) + "\n")
            out.flush()


def state_of(engine: Engine, publisher: Publisher) -> dict[str, Any]:
    counts = engine.state_counts
    return {"up": counts[State.UP], "down": counts[State.DOWN], "unknown": counts[State.UNKNOWN],
            "flapping": engine.flapping, "devices": len(engine.trackers),
            "states": {name: t.state.value for name, t in engine.trackers.items()},
            "down_since": {name: None if t.down_since is None else t.down_since.isoformat()
                           for name, t in engine.trackers.items()},
            "feed": publisher.stats.__dict__ | {}}


async def _obey(engine: Engine, publisher: Publisher, prober: FakeProber, url: str, keys: Keys) -> None:
    devices = {t.device.name: t.device.address for t in engine.trackers.values()}
    while True:
        line = await asyncio.to_thread(sys.stdin.readline)
        if not line:
            engine.stop()
            return
        words = line.split()
        if words[:1] == ["down"]:
            prober.down.add(devices[words[1]])
        elif words[:1] == ["up"]:
            prober.down.discard(devices[words[1]])
        elif words[:1] == ["state"]:
            _say(json.dumps(state_of(engine, publisher)))
        elif words[:1] == ["probe"]:
            client = client_for(url)
            try:
                reply = await send_command(client, keys, "probe", device=words[1])
            finally:
                await client.aclose()
            _say(json.dumps(reply))


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis", default="redis://127.0.0.1:6379")
    parser.add_argument("--site", required=True)
    parser.add_argument("--devices", type=int, default=20)
    parser.add_argument("--down", type=int, default=0, help="the first N devices never answer")
    parser.add_argument("--interval", type=float, default=0.5)
    parser.add_argument("--records", default=None)
    args = parser.parse_args()
    keys = Keys(args.site)
    prober = FakeProber(rtt_ms=2.0)
    devices = make_devices(args.devices)
    prober.down.update(d.address for d in devices[:args.down])
    config = EngineConfig(interval=args.interval, timeout=0.2,
                          state=StateConfig(confirm_probes=1, confirm_spacing=0.05))
    engine = Engine(devices, prober, config)
    publisher = Publisher(engine, args.redis, keys, ServiceInfo.here("test", len(devices)))
    engine.companions.append(publisher)
    engine.gauge_sources.append(publisher.gauges)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, engine.stop)
    records = engine.bus.subscribe("records", maxsize=100_000) if args.records else None
    tasks = [asyncio.create_task(engine.run())]
    if records is not None:
        tasks.append(asyncio.create_task(_records(records, args.records)))
    while engine.state_counts[State.UNKNOWN] or publisher.stats.snapshots < 2:
        await asyncio.sleep(0.05)
    # A snapshot taken after every state was known: the one being written now may have been
    # taken before, the next one was not.
    known_at = publisher.stats.snapshots
    while publisher.stats.snapshots < known_at + 2:
        await asyncio.sleep(0.05)
    _say("ready")
    obey = asyncio.create_task(_obey(engine, publisher, prober, args.redis, keys))
    await tasks[0]
    obey.cancel()
    for task in tasks[1:]:
        task.cancel()
    await asyncio.gather(obey, *tasks[1:], return_exceptions=True)


if __name__ == "__main__":
    asyncio.run(main())
