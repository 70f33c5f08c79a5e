"""The shard map: every device lands on one of a fixed number of shards by a stable hash of
its branch, so a branch's router and the devices behind it are always polled together.

The hash is BLAKE2b (8-byte digest) of the branch's UTF-8 bytes, read big-endian, modulo the
shard count: the same on every host, process and Python version (never ``hash()``, which is
salted per process). A device with an empty branch is placed by its name instead. Every
poller of a site must use the same shard count: the leases check it (poller/cluster/leases.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from poller.inventory import Device

DEFAULT_SHARDS = 256
MAX_SHARDS = 4096
"""Each lease round reads every shard's owner: more shards cost more per round for nothing
(a site has far fewer branches than this)."""


def check_shards(count: int) -> int:
    if not 1 <= count <= MAX_SHARDS:
        raise ValueError(f"shards: {count}: use 1 to {MAX_SHARDS}")
    return count


def shard_of(key: str, count: int = DEFAULT_SHARDS) -> int:
    """The shard of a branch (or of a branchless device's name): 0 <= shard < count."""
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % count


def placement_key(device: Device) -> str:
    """What places a device: its branch, or its name when it has none."""
    return device.branch or device.name


@dataclass(frozen=True, slots=True)
class ShardMap:
    """A site's shard count and where each device goes."""

    count: int = DEFAULT_SHARDS

    def __post_init__(self) -> None:
        check_shards(self.count)

    def of(self, device: Device) -> int:
        return shard_of(placement_key(device), self.count)

    def split(self, devices: Iterable[Device]) -> dict[int, list[Device]]:
        """The devices by shard, each list in the inventory's order; shards with no device are
        absent."""
        by_shard: dict[int, list[Device]] = {}
        cache: dict[str, int] = {}  # a branch's many devices hash once
        for device in devices:
            key = placement_key(device)
            shard = cache.get(key)
            if shard is None:
                shard = cache[key] = shard_of(key, self.count)
            by_shard.setdefault(shard, []).append(device)
        return by_shard

    def devices_of(self, devices: Iterable[Device], shards: Iterable[int]) -> list[Device]:
        """The devices of ``shards``, in the inventory's order (what one poller polls)."""
        wanted = frozenset(shards)
        cache: dict[str, bool] = {}
        chosen: list[Device] = []
        for device in devices:
            key = placement_key(device)
            keep = cache.get(key)
            if keep is None:
                keep = cache[key] = shard_of(key, self.count) in wanted
            if keep:
                chosen.append(device)
        return chosen
