"""SNMP: devices polled per second beside net-snmp, and the largest device count held at 60 s.

Part 1, throughput. One Debian ``snmpd`` bound to AGENTS loopback addresses (127.10.x.y) serves
the host's real system group and IF-MIB. wardtui's ``SnmpClient.poll`` polls every address
once per pass, at most CONCURRENCY polls in flight, from this process; devices/s is polls
over wall time, CPU the process's ``time.process_time()``. Regimes: the first contact (a new
target: engine slot, LCD entry, for v3 discovery and key localization), *full* polls
(``full_every=1``: every interface column) and *fast* polls (status and counters only, names
and speeds from the last full poll; the default ``full_every=10`` makes 9 of 10 polls fast).
Baseline: net-snmp's ``snmpbulkget`` sending the very PDU wardtui sends in that regime (the
system group as non-repeaters, the same columns, the same max-repetitions), one process per
device, run by ``xargs -P`` at several parallelisms, best kept; its CPU is the children's
rusage. net-snmp's command-line tools take one agent per invocation, so no net-snmp tool can
poll many agents from one process: its figure includes a process start per device, which is
measured alone too (``snmpbulkget -V`` under the same ``xargs``). Both sides share the 2 cores
with snmpd, whose CPU is reported per poll.

Part 2, capacity. For each device count N, in a fresh process: the whole headless stack as
``bench/capacity.py`` runs it (real ICMP to loopback at a 10 s interval, engine, SQLite store
writer) plus the SNMP poller for every device (v2c, 60 s interval), the agents being snmpd
processes bound to the devices' own addresses (ADDRS_PER_AGENT addresses each). After a
warm-up of one SNMP interval (first contacts and full polls), DURATION seconds are measured:
SNMP polls/s, skipped polls, timeouts and failures, lag (due -> sent) p99, the same for ICMP,
the CPU of wardtui and of the snmpd processes. ``--capacity-version 3`` polls every device over
SNMPv3 authPriv SHA/AES-128 (our USM: discovery, keys localised per engine, one snmpd engine
per ADDRS_PER_AGENT addresses, but one discovery per device address) instead of v2c.

Run as root: python bench/snmp.py [--agents 500] [--passes 3] [--devices 5000,10000,15000]
[--duration 150] [--warmup 60] [--part throughput|capacity|both] [--capacity-version 2c|3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._report import write_section  # noqa: E402
from poller.credentials import V3, V2c  # noqa: E402
from poller.snmp_source import Agent, SnmpError  # noqa: E402
from poller.snmp_walk import ALL_COLUMNS, FAST_64, SYSTEM_PREV, SnmpClient  # noqa: E402
from tests.lab.snmp_agents import (  # noqa: E402
    DEFAULT_V3_USERS,
    SnmpdAgent,
    loopback_addresses,
    net_snmp_auth_args,
    write_credentials_file,
)

CLK_TCK = os.sysconf("SC_CLK_TCK")
V3_NAME = "lab-sha-aes"  # SHA / AES-128 authPriv


def cpu_of(pid: int) -> float:
    """utime + stime of a live process, seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def credential_of(version: str, agent: SnmpdAgent) -> tuple[V2c | V3, dict[str, Any]]:
    """wardtui's credential and the credentials-file entry (for net-snmp's options)."""
    if version == "2c":
        return V2c("lab-v2c", agent.v2c_community), agent.v2c
    entry = DEFAULT_V3_USERS[V3_NAME]
    return (V3(V3_NAME, entry["user"], entry["auth_protocol"], entry["auth_key"], entry["priv_protocol"],
               entry["priv_key"]), entry)


# -- part 1: throughput ---------------------------------------------------------------------


async def _wardtui_pass(client: SnmpClient, agents: list[Agent], concurrency: int) -> dict[str, float]:
    pending = iter(agents)
    errors: dict[str, int] = {}
    interfaces = 0

    async def worker() -> None:
        nonlocal interfaces
        for agent in pending:
            try:
                raw = await client.poll(agent)
                interfaces += len(raw.interfaces)
            except SnmpError as exc:
                errors[exc.reason] = errors.get(exc.reason, 0) + 1

    requests0 = client.requests
    cpu0, t0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    return {"polls": len(agents), "wall": wall, "cpu": cpu, "errors": sum(errors.values()),
            "error_reasons": errors,
            "interfaces": interfaces / len(agents), "requests": (client.requests - requests0) / len(agents)}


