"""Process-wide policy lives in wardtui/process.py, is picked by the command's entry point and
handed down (issue 13, item 5): the switch interval, gc.freeze, the collector's thresholds, idle
collections and the exit watchdog were set from the dashboard command, WardApp and Runtime.start,
and by every app or runtime a test or a bench built."""

from __future__ import annotations

import ast
import dataclasses
import gc
import io
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.fakes import FakeProber, make_devices
from wardtui import process
from wardtui.cli import build_parser, dashboard, poll
from wardtui.headless import run_headless
from wardtui.process import DASHBOARD, GUEST, POLL, IdleCollections, ProcessPolicy
from wardtui.runtime import Options, Runtime, StartupError

ROOT = Path(__file__).resolve().parents[2]
# (module, function) calls that change the whole process.
PROCESS_WIDE = {("sys", "setswitchinterval"), ("gc", "freeze"), ("gc", "unfreeze"), ("gc", "set_threshold"),
                ("gc", "collect"), ("gc", "disable"), ("gc", "enable"), ("os", "_exit")}


def _process_wide_calls(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and (node.value.id, node.attr) in PROCESS_WIDE):
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value.id}.{node.attr}")
        elif isinstance(node, ast.ImportFrom) and node.module in {"gc", "sys", "os"}:
            found.extend(f"{path.relative_to(ROOT)}:{node.lineno}: from {node.module} import {a.name}"
                         for a in node.names if (node.module, a.name) in PROCESS_WIDE)
    return found


def test_only_the_process_module_sets_process_wide_state() -> None:
    sources = [p for package in ("wardtui", "poller", "store")
               for p in sorted((ROOT / package).rglob("*.py"))]
    elsewhere = [hit for path in sources if path != ROOT / "wardtui" / "process.py"
                 for hit in _process_wide_calls(path)]
    assert elsewhere == []
    assert _process_wide_calls(ROOT / "wardtui" / "process.py")  # the finder sees them


@pytest.fixture
def process_state() -> Iterator[None]:
    """Put back what a policy sets (the conftest fixture puts back the thresholds)."""
    interval = sys.getswitchinterval()
    yield
    sys.setswitchinterval(interval)
    gc.unfreeze()


def _state() -> tuple[float, int, tuple[int, int, int]]:
    return sys.getswitchinterval(), gc.get_freeze_count(), gc.get_threshold()


@pytest.mark.usefixtures("process_state")
def test_a_guest_process_has_nothing_set(monkeypatch: pytest.MonkeyPatch) -> None:
    gc.unfreeze()
    before = _state()
    monkeypatch.setattr(process, "exit_watchdog", lambda grace, code: pytest.fail("watchdog started"))
    GUEST.enter()
    GUEST.store_started()
    assert GUEST.first_round_done() is None
    GUEST.leaving(0)
    assert _state() == before


@pytest.mark.usefixtures("process_state")
def test_poll_and_serve_freeze_and_settle_but_drive_no_idle_collections() -> None:
    gc.unfreeze()
    interval, _, threshold = _state()
    POLL.enter()
    assert sys.getswitchinterval() == interval and gc.get_freeze_count() == 0
    POLL.store_started()
    assert gc.get_freeze_count() > 0 and gc.get_threshold() == threshold
    gc.unfreeze()
    assert POLL.first_round_done() is None  # no screen: no idle collections to drive
    assert gc.get_freeze_count() > 0 and gc.get_threshold() == process.YOUNG_THRESHOLDS
    assert POLL.exit_grace is None


@pytest.mark.usefixtures("process_state")
def test_the_dashboard_sets_everything_when_told() -> None:
    gc.unfreeze()
    sys.setswitchinterval(0.005)
    DASHBOARD.enter()
    assert sys.getswitchinterval() == pytest.approx(0.001)
    DASHBOARD.store_started()
    assert gc.get_freeze_count() > 0
    gc.unfreeze()
    idle = DASHBOARD.first_round_done()
    assert isinstance(idle, IdleCollections)
    assert gc.get_freeze_count() > 0 and gc.get_threshold() == (50_000, 20, 1_000)
    assert DASHBOARD.exit_grace == 10.0


