"""End-to-end tests of ``wardtui poll`` against real ICMP in the network-namespace lab.

The product runs as a subprocess inside the lab's monitor namespace (no default route, so
nothing leaves the machine) and its ``--jsonl`` output is parsed. Hosts with known
behaviour (healthy, dead, 10 % lossy, 20 ms delayed, unroutable, blocked on demand) make
every expectation exact. The scenarios that need no interaction share one poll run
(``fleet``) to keep the suite well under a minute and a half.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.lab.netns import Lab

# Latencies to the tenth of a second, RTTs to 2 ms, a loss rate and a scheduler that never fell
# behind: measured on this machine, so no other test runs beside them (tests/alone.py); one
# worker runs the module, so the shared poll run (``fleet``) is made once.
pytestmark = [pytest.mark.lab, pytest.mark.alone, pytest.mark.xdist_group("lab")]

REPO = Path(__file__).resolve().parents[2]
HEADER = "name,address,branch,region,type,parent,interval,tags"
Event = dict[str, Any]


def ts(value: str) -> float:
    """ISO 8601 (with offset or Z) -> epoch seconds, the clock the test records with."""
    return datetime.fromisoformat(value).timestamp()


def write_inventory(path: Path, devices: list[tuple[str, str, float]]) -> Path:
    """CSV inventory of (name, address, interval seconds) rows."""
    lines = [HEADER] + [f"{n},{a},lab,lab,host,,{i:g}," for n, a, i in devices]
    path.write_text("\n".join(lines) + "\n")
    return path


def poll_command(inventory: Path, db: Path, *, interval: float, duration: float,
                 extra: tuple[str, ...] = ()) -> list[str]:
    return [sys.executable, "-m", "wardtui", "poll", "--inventory", str(inventory),
            "--interval", f"{interval:g}", "--duration", f"{duration:g}", "--jsonl",
            "--db", f"sqlite:///{db}", *extra]


def product_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def parse_lines(stdout: str) -> list[Event]:
    events = []
    for n, line in enumerate(stdout.splitlines(), 1):
        if not line.strip():
            continue
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"stdout line {n} is not JSON: {line!r}")
    return events


def by_type(events: list[Event], kind: str) -> list[Event]:
    return [e for e in events if e.get("type") == kind]


# ----- one shared poll run: healthy, dead, lossy, delayed and unroutable together ------
# 40 lossy hosts: a lost probe holds its check for the 1 s timeout and the scheduler skips
# (does not queue) checks that fall due meanwhile, so each host gets ~85, not 160, probes.
HEALTHY_N, DEAD_N, LOSSY_N = 200, 200, 40  # as many dead as healthy: an outage of half the network
FLEET_DURATION = 16.0
FLEET_TIMEOUT = 1.0
FLEET_SPACING = 0.25


@dataclass
class FleetRun:
    started: float  # wall time just before the process was started
    returncode: int
    stderr: str
    events: list[Event]
    groups: dict[str, list[str]] = field(default_factory=dict)  # kind -> device names

    def summaries(self, kind: str) -> list[Event]:
        names = set(self.groups[kind])
        return [e for e in by_type(self.events, "summary") if e["device"] in names]

    def transitions(self, kind: str) -> list[Event]:
        names = set(self.groups[kind])
        return [e for e in by_type(self.events, "transition") if e["device"] in names]


@pytest.fixture(scope="module")
def fleet(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> FleetRun:
    tmp = tmp_path_factory.mktemp("fleet")
    groups = {
        "healthy": [(f"ok{i}", a, 0.5) for i, a in enumerate(lab.healthy(HEALTHY_N))],
        "dead": [(f"dead{i}", a, 0.5) for i, a in enumerate(lab.dead(DEAD_N))],
        "lossy": [(f"lossy{i}", a, 0.1) for i, a in enumerate(lab.lossy(LOSSY_N))],
        "delayed": [("slow", lab.delayed, 0.1)],
        "noroute": [("noroute", lab.no_route()[0], 0.5)],
    }
    inventory = write_inventory(tmp / "fleet.csv", [d for g in groups.values() for d in g])
    cmd = poll_command(inventory, tmp / "fleet.db", interval=0.5, duration=FLEET_DURATION,
                       extra=("--timeout", f"{FLEET_TIMEOUT:g}",
                              "--confirm-spacing", f"{FLEET_SPACING:g}"))
    started = time.time()
    result = lab.run(cmd, capture_output=True, text=True, cwd=REPO, env=product_env(),
                     timeout=FLEET_DURATION + 30)
    return FleetRun(started, result.returncode, result.stderr, parse_lines(result.stdout),
                    {k: [n for n, _, _ in v] for k, v in groups.items()})


def test_fleet_run_exits_cleanly_with_one_summary_per_device(fleet: FleetRun) -> None:
    assert fleet.returncode == 0, fleet.stderr[-3000:]
    assert "Traceback" not in fleet.stderr, fleet.stderr[-3000:]
    names = sorted(by_type(fleet.events, "summary"), key=lambda e: e["device"])
    expected = sorted(n for g in fleet.groups.values() for n in g)
    assert [e["device"] for e in names] == expected
    # Gauges come about once a second for the whole run.
    gauges = by_type(fleet.events, "gauges")
    assert len(gauges) >= FLEET_DURATION * 0.6, f"only {len(gauges)} gauges lines"


def test_no_false_down_among_healthy_hosts(fleet: FleetRun) -> None:
    downs = [e for e in fleet.transitions("healthy") if e["to"] == "down"]
    assert downs == [], f"{len(downs)} false DOWN transitions, first: {downs[:3]}"
    summaries = fleet.summaries("healthy")
    assert len(summaries) == HEALTHY_N
    not_up = [e for e in summaries if e["state"] != "up"]
    assert not_up == [], f"healthy hosts not up at the end: {not_up[:3]}"
    # Each was really polled every 0.5 s for the whole run (16 s -> ~32 checks).
    few = [e for e in summaries if e["sent"] < 0.8 * FLEET_DURATION / 0.5]
    assert few == [], f"healthy hosts polled too rarely: {few[:3]}"
    # Nothing is lost on a healthy path; allow one probe still in flight at exit.
    lossy = [e for e in summaries if e["sent"] - e["received"] > 1]
    assert lossy == [], f"healthy hosts lost replies: {lossy[:3]}"


def test_dead_hosts_end_down(fleet: FleetRun) -> None:
    summaries = fleet.summaries("dead")
    assert len(summaries) == DEAD_N
    wrong = [e for e in summaries if e["state"] != "down" or e["received"] != 0]
    assert wrong == [], f"dead hosts not DOWN: {wrong[:3]}"
    went_down = {e["device"] for e in fleet.transitions("dead") if e["to"] == "down"}
    assert went_down == set(fleet.groups["dead"])
    for e in summaries:
        assert e["down_since"] is not None and ts(e["down_since"]) >= fleet.started


def test_dead_hosts_cost_no_backlog(fleet: FleetRun) -> None:
    """Half the network dead: work stays bounded by the device count, nothing piles up."""
    devices = sum(len(names) for names in fleet.groups.values())
    gauges = by_type(fleet.events, "gauges")
    assert max(g["in_flight"] for g in gauges) <= devices  # one check per device at most
    assert gauges[-1]["skipped_late"] == 0  # the scheduler never fell behind
    # A DOWN host gets one probe per check and no confirmation: at most one check per
    # interval (0.5 s), and each check of a dead host holds its slot for the 1 s timeout.
    ceiling = FLEET_DURATION / FLEET_TIMEOUT + 1 + 2  # checks that fit, + the first confirmation
    heavy = [e for e in fleet.summaries("dead") if e["sent"] > ceiling]
    assert heavy == [], f"dead hosts probed more than {ceiling:.0f} times: {heavy[:3]}"
    # Busy skips are how a check that outlives its interval shows up, counted, not queued.
    assert gauges[-1]["skipped_busy"] > 0


def test_no_route_host_goes_down_fast_without_crash(fleet: FleetRun) -> None:
    (summary,) = fleet.summaries("noroute")
    assert summary["state"] == "down" and summary["received"] == 0, summary
    downs = [e for e in fleet.transitions("noroute") if e["to"] == "down"]
    assert downs, "no DOWN transition for the unroutable address"
    first = downs[0]
    # ENETUNREACH fails at sendto: DOWN needs only the confirmation spacing, never a
    # timeout (confirmations 2 x 0.25 s = 0.5 s; one 1 s timeout would already exceed).
    delay = ts(first["at"]) - ts(first["down_since"])
    assert delay <= 2 * FLEET_SPACING + 0.4, f"DOWN took {delay:.2f} s after first failure"
    assert ts(first["down_since"]) - fleet.started <= 0.5 + 3.0, "first check came late"


def test_delayed_host_rtt_is_20ms(fleet: FleetRun) -> None:
    (summary,) = fleet.summaries("delayed")
    assert summary["state"] == "up", summary
    assert summary["received"] >= 50, summary
    assert abs(summary["rtt_avg_ms"] - 20.0) <= 2.0, summary
    # The responder waits 20 ms after the request arrives: a shorter RTT is impossible.
    assert summary["rtt_min_ms"] >= 19.9, summary


def test_lossy_range_loses_ten_percent(fleet: FleetRun) -> None:
    summaries = fleet.summaries("lossy")
    assert len(summaries) == LOSSY_N
    sent = sum(e["sent"] for e in summaries)
    received = sum(e["received"] for e in summaries)
    assert sent >= 2000, f"only {sent} probes to the lossy range"
    # Receive-buffer overflow would look exactly like loss: rule it out first.
    drops = max((g.get("rcvbuf_drops", 0) for g in by_type(fleet.events, "gauges")), default=0)
    assert drops == 0, f"{drops} replies dropped by a full receive buffer"
    loss = 100.0 * (sent - received) / sent
    assert abs(loss - 10.0) <= 3.0, f"loss {loss:.2f} % over {sent} probes (nft drops 10 %)"


# ----- interactive run: block and unblock one healthy host ------------------------------
class LivePoll:
    """A running ``wardtui poll`` whose JSON lines are read (and wall-stamped) by a thread."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.events: list[Event] = []
        self.bad: list[str] = []
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cond:
                try:
                    self.events.append(json.loads(line))
                except json.JSONDecodeError:
                    self.bad.append(line)
                self._cond.notify_all()

    def wait_for(self, match: Callable[[Event], bool], timeout: float, what: str) -> Event:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for e in self.events:
                    if match(e):
                        return e
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    pytest.fail(f"no {what} within {timeout} s; events so far: {self.events[-5:]}")
                self._cond.wait(min(left, 0.05))

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(timeout=15)
        self._thread.join(timeout=5)
        return code


