"""``wardtui serve`` as a process of its own (for tests) whose network is a scripted prober: the
real serve loop, history (SQLite or PostgreSQL), live feed and command handlers, with the
devices named after the inventory answering except those listed as down.

    python -m tests.procs.fake_service INVENTORY DB_URL REDIS_URL SITE [DOWN_NAME ...]

SIGTERM stops it as it stops ``wardtui serve``.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

from poller.inventory import load_inventory
from tests.fakes import FakeProber
from wardtui.messages import log_for_service
from wardtui.runtime import Options, Runtime
from wardtui.service import ServeOptions, serve


async def main(inventory: Path, db: str, redis: str, site: str, down: list[str]) -> int:
    devices = load_inventory(inventory)
    prober = FakeProber()
    prober.down = {d.address for d in devices if d.name in down}
    runtime = Runtime(Options(db=db, interval=0.2, confirm_spacing=0.05, spool=inventory.parent / "spool"),
                      prober=prober, devices=devices)
    return await serve(runtime, ServeOptions(inventory, redis_url=redis, site=site))


if __name__ == "__main__":
    log_for_service()
    logging.getLogger("wardtui").setLevel(logging.INFO)
    sys.exit(asyncio.run(main(Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:])))
