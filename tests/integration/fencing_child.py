"""A poller's fenced write in a process of its own, for test_store_fencing: it checks in, writes a
batch, says ``in-transaction`` and waits before it commits (the test stops it there with SIGSTOP);
then it tries the batch again, and prints one JSON line: how the commit and the retry went.

python -m tests.integration.fencing_child URL SITE SHARD EPOCH IDLE_LIMIT
"""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime, timedelta

from poller.events import State, Transition
from store.checks import write_transitions_on
from store.database import Database
from store.fencing import Fenced, Fencing

T0 = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)


async def main(url: str, site: str, shard: int, epoch: int, idle_limit: float) -> dict[str, object]:
    db = Database(url)
    await db.open()
    try:
        fencing = Fencing(db, site, idle_limit=idle_limit)
        batch = [Transition(f"paused-{i}", "127.0.0.1", State.UP, State.DOWN,
                           T0 + timedelta(seconds=i), None, None)
                 for i in range(100)]
        ids = await db.ensure_ids((t.device, t.address) for t in batch)
        report: dict[str, object] = {}
        try:
            async with fencing.fenced({shard: epoch}) as conn:
                await write_transitions_on(db, conn, ids, batch)
                print("in-transaction", flush=True)
                await asyncio.sleep(idle_limit * 3)  # stopped here; then the limit has passed
            report["commit"] = "committed"
        except Fenced:
            report["commit"] = "fenced"
        except Exception as exc:  # the server ended the session: the commit cannot go through
            report["commit"] = "failed"
            report["error"] = type(exc).__name__
        try:
            async with fencing.fenced({shard: epoch}) as conn:
                await write_transitions_on(db, conn, ids, batch)
            report["retry"] = "committed"
        except Fenced as exc:
            report.update(retry="fenced", current=exc.current)
        report["refused"] = fencing.refused_writes
        return report
    finally:
        await db.close()


if __name__ == "__main__":
    url, site, shard, epoch, limit = sys.argv[1:6]
    print(json.dumps(asyncio.run(main(url, site, int(shard), int(epoch), float(limit)))), flush=True)
