"""One ICMP round over N loopback addresses: wardtui's prober beside fping on the same list.

Run as root: python bench/round.py [--devices 10000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._report import write_section
from poller.generate import loopback
from poller.icmp import IcmpProber


async def wardtui_round(prober: IcmpProber, addresses: list[str]) -> tuple[float, float, int]:
    cpu0, t0 = time.process_time(), time.perf_counter()
    replies = await asyncio.gather(*[prober.send(a, 0.5) for a in addresses])
    return time.perf_counter() - t0, time.process_time() - cpu0, sum(r.ok for r in replies)


async def wardtui_rounds(addresses: list[str], repeat: int) -> list[tuple[float, float, int]]:
    prober = IcmpProber()
    prober.open()
    try:
        await wardtui_round(prober, addresses[:100])  # warm up the socket and the code paths
        return [await wardtui_round(prober, addresses) for _ in range(repeat)]
    finally:
        prober.close()


def fping_round(path: Path) -> tuple[float, int]:
    t0 = time.perf_counter()
    proc = subprocess.run(["fping", "-c1", "-t500", "-i0", "-q", "-f", str(path)],
                          capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - t0
    alive = sum(1 for line in proc.stderr.splitlines() if "1/1/0%" in line)
    return elapsed, alive


async def icmplib_round(addresses: list[str]) -> tuple[float, int]:
    from icmplib import async_multiping

    t0 = time.perf_counter()
    hosts = await async_multiping(addresses, count=1, timeout=0.5, concurrent_tasks=1000, privileged=True)
    return time.perf_counter() - t0, sum(h.is_alive for h in hosts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--icmplib", action="store_true", help="also time icmplib.async_multiping once")
    parser.add_argument("--no-write", action="store_true", help="print only, leave docs/BENCHMARKS.md alone")
    args = parser.parse_args()
    if shutil.which("fping") is None:
        print("fping is not installed (apt-get install fping)", file=sys.stderr)
        return 2
    addresses = [loopback(i) for i in range(args.devices)]
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("\n".join(addresses) + "\n")
    ours = asyncio.run(wardtui_rounds(addresses, args.repeat))
    theirs = [fping_round(Path(f.name)) for _ in range(args.repeat)]
    # fping's time includes starting a process, opening its socket and reading the list;
    # wardtui's is measured in-process on an open socket. Show fping's fixed cost beside it.
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as one:
        one.write(addresses[0] + "\n")
    fixed = min(fping_round(Path(one.name))[0] for _ in range(args.repeat))
    best_ours = min(t for t, _, _ in ours)
    best_fping = min(t for t, _ in theirs)
    rows = [
        "| tool | best s | median s | CPU s (best run) | answered |",
        "|---|---|---|---|---|",
        f"| wardtui IcmpProber | {best_ours:.3f} | {statistics.median(t for t, _, _ in ours):.3f} | "
        f"{min(c for _, c, _ in ours):.3f} | {min(a for _, _, a in ours)}/{args.devices} |",
        f"| fping -c1 -t500 -i0 | {best_fping:.3f} | {statistics.median(t for t, _ in theirs):.3f} | — | "
        f"{min(a for _, a in theirs)}/{args.devices} |",
    ]
    if args.icmplib:
        t, alive = asyncio.run(icmplib_round(addresses))
        rows.append(f"| icmplib async_multiping (1000 tasks) | {t:.3f} | — | — | {alive}/{args.devices} |")
    body = (f"### One round over {args.devices:,} loopback addresses\n\n"
            f"Command (as root): `python bench/round.py --devices {args.devices} --repeat {args.repeat}"
            f"{' --icmplib' if args.icmplib else ''}`\n\n" + "\n".join(rows) +
            f"\n\n**Ratio wardtui / fping (best of {args.repeat}): {best_ours / best_fping:.2f}x** "
            "(below 1 is faster than fping). fping's time includes its start-up (process, socket, "
            f"reading the list): {fixed * 1000:.1f} ms for a one-address list; without it the ratio is "
            f"{best_ours / max(best_fping - fixed, 1e-9):.2f}x. wardtui's excludes opening its socket.\n")
    print(body)
    if not args.no_write:
        write_section("round", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
