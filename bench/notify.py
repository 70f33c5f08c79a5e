"""Notifications under a storm: confirmed transition -> the receiver, and what the notifier costs
the engine (issue 15 item 8).

One process runs what `wardtui serve --notify` runs: the engine (a fake network: every device
answers after 1 ms unless its address is made dead; a dead one times out in real time), the
notifier (poller/notify/notifier.py), the outbox in a SQLite history database
(store/outbox.py) and the delivery with a real webhook receiver (httpx) posting to an HTTP server
in a separate process on a loopback port, which records when each message arrived. The
process's collector is set as `wardtui serve` sets its own (wardtui/process.py ``POLL``: a
freeze once the store has started and once every device is up, young collections less often);
without it the quiet windows' lag p99 is the collector's full passes (~45 ms, against ~12 ms).

--branches branches of one router and --per - 1 devices behind it (default 250 x 40 = 10,000
devices), every device checked each --interval (1 s), so that a storm (every device dead at
once) is --branches x --per confirmed transitions within about a second. Each round:
  quiet   --window seconds, nothing fails (notifier on): the engine's lag p99 per second;
  storm   every device dead, --window seconds (notifier on), then everything back;
  control the same storm with the notifier off (its companion not run): what the engine's own
          work costs, so the ratio to it is the notifier's share.
Measured: per device of each storm, Transition.at (the engine established DOWN or UNREACHABLE)
-> the arrival of the first message naming it (p50, p95, max; target p95 <= group_wait + 1 s);
messages per storm (target: one per group, i.e. per branch); the engine's lag p99 (median of
per-second samples) in storm windows with the notifier against the control and against quiet.

--parallel N: Delivery(parallel=N), up to N messages of different groups in flight to the receiver
(default 4, what `wardtui serve` uses for a webhook). --keep-alive: the receiver speaks HTTP/1.1
and keeps connections (a chat service, nginx); by default it speaks HTTP/1.0, so every message
is a new TCP connection. --memory-outbox: the outbox in memory, not SQLite.

Run: python bench/notify.py [--rounds 3] [--parallel N] [--section notify] [--no-write]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._report import write_section  # noqa: E402
from poller.engine import Engine, EngineConfig  # noqa: E402
from poller.events import Gauges, State, Transition  # noqa: E402
from poller.inventory import Device  # noqa: E402
from poller.notify.delivery import Delivery  # noqa: E402
from poller.notify.model import Route  # noqa: E402
from poller.notify.notifier import Notifier  # noqa: E402
from poller.notify.outbox import MemoryOutbox  # noqa: E402
from poller.notify.receiver_config import WebhookConfig  # noqa: E402
from poller.notify.webhook import WebhookReceiver  # noqa: E402
from poller.state import StateConfig  # noqa: E402
from store.history import HistoryStore  # noqa: E402
from store.outbox import SqlOutbox  # noqa: E402
from tests.fakes import FakeProber  # noqa: E402
from wardtui.process import POLL  # noqa: E402

SERVER = r"""
import http.server, json, sys, time
out = open(sys.argv[1], "a", buffering=1)
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = sys.argv[2]  # HTTP/1.1: connections kept (as Slack's, Teams' or nginx's)
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        at = time.time()
        self.send_response(200); self.send_header("Content-Length", "0"); self.end_headers()
        doc = json.loads(body)
        out.write(json.dumps({"at": at, "status": doc["status"], "title": doc["title"],
                              "firing": [a["device"] for a in doc["firing"]],
                              "resolved": [a["device"] for a in doc["resolved"]]}) + "\n")
    def log_message(self, *args): pass
class S(http.server.ThreadingHTTPServer):
    request_queue_size = 128  # socketserver's 5 drops connections made side by side (SYN retried after 1 s)
server = S(("127.0.0.1", 0), H)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


def devices(branches: int, per: int) -> list[Device]:
    out: list[Device] = []
    n = 0
    for b in range(branches):
        router = f"b{b:03d}-rtr"
        for j in range(per):
            address = f"127.6.{n // 250}.{n % 250 + 1}"
            n += 1
            if j == 0:
                out.append(Device(router, address, f"b{b:03d}", "north", "router"))
            else:
                out.append(Device(f"b{b:03d}-d{j:02d}", address, f"b{b:03d}", "north", "atm",
                                  parents=(router,)))
    return out


