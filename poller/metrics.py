"""Prometheus exposition of the engine's gauges and of each device's state (`wardtui serve --metrics`).

The engine runs on its own loop; prometheus_client answers scrapes on threads of its own. A scrape
reads only what is safe there: the last :class:`~poller.events.Gauges` (frozen, swapped whole
once a second) and plain tracker fields, from a copy of the tracker list.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import start_http_server
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.samples import Sample

from poller.events import OUT, Gauges, State
from poller.state import DeviceTracker

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

PREFIX = "wardtui_"
DEVICE_LABELS = ("device", "branch", "region", "type")

# Figures of Gauges (fields and ``extra`` keys) that only grow during a run: counters, exposed as
# wardtui_<name>_total. Each was checked where it is counted (poller/engine.py, poller/icmp.py,
# poller/scheduler.py, poller/snmp_poller.py, poller/snmp_walk.py, poller/snmp_v2c.py,
# poller/snmp_usm_client.py, poller/snmp_traps.py, poller/snmp_trap_usm.py, poller/feed.py's
# Publisher, store/writer.py, store/spool.py): only ever incremented for the life of the engine.
# rcvbuf_drops is the kernel's SO_RXQ_OVFL count, a u32: it wraps (Prometheus sees a reset).
# Not here, although the name says "dropped": events_dropped is a sum over the bus's current
# subscriptions, and falls when a consumer that dropped events unsubscribes (a drill-down screen
# closing): a gauge. Anything not named here (a new ``extra`` key) is a gauge.
COUNTERS = frozenset({
    "skipped", "skipped_late", "skipped_busy", "rcvbuf_drops", "send_errors", "late_replies",
    "send_waits",
    "snmp_timeouts", "snmp_auth_failures", "snmp_failed", "snmp_skipped", "snmp_skipped_capacity",
    "snmp_v3_rediscoveries", "snmp_v3_discoveries", "snmp_v3_resyncs", "snmp_bad_replies",
    "snmp_send_errors", "snmp_backed_off", "snmp_not_polled_down", "snmp_over_speed",
    "snmp_no_rate", "store_samples_dropped", "store_spool_damaged", "store_snmp_dropped",
    "checks_on_demand", "checks_for_dependencies", "feed_events", "feed_events_lost", "feed_commands",
    "feed_commands_refused", "feed_losses", "snmp_polls_on_demand",
    # poller/snmp_traps.py: only ever incremented
    "traps_received", "traps_accepted", "traps_refused_unknown_source", "traps_refused_community",
    "traps_refused_malformed", "traps_refused_user", "traps_refused_engine_id", "traps_refused_level",
    "traps_refused_auth", "traps_refused_time_window", "traps_v3_discoveries", "traps_v3_reports",
    "traps_rate_limited", "traps_checks", "traps_polls", "traps_coalesced",
    "traps_informs_acked", "traps_failed",
    # wardtui/cluster.py, store/fencing.py, store/fenced_history.py (serve --cluster): only ever incremented
    "cluster_takeovers", "cluster_refused_writes", "cluster_refused_transitions",
    "cluster_unfenced_transitions", "cluster_lease_rounds_failed", "cluster_takeovers_failed",
    "cluster_stood_down",
})

# Gauges fields that are not exposed one to one: the state counts are wardtui_devices{state=...};
# ``at`` is wardtui_gauges_timestamp_seconds.
_NOT_FIELDS = frozenset({"at", "extra", "devices_up", "devices_down", "devices_unknown"})
_GAUGE_FIELDS = tuple(name for name in Gauges.__dataclass_fields__ if name not in _NOT_FIELDS)

HELP = {
    "devices_flapping": "Devices flapping now (3+ state changes in the flap window)",
    "checks_per_s": "Checks finished per second over the engine's rate window",
    "probes_per_s": "ICMP probes sent per second over the engine's rate window",
    "in_flight": "Checks running now (a probe or its confirmation)",
    "skipped": "Checks skipped, never queued (late + busy)",
    "skipped_late": "Checks skipped because the scheduler was a whole interval behind (overload)",
    "skipped_busy": "Checks skipped because the device's previous check still ran",
    "lag_p50_seconds": "Median scheduling lag (due -> probe sent) over the last gauge period",
    "lag_p99_seconds": "99th percentile scheduling lag over the last gauge period",
    "oldest_overdue_seconds": "How late the most overdue check is now",
    "rcvbuf_drops": "ICMP replies the kernel dropped because the socket buffer was full",
    "send_errors": "Probes the kernel refused to send (no route, ...)",
    "store_queue": "Events and rows waiting for the history store (spool included)",
    "probes_in_flight": "ICMP probes awaiting a reply or their turn to be sent",
    "late_replies": "ICMP replies that came after their probe had timed out",
    "send_waits": "ICMP sends the kernel put off for a full buffer, sent again (not loss)",
    "events_dropped": "Samples dropped for slow consumers, summed over the current consumers",
    "checks_on_demand": "Checks an operator asked for (probe now), outside the schedule",
    "checks_for_dependencies": "Checks of a parent before its failing child is declared, and of "
                               "UNREACHABLE children when their parent comes back",
    "snmp_agents": "SNMP agents polled",
    "snmp_polls_per_s": "SNMP polls answered per second",
    "snmp_requests_per_s": "SNMP requests sent per second",
    "snmp_timeouts": "SNMP requests unanswered after their retries",
    "snmp_auth_failures": "SNMP requests refused for their credentials",
    "snmp_failed": "SNMP polls that got no usable answer",
    "snmp_skipped": "SNMP polls skipped, never queued (slow agent or capacity)",
    "snmp_skipped_capacity": "SNMP polls skipped because the poller had no room",
    "snmp_v3_agents": "SNMPv3 agents polled",
    "snmp_v3_limit": "Adaptive limit of SNMPv3 polls in flight",
    "snmp_v3_in_flight": "SNMPv3 polls in flight",
    "snmp_v3_rediscoveries": "SNMPv3 agents rediscovered (a timeout, a new engineID, a clock gone back)",
    "snmp_v3_discoveries": "SNMPv3 engine discoveries",
    "snmp_v3_resyncs": "SNMPv3 notInTimeWindow reports followed (the agent's clock learnt again)",
    "snmp_bad_replies": "SNMP datagrams dropped: malformed, forged (v3: unsigned, wrong digest) or late",
    "snmp_send_errors": "SNMP sends the kernel reported an error for (e.g. ICMP port unreachable)",
    "snmp_lag_p99_seconds": "99th percentile SNMP scheduling lag over the last gauge period",
    "snmp_in_flight": "SNMP polls in flight",
    "snmp_backed_off": "SNMP polls not made because the agent was backed off",
    "snmp_agents_failing": "SNMP agents reported not answering now",
    "snmp_not_polled_down": "SNMP polls not made because ICMP held the device down",
    "snmp_over_speed": "Interface rates discarded for exceeding the interface speed",
    "snmp_no_rate": "Interface intervals given no rate (reset, reboot, ambiguous wrap)",
    "store_spool_rows": "History rows waiting in the spool on disk",
    "store_spool_bytes": "Size of the spool on disk",
    "store_samples_dropped": "History rows lost for good",
    "store_failing": "1 while the history database's last write failed",
    "store_spool_full": "1 while the spool's disk is full",
    "store_spool_damaged": "Spool lines set aside as unreadable",
    "store_snmp_pending": "SNMP polls and events waiting for the history store",
    "store_snmp_dropped": "SNMP polls lost for good",
    "store_off": "1 when the history store could not start (no history this run)",
    "store_off_pid": "The wardtui process holding the spool, when that is why the store is off",
    "feed_up": "1 while the live feed is connected to Redis",
    "feed_events": "Events streamed to Redis",
    "feed_events_lost": "Events dropped while Redis was away",
    "feed_snapshot_bytes": "Size of the last live-feed snapshot",
    "feed_snapshot_seconds": "Time to build the last live-feed snapshot",
    "feed_viewers": "Viewers of the live feed",
    "feed_commands": "Operator commands received through the live feed",
    "feed_commands_refused": "Operator commands dropped unanswered: 64 were running already",
    "feed_losses": "Times the connection to Redis was lost",
}
_DEVICE_HELP = {
    "up": "1 when the device is up, 0 when down; absent while its state is unknown",
    "rtt_seconds": "RTT of the device's last reply; absent before the first reply and while down",
    "loss_ratio": "Share of the device's probes lost in its rolling window (0-1)",
    "flapping": "1 while the device is flapping, else 0",
}


class MetricsEngine(Protocol):
    """What a scrape reads of :class:`poller.engine.Engine`."""

    @property
    def last_gauges(self) -> Gauges | None: ...

    @property
    def trackers(self) -> dict[str, DeviceTracker]: ...

    @property
    def checks_done(self) -> int: ...


def metric_name(name: str) -> tuple[str, float]:
    """The exposed name of a Gauges figure (without ``wardtui_``) and what its value is scaled
    by: milliseconds become seconds, Prometheus's base unit."""
    clean = "".join(c if c.isascii() and (c.isalnum() or c == "_") else "_" for c in name)
    if clean.endswith("_ms"):
        return clean[:-3] + "_seconds", 0.001
    return clean, 1.0


