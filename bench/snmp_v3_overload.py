"""SNMPv3 overload: more v3 authPriv agents than the v3 path can poll per interval.

AGENTS loopback addresses (127.30.x.y) are served by Debian ``snmpd`` processes (at most
ADDRS_PER_AGENT addresses each, the lab's SHA/AES-128 user), all polled by wardtui's
``SnmpPoller`` + ``SnmpClient`` in this process at INTERVAL seconds (timeout 2 s, 1 retry:
the defaults). Nothing else runs in the process. With ``--hog N``, N busy processes (a
``while True: pass`` each) share the machine's cores during the measured window: other work
on the machine. Every second the poller's gauges are sampled: polls/s, timeouts, polls
skipped (busy, for v3 capacity), agents failing, polls not made because backed off.

Each run is a fresh process. ``--label`` names the run in the table (e.g. the code's state:
"before", "after"); the section of docs/BENCHMARKS.md keeps the rows of earlier runs with
other labels, so a before/after table is built by running the same command on both trees.

Run as root: python bench/snmp_v3_overload.py [--agents 2000] [--interval 10] [--duration 75]
[--warmup 20] [--hog 0] [--label after]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._report import DOC, write_section  # noqa: E402
from poller.bus import EventBus  # noqa: E402
from poller.credentials import V3  # noqa: E402
from poller.snmp_poller import SnmpConfig, SnmpPoller  # noqa: E402
from poller.snmp_source import Agent, SnmpError  # noqa: E402
from poller.snmp_walk import SnmpClient  # noqa: E402
from tests.lab.snmp_agents import DEFAULT_V3_USERS, SnmpdAgent, free_udp_port, loopback_addresses  # noqa: E402

V3_NAME = "lab-sha-aes"
SECTION = "snmp-v3-overload"


def credential() -> V3:
    e = DEFAULT_V3_USERS[V3_NAME]
    return V3(V3_NAME, e["user"], e["auth_protocol"], e["auth_key"], e["priv_protocol"], e["priv_key"])


async def closed_loop(agents: list[Agent], concurrency: int) -> float:
    """The v3 path's capacity here and now: polls/s of ``SnmpClient.poll`` over every agent with
    ``concurrency`` in flight, after a first pass (first contacts); a client of its own."""
    client = SnmpClient()
    try:
        for timed in (False, True):
            pending = iter(agents)
            t0 = time.perf_counter()

            async def worker(pending: Iterator[Agent]) -> None:
                for agent in pending:
                    with contextlib.suppress(SnmpError):
                        await client.poll(agent)

            await asyncio.gather(*(worker(pending) for _ in range(concurrency)))
            if timed:
                return len(agents) / (time.perf_counter() - t0)
    finally:
        client.close()
    return 0.0


def _hogs(n: int) -> list[subprocess.Popen[bytes]]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


async def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    addresses = loopback_addresses(args.agents, "127.30.0.1")
    port = free_udp_port(addresses[0])
    agents: list[SnmpdAgent] = []
    for i in range(0, len(addresses), args.addrs_per_agent):
        agent = SnmpdAgent(addresses[i:i + args.addrs_per_agent], port, workdir=workdir / f"snmpd{i}",
                          start_timeout=120)
        agent.start()
        agents.append(agent)
    hogs: list[subprocess.Popen[bytes]] = []
    try:
        cred = credential()
        capacity = await closed_loop([Agent(f"c-{a}", a, port, cred) for a in addresses], 32)
        bus = EventBus()
        sub = bus.subscribe("bench", maxsize=1_000_000)
        poller = SnmpPoller([Agent(a, a, port, cred) for a in addresses], SnmpClient(), bus,
                            config=SnmpConfig(interval=args.interval))
        task = asyncio.create_task(poller.run())
        samples: list[dict[str, float]] = []
        t0 = time.monotonic()
        hog_at = t0 + args.warmup
        cpu0, cpu_t0 = 0.0, None
        while time.monotonic() - t0 < args.warmup + args.duration:
            await asyncio.sleep(1.0)
            sub.drain()
            if cpu_t0 is None and time.monotonic() >= hog_at:
                hogs = _hogs(args.hog)
                cpu0, cpu_t0 = time.process_time(), time.monotonic()
            g = poller.gauges()
            g["t"] = time.monotonic() - t0
            g["backed_off_agents"] = float(sum(1 for r in poller._runs if r.wait > 0 or r.failures))
            samples.append(g)
        cpu = 100 * (time.process_time() - cpu0) / (time.monotonic() - (cpu_t0 or t0))
        load = os.getloadavg()[1]  # 5-minute: the other engineers' work on this machine too
        poller.stop()
        await task
        poller.close()
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
        for agent in agents:
            agent.close()
    window = [s for s in samples if s["t"] > args.warmup]
    first, last = window[0], window[-1]

    def delta(key: str) -> float:
        return last.get(key, 0.0) - first.get(key, 0.0)

    rates = [s["snmp_polls_per_s"] for s in window]
    return {"label": args.label, "agents": args.agents, "interval": args.interval, "hog": args.hog,
            "duration": args.duration, "snmpd": len(agents), "capacity": capacity, "cpu_pct": cpu,
            "load": load,
            "polls_per_s_median": statistics.median(rates), "polls_per_s_min": min(rates),
            "polls_per_s_last10": statistics.mean(rates[-10:]),
            "timeouts": delta("snmp_timeouts"), "failed": delta("snmp_failed"),
            "skipped": delta("snmp_skipped"), "skipped_capacity": delta("snmp_skipped_capacity"),
            "backed_off_polls": delta("snmp_backed_off"),
            "agents_failing_max": max(s["snmp_agents_failing"] for s in window),
            "agents_backed_off_max": max(s["backed_off_agents"] for s in window),
            "v3_limit": [round(s.get("snmp_v3_limit", 0.0)) for s in window[::5]],
            "rates": [round(r) for r in rates]}


def _rows_kept() -> list[str]:
    """Table rows of earlier runs in the section (their label is in the first column)."""
    text = DOC.read_text() if DOC.exists() else ""
    m = re.search(rf"<!-- bench:{SECTION} -->(.*?)<!-- /bench:{SECTION} -->", text, re.S)
    return [line for line in (m.group(1).splitlines() if m else []) if line.startswith("| ") and
            not line.startswith("| code")]


def _format(r: dict[str, Any], args: argparse.Namespace) -> str:
    machine = f"{r['hog']} hog(s)" if r["hog"] else "no hog"
    row = (f"| {r['label']} | {machine} | "
           f"{r['polls_per_s_median']:.0f} | {r['polls_per_s_min']:.0f} | {r['polls_per_s_last10']:.0f} | "
           f"{r['timeouts']:.0f} | {r['skipped']:.0f} ({r['skipped_capacity']:.0f}) | "
           f"{r['agents_failing_max']:.0f} | {r['agents_backed_off_max']:.0f} | "
           f"{r['capacity']:.0f} | {r['cpu_pct']:.0f} | {r['load']:.1f} | "
           f"{' '.join(map(str, r['rates'][::5]))} |")
    kept = [line for line in _rows_kept()
            if not line.startswith(f"| {r['label']} | {machine} |")]
    rows = sorted([*kept, row])
    return (f"### {args.agents:,} v3 authPriv agents at a {args.interval:g} s interval\n\n"
            f"Command (as root, on each tree): `python bench/snmp_v3_overload.py --agents {args.agents} "
            f"--interval {args.interval:g} --duration {args.duration:g} --warmup {args.warmup:g} "
            "--hog H --label LABEL`\n\n"
            f"{args.agents:,} loopback addresses served by snmpd ({args.addrs_per_agent} addresses per "
            f"process), SHA/AES-128 authPriv, polled by `SnmpPoller` alone in one process (timeout 2 s, "
            f"1 retry). Demand is {args.agents / args.interval:.0f} polls/s; the v3 path alone does "
            "~105 full / ~165 fast polls/s (snmp-throughput). Measured over "
            f"{args.duration:g} s after a warm-up of {args.warmup:g} s (first contacts); `hog`: busy "
            "processes started at the end of the warm-up (other work on the 2 cores). Skipped: all "
            "skipped polls, in brackets those skipped for v3 capacity. Backed off: agents failing or "
            "in back-off at the worst second. Capacity: the v3 path's own polls/s in the same run, "
            "before the poller starts (`SnmpClient.poll` over every agent, 32 in flight, after a "
            "first pass). CPU: this process, % of one core, over the measured window; load: the "
            "machine's 5-minute load average at the end (2 cores, shared with other work).\n\n"
            "| code | machine | polls/s median | min | last 10 s | timeouts | skipped (capacity) | "
            "agents failing max | agents backed off max | capacity polls/s | CPU % | load | "
            "polls/s every 5 s |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n\n"
            "Before (every due v3 poll started, up to the 2,000 cap): answers queue behind pysnmp's "
            "CPU past the 2 s timeout, healthy agents time out, are retried and backed off. After "
            "(`poller/snmp_admission.py`): v3 polls beyond what is answered within the latency "
            "target are skipped and counted for capacity (loop-lag: the limit shrinks on late "
            "answers only while the event loop lags, so far agents do not read as load); "
            "throughput rises through the window as "
            "the last first contacts (discovery, ~3 requests) are made and the limit grows, and "
            "dips when the hog takes the CPU, without a timeout.\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, default=2000)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--duration", type=float, default=75.0)
    parser.add_argument("--warmup", type=float, default=20.0)
    parser.add_argument("--addrs-per-agent", type=int, default=500)
    parser.add_argument("--hog", type=int, default=0, help="busy processes during the measured window")
    parser.add_argument("--label", default="after")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("run as root (thousands of loopback sockets in snmpd)", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="wardtui-bench-v3-") as tmp:
        result = asyncio.run(run(args, Path(tmp)))
    print(json.dumps(result), flush=True)
    body = _format(result, args)
    print(body)
    if not args.no_write:
        write_section(SECTION, body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
