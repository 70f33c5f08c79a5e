"""The lease rounds' plan (poller/cluster/balance.py): equal shares that add up, bounded
releases, free shards taken at once, and a simulated site that converges when pollers join
and leave."""

from __future__ import annotations

import random

from poller.cluster.balance import Plan, by_preference, plan_round, preference, target_shares

SHARDS = 256


def test_shares_are_floor_and_ceil_with_the_remainder_to_the_lowest_ids() -> None:
    assert target_shares(["c", "a", "b"], 256) == {"a": 86, "b": 85, "c": 85}
    assert target_shares(["p2", "p1", "p1"], 5) == {"p1": 3, "p2": 2}
    assert target_shares(["only"], 256) == {"only": 256}
    assert target_shares([], 256) == {}
    for n in range(1, 40):
        shares = target_shares([f"m{i}" for i in range(n)], 256)
        assert sum(shares.values()) == 256
        assert max(shares.values()) - min(shares.values()) <= 1


def test_preference_differs_by_poller_and_is_stable() -> None:
    a, b = by_preference("host-a:1:x", range(SHARDS)), by_preference("host-b:1:y", range(SHARDS))
    assert sorted(a) == sorted(b) == list(range(SHARDS))
    assert a != b
    assert a == by_preference("host-a:1:x", reversed(range(SHARDS)))


def owners_of(holding: dict[str, set[int]]) -> list[str | None]:
    owners: list[str | None] = [None] * SHARDS
    for member, shards in holding.items():
        for s in shards:
            assert owners[s] is None, f"shard {s} held twice"
            owners[s] = member
    return owners


def test_a_poller_over_its_share_gives_back_at_most_max_moves_it_wants_least() -> None:
    held = set(range(200))
    plan = plan_round("a", ["a", "b"], owners_of({"a": held}), held, max_moves=8)
    assert plan.target == 128 and len(plan.release) == 8 and plan.acquire == ()
    assert list(plan.release) == by_preference("a", held)[::-1][:8]
    plan = plan_round("a", ["a", "b"], owners_of({"a": held}), held, max_moves=500)
    assert len(plan.release) == 72


def test_pollers_under_their_share_take_free_shards_at_once_without_racing() -> None:
    holding = {"a": set(range(0, 40)), "b": set(range(40, 70)), "c": set(range(70, 90))}
    members = ["a", "b", "c"]
    plans = {m: plan_round(m, members, owners_of(holding), holding[m], max_moves=8) for m in members}
    assert {m: len(p.acquire) for m, p in plans.items()} == {"a": 46, "b": 55, "c": 65}  # up to 86/85/85
    taken = [s for p in plans.values() for s in p.acquire]
    assert sorted(taken) == list(range(90, SHARDS))  # each free shard dealt to one poller
    # Each goes to the poller that wants it most unless that one's share is full.
    assert sum(max(members, key=lambda m: (preference(m, s), m)) == m
               for m, p in plans.items() for s in p.acquire) > len(taken) // 2
    assert plan_round("a", members, owners_of(holding), holding["a"], 8, may_acquire=False).acquire == ()


def test_a_poller_takes_no_free_shard_beyond_its_share() -> None:
    holding = {"a": set(range(0, 128))}
    plan = plan_round("a", ["a", "b"], owners_of(holding), holding["a"], max_moves=8)
    assert plan == Plan(target=128)  # the 128 free shards are b's to take


def test_orphans_and_taken_shards() -> None:
    owners = owners_of({"a": {1, 2, 3}, "b": {4}})
    plan = plan_round("a", ["a", "b"], owners, held={2, 3, 4, 5}, max_moves=8)
    assert plan.orphans == (1,)  # Redis names "a", which does not hold it: given back
    assert plan.taken == (4, 5)  # held, but Redis names "b" or nobody: dropped at once


def simulate(holding: dict[str, set[int]], members: list[str], max_moves: int,
             joined: set[str], rng: random.Random) -> tuple[Plan, ...]:
    """One round of every member, in a random order, each seeing Redis as the others left it."""
    plans = []
    for me in rng.sample(members, len(members)):
        mine = holding.setdefault(me, set())
        plan = plan_round(me, members, owners_of(holding), mine, max_moves, may_acquire=me not in joined)
        mine -= set(plan.release)
        free = {s for s, o in enumerate(owners_of(holding)) if o is None}
        mine |= set(plan.acquire) & free
        plans.append(plan)
    joined.clear()
    return tuple(plans)


def balanced(holding: dict[str, set[int]], members: list[str]) -> bool:
    return {m: len(holding.get(m, ())) for m in members} == target_shares(members, SHARDS)


def test_a_simulated_site_converges_on_start_join_and_leave() -> None:
    rng = random.Random(11)
    holding: dict[str, set[int]] = {}
    members = ["p1", "p2", "p3"]
    joined = set(members)
    rounds = 0
    while not balanced(holding, members):
        simulate(holding, members, 8, joined, rng)
        rounds += 1
        assert rounds <= 2  # one to see each other, one to deal the free shards
    assert sorted(len(s) for s in holding.values()) == [85, 85, 86]
    start_rounds = rounds

    members.append("p4")  # joins: each of the others gives back at most 8 a round
    joined.add("p4")
    rounds = 0
    while not balanced(holding, members):
        plans = simulate(holding, members, 8, joined, rng)
        assert all(len(p.release) <= 8 for p in plans)
        rounds += 1
        assert rounds < 20
    assert rounds >= 64 // (3 * 8)  # bounded: no big-bang move

    members.remove("p2")  # dies: its leases expire, the others take them in their next round
    del holding["p2"]
    simulate(holding, members, 8, joined, rng)
    assert sum(len(s) for s in holding.values()) == SHARDS
    assert balanced(holding, members)
    print(f"\nstart {start_rounds} rounds, join {rounds} rounds, leave 1 round")
