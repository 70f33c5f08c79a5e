"""Every committed transition of the history, in the order of their ids, as they commit: how the
cluster's notifier learns what every member observed (docs/CLUSTER.md, "The notifier lease").

The members write their transitions in fenced transactions (store/fenced_history.py), so what
is committed here is the site's truth: a stale member's late writes are refused, never seen.

Ids come from a sequence when a row is inserted, but transactions commit in their own order:
a row with a lower id can commit after one with a higher id was read. So a reader that only
asked ``id > highest seen`` would skip it. :class:`CommittedTransitions` remembers each id it
has not seen below the highest (a **gap**) and asks for the gaps again at every read, until the
row shows up or ``gap_timeout`` passes (an id whose transaction rolled back, e.g. a refused
fenced write, or a key clash of a replayed spool, is never filled). A transaction that takes
longer than ``gap_timeout`` between its insert and its commit would be missed: the writer's
transactions last milliseconds, and a fenced one is ended by the server after 5 s idle.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, func, select

from poller.events import State, Transition
from store.database import Database
from store.models import devices_table as _devices
from store.models import transitions_table as _transitions

log = logging.getLogger(__name__)


@dataclass(slots=True)
class TailStats:
    read: int = 0  # transitions returned
    filled: int = 0  # of those, found in a gap (committed after a higher id was read)
    expired: int = 0  # gaps given up after gap_timeout (rolled back, or committed too late)


class CommittedTransitions:
    """A reader of ``db``'s transitions from a start point on (see the module's docstring)."""

    def __init__(self, db: Database, *, window: int = 10_000, gap_timeout: float = 60.0,
                 max_gaps: int = 20_000, batch: int = 20_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.db = db
        self.window = window
        self.gap_timeout = gap_timeout
        self.max_gaps = max_gaps
        self.batch = batch
        self.clock = clock
        self.high = 0  # the highest id read
        self.gaps: dict[int, float] = {}  # id not seen below ``high`` -> when it was first missed
        self.stats = TailStats()

    async def start(self) -> None:
        """Start from what is committed now: the highest id, and the ids missing among the last
        ``window`` below it (their transactions may still commit). Call it *before* reading the
        state it continues (open outages): a transition committed between the two is both in
        that state and read again here, which changes nothing (a DOWN of a device already DOWN,
        an UP of one already UP); one committed later is read here."""
        t = _transitions.c
        async with self.db.engine.connect() as conn:
            high = (await conn.execute(select(func.max(t.id)))).scalar()
            self.high = int(high or 0)
            low = max(0, self.high - self.window)
            present = {int(i) for (i,) in (await conn.execute(select(t.id).where(t.id > low))).all()}
        now = self.clock()
        self.gaps = {i: now for i in range(low + 1, self.high + 1) if i not in present}
        self._cap()

    async def read(self) -> list[Transition]:
        """Transitions committed since the last read (gaps filled first), in id order."""
        t = _transitions.c
        rows = []
        async with self.db.engine.connect() as conn:
            if self.gaps:
                asked = sorted(self.gaps)
                for i in range(0, len(asked), 5_000):
                    rows += (await conn.execute(self._select().where(t.id.in_(asked[i:i + 5_000])))).all()
            filled = len(rows)
            rows += (await conn.execute(self._select().where(t.id > self.high).order_by(t.id)
                                        .limit(self.batch))).all()
        now = self.clock()
        for r in rows[:filled]:
            self.gaps.pop(int(r.id), None)
        for r in rows[filled:]:
            i = int(r.id)
            if i > self.high + 1:
                self.gaps.update(dict.fromkeys(range(max(self.high + 1, i - self.max_gaps), i), now))
            self.high = max(self.high, i)
        expired = [i for i, since in self.gaps.items() if now - since > self.gap_timeout]
        for i in expired:
            del self.gaps[i]
        self.stats.expired += len(expired)
        self._cap()
        self.stats.read += len(rows)
        self.stats.filled += filled
        rows.sort(key=lambda r: int(r.id))
        return [Transition(device=r.name, address=r.address, from_state=State(r.from_state),
                           to_state=State(r.to_state), at=r.at, down_since=r.down_since, rtt_ms=r.rtt_ms)
                for r in rows]

    def _cap(self) -> None:
        if len(self.gaps) > self.max_gaps:
            for i in sorted(self.gaps)[: len(self.gaps) - self.max_gaps]:
                del self.gaps[i]
                self.stats.expired += 1

    @staticmethod
    def _select() -> Select[Any]:
        t, d = _transitions, _devices
        return select(t.c.id, d.c.name, d.c.address, t.c.from_state, t.c.to_state, t.c.at,
                      t.c.down_since, t.c.rtt_ms).join(d, d.c.id == t.c.device_id)


def only(transitions: list[Transition], names: Collection[str]) -> list[Transition]:
    """Those of devices in ``names`` (sites share a database; another site's are not ours)."""
    return [t for t in transitions if t.device in names]
