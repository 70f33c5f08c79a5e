"""Outage writes in bursts: ``write_transitions`` decides and writes a burst's outage changes in a
few statements, with the outcome of writing its transitions one at a time.

On both engines (``db_url``). The property tests compare the database after random bursts with
:class:`Model`, the documented semantics applied one transition at a time in plain Python:
random devices and DOWN/UP/UNKNOWN sequences (also ones the engine never sends: a ``down_since``
that names nothing, none at all, the clock stepping back), cut into bursts at random, written
twice.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import event

from poller.events import OUT, State, Transition
from store.history import HistoryStore

T0 = datetime(2026, 12, 5, 3, 0, tzinfo=UTC)
ADDRESS = "127.0.0.1"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def change(device: str, old: State, new: State, when: float, since: float | None = None) -> Transition:
    return Transition(device, ADDRESS, old, new, at(when), None if since is None else at(since),
                      0.4 if new is State.UP else None)


# -- the semantics, one transition at a time ---------------------------------------------------


@dataclass
class Model:
    """What the history holds after each transition is written on its own (write_transitions'
    docstring): outages by (device, start) -> end, and transitions by their key."""

    outages: dict[tuple[str, datetime], datetime | None] = field(default_factory=dict)
    transitions: dict[tuple[str, datetime, str], tuple[Any, ...]] = field(default_factory=dict)

    def open_start(self, device: str) -> datetime | None:
        return next((s for (d, s), e in self.outages.items() if d == device and e is None), None)

    def close_open(self, device: str, end: datetime) -> bool:
        start = self.open_start(device)
        if start is None or start > end:
            return False
        self.outages[(device, start)] = end
        return True

    def write(self, t: Transition) -> None:
        self.transitions.setdefault((t.device, t.at, t.to_state.value),
                                    (t.device, t.from_state.value, t.to_state.value, t.at, t.down_since))
        if t.to_state in OUT:  # DOWN or UNREACHABLE: an outage either way
            start = t.down_since or t.at
            if (t.device, start) not in self.outages and self.open_start(t.device) is None:
                self.outages[(t.device, start)] = None
        elif t.to_state is State.UP and t.from_state in OUT and t.down_since is not None:
            start, end = t.down_since, max(t.at, t.down_since)
            if (t.device, start) in self.outages:
                if self.outages[(t.device, start)] is None:
                    self.outages[(t.device, start)] = end
            elif not self.close_open(t.device, end):
                self.outages[(t.device, start)] = end
        elif t.to_state is State.UP and t.from_state in (*OUT, State.UNKNOWN):
            self.close_open(t.device, t.at)

    def outage_rows(self, prefix: str) -> list[tuple[str, datetime, datetime | None]]:
        return sorted((d, s, e) for (d, s), e in self.outages.items() if d.startswith(prefix))

    def transition_rows(self, prefix: str) -> list[tuple[Any, ...]]:
        return sorted(v for (d, _, _), v in self.transitions.items() if d.startswith(prefix))


async def stored(store: HistoryStore, prefix: str) -> tuple[list[Any], list[Any]]:
    outages = sorted((o.device, o.start, o.end) for o in await store.outages() if o.device.startswith(prefix))
    transitions = sorted((t.device, t.from_state.value, t.to_state.value, t.at, t.down_since)
                         for t in await store.transitions() if t.device.startswith(prefix))
    return outages, transitions


def cut(rng: random.Random, transitions: list[Transition]) -> list[list[Transition]]:
    """The same transitions in bursts cut at random: one burst, one per transition, or in between."""
    how = rng.choice(("whole", "ones", "random"))
    if how == "whole":
        return [transitions]
    if how == "ones":
        return [[t] for t in transitions]
    bursts, i = [], 0
    while i < len(transitions):
        n = rng.randint(1, 12)
        bursts.append(transitions[i : i + n])
        i += n
    return bursts


def engine_like(rng: random.Random, devices: list[str], steps: int, *, wild: bool = True) -> list[Transition]:
    """What the engine sends: a device goes DOWN (``down_since`` its first failed probe) and UP
    (naming that outage); a restart finds a device UNKNOWN, then UP or DOWN. A restart seeded
    with the device's open outage keeps it DOWN from that start (no transition). ``wild``: the
    clock may step back, and a restart may not know the open outages (the spool held the DOWN):
    it detects the device DOWN again (the original outage is kept) or UP (closing it)."""
    clock = 0.0
    state = dict.fromkeys(devices, State.UNKNOWN)
    since: dict[str, datetime | None] = dict.fromkeys(devices)
    changed = dict.fromkeys(devices, -1e9)  # when the device last changed state
    out = []
    for _ in range(steps):
        clock += rng.choice((0.5, 1, 3, 7, -30 if wild and rng.random() < 0.05 else 2))
        device = rng.choice(devices)
        if rng.random() < 0.06 and (wild or state[device] is not State.DOWN):
            state[device] = State.UNKNOWN  # a restart that does not know the device's state
        old = state[device]
        if old is State.DOWN or (old is State.UNKNOWN and rng.random() < 0.5):
            new = State.UP
            down_since = since[device] if old is State.DOWN else None
        else:
            new = State.DOWN
            first_failed = clock - rng.choice((0, 1, 2))  # after its last change, unless wild
            since[device] = at(first_failed if wild or first_failed > changed[device] else clock)
            down_since = since[device]
        out.append(Transition(device, ADDRESS, old, new, at(clock), down_since,
                              0.4 if new is State.UP else None))
        state[device], changed[device] = new, clock
    return out


def anything(rng: random.Random, devices: list[str], steps: int) -> list[Transition]:
    """Any from/to states, times and ``down_since`` (a few values, so they collide)."""
    times = [at(s) for s in range(0, 40, 4)]
    out = []
    for _ in range(steps):
        old, new = rng.choice(list(State)), rng.choice(list(State))
        since = rng.choice((None, *times)) if rng.random() < 0.8 else None
        out.append(Transition(rng.choice(devices), ADDRESS, old, new, rng.choice(times), since,
                              0.4 if new is State.UP else None))
    return out


# -- new behaviour ---------------------------------------------------------------------------


async def test_an_unknown_to_up_closes_an_outage_its_burst_opened_as_one_at_a_time_would(
        db_url: str) -> None:
    """A spool holding two runs: the first saw atm-0 go down, the next started without the
    database (so without its open outages) and found atm-0 up. Replayed as one burst, the UP
    ends the outage the DOWN before it opened, as it does when the two are written apart."""
    burst = [change("atm-0", State.UP, State.DOWN, 10, 8), change("atm-0", State.UNKNOWN, State.UP, 40)]
    async with HistoryStore(db_url) as store:
        await store.write_transitions(burst)
        for t in burst:
            await store.write_transitions([change(t.device.replace("atm", "apart"), t.from_state,
                                                  t.to_state, (t.at - T0).total_seconds(),
                                                  None if t.down_since is None
                                                  else (t.down_since - T0).total_seconds())])
        assert [(o.device, o.start, o.end) for o in await store.outages()] == [
            ("atm-0", at(8), at(40)), ("apart-0", at(8), at(40))]
        assert await store.open_outages() == {}


async def test_a_burst_of_outage_changes_costs_a_few_statements_not_one_per_transition(
        db_url: str) -> None:
    """1,000 transitions at once (half open an outage, half close one; a few whose DOWN never
    reached the database, a few from UNKNOWN): a handful of statements, as many whatever the
    burst's size; the outcome that of writing them one by one."""
    devices = [f"atm-{i}" for i in range(1000)]
    async with HistoryStore(db_url) as store:
        await store.db.ensure_ids((d, ADDRESS) for d in devices)
        await store.write_transitions([change(d, State.UP, State.DOWN, 1, 0) for d in devices[:500]])
        burst = [change(d, State.DOWN, State.UP, 30, 0) for d in devices[:480]]
        burst += [change(d, State.UNKNOWN, State.UP, 30) for d in devices[480:500]]
        burst += [change(d, State.DOWN, State.UP, 30, 5) for d in devices[500:520]]  # DOWN never written
        burst += [change(d, State.UP, State.DOWN, 31, 31) for d in devices[520:]]
        statements: list[str] = []

        def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            statements.append(statement)

        event.listen(store.engine.sync_engine, "before_cursor_execute", count)
        try:
            await store.write_transitions(burst)
        finally:
            event.remove(store.engine.sync_engine, "before_cursor_execute", count)
        outages = {o.device: (o.start, o.end) for o in await store.outages()}
    writes = [s for s in statements if not s.lstrip().upper().startswith(("BEGIN", "COMMIT"))]
    assert len(writes) <= 6, writes
    assert all(outages[d] == (at(0), at(30)) for d in devices[:500])
    assert all(outages[d] == (at(5), at(30)) for d in devices[500:520])
    assert all(outages[d] == (at(31), None) for d in devices[520:])


