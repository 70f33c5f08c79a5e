"""What one poller does with its shards in a lease round, from its view of the site: a pure
function, so the balance can be tested (and simulated) without Redis.

Shares: ``count // n`` shards each for ``n`` live pollers, one more for the first
``count % n`` of them sorted by id, so every poller computes the same targets from the same
member list and the targets add up to ``count``.

Which shards: each poller ranks shards by a rendezvous score (BLAKE2b of its id and the shard)
and gives back those it ranks lowest. Free shards are dealt out among the pollers under their
share, each free shard to the one that ranks it highest and still has room: every poller
computes the same deal from the same view, so they do not race for the same free shard (a race
costs a round: ``SET NX`` lets one win), and a shard tends to go back to the same poller.

Bounds: a poller over its share gives back at most ``max_moves`` shards a round (the churn of a
rebalance); one under its share takes free shards up to its share at once, since a free shard
is one nobody polls (after a poller died, it must be polled again within the failover time).
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass


def target_shares(members: Iterable[str], count: int) -> dict[str, int]:
    """Each member's share of ``count`` shards (ceil/floor, the remainder to the lowest ids)."""
    ordered = sorted(set(members))
    if not ordered:
        return {}
    base, extra = divmod(count, len(ordered))
    return {member: base + (1 if i < extra else 0) for i, member in enumerate(ordered)}


def preference(member: str, shard: int) -> int:
    """How much ``member`` wants ``shard`` (higher first): stable on every host."""
    data = f"{member}\n{shard}".encode()
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


def by_preference(member: str, shards: Iterable[int]) -> list[int]:
    """``shards``, the ones ``member`` wants most first."""
    return sorted(shards, key=lambda s: (-preference(member, s), s))


@dataclass(frozen=True, slots=True)
class Plan:
    """One round's moves for one poller."""

    target: int
    release: tuple[int, ...] = ()  # held, over the share: given back (at most max_moves)
    acquire: tuple[int, ...] = ()  # free shards to try (SET NX), most wanted first
    orphans: tuple[int, ...] = ()  # Redis names this poller, but it does not hold them: given back
    taken: tuple[int, ...] = ()  # held, but Redis names another poller (or none): dropped now


def plan_round(me: str, members: Collection[str], owners: Sequence[str | None], held: Collection[int],
               max_moves: int, may_acquire: bool = True) -> Plan:
    """The moves of poller ``me`` holding ``held``, given the live ``members`` and each shard's
    owner in Redis (``owners[shard]``, None for free). ``may_acquire`` False: a poller that
    only just (re)joined the members takes nothing yet, until the others have seen it and it
    has seen them (else the first poller up would take every shard, then give them back a few
    at a time)."""
    targets = target_shares([*members, me], len(owners))
    target = targets[me]
    held_set = frozenset(held)
    taken = tuple(sorted(s for s in held_set if owners[s] != me))
    still = [s for s in held_set if owners[s] == me]
    orphans = tuple(s for s, owner in enumerate(owners) if owner == me and s not in held_set)
    release: tuple[int, ...] = ()
    acquire: tuple[int, ...] = ()
    if len(still) > target:
        release = tuple(by_preference(me, still)[::-1][: min(len(still) - target, max_moves)])
    elif len(still) < target and may_acquire:
        room = {m: t - sum(1 for owner in owners if owner == m) for m, t in targets.items() if m != me}
        room[me] = target - len(still)
        acquire = tuple(deal([s for s, owner in enumerate(owners) if owner is None], room).get(me, ()))
    return Plan(target, release, acquire, orphans, taken)


def deal(free: Iterable[int], room: dict[str, int]) -> dict[str, list[int]]:
    """Free shards to the members with room, each to the member that wants it most and has
    room left, in shard order; what no one has room for stays out."""
    left = {m: n for m, n in room.items() if n > 0}
    dealt: dict[str, list[int]] = {m: [] for m in left}
    for shard in sorted(free):
        if not left:
            break
        best = max(left, key=lambda m: (preference(m, shard), m))
        dealt[best].append(shard)
        left[best] -= 1
        if not left[best]:
            del left[best]
    return dealt
