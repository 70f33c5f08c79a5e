"""What the grouper keeps: problems, their membership of groups, and the walks up the parents
that titles and repeats need (over the open problems only, memoised for one message)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Literal

from poller.inventory import Device
from poller.notify.model import AlertItem, Route
from poller.notify.suppressions import device_labels

ProblemState = Literal["down", "unreachable"]
GroupKey = tuple[tuple[str, str], ...]
MAX_DEPTH = 32  # parents above parents; the inventory forbids loops, this bounds a walk anyway


def labels(device: Device, state: str) -> dict[str, str]:
    """What a route's matchers and ``group_by`` see (``tag``: any of the device's tags)."""
    return {**device_labels(device), "state": state}


class Problem:
    """One device's open problem, shared by every group it is in."""

    __slots__ = ("device", "groups", "silenced", "since", "state")

    def __init__(self, device: Device, state: ProblemState, since: datetime) -> None:
        self.device = device
        self.state: ProblemState = state
        self.since = since
        self.silenced = False
        self.groups: list[Group] = []


class Member:
    """A problem in one group. ``sent``: the state this group's last message showed it in (None:
    never notified here); ``again``: a silence of it ended, it is notified once more."""

    __slots__ = ("again", "problem", "sent")

    def __init__(self, problem: Problem, sent: ProblemState | None = None) -> None:
        self.problem = problem
        self.sent: ProblemState | None = sent
        self.again = False


class Group:
    """One route's group of problems and its timers (monotonic seconds)."""

    __slots__ = ("change_at", "change_due", "dead", "key", "last_sent", "members", "repeat_at",
                 "resolved", "route", "sent_any", "timer_at", "touched")

    def __init__(self, route: Route, key: GroupKey) -> None:
        self.route = route
        self.key = key
        self.members: dict[str, Member] = {}  # open problems, by device name
        # Notified problems that ended since the last message: the item, and the state last sent.
        self.resolved: dict[str, tuple[AlertItem, ProblemState]] = {}
        self.sent_any = False
        self.last_sent = 0.0
        self.change_at: float | None = None  # when a change goes out
        self.change_due = 0.0  # when it was first due (change_at may be later: still settling)
        self.touched = 0.0  # the last change
        self.repeat_at: float | None = None  # when the open problems are repeated
        self.timer_at: float | None = None  # the earliest live entry of this group in the heap
        self.dead = False


def alert_item(problem: Problem, state: Literal["down", "unreachable", "up"],
               ack: tuple[str, str] | None, ended: datetime | None = None) -> AlertItem:
    """The item a message lists for ``problem`` (``ack``: who acknowledged it, and the note)."""
    d = problem.device
    return AlertItem(device=d.name, address=d.address, state=state, since=problem.since,
                     branch=d.branch, region=d.region, type=d.type, tags=d.tags, parents=d.parents,
                     ended=ended, acked_by=ack[0] if ack else None, ack_note=ack[1] if ack else None)


def roots_of(problems: dict[str, Problem]) -> Callable[[str], frozenset[str]]:
    """A device's name -> the DOWN devices it is behind (its parents DOWN, and those of its
    UNREACHABLE parents, up), memoised: made for one message."""
    memo: dict[str, frozenset[str]] = {}

    def roots(name: str, depth: int = 0) -> frozenset[str]:
        if name in memo:
            return memo[name]
        memo[name] = frozenset()  # a loop in the parents: none
        problem = problems.get(name)
        if problem is None or depth > MAX_DEPTH:
            return memo[name]
        found: set[str] = set()
        for parent in problem.device.parents:
            other = problems.get(parent)
            if other is None:
                continue
            found |= {parent} if other.state == "down" else roots(parent, depth + 1)
        memo[name] = frozenset(found)
        return memo[name]

    return roots


def quiet(problems: dict[str, Problem], acked: Callable[[Device], tuple[str, str] | None], name: str,
          memo: dict[str, bool], depth: int = 0) -> bool:
    """Whether ``name``'s problem needs no repeat: acknowledged, or UNREACHABLE only behind
    devices whose problems need none."""
    if name in memo:
        return memo[name]
    memo[name] = False  # a loop in the parents stays loud
    problem = problems.get(name)
    if problem is None:
        return False
    if acked(problem.device) is not None:
        memo[name] = True
    elif problem.state == "unreachable" and depth < MAX_DEPTH:
        parents = [p for p in problem.device.parents if p in problems]
        memo[name] = bool(parents) and all(quiet(problems, acked, p, memo, depth + 1) for p in parents)
    return memo[name]