def tracker_snapshot(trackers: dict[str, DeviceTracker]) -> list[DeviceTracker]:
    """The trackers as a list, from another thread than the engine's.

    ``list(d.values())`` runs in C without giving up the GIL, so the loop cannot resize the dict
    half way through; a build without a GIL could, and then raises RuntimeError: try again.
    """
    for _ in range(10):
        try:
            return list(trackers.values())
        except RuntimeError:  # changed size during iteration
            time.sleep(0)
    return list(trackers.copy().values())


class EngineCollector(Collector):
    """Turns the engine's state into metric families at each scrape.

    The per-device families are kept for ``cache_seconds`` after they were built: two scrapers
    (an HA pair) at the same moment cost one walk over the trackers, not two.
    """

    def __init__(self, engine: MetricsEngine, per_device: bool = True, cache_seconds: float = 1.0) -> None:
        self.engine = engine
        self.per_device = per_device
        self.cache_seconds = cache_seconds
        self.last_device_build_s = 0.0  # how long the last walk over the trackers took
        self._lock = threading.Lock()  # scrapes run on threads of their own, possibly two at once
        self._devices: list[Metric] | None = None
        self._devices_at = 0.0

    def collect(self) -> Iterator[Metric]:
        gauges = self.engine.last_gauges
        yield from self._engine_families(gauges)
        if self.per_device:
            yield from self._device_families()

    # -- the engine's own figures ------------------------------------------------------------
    def _engine_families(self, gauges: Gauges | None) -> Iterator[Metric]:
        yield CounterMetricFamily(PREFIX + "checks", "Checks finished since the engine started",
                                  value=self.engine.checks_done)
        if gauges is None:  # before the first gauge period (a second) there is nothing else yet
            return
        yield GaugeMetricFamily(PREFIX + "gauges_timestamp_seconds",
                                "When the engine last sampled its gauges (unix time): stale = engine stuck",
                                value=gauges.at.timestamp())
        by_state = GaugeMetricFamily(PREFIX + "devices", "Devices by state", labels=["state"])
        by_state.add_metric([State.UP.value], gauges.devices_up)
        by_state.add_metric([State.DOWN.value], gauges.devices_down)
        by_state.add_metric([State.UNKNOWN.value], gauges.devices_unknown)
        by_state.add_metric([State.UNREACHABLE.value], gauges.extra.get("devices_unreachable", 0.0))
        yield by_state
        figures: dict[str, float] = {name: getattr(gauges, name) for name in _GAUGE_FIELDS}
        figures.update(gauges.extra)
        taken = {"checks", "devices", "gauges_timestamp_seconds", "devices_unreachable"}
        for raw, value in figures.items():
            name, scale = metric_name(raw)
            if name in taken or name.startswith("device_"):
                continue  # a second family of one name would make the whole scrape invalid
            taken.add(name)
            doc = HELP.get(name, f"wardtui engine figure {name}")
            if raw in COUNTERS:
                yield CounterMetricFamily(PREFIX + name, doc, value=float(value))
            else:
                yield GaugeMetricFamily(PREFIX + name, doc, value=float(value) * scale)

    # -- per device --------------------------------------------------------------------------
    def _device_families(self) -> list[Metric]:
        with self._lock:
            if self._devices is None or time.monotonic() - self._devices_at >= self.cache_seconds:
                start = time.perf_counter()
                self._devices = self._build_device_families()
                self.last_device_build_s = time.perf_counter() - start
                # From when it was ready: a scrape that waited for this build gets it.
                self._devices_at = time.monotonic()
            return self._devices

    def _build_device_families(self) -> list[Metric]:
        fams = {key: GaugeMetricFamily(PREFIX + "device_" + key, doc, labels=DEVICE_LABELS)
                for key, doc in _DEVICE_HELP.items()}
        up, rtt, loss, flapping = (fams[k].samples for k in ("up", "rtt_seconds", "loss_ratio", "flapping"))
        # Samples appended directly (what add_metric does, without its zip per call): at 100,000
        # devices this walk is a third of a scrape's cost.
        up_name, rtt_name, loss_name, flap_name = (fams[k].name for k in fams)
        for tracker in tracker_snapshot(self.engine.trackers):
            d = tracker.device
            labels = {"device": d.name, "branch": d.branch, "region": d.region, "type": d.type}
            state = tracker.state
            flapping.append(Sample(flap_name, labels, 1.0 if tracker.flapping else 0.0))
            if state is State.UNKNOWN:
                pass  # no series: the device has not been checked (counted in wardtui_devices)
            elif state is State.UP:
                up.append(Sample(up_name, labels, 1.0))
            else:
                up.append(Sample(up_name, labels, 0.0))
            rtt_ms = tracker.last_rtt_ms
            if rtt_ms is not None and state not in OUT:
                rtt.append(Sample(rtt_name, labels, rtt_ms / 1000.0))
            loss_pct = tracker.loss_pct
            if loss_pct is not None:
                loss.append(Sample(loss_name, labels, loss_pct / 100.0))
        return list(fams.values())


