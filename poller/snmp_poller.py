"""SNMP polling on the no-backlog scheduler: one poll per device per interval at most, never queued.

Devices that ICMP says are DOWN are not polled (their agent cannot answer either). At most
``max_in_flight`` polls run at once; one falling due beyond that is skipped and counted too. v3
polls have their own, adaptive, limit (:mod:`poller.snmp_admission`): as many as are answered
within ``v3_latency_target`` seconds while the event loop (probed every ``LOOP_PROBE_S``) has
work queued; one beyond it is skipped for capacity. An agent
whose polls keep failing is backed off: after ``backoff_after`` failed polls in a row it is
polled only every 2nd, 4th, ... up to every ``backoff_max``-th interval until it answers
again. Each poll is its own task with its agent's own timeout and retries, so a silent agent
costs one socket wait, not a delay for the others.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from poller.bus import EventBus
from poller.credentials import V2c
from poller.events import SnmpAgentChange, SnmpFailure
from poller.scheduler import Scheduler, Slot
from poller.snmp_admission import AdmissionLimit
from poller.snmp_rates import DeviceCounters
from poller.snmp_source import Agent, SnmpError, SnmpSource
from poller.stats import percentile
from poller.text import clean

log = logging.getLogger(__name__)
LOOP_PROBE_S = 0.02  # how often the v3 admission limit samples the event loop's lag
_DETAIL_MAX = 300  # characters of a failed poll's detail kept (an exception's text can be long)


@dataclass(frozen=True, slots=True)
class SnmpConfig:
    interval: float = 60.0  # seconds between polls of one device
    backoff_after: int = 2  # failed polls in a row before an agent is backed off (and reported)
    backoff_max: int = 16  # at most this many intervals between polls of a failing agent
    max_in_flight: int = 2000  # polls running at once; one falling due past it is skipped, counted
    # v3 answers later than this (sent -> processed, p90) shrink the v3 in-flight limit when the
    # event loop is congested too. None: a quarter of the v3 agents' (smallest) timeout, 0.5 s by
    # default, so that overload never reaches the timeout. Far agents with an idle loop: no shrink.
    v3_latency_target: float | None = None


@dataclass(frozen=True, slots=True)
class AgentChanges:
    """What :meth:`SnmpPoller.apply_agents` did, by agent key (the device's name)."""

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()  # address, port, credential, timeout or retries
    details: dict[str, tuple[str, ...]] = field(default_factory=dict)  # changed key -> fields

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)


_AGENT_FIELDS = ("address", "port", "credential", "timeout", "retries")


class _AgentRun:
    """One device's polling state."""

    __slots__ = ("agent", "counters", "failures", "reported_down", "v3", "wait")

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.v3 = not isinstance(agent.credential, V2c)  # USM: ~1.5x the CPU of a v2c poll
        self.counters = DeviceCounters(agent.key, agent.address)
        self.failures = 0  # failed polls in a row
        self.wait = 0  # intervals still to let pass before the next poll (backoff)
        self.reported_down = False