def test_the_exit_watchdog_ends_the_process_with_the_code(monkeypatch: pytest.MonkeyPatch) -> None:
    exited: list[int] = []
    done = threading.Event()

    def fake_exit(code: int) -> None:
        exited.append(code)
        done.set()

    monkeypatch.setattr(os, "_exit", fake_exit)
    watchdog = process.exit_watchdog(0.01, 3)
    assert watchdog.daemon  # a normal exit does not wait for it
    assert done.wait(5) and exited == [3]
    dataclasses.replace(DASHBOARD, exit_grace=0.01).leaving(1)  # the policy's hook starts one too
    done.clear()
    assert done.wait(5) and exited == [3, 1]


def test_idle_collections_wait_for_a_pause_or_run_at_the_latest(monkeypatch: pytest.MonkeyPatch) -> None:
    runs: list[int] = []
    monkeypatch.setattr(gc, "collect", lambda generation=2: runs.append(generation) or 0)
    now = [1000.0]
    idle = IdleCollections(clock=lambda: now[0])
    assert idle.collect_if_idle(last_input=now[0] - 1.0) is False and runs == []
    assert idle.collect_if_idle(last_input=now[0] - idle.IDLE_FOR) is True and runs == [2]
    now[0] += idle.AT_LATEST  # typing without a pause for this long: it runs anyway
    assert idle.collect_if_idle(last_input=now[0]) is True and runs == [2, 2]
    assert idle.last_full == now[0]


@pytest.mark.usefixtures("process_state")
async def test_the_runtime_tells_its_policy_once_the_store_has_started(tmp_path: Path) -> None:
    for policy, frozen in ((GUEST, False), (POLL, True)):
        gc.unfreeze()
        runtime = Runtime(Options(db=f"sqlite:///{tmp_path / 'h.db'}", interval=0.1), prober=FakeProber(),
                          devices=make_devices(2, interval=0.1), process=policy)
        await runtime.start()
        assert (gc.get_freeze_count() > 0) is frozen, policy
        await runtime.close()


@pytest.mark.usefixtures("process_state")
async def test_headless_polling_settles_after_its_first_round(tmp_path: Path) -> None:
    """`wardtui poll` (and `serve`, through the same Runtime call) tell the policy once every
    device has been checked: at 100,000 devices without it, full collections took 20 % of the
    loop and the history writer fell behind."""
    gc.set_threshold(700, 10, 10)
    runtime = Runtime(Options(db=f"sqlite:///{tmp_path / 'h.db'}", interval=0.1), prober=FakeProber(),
                      devices=make_devices(2, interval=0.1), process=POLL)
    assert runtime.first_round_seconds() == pytest.approx(2.1)
    out = io.StringIO()
    assert await run_headless(runtime, 1.5, out=out) == 0
    assert gc.get_threshold() == (700, 10, 10)  # not before its first round is done
    runtime = Runtime(Options(db=f"sqlite:///{tmp_path / 'h.db'}", interval=0.1), prober=FakeProber(),
                      devices=make_devices(2, interval=0.1), process=POLL)
    assert await run_headless(runtime, 2.6, out=out) == 0
    assert gc.get_threshold() == process.YOUNG_THRESHOLDS


@pytest.mark.parametrize(("argv", "module", "policy"), [([], dashboard, DASHBOARD),
                                                    (["poll", "--jsonl"], poll, POLL)])
def test_each_command_hands_its_own_policy_to_the_runtime(argv: list[str], module: ModuleType,
                                                          policy: ProcessPolicy,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[ProcessPolicy] = []

    def runtime(options: Options, **kwargs: Any) -> Runtime:
        seen.append(kwargs["process"])
        raise StartupError("stop here")

    monkeypatch.setattr(module, "Runtime", runtime)
    assert module.run(build_parser().parse_args(argv)) == 1
    assert seen == [policy]