@pytest.fixture
def live_poll(lab: Lab, tmp_path: Path) -> Iterator[Callable[..., LivePoll]]:
    procs: list[subprocess.Popen[str]] = []

    def start(devices: list[tuple[str, str, float]], **kw: Any) -> LivePoll:
        inventory = write_inventory(tmp_path / "live.csv", devices)
        stderr = (tmp_path / "live.stderr").open("w")  # a file: a pipe could fill and block
        proc = lab.popen(poll_command(inventory, tmp_path / "live.db", **kw), cwd=REPO,
                         env=product_env(), stdout=subprocess.PIPE, stderr=stderr, text=True)
        procs.append(proc)
        return LivePoll(proc)

    yield start
    for proc in procs:  # only if a test failed before stopping its own process
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)


def test_down_and_up_detected_with_correct_timestamps(
        lab: Lab, live_poll: Callable[..., LivePoll], tmp_path: Path) -> None:
    interval, timeout, spacing, slack = 0.2, 0.5, 0.2, 0.15
    (address,) = lab.healthy(1, start=249)  # outside the fleet's healthy hosts
    poll = live_poll([("target", address, interval)], interval=interval, duration=60,
                     extra=("--timeout", f"{timeout:g}", "--confirm-spacing", f"{spacing:g}"))

    def transition(to: str) -> Callable[[Event], bool]:
        return lambda e: e.get("type") == "transition" and e["to"] == to

    up = poll.wait_for(transition("up"), 5, "unknown->up")
    assert up["from"] == "unknown" and up["address"] == address, up
    time.sleep(0.5)  # a few healthy checks before the outage
    try:
        t0 = time.time()
        lab.block(address)
        t0_done = time.time()
        down = poll.wait_for(transition("down"), 6, "up->down")
    finally:
        t1 = time.time()
        lab.unblock(address)
        t1_done = time.time()
    assert down["from"] == "up", down
    since, at = ts(down["down_since"]), ts(down["at"])
    # The first dropped probe was sent after the rule went in (2 ms: kernel transit),
    # and within one interval of it.
    assert t0 - 0.002 <= since <= t0_done + interval + slack, (t0, t0_done, down)
    # DOWN needs the first probe's timeout, one spacing and the last confirmation's
    # timeout at least; more than every probe in a row plus slack means a lagging engine.
    assert since + 2 * timeout + spacing - 0.02 <= at, (since, down)
    assert at <= since + 3 * timeout + 2 * spacing + 0.5, (since, down)

    recovered = poll.wait_for(lambda e: transition("up")(e) and e["from"] == "down", 5,
                              "down->up")
    back = ts(recovered["at"])
    assert t1 - 0.002 <= back <= t1_done + interval + slack, (t1, t1_done, recovered)
    assert recovered["rtt_ms"] is not None, recovered

    assert poll.stop() == 0, (tmp_path / "live.stderr").read_text()[-3000:]
    assert poll.bad == [], f"non-JSON output: {poll.bad[:3]}"
    (summary,) = [e for e in poll.events if e.get("type") == "summary"]
    assert summary["state"] == "up", summary
    # The failed first probe and both confirmations count in the whole-run totals.
    assert summary["sent"] - summary["received"] >= 3, summary
    downs = [e for e in poll.events if transition("down")(e)]
    assert len(downs) == 1, f"expected exactly one DOWN: {downs}"
