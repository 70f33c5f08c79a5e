"""The shard map (poller/cluster/shards.py): a stable hash of the branch, the same in every
process and Python, spread evenly, a branch's devices always on one shard."""

from __future__ import annotations

import hashlib
import json
import os
import random
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from poller.cluster.shards import DEFAULT_SHARDS, MAX_SHARDS, ShardMap, shard_of
from poller.inventory import Device

REPO = Path(__file__).resolve().parents[2]

# Known vectors: changing the hash (or its byte order, digest size, encoding) moves every
# device of a running cluster to another shard, so it must fail here first.
VECTORS = [  # (key, shards, shard)
    ("branch-001", 256, 6), ("branch-001", 1000, 998), ("branch-001", 7, 2),
    ("Zürich Paradeplatz", 256, 7), ("Zürich Paradeplatz", 1000, 703),
    ("r1", 256, 48), ("br-0042", 256, 116), ("br-0042", 1000, 556), ("", 256, 180),
]


def branch_names(n: int) -> list[str]:
    return [f"branch-{i:05d}" for i in range(n)]


def device(name: str, branch: str) -> Device:
    return Device(name=name, address="127.0.0.1", branch=branch, region="r", type="router")


@pytest.mark.parametrize(("key", "shards", "shard"), VECTORS)
def test_known_vectors(key: str, shards: int, shard: int) -> None:
    assert shard_of(key, shards) == shard


def test_the_hash_is_blake2b_of_the_utf8_key_read_big_endian() -> None:
    digest = hashlib.blake2b(b"branch-001", digest_size=8).hexdigest()  # "branch-001" in UTF-8
    assert digest == "c86126fb56eb0f06"
    assert shard_of("branch-001", 256) == 0x06 == int(digest, 16) % 256


def test_same_shards_in_other_processes_whatever_their_hash_seed() -> None:
    names = [*branch_names(200), "Genève", "日本支店", "a b"]
    here = [shard_of(n) for n in names]
    code = ("import json, sys; from poller.cluster.shards import shard_of; "
            "print(json.dumps([shard_of(n) for n in json.loads(sys.argv[1])]))")
    for seed in ("0", "1", "12345"):
        env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONHASHSEED": seed}
        out = subprocess.run([sys.executable, "-c", code, json.dumps(names)], env=env, cwd=REPO,
                             capture_output=True, text=True, timeout=60, check=True).stdout
        assert json.loads(out) == here


def per_shard(n: int) -> list[int]:
    loads = [0] * DEFAULT_SHARDS
    for name in branch_names(n):
        loads[shard_of(name)] += 1
    return loads


def chi_square(loads: list[int]) -> float:
    expected = sum(loads) / len(loads)
    return sum((load - expected) ** 2 / expected for load in loads)


def test_spread_of_10000_branches_over_256_shards() -> None:
    loads = per_shard(10_000)
    ratio = max(loads) / min(loads)
    print(f"\n10,000 branches on 256 shards: max {max(loads)}, min {min(loads)}, ratio {ratio:.2f}, "
          f"chi-square {chi_square(loads):.0f} (255 degrees of freedom)")
    assert min(loads) > 0
    # A uniform hash: chi-square ~ 255 +- 23; a skewed one is far above.
    assert chi_square(loads) < 255 + 5 * (2 * 255) ** 0.5
    assert ratio < 3.0


def shares_loads(shard_of_branch: list[int], pollers: int, rng: random.Random) -> list[int]:
    """Branches per poller when the 256 shards go to ``pollers`` in equal shares at random
    (the leases give no particular shards to a poller, only their number)."""
    order = list(range(DEFAULT_SHARDS))
    rng.shuffle(order)
    owner = {shard: i % pollers for i, shard in enumerate(order)}
    loads = [0] * pollers
    for shard in shard_of_branch:
        loads[owner[shard]] += 1
    return loads


@pytest.mark.parametrize("branches", [128, 10_000])
def test_spread_of_branches_over_pollers(branches: int) -> None:
    shards = [shard_of(name) for name in branch_names(branches)]
    used = len(set(shards))
    rng = random.Random(7)
    for pollers in (2, 3, 4):
        ratios = sorted(max(ls) / min(ls) for ls in (shares_loads(shards, pollers, rng) for _ in range(300)))
        median, p95 = statistics.median(ratios), ratios[int(len(ratios) * 0.95)]
        print(f"\n{branches} branches ({used} shards used), {pollers} pollers: branches per poller "
              f"max/min median {median:.2f}, 95th percentile {p95:.2f}")
        if branches == 10_000:
            assert p95 < 1.15  # many branches: equal shares of shards are equal loads
        else:
            assert median < 1.6  # 128 branches: lumpy (see docs/CLUSTER.md), but no poller starves
    if branches == 10_000:
        assert used == DEFAULT_SHARDS
    else:
        assert 85 <= used <= 115  # 256 * (1 - e^-0.5) ~ 101 expected


def test_a_branch_stays_together_and_every_device_is_placed_once() -> None:
    rng = random.Random(3)
    devices = [device(f"d{i}", f"br-{rng.randrange(300)}") for i in range(3_000)]
    devices += [device(f"loose{i}", "") for i in range(50)]  # no branch: placed by name
    shard_map = ShardMap()
    split = shard_map.split(devices)
    assert sorted(d.name for ds in split.values() for d in ds) == sorted(d.name for d in devices)
    branch_shards: dict[str, set[int]] = {}
    for shard, members in split.items():
        for d in members:
            branch_shards.setdefault(d.branch or d.name, set()).add(shard)
            assert shard_map.of(d) == shard
    assert all(len(s) == 1 for s in branch_shards.values())
    assert device("loose7", "") in split[shard_of("loose7")]
    # Within a shard the inventory's order is kept; devices_of takes shards' devices in order.
    for members in split.values():
        assert members == sorted(members, key=devices.index)
    some = sorted(split)[:40]
    assert shard_map.devices_of(devices, some) == [d for d in devices if shard_map.of(d) in some]


def test_shard_counts_outside_the_range_are_refused() -> None:
    two = [device("a", "x"), device("b", "y")]
    assert ShardMap(1).split(two) == {0: two}
    assert ShardMap(MAX_SHARDS).count == MAX_SHARDS
    for bad in (0, -1, MAX_SHARDS + 1):
        with pytest.raises(ValueError, match="shards"):
            ShardMap(bad)
