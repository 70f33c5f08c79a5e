"""The cost of fencing (store/fencing.py): a fenced commit of a 1,000-row batch against the same
batch committed without fencing, on the PostgreSQL server at 127.0.0.1:5432 (trust auth).

Three batches, each run fenced and unfenced in alternation (which goes first alternates too),
REPEAT times, on one fresh database (1,000 devices, one shard taken once):

- ``transitions``: 1,000 transitions through the store's own ``write_transitions_on``, half
  DOWN (each opens an outage), half UP (each closes the outage its DOWN opened a batch before);
- ``rows``: 1,000 transition rows in one ``executemany``, no outage changes (a cheaper batch:
  fencing's fixed cost weighs more);
- ``empty``: a transaction that writes nothing (fencing's fixed cost alone);
- ``tr/86sh``: ``transitions`` again, fenced on 86 shards at once (a third of the default 256:
  a batch of one of three pollers touching every shard it holds).

Fenced: ``Fencing.fenced({0: epoch})`` (set the idle limit, ``SELECT ... FOR SHARE``, then the
writes, then COMMIT); unfenced: ``Database.writing()``. Wall time per commit, ms.

python bench/fencing.py [--repeat 40]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy.ext.asyncio import AsyncConnection  # noqa: E402

from bench.ingest import scratch_db, url_of  # noqa: E402
from poller.events import State, Transition  # noqa: E402
from store.checks import write_transitions_on  # noqa: E402
from store.database import Database  # noqa: E402
from store.fencing import Fencing  # noqa: E402
from store.models import transitions_table  # noqa: E402

T0 = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
N = 1000
SHARDS = 86  # a third of the default 256: what each of three pollers checks in, at most, per batch
Begin = Callable[[], AbstractAsyncContextManager[AsyncConnection]]


def batch(round_: int) -> list[Transition]:
    """Round r: the devices of group r % 2 go DOWN, those of the other group (down since round
    r - 1) come UP."""
    at = T0 + timedelta(minutes=round_)
    down_since = T0 + timedelta(minutes=round_ - 1)
    out: list[Transition] = []
    for i in range(N):
        name = f"dev{i:04d}"
        if i % 2 == round_ % 2:
            out.append(Transition(name, "127.0.0.1", State.UP, State.DOWN, at, at, None))
        elif round_ > 0:
            out.append(Transition(name, "127.0.0.1", State.DOWN, State.UP, at, down_since, 0.4))
    return out


async def main(repeat: int) -> None:
    async with scratch_db("fencing") as name:
        db = Database(url_of(name))
        await db.open()
        try:
            fencing = Fencing(db, "bench")
            ids = await db.ensure_ids((f"dev{i:04d}", "127.0.0.1") for i in range(N))

            many = {shard: await fencing.take(shard, "bench") for shard in range(SHARDS)}
            epoch = many[0]

            def fenced() -> AbstractAsyncContextManager[AsyncConnection]:
                return fencing.fenced({0: epoch})

            def fenced_many() -> AbstractAsyncContextManager[AsyncConnection]:
                return fencing.fenced(many)

            round_ = 0
            counter = 0

            async def transitions(conn: AsyncConnection) -> None:
                nonlocal round_
                await write_transitions_on(db, conn, ids, batch(round_))
                round_ += 1

            async def rows(conn: AsyncConnection) -> None:
                nonlocal counter
                at = T0 + timedelta(days=1, seconds=counter)
                counter += 1
                await conn.execute(transitions_table.insert(), [
                    {"device_id": ids[f"dev{i:04d}"], "from_state": "up", "to_state": "down", "at": at,
                     "down_since": None, "rtt_ms": None} for i in range(N)])

            async def empty(conn: AsyncConnection) -> None:
                return None

            await _once(db.writing, transitions)  # round 0: the first DOWNs, not measured
            for label, work, checked in (("transitions", transitions, fenced), ("rows", rows, fenced),
                                         ("empty", empty, fenced),
                                         (f"tr/{SHARDS}sh", transitions, fenced_many)):
                times: dict[str, list[float]] = {"fenced": [], "unfenced": []}
                for i in range(repeat):
                    order: list[tuple[str, Begin]] = [("fenced", checked), ("unfenced", db.writing)]
                    for kind, begin in order if i % 2 else reversed(order):
                        times[kind].append(await _once(begin, work))
                _print(label, times)
            assert fencing.refused_writes == 0
        finally:
            await db.close()


async def _once(begin: Begin, work: Callable[[AsyncConnection], Awaitable[None]]) -> float:
    started = time.perf_counter()
    async with begin() as conn:
        await work(conn)
    return (time.perf_counter() - started) * 1000


def _print(label: str, times: dict[str, list[float]]) -> None:
    fenced, plain = times["fenced"], times["unfenced"]
    ratios = sorted(f / p for f, p in zip(fenced, plain, strict=True))
    q = statistics.quantiles(ratios, n=10)
    print(f"{label:12} fenced median {statistics.median(fenced):7.2f} ms  unfenced "
          f"{statistics.median(plain):7.2f} ms  ratio of medians "
          f"{statistics.median(fenced) / statistics.median(plain):5.3f}  paired ratio median "
          f"{statistics.median(ratios):5.3f} (p10 {q[0]:5.3f}, p90 {q[-1]:5.3f}); "
          f"fenced p10-p90 {_spread(fenced)}, unfenced {_spread(plain)}", flush=True)


def _spread(values: list[float]) -> str:
    q = statistics.quantiles(values, n=10)
    return f"{q[0]:.2f}-{q[-1]:.2f}"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=40, help="runs of each kind per batch")
    asyncio.run(main(parser.parse_args().repeat))