def _netsnmp_pass(targets: Path, parallel: int, argv: list[str], expect_lines: int,
                  workdir: Path) -> dict[str, float]:
    """``xargs -P parallel`` running ``argv TARGET`` for each line of ``targets``; rusage of the children."""
    out = workdir / "netsnmp.out"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    with out.open("wb") as sink:
        subprocess.run(["xargs", "-a", str(targets), "-P", str(parallel), "-I", "{}", *argv],
                       stdout=sink, stderr=subprocess.DEVNULL, check=False)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    with out.open("rb") as f:
        lines = sum(1 for _ in f)
    return {"wall": wall, "cpu": cpu, "lines": lines, "complete": lines == expect_lines}


def _pdu_oids(columns: tuple[tuple[str, tuple[int, ...]], ...]) -> list[str]:
    return [".".join(map(str, oid)) for oid in (*SYSTEM_PREV, *(prefix for _, prefix in columns))]


async def throughput(args: argparse.Namespace, version: str, workdir: Path) -> dict[str, Any]:
    addresses = loopback_addresses(args.agents, "127.10.0.1")
    agent = SnmpdAgent(addresses, workdir=workdir / f"snmpd-{version}", start_timeout=60)
    agent.start()
    try:
        credential, entry = credential_of(version, agent)
        result: dict[str, Any] = {"version": version, "agents": len(addresses), "passes": args.passes,
                                  "concurrency": args.concurrency}
        rows: dict[str, dict[str, float]] = {}
        fast_columns = FAST_64
        reps = 5
        for regime, full_every in (("full", 1), ("fast", 10**9)):
            client = SnmpClient(full_every=full_every)
            # Each regime gets its own agents (keys), so the first contact is measured twice.
            agents = [Agent(f"{regime}-{a}", a, agent.port, credential) for a in addresses]
            s0 = cpu_of(agent.pid or 0)
            first = await _wardtui_pass(client, agents, args.concurrency)
            first["agent_cpu"] = cpu_of(agent.pid or 0) - s0
            rows.setdefault("first contact", first)
            fast_columns, reps = client.fast_plan(agents[0])  # what wardtui's fast polls of it send
            total = {"polls": 0, "wall": 0.0, "cpu": 0.0, "errors": 0, "agent_cpu": 0.0}
            for _ in range(args.passes):
                s0 = cpu_of(agent.pid or 0)
                one = await _wardtui_pass(client, agents, args.concurrency)
                total["agent_cpu"] += cpu_of(agent.pid or 0) - s0
                for key in ("polls", "wall", "cpu", "errors"):
                    total[key] += one[key]
                for reason, count in one["error_reasons"].items():
                    total[f"errors_{reason}"] = total.get(f"errors_{reason}", 0) + count
                total["interfaces"], total["requests"] = one["interfaces"], one["requests"]
            rows[regime] = total
            client.close()
        result["wardtui"] = rows

        # net-snmp: the same PDU per regime, one process per device.
        targets = workdir / f"targets-{version}"
        targets.write_text("".join(f"udp:{a}:{agent.port}\n" for a in addresses * args.passes))
        polls = len(addresses) * args.passes
        base = ["snmpbulkget", *net_snmp_auth_args(entry), "-On", "-Oq", "-m", "", "-M", "", "-t", "2",
                "-r", "1",
                f"-Cn{len(SYSTEM_PREV)}", f"-Cr{reps}", "{}"]
        netsnmp: dict[str, dict[str, Any]] = {}
        for regime, columns in (("full", ALL_COLUMNS), ("fast", fast_columns)):
            # One line per var-bind: the system group, then `reps` rows of each column
            # (the last repetition leaves each column: it is returned and printed too).
            expect = polls * (len(SYSTEM_PREV) + len(columns) * reps)
            best: dict[str, Any] | None = None
            for parallel in args.parallel:
                s0 = cpu_of(agent.pid or 0)
                one = _netsnmp_pass(targets, parallel, [*base, *_pdu_oids(columns)], expect, workdir)
                one["agent_cpu"] = cpu_of(agent.pid or 0) - s0
                one["parallel"] = parallel
                one["polls"] = polls
                netsnmp.setdefault(f"{regime}-all", []).append(one)  # type: ignore[attr-defined]
                if one["complete"] and (best is None or one["wall"] < best["wall"]):
                    best = one
            netsnmp[regime] = best or {"wall": float("nan"), "cpu": float("nan"), "parallel": 0,
                                       "polls": polls, "complete": False, "agent_cpu": float("nan")}
        # Process start alone, under the same xargs and the best parallelism of the full regime.
        start = _netsnmp_pass(targets, int(netsnmp["full"]["parallel"] or 8), ["snmpbulkget", "-V"],
                              polls, workdir)
        start["polls"] = polls
        netsnmp["start"] = start
        result["netsnmp"] = netsnmp
        result["reps"] = reps
        return result
    finally:
        agent.close()