class Receiver:
    """The HTTP server process and what it recorded."""

    def __init__(self, tmp: Path, protocol: str) -> None:
        self.path = tmp / "received.jsonl"
        self.proc = subprocess.Popen([sys.executable, "-c", SERVER, str(self.path), protocol],
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.url = f"http://127.0.0.1:{int(self.proc.stdout.readline())}/hook"
        self.seen = 0

    def new(self) -> list[dict[str, Any]]:
        lines = self.path.read_text().splitlines() if self.path.exists() else []
        fresh, self.seen = lines[self.seen:], len(lines)
        return [json.loads(line) for line in fresh]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


async def window(engine: Engine, prober: FakeProber, all_devices: list[Device], seconds: float,
                 storm: bool) -> tuple[list[float], dict[str, datetime]]:
    """Lag p99 samples (ms) of ``seconds``; with ``storm`` every device dead meanwhile, and when
    each was established out (Transition.at). Everything back and UP before it returns."""
    sub = engine.bus.subscribe("bench", samples=False)
    if storm:
        prober.down = {d.address for d in all_devices}
    lags: list[float] = []
    out: dict[str, datetime] = {}
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        await asyncio.sleep(0.2)
        for event in sub.drain():
            if isinstance(event, Gauges):
                lags.append(event.lag_p99_ms)
            elif isinstance(event, Transition) and event.to_state in (State.DOWN, State.UNREACHABLE):
                out.setdefault(event.device, event.at)
    engine.bus.unsubscribe(sub)
    prober.down = set()
    deadline = time.monotonic() + 60
    while engine.state_counts[State.UP] != len(all_devices):
        assert time.monotonic() < deadline, "the devices never came back"
        await asyncio.sleep(0.2)
    return lags, out


async def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    all_devices = devices(args.branches, args.per)
    receiver = Receiver(tmp, "HTTP/1.1" if args.keep_alive else "HTTP/1.0")
    store = HistoryStore(f"sqlite+aiosqlite:///{tmp / 'history.db'}")
    await store.open()
    POLL.store_started()
    results: dict[str, Any] = {"quiet": [], "storm": [], "control": [], "latency_s": [], "messages": []}
    try:
        for round_ in range(args.rounds):
            for mode in ("quiet", "storm", "control"):
                prober = FakeProber(rtt_ms=1.0, fast_timeouts=False)
                engine = Engine(all_devices, prober, EngineConfig(
                    interval=args.interval, timeout=0.2, state=StateConfig(confirm_probes=1,
                                                                           confirm_spacing=0.05)))
                delivery = outbox = None
                if mode != "control":
                    if args.memory_outbox:
                        outbox = MemoryOutbox()
                    else:
                        outbox = SqlOutbox(store.db, tmp / f"spool-{round_}-{mode}", site="bench")
                        await outbox.open()
                    hook = WebhookReceiver(WebhookConfig("hook", 0, receiver.url, timeout=30.0))
                    delivery = Delivery(outbox, {"hook": hook}, parallel=args.parallel)
                    await delivery.start()
                    route = Route("noc", ("hook",), group_wait=args.group_wait,
                                  group_interval=args.group_interval)
                    engine.add_companion(Notifier(engine, [route], delivery.put, site="bench"))
                task = asyncio.create_task(engine.run())
                while engine.state_counts[State.UP] != len(all_devices):
                    await asyncio.sleep(0.2)
                POLL.first_round_done()  # as wardtui serve's runtime does after its first round
                await asyncio.sleep(2.0)
                receiver.new()
                lags, out = await window(engine, prober, all_devices, args.window, mode != "quiet")
                results[mode].append(statistics.median(lags))
                if mode == "storm":
                    await asyncio.sleep(args.group_interval + 3.0)  # the recoveries
                    got = receiver.new()
                    first: dict[str, float] = {}
                    for message in got:
                        for name in message["firing"]:
                            first.setdefault(name, message["at"])
                    results["latency_s"] += [first[n] - at.timestamp() for n, at in out.items() if n in first]
                    arrivals = sorted(m["at"] for m in got if m["status"] == "firing")
                    results["messages"].append({
                        "transitions": len(out), "named": len(first),
                        "first_s": (arrivals[0] - min(at.timestamp() for at in out.values())
                                    if arrivals else None),
                        "spread_s": arrivals[-1] - arrivals[0] if arrivals else None,
                        "firing": sum(1 for m in got if m["status"] == "firing"),
                        "resolved": sum(1 for m in got if m["status"] == "resolved")})
                engine.stop()
                await task
                if delivery is not None and outbox is not None:
                    await delivery.stop()
                    if isinstance(outbox, SqlOutbox):
                        await outbox.close()
                print(f"round {round_} {mode:7s}: lag p99 median {results[mode][-1]:.1f} ms"
                      + (f", {results['messages'][-1]}" if mode == "storm" else ""), flush=True)
    finally:
        await store.close()
        receiver.stop()
    return results


def summarize(r: dict[str, Any], args: argparse.Namespace) -> str:
    lat = sorted(r["latency_s"])

    def pct(p: float) -> float:
        return lat[min(len(lat) - 1, int(p * len(lat)))]

    ratios_c = [s / c for s, c in zip(r["storm"], r["control"], strict=True)]
    ratios_q = [s / q for s, q in zip(r["storm"], r["quiet"], strict=True)]
    lines = [
        f"### Notifications under a storm: {args.branches * args.per:,} devices ({args.branches} branches of "
        f"a router and {args.per - 1} devices behind it), every device failing at once",
        "",
        f"Command: `python bench/notify.py --rounds {args.rounds} --branches {args.branches} "
        f"--per {args.per} "
        f"--interval {args.interval:g} --group-wait {args.group_wait:g} "
        f"--group-interval {args.group_interval:g} --window {args.window:g}"
        f" --parallel {args.parallel}{' --keep-alive' if args.keep_alive else ''}"
        f"{' --memory-outbox' if args.memory_outbox else ''}"
        f"{f' --section {args.section}' if args.section != 'notify' else ''}`",
        "",
        "One process as `wardtui serve --notify`, its collector set as serve sets it: engine (fake "
        "network, 1 ms replies, real-time timeouts of 0.2 s, one confirmation 0.05 s later), "
        "notifier, outbox in SQLite, delivery with "
        "the real webhook receiver to an HTTP server process on loopback "
        f"({'HTTP/1.1, connections kept' if args.keep_alive else 'HTTP/1.0, a connection per message'}). "
        "Per round: a quiet "
        "window, a storm with the notifier, the same storm without it (control).",
        "",
        "| round | lag p99 ms, quiet | storm + notifier | storm, no notifier | storm / control | "
        "storm / quiet | transitions | devices named | firing msgs | resolved msgs | first firing msg "
        "after the first transition, s | firing msgs arrived over, s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for i in range(args.rounds):
        m = r["messages"][i]
        lines.append(f"| {i + 1} | {r['quiet'][i]:.1f} | {r['storm'][i]:.1f} | {r['control'][i]:.1f} | "
                     f"{ratios_c[i]:.2f}x | {ratios_q[i]:.2f}x | {m['transitions']} | {m['named']} | "
                     f"{m['firing']} | {m['resolved']} | {m['first_s']:.2f} | {m['spread_s']:.2f} |")
    lines += [
        "",
        f"**Transition -> receiver over all storms: p50 {pct(0.5):.2f} s, p95 {pct(0.95):.2f} s, max "
        f"{lat[-1]:.2f} s** (target p95 <= group_wait + 1 s = {args.group_wait + 1:g} s); "
        f"{len(lat):,} device-transitions. **Engine lag p99 in the storm with the notifier / without: "
        f"{min(ratios_c):.2f}-{max(ratios_c):.2f}x** (median {statistics.median(ratios_c):.2f}x; "
        f"target <= 1.2x); **against the quiet windows {min(ratios_q):.2f}-{max(ratios_q):.2f}x** "
        f"(median {statistics.median(ratios_q):.2f}x; target <= 1.2x). Messages per storm: one firing and "
        f"one resolved per branch ({args.branches}) is the target.",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--branches", type=int, default=250)
    parser.add_argument("--per", type=int, default=40, help="devices per branch, its router included")
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--group-wait", type=float, default=2.0)
    parser.add_argument("--group-interval", type=float, default=4.0)
    parser.add_argument("--window", type=float, default=6.0)
    parser.add_argument("--parallel", type=int, default=4,
                        help="messages of different groups in flight to the receiver at once (4: what "
                             "wardtui serve uses for a webhook unless the notify file says otherwise)")
    parser.add_argument("--keep-alive", action="store_true",
                        help="the receiver speaks HTTP/1.1 and keeps connections, as chat services and "
                             "web servers do (default: HTTP/1.0, a new connection per message)")
    parser.add_argument("--memory-outbox", action="store_true",
                        help="the outbox in memory (what the database's commits cost)")
    parser.add_argument("--section", default="notify")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = asyncio.run(run(args, Path(tmp)))
    body = summarize(results, args)
    print(body)
    if not args.no_write:
        write_section(args.section, body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
