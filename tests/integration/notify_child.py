"""A wardtui-like process for the outbox's SIGKILL tests: a SQLite outbox and its delivery.

``python -m tests.integration.notify_child DB SPOOL URL [--put N] [--groups G] [--parallel P]
[--kill-after KEY] [--kill-before KEY] [--busy S]``: opens the outbox (replaying and loading what a
killed run left), puts messages 0..N-1 if asked (of G groups, branches b0..: message i in b{i % G}),
delivers everything to URL (P messages of different groups at once) and exits 0 once nothing waits; the test
receiver SIGKILLs this process after the server's 200 for KEY (before the outbox commits it as
sent), or right before sending KEY.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from poller.notify.delivery import Delivery
from store.database import Database
from store.db import database_url
from store.outbox import SqlOutbox
from tests.integration.notify_http import HttpReceiver, note


async def main(args: argparse.Namespace) -> None:
    db = Database(database_url(args.db), busy_timeout=args.busy)
    await db.open()
    outbox = SqlOutbox(db, Path(args.spool), site="s")
    await outbox.open()
    receiver = HttpReceiver("hook", args.url, kill_after=args.kill_after, kill_before=args.kill_before)
    delivery = Delivery(outbox, {"hook": receiver}, parallel=args.parallel)
    try:
        if args.put:
            await outbox.put([note(i, branch=f"b{i % args.groups}" if args.groups > 1 else "b1")
                              for i in range(args.put)])
        await delivery.start()
        while outbox.stats().queued:
            await asyncio.sleep(0.02)
    finally:
        await delivery.stop()
        await outbox.close()
        await db.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("db")
    parser.add_argument("spool")
    parser.add_argument("url")
    parser.add_argument("--put", type=int, default=0)
    parser.add_argument("--groups", type=int, default=1)
    parser.add_argument("--parallel", type=int, default=1)
    parser.add_argument("--kill-after")
    parser.add_argument("--kill-before")
    parser.add_argument("--busy", type=float, default=5.0)  # SQLite's wait for its write lock
    asyncio.run(main(parser.parse_args()))