class SnmpPoller:
    """Polls ``agents`` on their own schedule and publishes SNMP events on ``bus``."""

    def __init__(self, agents: list[Agent], client: SnmpSource, bus: EventBus,
                 is_down: Callable[[str], bool] = lambda _: False,
                 config: SnmpConfig | None = None) -> None:
        self.config = config or SnmpConfig()
        self.client = client
        self.bus = bus
        self.is_down = is_down
        self._runs: dict[int, _AgentRun] = {}  # a slot's key -> the agent it polls
        self._slot_of: dict[str, Slot] = {}  # agent key -> its slot
        self._next_key = 0
        for agent in agents:
            self._add(agent)
        self.scheduler = Scheduler(self._dispatch)
        self._tasks: set[asyncio.Task[None]] = set()
        self._task_of: dict[int, asyncio.Task[None]] = {}  # a slot's key -> its poll in flight
        self._running = False
        self._probe: asyncio.Task[None] | None = None
        self._lags: list[float] = []
        self._stop = asyncio.Event()
        self.polls = 0  # successful
        self.failed = 0
        self.not_polled_down = 0  # due while ICMP said DOWN
        self.backed_off = 0  # due while the agent was backed off
        self.skipped_full = 0  # due while max_in_flight polls were running
        self.polls_on_demand = 0  # started outside the schedule (poll_unless_busy: a trap)
        timeouts = [r.agent.timeout for r in self._runs.values() if r.v3]
        self._v3_agents = len(timeouts)
        target = self.config.v3_latency_target or min(timeouts, default=2.0) / 4
        # Starts at 64: a stall of the loop (a history batch, a collection) makes a burst of
        # polls due at once, and 16 refused some of them (skipped) at 10,000 v3 devices with the
        # CPU 80 % idle; a real overload shrinks it by 0.8 every half second (64 -> 16 in 3 s).
        self.v3_admission = AdmissionLimit(target, initial=64, ceiling=self.config.max_in_flight)
        self.failing = 0  # agents reported not answering
        self.over_speed = 0
        self.no_rate = 0
        self._rate_base = (time.monotonic(), 0, 0)

    def __len__(self) -> int:
        return len(self._runs)

    async def run(self) -> None:
        """Poll until :meth:`stop`; polls in flight are cancelled then. With no agents it
        waits for some (:meth:`apply_agents`)."""
        self.scheduler.add_spread(list(self._slot_of.values()))
        self._running = True
        scheduler = asyncio.create_task(self.scheduler.run(), name="wardtui-snmp-scheduler")
        self._start_probe()
        try:
            await self._stop.wait()
        finally:
            self._running = False
            self.scheduler.stop()
            runners = [scheduler, *([self._probe] if self._probe is not None else [])]
            for task in [*runners, *self._tasks]:
                task.cancel()
            await asyncio.gather(*runners, *self._tasks, return_exceptions=True)

    def _start_probe(self) -> None:
        if self._running and self._v3_agents and self._probe is None:
            self._probe = asyncio.create_task(self._probe_loop(), name="wardtui-snmp-loop-probe")

    # -- the agents --------------------------------------------------------------------------
    def _add(self, agent: Agent) -> Slot:
        slot = Slot(self._next_key, self.config.interval)
        self._next_key += 1
        self._runs[slot.key] = _AgentRun(agent)
        self._slot_of[agent.key] = slot
        return slot

    def _drop(self, key: str) -> None:
        """Stop polling agent ``key``: its slot is skipped, its poll in flight cancelled, and the
        client forgets it."""
        slot = self._slot_of.pop(key)
        slot.removed = True
        run = self._runs.pop(slot.key)
        if run.reported_down:
            self.failing -= 1
        task = self._task_of.pop(slot.key, None)
        if task is not None:
            task.cancel()
        self.client.forget(key)

    def apply_agents(self, agents: list[Agent]) -> AgentChanges:
        """Poll ``agents`` from now on (on the engine's loop). New ones are scheduled spread over
        the interval; a changed one (address, port, credential, timeout, retries) starts afresh
        (no backoff, rates from its next two polls); an unchanged one keeps its state."""
        before = {run.agent.key: run.agent for run in self._runs.values()}
        after = {agent.key: agent for agent in agents}
        removed = tuple(key for key in before if key not in after)
        added = tuple(key for key in after if key not in before)
        details = {key: tuple(f for f in _AGENT_FIELDS if getattr(before[key], f) != getattr(agent, f))
                   for key, agent in after.items() if key in before and before[key] != agent}
        fresh = []
        for key in (*removed, *details):
            self._drop(key)
        for key in (*details, *added):
            fresh.append(self._add(after[key]))
        self._v3_agents = sum(1 for run in self._runs.values() if run.v3)
        if self._running and fresh:
            self.scheduler.add_spread(fresh)
            self._start_probe()
        return AgentChanges(added, removed, tuple(details), details)

    def stop(self) -> None:
        self._stop.set()

    async def _probe_loop(self) -> None:
        """How late a short sleep wakes: the loop's own queue, which far agents do not make."""
        loop = asyncio.get_running_loop()
        while True:
            start = loop.time()
            await asyncio.sleep(LOOP_PROBE_S)
            self.v3_admission.loop_lag(max(0.0, loop.time() - start - LOOP_PROBE_S))

    def close(self) -> None:
        self.client.close()

    # -- polls -------------------------------------------------------------------------------
    def _dispatch(self, slot: Slot, due: float) -> None:
        run = self._runs[slot.key]
        if self.is_down(run.agent.key):
            self.not_polled_down += 1
            return
        if run.wait > 0:
            run.wait -= 1
            self.backed_off += 1
            return
        if len(self._tasks) >= self.config.max_in_flight:
            # Overload (or a network of silent agents) must come out as counted skips, not as
            # ever more requests in flight whose answers queue behind each other and time out.
            self.skipped_full += 1
            slot.skipped += 1
            return
        if run.v3 and not self.v3_admission.admit(time.monotonic()):
            slot.skipped += 1  # counted by the admission limit: v3 polls skipped for capacity
            return
        self._start(slot, run, due)

    def poll_unless_busy(self, key: str) -> bool:
        """Poll agent ``key`` at once, outside its schedule (a trap came from it), unless its
        poll is in flight (that one answers: nothing is added or queued) or the poller is at
        capacity. Neither a backoff nor ICMP's DOWN holds it: the trap shows the agent is there.
        True when a poll started (counted in ``snmp_polls_on_demand``)."""
        slot = self._slot_of.get(key)
        if slot is None or slot.busy or not self._running:
            return False
        run = self._runs[slot.key]
        if len(self._tasks) >= self.config.max_in_flight:
            self.skipped_full += 1
            return False
        if run.v3 and not self.v3_admission.admit(time.monotonic()):
            return False
        self.polls_on_demand += 1
        self._start(slot, run, None)
        return True

    def engine_id(self, key: str) -> bytes | None:
        """Agent ``key``'s SNMPv3 engine ID as its polls found it, None if none did (or the
        client keeps none: a fake): the trap receiver believes traps signed by it."""
        found = getattr(self.client, "engine_id", None)
        return None if found is None else found(key)

    def link_told(self, key: str, ifindex: int, oper: int, at: datetime) -> tuple[str, str]:
        """A trap said at ``at`` that interface ``ifindex`` of agent ``key`` is now ``oper``: (its
        status at the last poll, "unknown" if none saw it; its name then, "" if none). The next
        poll compares with the trap's status, so one change is told once."""
        slot = self._slot_of.get(key)
        if slot is None:
            return "unknown", ""
        return self._runs[slot.key].counters.link_told(ifindex, oper, at)

    def reboot_told(self, key: str, at: datetime) -> float | None:
        """A trap said agent ``key`` restarted at ``at``: its sysUpTime at the last poll (None if
        none); the next poll's own reboot is then not told again."""
        slot = self._slot_of.get(key)
        return None if slot is None else self._runs[slot.key].counters.reboot_told(at)

    def _start(self, slot: Slot, run: _AgentRun, due: float | None) -> None:
        slot.busy = True
        task = asyncio.get_running_loop().create_task(self._poll(slot, run, due))
        self._tasks.add(task)
        key = slot.key
        self._task_of[key] = task
        task.add_done_callback(lambda done: self._done(key, done))

    def _done(self, key: int, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if self._task_of.get(key) is task:
            del self._task_of[key]

    async def _poll(self, slot: Slot, run: _AgentRun, due: float | None) -> None:
        latency: float | None = None  # of an answered poll, for the v3 admission limit
        try:
            if due is not None:  # a poll asked for outside the schedule is never late
                self._lags.append(time.monotonic() - due)
            try:
                # The agent's own timeouts end a walk long before this; the bound only makes
                # sure no poll lives on whatever an agent does. Meanwhile its slot is skipped.
                raw = await asyncio.wait_for(self.client.poll(run.agent), 3 * self.config.interval)
            except (SnmpError, TimeoutError) as exc:
                reason = exc.reason if isinstance(exc, SnmpError) else "timeout"
                self._publish_failure(run, reason, str(exc) if isinstance(exc, SnmpError) else
                                      f"the poll did not end within {3 * self.config.interval:g} s")
                self._failed(run, reason)
                return
            except Exception as exc:  # no IPv6 socket, an unforeseen error: a failed poll, not a crash
                if not run.reported_down:
                    log.warning("SNMP poll of %s failed: %s: %s", run.agent.key, type(exc).__name__, exc)
                self._publish_failure(run, "error", f"{type(exc).__name__}: {exc}")
                self._failed(run, "error")
                return
            latency = raw.latency_s
            self._answered(run)
            outcome = run.counters.update(raw)
            self.polls += 1
            self.over_speed += outcome.over_speed
            self.no_rate += outcome.no_rate
            for event in outcome.events:
                self.bus.publish(event)
        finally:
            slot.busy = False
            if run.v3:
                self.v3_admission.done(latency)

    def _publish_failure(self, run: _AgentRun, reason: str, detail: str) -> None:
        """Every failed poll is a sample (the store keeps each device's last outcome), its
        detail inert text: it may quote what an agent or a library said."""
        self.bus.publish(SnmpFailure(run.agent.key, run.agent.address, datetime.now(UTC), reason,
                                     clean(detail)[:_DETAIL_MAX]))

    def _failed(self, run: _AgentRun, reason: str) -> None:
        self.failed += 1
        run.failures += 1
        cfg = self.config
        if run.failures >= cfg.backoff_after:
            # 1, 3, 7, 15 ... intervals skipped: polls at 2, 4, 8, 16 ... intervals apart.
            run.wait = min(cfg.backoff_max, 2 ** (run.failures - cfg.backoff_after + 1)) - 1
            if not run.reported_down:
                run.reported_down = True
                self.failing += 1
                self.bus.publish(SnmpAgentChange(run.agent.key, run.agent.address, datetime.now(UTC),
                                                 answering=False, reason=reason))

    def _answered(self, run: _AgentRun) -> None:
        run.failures = 0
        run.wait = 0
        if run.reported_down:
            run.reported_down = False
            self.failing -= 1
            self.bus.publish(SnmpAgentChange(run.agent.key, run.agent.address, datetime.now(UTC),
                                             answering=True, reason="answering"))

    # -- gauges ------------------------------------------------------------------------------
    def gauges(self) -> dict[str, float]:
        """Figures for ``Gauges.extra`` (the engine samples them once a second)."""
        now = time.monotonic()
        counters = self.client.counters()
        base_t, base_polls, base_requests = self._rate_base
        dt = max(now - base_t, 1e-9)
        self._rate_base = (now, self.polls, counters.get("requests", 0))
        lags = sorted(self._lags)
        self._lags = []
        p99 = percentile(lags, 99)
        return {"snmp_agents": float(len(self._runs)),
                "snmp_polls_per_s": (self.polls - base_polls) / dt,
                "snmp_requests_per_s": (counters.get("requests", 0) - base_requests) / dt,
                "snmp_timeouts": float(counters.get("timeouts", 0)),
                "snmp_auth_failures": float(counters.get("auth_failures", 0)),
                "snmp_failed": float(self.failed),
                "snmp_skipped": float(self.scheduler.skipped + self.skipped_full + self.v3_admission.refused),
                # Of those, skipped because the poller was at capacity (not a slow agent's own).
                "snmp_skipped_capacity": float(self.skipped_full + self.v3_admission.refused),
                "snmp_v3_agents": float(self._v3_agents),
                "snmp_v3_limit": float(int(self.v3_admission.limit)),
                "snmp_v3_in_flight": float(self.v3_admission.in_flight),
                "snmp_v3_rediscoveries": float(counters.get("rediscoveries", 0)),
                "snmp_v3_discoveries": float(counters.get("v3_discoveries", 0)),
                "snmp_v3_resyncs": float(counters.get("v3_resyncs", 0)),
                # Datagrams dropped: malformed, forged (v3: unsigned, wrong digest), or answering
                # nothing in flight (late); and errors the kernel reported on sends.
                "snmp_bad_replies": float(counters.get("bad_replies", 0) + counters.get("v3_bad_replies", 0)),
                "snmp_send_errors": float(counters.get("send_errors", 0) + counters.get("v3_send_errors", 0)),
                "snmp_lag_p99_ms": p99 * 1000,
                "snmp_in_flight": float(len(self._tasks)),
                "snmp_polls_on_demand": float(self.polls_on_demand),
                "snmp_backed_off": float(self.backed_off),
                "snmp_agents_failing": float(self.failing),
                "snmp_not_polled_down": float(self.not_polled_down),
                "snmp_over_speed": float(self.over_speed),
                "snmp_no_rate": float(self.no_rate)}