# -- the same outcome as one at a time, on random bursts -------------------------------------


async def test_random_bursts_give_what_writing_one_at_a_time_gives(db_url: str) -> None:
    """Engine-like and arbitrary sequences, cut into bursts at random and written twice (the
    second time cut differently): the history the model's one-at-a-time writes give."""
    async with HistoryStore(db_url) as store:
        for case in range(60):
            rng = random.Random(case)
            prefix = f"c{case}-"
            devices = [f"{prefix}d{i}" for i in range(rng.randint(1, 6))]
            make = engine_like if case % 2 == 0 else anything
            transitions = make(rng, devices, rng.randint(1, 40))
            model = Model()
            for _ in range(2):
                for t in transitions:
                    model.write(t)
                for burst in cut(rng, transitions):
                    await store.write_transitions(burst)
            got = await stored(store, prefix)
            assert got == (model.outage_rows(prefix), model.transition_rows(prefix)), (case, transitions)


async def test_engine_like_history_written_again_is_stored_once(db_url: str) -> None:
    """A spool replayed again after a crash: the engine's transitions written a second time
    (cut into other bursts) leave the history as one write left it. (Not when the clock stepped
    back or a restart did not know the open outages: then an UP replayed may end an outage that
    began after it, or one its DOWN never opened, one at a time as in a burst; the test above
    covers those against the model.)"""
    async with HistoryStore(db_url) as store:
        for case in range(30):
            rng = random.Random(1000 + case)
            prefix = f"r{case}-"
            devices = [f"{prefix}d{i}" for i in range(rng.randint(1, 8))]
            transitions = engine_like(rng, devices, rng.randint(1, 60), wild=False)
            model = Model()
            for t in transitions:
                model.write(t)
            for burst in cut(rng, transitions):
                await store.write_transitions(burst)
            once = await stored(store, prefix)
            assert once == (model.outage_rows(prefix), model.transition_rows(prefix)), (case, transitions)
            for burst in cut(rng, transitions):
                await store.write_transitions(burst)
            assert await stored(store, prefix) == once, (case, transitions)


async def test_bursts_longer_than_a_chunk_give_the_same_history(db_url: str) -> None:
    """Rounds cut into chunks of ``chunk_rows`` (the selects and the executemany's) change nothing."""
    rng = random.Random(7)
    devices = [f"k-d{i}" for i in range(40)]
    transitions = engine_like(rng, devices, 300)
    model = Model()
    for t in transitions:
        model.write(t)
    async with HistoryStore(db_url, chunk_rows=3) as store:
        await store.write_transitions(transitions)
        assert await stored(store, "k-") == (model.outage_rows("k-"), model.transition_rows("k-"))
