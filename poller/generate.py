"""Generate bank-shaped inventories on loopback addresses, for the example, tests and benchmarks."""

from __future__ import annotations

import csv
import ipaddress
import random
from collections.abc import Iterator
from typing import TextIO

# What a branch holds besides its router: (type, how many at least, at most).
_BRANCH_KIT = (("switch", 1, 1), ("atm", 1, 3), ("payment", 0, 2), ("ap", 0, 2), ("nvr", 0, 1))
_REGIONS = ("north", "south", "east", "west", "central", "coast", "mountain", "lakes", "capital", "valley")
_FIRST = int(ipaddress.IPv4Address("127.1.0.1"))
_LAST = int(ipaddress.IPv4Address("127.255.255.254"))


def loopback(index: int) -> str:
    """The index-th loopback address from 127.1.0.1 on (all of 127/8 answers on Linux)."""
    value = _FIRST + index
    if value > _LAST:
        raise ValueError(f"no loopback address left for device {index}")
    return str(ipaddress.IPv4Address(value))


def bank_rows(devices: int = 875, regions: int = 10, seed: int = 7) -> Iterator[dict[str, str]]:
    """Rows shaped like a bank network: a core, one hub per region, branches with their kit.

    Branches are added round-robin over the regions until ``devices`` rows exist, so any
    size works; 875 devices give 137 branches over 10 regions (plus a core), close to the bank's 128.
    """
    rng = random.Random(seed)
    regions = max(1, min(regions, devices))
    count = 0

    def row(name: str, branch: str, region: str, kind: str, parent: str) -> dict[str, str]:
        nonlocal count
        count += 1
        return {"name": name, "address": loopback(count - 1), "branch": branch, "region": region,
                "type": kind, "parent": parent, "interval": "", "tags": ""}

    yield row("dc-core-1", "datacenter", "core", "router", "")
    region_names = [_REGIONS[i % len(_REGIONS)] + ("" if i < len(_REGIONS) else str(i))
                    for i in range(regions)]
    for region in region_names:
        if count >= devices:
            return
        yield row(f"{region}-hub", f"{region}-hub", region, "router", "dc-core-1")
    branch_index = 0
    while count < devices:
        region = region_names[branch_index % regions]
        branch = f"{region}-b{branch_index // regions + 1:03d}"
        branch_index += 1
        router = f"{branch}-rtr"
        yield row(router, branch, region, "router", f"{region}-hub")
        for kind, low, high in _BRANCH_KIT:
            for n in range(rng.randint(low, high)):
                if count >= devices:
                    return
                yield row(f"{branch}-{kind}{n + 1}", branch, region, kind, router)


def write_csv(out: TextIO, rows: Iterator[dict[str, str]]) -> int:
    writer = csv.DictWriter(out, fieldnames=["name", "address", "branch", "region", "type",
                                             "parent", "interval", "tags"], lineterminator="\n")
    writer.writeheader()
    n = 0
    for r in rows:
        writer.writerow(r)
        n += 1
    return n
