"""A headless viewer process of bench/feed.py: --count LiveFeeds attached to a site, each recording,
for every transition it applies, the latency from the transition's own time (Transition.at, when the
service's engine established it) and from its stream entry ID's time to the moment the viewer
applied it. Runs until SIGTERM/SIGINT, then writes its figures as JSON to --out.
Imports neither textual nor rich.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import json
import resource
import signal
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from poller.events import Event, Transition  # noqa: E402
from poller.feed import LiveFeed, NoService  # noqa: E402
from poller.live import Keys  # noqa: E402

ATTEMPTS = 10


class Latencies:
    """Per applied transition: (wall time applied, ms since Transition.at, ms since its stream ID)."""

    def __init__(self) -> None:
        self.applied = array.array("d")
        self.from_at = array.array("d")
        self.from_id = array.array("d")

    def record(self, feed: LiveFeed, event: Event) -> None:
        if type(event) is Transition:
            now = time.time()
            self.applied.append(now)
            self.from_at.append((now - event.at.timestamp()) * 1000)
            self.from_id.append(now * 1000 - feed._last_id[0])

    def as_json(self) -> dict[str, Any]:
        return {"applied": self.applied.tolist(), "from_at_ms": self.from_at.tolist(),
                "from_id_ms": self.from_id.tolist()}


def instrument(feed: LiveFeed) -> Latencies:
    """Record at the moment the feed publishes an applied event on its bus (right after the
    tracker took it, in LiveFeed._apply_event), without changing what the feed does."""
    latencies = Latencies()
    publish = feed.bus.publish

    def publish_and_record(event: Event) -> None:
        latencies.record(feed, event)
        publish(event)

    feed.bus.publish = publish_and_record  # type: ignore[method-assign]
    return latencies


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    born = time.perf_counter()
    feeds = [LiveFeed(args.redis, Keys(args.site), viewer=f"bench-{args.name}-{i}")
             for i in range(args.count)]
    recorders = [instrument(f) for f in feeds]
    attach_s = []
    for feed in feeds:
        start = time.perf_counter()
        for attempt in range(ATTEMPTS):
            try:
                await feed.attach()
                break
            except NoService:
                # A service whose loop is behind publishes its heartbeat late (and says so):
                # an operator would try again.
                if attempt == ATTEMPTS - 1:
                    raise
                await asyncio.sleep(1.0)
        attach_s.append(time.perf_counter() - start)
    print("attached", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    runs = [asyncio.create_task(f.run()) for f in feeds]
    await stop.wait()
    for f in feeds:
        f.stop()
    await asyncio.gather(*runs, return_exceptions=True)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"name": args.name, "attach_s": attach_s, "cpu_s": usage.ru_utime + usage.ru_stime,
            "life_s": time.perf_counter() - born,
            "rss_mb": usage.ru_maxrss / 1024,
            "feeds": [{"reloads": f.stats.reloads, "events": f.stats.events, "refreshes": f.stats.refreshes,
                       "losses": f.stats.losses, **r.as_json()}
                      for f, r in zip(feeds, recorders, strict=True)]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--redis", required=True)
    parser.add_argument("--site", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    result = asyncio.run(main_async(args))
    args.out.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
