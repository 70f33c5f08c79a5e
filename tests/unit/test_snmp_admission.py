"""The adaptive v3 in-flight limit: grows while answers are early (or the loop idle) and polls
are refused, shrinks when answers come late on a congested loop, and never grows on no news."""

from __future__ import annotations

import heapq
import random

from poller.snmp_admission import PERIOD_S, AdmissionLimit


def fill(limit: AdmissionLimit, now: float) -> int:
    """Admit polls until refused; how many were admitted."""
    admitted = 0
    while limit.admit(now):
        admitted += 1
    return admitted


def period(limit: AdmissionLimit, now: float, latency: float | None, lag: float | None = None) -> float:
    """One period: fill the limit, every poll ends with ``latency``, the loop's lag probed 20
    times as ``lag`` (None: not at all); the next period's start."""
    n = fill(limit, now)
    for _ in range(n):
        limit.done(latency)
    for _ in range(20 if lag is not None else 0):
        limit.loop_lag(lag)
    return now + PERIOD_S


def test_grows_while_answers_are_early_and_polls_are_refused() -> None:
    limit = AdmissionLimit(0.5, initial=4, ceiling=100)
    now = 0.0
    sizes = []
    for _ in range(20):
        now = period(limit, now, 0.01)
        sizes.append(int(limit.limit))
    assert sizes[-1] == 100 and sizes == sorted(sizes)
    assert limit.refused >= 12


def test_shrinks_when_answers_come_late_but_not_below_the_floor() -> None:
    limit = AdmissionLimit(0.5, initial=64, floor=3)
    now = 0.0
    for _ in range(30):
        now = period(limit, now, 0.9)
    fill(limit, now)  # the last period is judged when the next begins
    assert int(limit.limit) == 3


def test_holds_near_the_target() -> None:
    limit = AdmissionLimit(0.5, initial=20)
    now = 0.0
    for _ in range(10):
        now = period(limit, now, 0.4)
    assert int(limit.limit) == 20


def test_does_not_grow_when_unused_or_when_nothing_ended() -> None:
    limit = AdmissionLimit(0.5, initial=10)
    for i in range(10):  # little demand: never refused
        now = i * PERIOD_S
        assert limit.admit(now)
        limit.done(0.01)
    assert int(limit.limit) == 10
    now = 10 * PERIOD_S
    fill(limit, now)  # all in flight, none ends: answers may be on their way, late
    for i in range(1, 6):
        limit.admit(now + i * PERIOD_S)
    assert int(limit.limit) == 10


def test_unanswered_polls_never_make_it_grow_answered_early_ones_do() -> None:
    # A timeout may be a silent agent or an answer that came too late: no evidence of room.
    limit = AdmissionLimit(0.5, initial=10)
    now = 0.0
    for _ in range(3):
        now = period(limit, now, None)
    fill(limit, now)
    assert int(limit.limit) == 10
    # Silent agents holding most places, one live one answering early: room, so it grows.
    for _ in range(3):
        n = fill(limit, now)
        for _ in range(n - 1):
            limit.done(None)
        limit.done(0.01)
        now += PERIOD_S
    fill(limit, now)
    assert limit.limit > 10


def test_done_frees_a_place() -> None:
    limit = AdmissionLimit(0.5, initial=2)
    assert limit.admit(0.0) and limit.admit(0.0) and not limit.admit(0.0)
    limit.done(0.01)
    assert limit.admit(0.0) and limit.in_flight == 2 and limit.refused == 1


def fleet(far_share: float, loop_lag: float | None, *, agents: int = 1000, interval: float = 60.0,
          far_rtt: float = 0.6, cost: float = 0.0,
          seconds: float = 300.0) -> tuple[float, float, AdmissionLimit]:
    """A v3 fleet on a simulated clock (the reviewer's simulator, with the loop probed): each
    agent due once per ``interval``, 3 requests per poll; LAN agents answer in 10 ms, the first
    ``far_share`` of them in ``far_rtt``; each poll in flight adds ``cost`` to every answer (a
    CPU-bound loop); the loop's lag is ``loop_lag`` every 20 ms (None: not measured). Polls/s
    and the share of polls refused over the last half, and the limit."""
    limit = AdmissionLimit(0.5, ceiling=2000)
    rng = random.Random(1)
    events: list[tuple[float, int, int]] = [(rng.uniform(0, interval), 0, i) for i in range(agents)]
    events += [(k * 0.02, 2, -1) for k in range(int(seconds / 0.02))]
    heapq.heapify(events)
    polls = refused = 0
    latency: dict[int, float] = {}
    while events:
        t, kind, i = heapq.heappop(events)
        if t > seconds:
            break
        counted = t > seconds / 2
        if kind == 2:
            if loop_lag is not None:
                limit.loop_lag(loop_lag)
        elif kind == 0:
            heapq.heappush(events, (t + interval, 0, i))
            if limit.admit(t):
                latency[i] = (far_rtt if i < agents * far_share else 0.01) + limit.in_flight * cost
                heapq.heappush(events, (t + 3 * latency[i], 1, i))
            else:
                refused += counted
        else:
            limit.done(latency[i])
            polls += counted
    return polls / (seconds / 2), refused / max(1, polls + refused), limit


def test_far_agents_with_an_idle_loop_are_not_throttled() -> None:
    # 30 % of agents over a satellite link (0.6 s, beyond the 0.5 s target), the loop idle
    # (lag ~1 ms, as measured with time to spare): distance, not load. All 16.7 polls/s due run.
    rate, refused, limit = fleet(0.3, 0.001)
    assert rate > 16.0 and refused < 0.01, (rate, refused, limit.limit)
    # Without the loop's lag the same fleet collapses to the floor (the reported bug).
    rate, refused, limit = fleet(0.3, None)
    assert refused > 0.5 and int(limit.limit) <= 3


def test_late_answers_on_a_congested_loop_still_shrink_the_limit() -> None:
    # 200 polls/s due, each one in flight making every answer 10 ms later (the loop's CPU):
    # answers reach the 0.5 s target at ~50 in flight, and the loop lags 20 ms (saturated).
    rate, refused, limit = fleet(0.0, 0.02, interval=5.0, cost=0.01, seconds=120)
    assert 10 <= limit.limit <= 80 and refused > 0.3, (rate, refused, limit.limit)
    # Far agents on that congested loop: late and congested, so it shrinks as before.
    limit = AdmissionLimit(0.5, initial=64)
    now = 0.0
    for _ in range(30):
        now = period(limit, now, 0.9, lag=0.02)
    fill(limit, now)
    assert int(limit.limit) == 2


def test_late_answers_hold_when_the_loop_is_neither_idle_nor_congested() -> None:
    limit = AdmissionLimit(0.5, initial=20)
    now = 0.0
    for _ in range(10):
        now = period(limit, now, 0.9, lag=0.004)
    fill(limit, now)
    assert int(limit.limit) == 20