def _fmt_throughput(results: list[dict[str, Any]], args: argparse.Namespace) -> tuple[str, list[str]]:
    rows = ["| SNMP | regime | wardtui devices/s | net-snmp devices/s (best -P) | ratio | "
            "wardtui CPU ms/poll | net-snmp CPU ms/poll | snmpd CPU ms/poll (wardtui / net-snmp) | errors |",
            "|---|---|---|---|---|---|---|---|---|"]
    summary = []
    for r in results:
        w, n = r["wardtui"], r["netsnmp"]
        label = "v2c" if r["version"] == "2c" else "v3 SHA/AES"
        first = w["first contact"]
        rows.append(f"| {label} | first contact | {first['polls'] / first['wall']:,.0f} | — | — | "
                    f"{1000 * first['cpu'] / first['polls']:.2f} | — | "
                    f"{1000 * first['agent_cpu'] / first['polls']:.2f} / — | {first['errors']} |")
        for regime in ("full", "fast"):
            wr, nr = w[regime], n[regime]
            wd, nd = wr["polls"] / wr["wall"], nr["polls"] / nr["wall"]
            rows.append(f"| {label} | {regime} | {wd:,.0f} | {nd:,.0f} (-P {nr['parallel']}) | "
                        f"{wd / nd:.2f}x | "
                        f"{1000 * wr['cpu'] / wr['polls']:.2f} | {1000 * nr['cpu'] / nr['polls']:.2f} | "
                        f"{1000 * wr['agent_cpu'] / wr['polls']:.2f} / "
                        f"{1000 * nr['agent_cpu'] / nr['polls']:.2f} | "
                        f"{wr['errors']}{'' if nr['complete'] else ' (net-snmp incomplete)'} |")
        full, fast = w["full"], w["fast"]
        cpu_full, cpu_fast = 1000 * full["cpu"] / full["polls"], 1000 * fast["cpu"] / fast["polls"]
        mixed = (cpu_full + 9 * cpu_fast) / 10
        start = n["start"]
        summary.append(
            f"**{label}: wardtui {full['polls'] / full['wall']:,.0f} full / "
            f"{fast['polls'] / fast['wall']:,.0f} "
            f"fast polls/s, net-snmp {n['full']['polls'] / n['full']['wall']:,.0f} / "
            f"{n['fast']['polls'] / n['fast']['wall']:,.0f}: "
            f"{(full['polls'] / full['wall']) / (n['full']['polls'] / n['full']['wall']):.2f}x / "
            f"{(fast['polls'] / fast['wall']) / (n['fast']['polls'] / n['fast']['wall']):.2f}x.** "
            "wardtui CPU "
            f"{cpu_full:.2f} ms per full poll, {cpu_fast:.2f} ms per fast one "
            f"({cpu_full - cpu_fast:.2f} ms less), {mixed:.2f} ms per poll at the default `full_every=10`; "
            f"{full['interfaces']:.0f} interfaces, {full['requests']:.1f} GETBULK per poll "
            f"(max-repetitions {r['reps']}). net-snmp's process start alone (`snmpbulkget -V`, "
            f"-P {n['full']['parallel']}): {start['polls'] / start['wall']:,.0f}/s, "
            f"{1000 * start['cpu'] / start['polls']:.2f} ms CPU each.")
    body = (f"### Devices polled per second, one snmpd on {args.agents} loopback addresses\n\n"
            f"Command (as root): `python bench/snmp.py --part throughput --agents {args.agents} "
            f"--passes {args.passes} --concurrency {args.concurrency} "
            f"--parallel {','.join(map(str, args.parallel))}`\n\n"
            "A poll is the system group and the IF-MIB interface columns of one device. wardtui: "
            f"`SnmpClient.poll`, {args.concurrency} polls in flight, one process (one core at most); "
            "*full* = every column (`full_every=1`), *fast* = status and counters only (names and "
            "speeds from the last full poll), *first contact* = the first poll of each target. "
            f"Each regime: {args.passes} passes over the {args.agents} addresses after the first. "
            "net-snmp: `snmpbulkget` sending the same PDU (the system group as non-repeaters, the same "
            "columns and max-repetitions), one process per device under `xargs -P`, the best "
            "parallelism of " + ", ".join(map(str, args.parallel)) + " kept; no net-snmp tool polls "
            "several agents from one process, so a process start per device is part of its figure "
            "(measured alone below). CPU: the wardtui process's `time.process_time()`, net-snmp's "
            "children's rusage, snmpd's utime + stime; all three share the 2 cores.\n\n"
            + "\n".join(rows) + "\n\n")
    return body, summary


