"""A cluster member's history sink: transitions and their outage changes written only in
transactions fenced by the epochs of their shards (store/fencing.py; docs/CLUSTER.md).

The store writer (store/writer.py) writes to this instead of the :class:`HistoryStore` itself.
Each transition is written under the epoch of the shard its device was on *when it was
observed* (``epoch_of``: the cluster's tenures, wardtui/cluster.py), whether or not the poller
still holds that shard: if nobody took the shard over meanwhile, the observation is true and
is kept; if somebody did, the database refuses it. A refused shard's transitions are dropped
(the new owner read the committed state after its take and records its own), counted, and
``on_refused`` is told, so the poller stands down from those it still holds at that epoch
(a refusal of a tenure already over, e.g. of a shard given back for the balance while its
transitions waited to be written, is logged at INFO, not as an error). The other shards of the
batch are written again without it, in a transaction of their own. Samples (checks, SNMP polls)
and SNMP events are not fenced: a late sample is still a true measurement at its own time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping, Sequence

from poller.events import CheckResult, Transition
from store.checks import write_transitions_on
from store.fencing import Fenced, Fencing
from store.history import HistoryStore
from store.spool_records import FencedTransition, PollRecord, SnmpEventIn

log = logging.getLogger(__name__)

EpochOf = Callable[[Transition], tuple[int, int] | None]
"""A transition's (shard, epoch) when it was observed, for one not stamped with it (a
:class:`~store.spool_records.FencedTransition`); None: under no tenure this process knows."""


class FencedHistory:
    """:class:`~store.writer.HistorySink` over ``store`` with every transition fenced."""

    def __init__(self, store: HistoryStore, fencing: Fencing, epoch_of: EpochOf,
                 on_refused: Callable[[Mapping[int, int]], Collection[int]]) -> None:
        self.store = store
        self.fencing = fencing
        self.epoch_of = epoch_of
        # {shard: the epoch refused}: stand down from those still held at that epoch (returned)
        self.on_refused = on_refused
        self.refused_transitions = 0  # dropped: their shard's epoch was no longer current
        self.unfenced_transitions = 0  # dropped: no known epoch (observed by an earlier run)

    def gauges(self) -> dict[str, float]:
        return {"cluster_refused_transitions": float(self.refused_transitions),
                "cluster_unfenced_transitions": float(self.unfenced_transitions)}

    async def write_transitions(self, transitions: Sequence[Transition]) -> None:
        """Write ``transitions`` (in order) in one transaction checked in for every shard they
        belong to; a refusal drops the stale shards' transitions and writes the rest again."""
        batch: list[tuple[Transition, int, int]] = []
        for t in transitions:
            # Stamped as the writer took it (so also from an earlier run's spool); else by its time.
            key = t.epoch if isinstance(t, FencedTransition) else self.epoch_of(t)
            if key is None:
                self.unfenced_transitions += 1
                log.warning("cluster: a transition of %r at %s has no shard epoch (spooled by a "
                            "poller before epochs were spooled?): not written", t.device, t.at.isoformat())
                continue
            batch.append((t, *key))
        # One shard seen under two epochs (lost and taken again while these waited): the older
        # one is stale for certain, so it is refused here without asking the database.
        newest: dict[int, int] = {}
        for _, shard, epoch in batch:
            newest[shard] = max(epoch, newest.get(shard, epoch))
        old = {(shard, epoch) for _, shard, epoch in batch if epoch != newest[shard]}
        if old:
            batch = self._drop(batch, old)
        db = self.store.db
        while batch:
            epochs = {shard: epoch for _, shard, epoch in batch}
            rows = [t for t, _, _ in batch]
            ids = await db.ensure_ids((t.device, t.address) for t in rows)  # the shared inventory
            try:
                async with self.fencing.fenced(epochs) as conn:
                    await write_transitions_on(db, conn, ids, rows)
                return
            except Fenced as refused:
                stale = {shard: epochs[shard] for shard in refused.shards}
                before = len(batch)
                batch = self._drop(batch, set(stale.items()))
                if self.on_refused(stale):
                    log.error("cluster: %s", refused)
                else:  # e.g. given back for the balance while these waited: no stand-down
                    log.info("cluster: %d transitions of shards %s not written: this member no longer "
                             "holds them at the epochs they were observed under, and another took them "
                             "over since (it records what it sees)", before - len(batch),
                             ", ".join(map(str, sorted(stale))))

    def _drop(self, batch: list[tuple[Transition, int, int]],
              stale: set[tuple[int, int]]) -> list[tuple[Transition, int, int]]:
        kept = [row for row in batch if (row[1], row[2]) not in stale]
        self.refused_transitions += len(batch) - len(kept)
        return kept

    async def write_transition(self, transition: Transition) -> None:
        await self.write_transitions([transition])

    async def write_checks(self, results: Sequence[CheckResult]) -> None:
        await self.store.write_checks(results)

    async def write_snmp_polls(self, polls: Sequence[PollRecord]) -> None:
        await self.store.write_snmp_polls(polls)

    async def write_snmp_events(self, events: Sequence[SnmpEventIn]) -> None:
        await self.store.write_snmp_events(events)