class MetricsServer:
    """Serves the Prometheus text format on HOST:PORT from a registry of its own."""

    def __init__(self, engine: MetricsEngine, per_device: bool = True, cache_seconds: float = 1.0) -> None:
        self.collector = EngineCollector(engine, per_device, cache_seconds)
        self.registry = CollectorRegistry(auto_describe=False)  # never the process-wide REGISTRY
        self.registry.register(self.collector)
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port listened on (the real one when started on port 0); 0 when not started."""
        return int(self._server.server_address[1]) if self._server is not None else 0

    def start(self, host: str, port: int) -> None:
        """Listen on ``host:port`` and answer scrapes on a thread of their own.

        Raises OSError naming the address when it cannot be bound (in use, not an address of
        this host, no permission, a name that does not resolve).
        """
        if self._server is not None:
            raise RuntimeError("the metrics server is already started")
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        try:
            self._server, self._thread = start_http_server(port, addr=host, registry=self.registry)
        except OSError as exc:
            error = OSError(f"metrics: cannot listen on {where}: {exc.strerror or exc}")
            error.errno = exc.errno  # for a caller that tells EADDRINUSE from the rest; str() stays one line
            raise error from None

    def close(self) -> None:
        """Stop answering and free the port. Idempotent. Blocks up to half a second (the
        server's poll interval): from an event loop, call it in a thread."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        server.shutdown()  # returns once serve_forever has left its loop
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
