"""The adaptive v3 in-flight limit: grows while answers are early and polls are refused, shrinks
when answers come late, and never grows on no news."""

from __future__ import annotations

from poller.snmp_admission import PERIOD_S, AdmissionLimit


def fill(limit: AdmissionLimit, now: float) -> int:
    """Admit polls until refused; how many were admitted."""
    admitted = 0
    while limit.admit(now):
        admitted += 1
    return admitted


def period(limit: AdmissionLimit, now: float, latency: float | None) -> float:
    """One period: fill the limit, every poll ends with ``latency``; the next period's start."""
    n = fill(limit, now)
    for _ in range(n):
        limit.done(latency)
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
