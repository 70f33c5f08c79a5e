"""How many SNMPv3 polls may be in flight at once: as many as this process can answer in time.

A v3 poll cost ~6-10 ms of this process's CPU through pysnmp (issue 11); our own USM costs
~0.3-0.5 ms (issue 17), against ~0.25 ms for v2c. With more v3 agents due than the CPU
allows, every poll started beyond it only makes all answers wait longer, in the socket's
buffer and behind each other on the event loop, until they come too late: healthy agents
time out, are retried (more work) and backed off, and throughput collapses (issue 11: 49
polls/s at best for ~105 possible, 0 with other work on the machine). So v3 polls are
admitted by a limit that follows the measured latency of the answered requests (send ->
answer processed), the way TCP follows its round trip, and the event loop's own lag (how
late a timer fires, :meth:`AdmissionLimit.loop_lag`):

- answers later than ``target_s`` (p90) while the loop is congested (lag median over
  ``BUSY_LAG_S``), or with no lag measured: the limit shrinks;
- polls refused at the limit while answers come well within the target (p90 under half of it)
  or the loop is clearly idle (lag median under ``IDLE_LAG_S``): it grows;
- late answers with an idle loop: it holds. That is distance, not load: far agents (satellite,
  long WAN) answer late however few polls run, and shrinking for them would only skip the
  near ones too (measured: 15 % of agents at 0.6 s kept the limit at 2 and skipped 54 % of
  polls with the CPU idle).

Why the loop's lag and not its size against the target: v3 answers queue in the sockets'
receive buffers, not on the loop, so a saturated loop lags 10-40 ms whether answers wait 0.05
or 2 s (measured, 300 v3 agents on snmpd); a loop with time to spare lags ~1 ms (epoll's
millisecond). The lag says whether there is a queue of our own; the latency says how long.

A poll refused is skipped and counted, never queued, and never becomes a timeout. Only answers
are measured: a poll that ends unanswered (a silent agent, or an answer so late it timed out)
is no evidence of room, so it never makes the limit grow (measured: counting those as room let
the limit run to 1,600 under a CPU hog, and every agent timed out).

Pure logic, no I/O: the caller gives the clock, the latencies and the loop's lag.
"""

from __future__ import annotations

DECREASE = 0.8  # the limit's factor when answers were late
INCREASE = 1.25  # ... when they were early and polls were refused
PERIOD_S = 0.5  # the limit moves at most once per period
QUANTILE = 0.9  # of the period's latencies, compared with the target
# The event loop's lag (median of the period's probes): above BUSY_LAG_S it had a queue of its
# own work (measured 10-40 ms saturated by v3, ~1 ms with time to spare); under IDLE_LAG_S it
# clearly had room. Between the two, late answers neither shrink nor grow the limit.
BUSY_LAG_S = 0.005
IDLE_LAG_S = 0.0025


class AdmissionLimit:
    """An adaptive cap on concurrent v3 polls; :meth:`admit` before a poll, :meth:`done` after."""

    __slots__ = ("_high_water", "_lags", "_period_end", "_refused", "_samples", "ceiling", "floor",
                 "in_flight", "limit", "refused", "target_s")

    def __init__(self, target_s: float, *, initial: int = 16, floor: int = 2, ceiling: int = 2000) -> None:
        self.target_s = target_s
        self.floor = floor
        self.ceiling = ceiling
        self.limit = float(max(floor, min(initial, ceiling)))
        self.in_flight = 0
        self.refused = 0  # polls refused, whole run
        self._refused = 0  # ... in this period
        self._high_water = 0  # most polls in flight in this period
        self._samples: list[float] = []
        self._lags: list[float] = []  # the event loop's lag, this period
        self._period_end = -1.0

    def admit(self, now: float) -> bool:
        """Whether a poll may start now; if so it counts as in flight until :meth:`done`."""
        self._step(now)
        if self.in_flight >= int(self.limit):
            self.refused += 1
            self._refused += 1
            return False
        self.in_flight += 1
        self._high_water = max(self._high_water, self.in_flight)
        return True

    def done(self, latency_s: float | None) -> None:
        """A poll ended; ``latency_s`` is its slowest request's, None when nothing answered."""
        self.in_flight -= 1
        if latency_s is not None:
            self._samples.append(latency_s)

    def loop_lag(self, lag_s: float) -> None:
        """How late a timer on the polls' event loop fired: whether the loop has a queue."""
        self._lags.append(lag_s)

    def _step(self, now: float) -> None:
        if now < self._period_end:
            return
        if self._period_end >= 0:
            self._adjust()
        self._period_end = now + PERIOD_S
        self._samples.clear()
        self._lags.clear()
        self._refused = self._high_water = 0

    def _adjust(self) -> None:
        if not self._samples:
            return  # nothing answered: answers may be on their way, late; no news is no growth
        ordered = sorted(self._samples)
        late = ordered[min(len(ordered) - 1, int(QUANTILE * len(ordered)))]
        lags = sorted(self._lags)
        lag = lags[len(lags) // 2] if lags else None  # None: not measured, or no probe got a turn
        if late > self.target_s and (lag is None or lag > BUSY_LAG_S):
            self.limit = max(float(self.floor), self.limit * DECREASE)
            return
        if late > self.target_s / 2 and (lag is None or lag >= IDLE_LAG_S):
            return  # near the target, or late with the loop neither idle nor congested: hold
        # Grow only when the limit was what held polls back, not merely unused.
        if self._refused and self._high_water >= int(self.limit):
            self.limit = min(float(self.ceiling), self.limit * INCREASE + 1)
