"""A headless viewer as a process of its own (for tests): attaches to a site with
poller.feed.LiveFeed (``--cluster``: poller.cluster_feed.ClusterFeed, every member merged),
follows it, and on SIGUSR1 writes what it holds to a JSON file: the devices' states (and, for a
cluster, each device's poller and the members' lines), and the maintenance windows and
acknowledgements the service published.

    python -m tests.procs.viewer URL SITE OUT.json [--cluster]
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from dataclasses import asdict
from pathlib import Path

from poller.cluster_feed import ClusterFeed
from poller.feed import LiveFeed
from poller.live import Keys


def dump(feed: LiveFeed | ClusterFeed, out: Path) -> None:
    state = {name: {"state": t.state.value, "down_since": t.down_since.isoformat() if t.down_since else None,
                    "flapping": t.flapping}
             for name, t in feed.trackers.items()}
    quiet = feed.quiet
    doc = {"devices": state, "reloads": feed.stats.reloads, "events": feed.stats.events,
           "losses": feed.stats.losses, "live": feed.live,
           "pollers": dict(feed.poller_of) if isinstance(feed, ClusterFeed) else None,
           "nodes": [asdict(n) for n in feed.nodes] if isinstance(feed, ClusterFeed) else None,
           "quiet": {"acks": [{"id": a.id, "device": a.device, "who": a.who, "note": a.note,
                               "down_since": a.down_since.isoformat()} for a in quiet.acks],
                     "windows": [{"id": w.id, "note": w.note, "created_by": w.created_by,
                                  "matchers": [f"{m.key}{m.op}{m.value}" for m in w.matchers]}
                                 for w in quiet.windows]}}
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc))
    os.replace(tmp, out)


async def main(url: str, site: str, out: Path, cluster: bool = False) -> None:
    feed = ClusterFeed(url, Keys(site)) if cluster else LiveFeed(url, Keys(site))
    await feed.attach()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, dump, feed, out)
    loop.add_signal_handler(signal.SIGTERM, feed.stop)
    dump(feed, out)
    await feed.run()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], Path(sys.argv[3]), "--cluster" in sys.argv[4:]))
