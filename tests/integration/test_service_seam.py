"""The serve loop's seam for services (the Redis publisher, the metrics server): started once the
runtime has started, stopped before the history is flushed, a failing one never costing it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.fakes import FakeProber, make_devices
from wardtui.runtime import Options, Runtime, StartupError
from wardtui.service import ServeOptions, Service, serve


class Recorder:
    def __init__(self, name: str, runtime: Runtime, said: list[str], fail: str = "") -> None:
        self.name, self.runtime, self.said, self.fail = name, runtime, said, fail

    async def start(self) -> None:
        # the store has started (its writer runs) and the engine's version is readable
        assert self.runtime.writer is not None and self.runtime.engine.inventory_version == 0
        self.said.append(f"start {self.name}")
        if self.fail == "start":
            raise OSError(98, "Address already in use")
        if self.name == "second":  # the last to start ends the run a little later
            asyncio.get_running_loop().call_later(0.5, self.runtime.engine.stop)

    async def stop(self) -> None:
        assert self.runtime.writer is not None  # not closed yet: the history is flushed after
        self.said.append(f"stop {self.name}")
        if self.fail == "stop":
            raise RuntimeError("stop bug")


def runtime_in(tmp: Path) -> Runtime:
    return Runtime(Options(db=f"sqlite:///{tmp / 'h.db'}", interval=0.1), prober=FakeProber(),
                   devices=make_devices(3, interval=0.1))


async def test_services_start_after_the_runtime_and_stop_in_reverse_before_the_flush(tmp_path: Path) -> None:
    runtime = runtime_in(tmp_path)
    said: list[str] = []
    services: list[Service] = [Recorder("first", runtime, said, fail="stop"),
                               Recorder("second", runtime, said)]
    code = await serve(runtime, ServeOptions(tmp_path / "net.csv"), lambda r, o: services)
    assert code == 0
    assert said == ["start first", "start second", "stop second", "stop first"]
    assert runtime.writer is None  # closed, after the services
    await runtime.store.open()
    try:
        assert await runtime.store.count_checks() >= 9  # flushed though the first one's stop failed
    finally:
        await runtime.store.close()


async def test_a_service_that_cannot_start_is_one_startup_error(tmp_path: Path) -> None:
    runtime = runtime_in(tmp_path)
    said: list[str] = []
    refused = r"cannot start metrics: OSError: .*Address already in use"
    with pytest.raises(StartupError, match=refused) as info:
        await serve(runtime, ServeOptions(tmp_path / "net.csv"),
                    lambda r, o: [Recorder("metrics", r, said, fail="start"), Recorder("never", r, said)])
    assert info.value.code == 1
    assert said == ["start metrics"]  # the one that failed is not stopped, the next never started
    assert runtime.writer is None


class PolicyRecorder:
    """A process policy that only says when it is told (wardtui/process.py's hooks)."""

    def __init__(self) -> None:
        self.told: list[tuple[str, float]] = []

    def store_started(self) -> None:
        self.told.append(("store started", asyncio.get_running_loop().time()))

    def first_round_done(self) -> None:
        self.told.append(("first round done", asyncio.get_running_loop().time()))


async def test_serve_tells_its_policy_when_the_first_round_is_done(tmp_path: Path) -> None:
    policy = PolicyRecorder()
    runtime = Runtime(Options(db=f"sqlite:///{tmp_path / 'h.db'}", interval=0.1), prober=FakeProber(),
                      devices=make_devices(3, interval=0.1), process=policy)  # type: ignore[arg-type]
    asyncio.get_running_loop().call_later(3.0, runtime.engine.stop)
    assert await serve(runtime, ServeOptions(tmp_path / "net.csv"), lambda r, o: []) == 0
    assert [what for what, _ in policy.told] == ["store started", "first round done"]
    (_, started), (_, settled) = policy.told
    assert settled - started == pytest.approx(runtime.first_round_seconds(), abs=0.3)