def _fmt_spread(runs: list[list[dict[str, Any]]], args: argparse.Namespace) -> str:
    """One row per run and version: devices/s of both sides in each regime, their ratio, CPU."""
    rows = ["| run | SNMP | full: wardtui / net-snmp devices/s | ratio | fast: wardtui / net-snmp | ratio | "
            "wardtui CPU ms per full / fast poll | net-snmp CPU ms per full poll | errors (wardtui) |",
            "|---|---|---|---|---|---|---|---|---|"]
    ratios: dict[str, dict[str, list[float]]] = {}
    for number, results in enumerate(runs, 1):
        for r in results:
            w, n = r["wardtui"], r["netsnmp"]
            label = "v2c" if r["version"] == "2c" else "v3 SHA/AES"
            cells = []
            for regime in ("full", "fast"):
                wd, nd = w[regime]["polls"] / w[regime]["wall"], n[regime]["polls"] / n[regime]["wall"]
                ratios.setdefault(label, {}).setdefault(regime, []).append(wd / nd)
                cells.append(f"{wd:,.0f} / {nd:,.0f} (-P {n[regime]['parallel']}) | {wd / nd:.2f}x")
            reasons = ", ".join(f"{regime} {k[len('errors_'):]} {v}" for regime in ("full", "fast")
                                for k, v in w[regime].items() if k.startswith("errors_"))
            rows.append(f"| {number} | {label} | {cells[0]} | {cells[1]} | "
                        f"{1000 * w['full']['cpu'] / w['full']['polls']:.2f} / "
                        f"{1000 * w['fast']['cpu'] / w['fast']['polls']:.2f} | "
                        f"{1000 * n['full']['cpu'] / n['full']['polls']:.2f} | "
                        f"{w['full']['errors'] + w['fast']['errors']}{f' ({reasons})' if reasons else ''} |")
    summary = []
    for label, by_regime in ratios.items():
        parts = [f"{regime} {sorted(v)[len(v) // 2]:.2f}x (min {min(v):.2f}x, max {max(v):.2f}x)"
                 for regime, v in by_regime.items()]
        summary.append(f"**{label} over {len(runs)} runs, wardtui devices/s over net-snmp's, median: "
                       + "; ".join(parts) + ".**")
    return (f"### Devices polled per second, {len(runs)} runs of the same-run comparison\n\n"
            "Command (as root): `nice -n 19 python bench/snmp.py --part throughput "
            f"--versions {args.versions} --runs {len(runs)} --agents {args.agents} --passes {args.passes} "
            f"--concurrency {args.concurrency} --parallel {','.join(map(str, args.parallel))}`\n\n"
            "Each run is the comparison of the section above (one snmpd on the loopback addresses, "
            "wardtui's `SnmpClient.poll` against net-snmp's `snmpbulkget` sending the same PDU, one "
            "process per device under `xargs -P`, the best parallelism kept), repeated to show its "
            "spread.\n\n" + "\n".join(rows) + "\n\n" + "\n\n".join(summary) + "\n")


# -- part 2: capacity -----------------------------------------------------------------------


def _inventory(devices: int, path: Path, port: int, credential: str = "lab-v2c") -> list[str]:
    import csv

    from poller.generate import bank_rows

    addresses = []
    with path.open("w") as out:
        writer = csv.DictWriter(out, fieldnames=["name", "address", "branch", "region", "type", "parent",
                                                 "interval", "tags", "snmp_credential", "snmp_port"],
                                lineterminator="\n")
        writer.writeheader()
        for row in bank_rows(devices):
            writer.writerow({**row, "snmp_credential": credential, "snmp_port": str(port)})
            addresses.append(row["address"])
    return addresses


async def _capacity_one(devices: int, duration: float, warmup: float, per_agent: int, workdir: Path,
                        profile: str | None, version: str = "2c") -> dict[str, Any]:
    from poller.events import Gauges
    from poller.generate import bank_rows
    from tests.lab.snmp_agents import free_udp_port
    from wardtui.process import POLL
    from wardtui.runtime import Options, Runtime

    first = next(bank_rows(1))["address"]
    port = free_udp_port(first)
    addresses = _inventory(devices, workdir / "inv.csv", port, "lab-v2c" if version == "2c" else V3_NAME)
    agents: list[SnmpdAgent] = []
    t0 = time.monotonic()
    for i in range(0, len(addresses), per_agent):
        agent = SnmpdAgent(addresses[i:i + per_agent], port, workdir=workdir / f"snmpd{i // per_agent}",
                          start_timeout=120)
        agent.start()
        agents.append(agent)
    agents_start = time.monotonic() - t0
    try:
        creds = workdir / "credentials.yaml"
        if version == "2c":
            creds.write_text(f"lab-v2c:\n  version: 2c\n  community: {agents[0].v2c_community}\n")
            creds.chmod(0o600)
        else:
            write_credentials_file(creds, {V3_NAME: DEFAULT_V3_USERS[V3_NAME]})
        runtime = Runtime(Options(inventory=workdir / "inv.csv", db=f"sqlite:///{workdir}/h.db",
                                  interval=10.0,
                                  credentials=creds, snmp_interval=60.0),
                          process=POLL)  # as `wardtui poll` runs it: the collector's settings
        assert runtime.snmp is not None and len(runtime.snmp) == devices
        sub = runtime.engine.bus.subscribe("bench", maxsize=1_000_000, sample_batch=10_000)
        gauges: list[Gauges] = []

        async def collect() -> None:
            while batch := await sub.get_batch():
                gauges.extend(e for e in batch if isinstance(e, Gauges))

        marks: dict[str, Any] = {}

        async def mark() -> None:
            await asyncio.sleep(warmup)
            marks["cpu"], marks["t"] = time.process_time(), time.monotonic()
            marks["snmpd"] = sum(cpu_of(a.pid or 0) for a in agents)
            marks["gauges"] = len(gauges)
            if profile:
                marks["profiler"] = subprocess.Popen(
                    ["py-spy", "record", "-p", str(os.getpid()), "-d", str(int(duration)), "-r", "50",
                     "-f", "raw", "-o", profile], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        collector = asyncio.create_task(collect())
        marker = asyncio.create_task(mark())
        await runtime.start()
        runtime.settle_after_first_round()  # as wardtui poll and serve do (wardtui/headless.py)
        await runtime.engine.run(warmup + duration)
        cpu, wall = time.process_time() - marks["cpu"], time.monotonic() - marks["t"]
        snmpd_cpu = sum(cpu_of(a.pid or 0) for a in agents) - marks["snmpd"]
        await marker
        counters = runtime.snmp.client.counters()
        writer_dropped = runtime.writer.dropped if runtime.writer else -1
        await runtime.close()
        sub.close()
        await collector
        if "profiler" in marks:
            marks["profiler"].wait(60)
    finally:
        for agent in agents:
            agent.close()
    window = gauges[marks["gauges"]:] or gauges
    before = gauges[marks["gauges"] - 1] if marks["gauges"] else gauges[0]
    last = gauges[-1]

    def ex(g: Gauges, key: str) -> float:
        return g.extra.get(key, 0.0)

    return {"devices": devices, "version": version, "agents": len(agents), "agents_start_s": agents_start,
            "wall": wall,
            "snmp_skipped_capacity": ex(last, "snmp_skipped_capacity"),
            "snmp_v3_limit_min": min((ex(g, "snmp_v3_limit") for g in window), default=0.0),
            "snmp_v3_rediscoveries": ex(last, "snmp_v3_rediscoveries"),
            "snmp_polls_per_s": sum(ex(g, "snmp_polls_per_s") for g in window) / len(window),
            "snmp_requests_per_s": sum(ex(g, "snmp_requests_per_s") for g in window) / len(window),
            "snmp_skipped": ex(last, "snmp_skipped"), "snmp_skipped_window": ex(last, "snmp_skipped") -
            ex(before, "snmp_skipped"),
            "snmp_timeouts": ex(last, "snmp_timeouts"), "snmp_failed": ex(last, "snmp_failed"),
            "snmp_auth_failures": ex(last, "snmp_auth_failures"),
            "snmp_lag_p99_ms": max(ex(g, "snmp_lag_p99_ms") for g in window),
            "snmp_in_flight_max": max(ex(g, "snmp_in_flight") for g in window),
            "snmp_not_polled_down": ex(last, "snmp_not_polled_down"),
            "engines": counters.get("engines", 0), "requests": counters.get("requests", 0),
            "icmp_checks_per_s": sum(g.checks_per_s for g in window) / len(window),
            "icmp_skipped": last.skipped, "icmp_lag_p99_ms": max(g.lag_p99_ms for g in window),
            "down": max(g.devices_down for g in window),
            "store_queue_max": max(g.store_queue for g in window),
            "writer_dropped": writer_dropped, "events_dropped": last.extra.get("events_dropped", 0),
            "cpu_pct": 100 * cpu / wall, "snmpd_cpu_pct": 100 * snmpd_cpu / wall,
            "cpu_ms_per_poll": 1000 * cpu / max(1.0, sum(ex(g, "snmp_polls_per_s") for g in window)
                                                / len(window) * wall),
            "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _held(r: dict[str, Any]) -> bool:
    return (r["snmp_skipped"] == 0 and r["snmp_timeouts"] == 0 and r["snmp_failed"] == 0
            and r["icmp_skipped"] == 0
            and r["down"] == 0 and r["snmp_polls_per_s"] >= 0.95 * r["devices"] / 60)


def _fmt_capacity(results: list[dict[str, Any]], args: argparse.Namespace) -> str:
    rows = ["| devices | snmpd processes | SNMP polls/s | skipped | timeouts / failed | SNMP lag p99 ms "
            "(worst second) | ICMP checks/s | ICMP skipped | ICMP lag p99 ms (worst second) | wardtui CPU % "
            "| snmpd CPU % | wardtui CPU ms per SNMP poll | RSS MB |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    rows += [f"| {r['devices']:,} | {r['agents']} | {r['snmp_polls_per_s']:.1f} | {r['snmp_skipped']:.0f} | "
             f"{r['snmp_timeouts']:.0f} / {r['snmp_failed']:.0f} | {r['snmp_lag_p99_ms']:.1f} | "
             f"{r['icmp_checks_per_s']:.0f} | {r['icmp_skipped']} | {r['icmp_lag_p99_ms']:.1f} | "
             f"{r['cpu_pct']:.0f} | {r['snmpd_cpu_pct']:.0f} | {r['cpu_ms_per_poll']:.2f} | "
             f"{r['maxrss_mb']:.0f} |" for r in results]
    best = max((r["devices"] for r in results if _held(r)), default=0)
    v3 = args.capacity_version == "3"
    what = "SNMPv3 authPriv SHA/AES-128" if v3 else "v2c"
    return (f"### Capacity at a 60 s SNMP{'v3' if v3 else ''} interval beside ICMP at 10 s, "
            f"{args.duration:g} s measured\n\n"
            f"Command (as root): `python bench/snmp.py --part capacity --devices {args.devices} "
            f"--duration {args.duration:g} --warmup {args.warmup:g} "
            f"--addrs-per-agent {args.addrs_per_agent}"
            f"{' --capacity-version 3' if v3 else ''}`\n\n"
            "Whole headless stack as in **capacity** (real ICMP to loopback at 10 s, engine, SQLite store "
            f"writer, one process) plus the SNMP poller polling every device ({what}) at 60 s; each device's "
            f"address is served by snmpd (at most {args.addrs_per_agent:,} addresses per snmpd process), "
            f"on the same 2 cores. Figures over the {args.duration:g} s after a warm-up of "
            f"{args.warmup:g} s (the first SNMP interval: first contacts, full polls); skipped, timeouts "
            "and failures count from the start. CPU % of one core over the measured window.\n\n"
            + "\n".join(rows)
            + f"\n\n**Largest count held (zero skipped SNMP polls and ICMP checks, zero SNMP timeouts and "
            f"failures, every device polled once a minute, no false DOWN): {best:,} devices.**\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=("throughput", "capacity", "both"), default="both")
    parser.add_argument("--agents", type=int, default=500, help="loopback addresses of the throughput snmpd")
    parser.add_argument("--passes", type=int, default=3, help="timed passes over them per regime")
    parser.add_argument("--concurrency", type=int, default=64, help="wardtui polls in flight")
    parser.add_argument("--parallel", type=lambda s: [int(x) for x in s.split(",")], default=[4, 8, 16],
                        help="xargs -P values for net-snmp (best kept)")
    parser.add_argument("--versions", default="2c,3")
    parser.add_argument("--devices", default="5000,10000,15000")
    parser.add_argument("--duration", type=float, default=150.0)
    parser.add_argument("--warmup", type=float, default=60.0)
    parser.add_argument("--addrs-per-agent", type=int, default=500)
    parser.add_argument("--capacity-version", choices=("2c", "3"), default="2c",
                        help="capacity: poll every device over v2c or SNMPv3 authPriv SHA/AES-128 "
                             "(section snmp-capacity-v3)")
    parser.add_argument("--profile", help="py-spy raw output for the measured window (with --one)")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--no-write", action="store_true", help="print only, leave docs/BENCHMARKS.md alone")
    parser.add_argument("--runs", type=int, default=1,
                        help="throughput: repeat the whole comparison; with more than one, write the spread "
                             "of the ratios over the runs (section snmp-throughput-spread) instead")
    args = parser.parse_args()
    if shutil.which("snmpd") is None or shutil.which("snmpbulkget") is None:
        print("needs Debian's snmpd and snmp packages", file=sys.stderr)
        return 1
    if args.one:
        with tempfile.TemporaryDirectory(prefix="wardtui-bench-snmp-") as tmp:
            result = asyncio.run(_capacity_one(args.one, args.duration, args.warmup, args.addrs_per_agent,
                                               Path(tmp), args.profile, args.capacity_version))
        print(json.dumps(result))
        return 0
    started = time.monotonic()
    sections: dict[str, str] = {}
    if args.part in ("throughput", "both"):
        runs: list[list[dict[str, Any]]] = []
        for _ in range(max(1, args.runs)):
            results = []
            with tempfile.TemporaryDirectory(prefix="wardtui-bench-snmp-") as tmp:
                for version in args.versions.split(","):
                    result = asyncio.run(throughput(args, version, Path(tmp)))
                    print(json.dumps(result), flush=True)
                    results.append(result)
            runs.append(results)
        if args.runs > 1:
            sections["snmp-throughput-spread"] = _fmt_spread(runs, args)
        else:
            table, summary = _fmt_throughput(runs[0], args)
            sections["snmp-throughput"] = table + "\n\n".join(summary) + "\n"
    if args.part in ("capacity", "both"):
        results = []
        for n in (int(x) for x in args.devices.split(",")):
            cmd = [sys.executable, __file__, "--one", str(n), "--duration", str(args.duration), "--warmup",
                   str(args.warmup), "--addrs-per-agent", str(args.addrs_per_agent),
                   "--capacity-version", args.capacity_version]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                print(proc.stderr, file=sys.stderr)
                return 1
            result = json.loads(proc.stdout.strip().splitlines()[-1])
            print(json.dumps(result), flush=True)
            results.append(result)
        name = "snmp-capacity-v3" if args.capacity_version == "3" else "snmp-capacity"
        sections[name] = _fmt_capacity(results, args)
    minutes = (time.monotonic() - started) / 60
    for name, body in sections.items():
        body += f"\nWhole run ({args.part}) {minutes:.1f} min.\n"
        print(body)
        if not args.no_write:
            write_section(name, body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
