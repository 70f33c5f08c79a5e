"""The notifier's brain: devices' problems -> grouped messages per route, as Alertmanager times
them, with dependencies folded into one title and a recovery for every problem notified.

Pure logic: no I/O, no task, the clocks injected (``clock``: monotonic seconds for timers;
``wall``: UTC datetimes for what messages say). The notifier (notifier.py) feeds it and asks
:meth:`Grouper.due` at :meth:`Grouper.next_due`.

- A problem is a device DOWN or UNREACHABLE; DOWN <-> UNREACHABLE keeps the same problem (its
  ``since``: the outage's ``down_since``); UP ends it.
- Routes are tried in order: the first that matches takes the problem, later ones too only while
  the matching routes say ``continue``. A problem stays in the groups it joined until it ends
  (its recovery goes where its problem went); a later state change may bring it into more.
- Per route and group (``route.group_key``): the first message waits ``group_wait`` from the
  group's first problem, so a router and the devices behind it, whichever was probed first, are
  one message. A later change (a problem begins, changes state or ends) waits ``group_wait`` too
  (a router's recovery and its children's, milliseconds apart, are one message), and at least
  ``group_interval`` after the group's previous message. With nothing new, the open problems are
  repeated every ``repeat_interval``.
- Every message lists the group's open problems and those that ended since its last message. A
  problem that was notified always gets its recovery; one that began and ended between two
  messages is never mentioned.
- Suppressions: a silenced problem is left out of messages (its recovery still goes, if it was
  notified before the silence); when its silence ends and it is still open, it is notified once.
  Repeats are sent only for problems no one acknowledged (an UNREACHABLE device behind
  acknowledged devices counts as acknowledged).

Cost: a change costs O(routes) (matching) plus O(1) per group (a timer pushed at most once per
message); titles and items are built only when a message is due.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Literal

from poller.events import State, Transition
from poller.inventory import Device
from poller.notify.config import routes_for
from poller.notify.groups import (
    Group,
    GroupKey,
    Member,
    Problem,
    ProblemState,
    alert_item,
    labels,
    quiet,
    roots_of,
)
from poller.notify.model import AlertItem, Notification, Route
from poller.notify.suppressions import Suppressions
from poller.notify.titles import title

__all__ = ["Grouper", "ProblemState"]

log = logging.getLogger(__name__)

Lookup = Callable[[str], Device | None]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Grouper:
    """Problems in, :class:`Notification` objects out (one per receiver of a route's group)."""

    def __init__(self, routes: Sequence[Route], *, site: str, suppressions: Suppressions | None = None,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], datetime] = _utcnow,
                 silence_recheck: float = 5.0, settle: float = 0.5, max_hold: float = 1.0) -> None:
        self.routes = tuple(routes)
        self._by_name = {r.name: r for r in self.routes}
        self.site = site
        self.suppressions = suppressions
        self.clock = clock
        self.wall = wall
        self.silence_recheck = silence_recheck
        self.settle = settle  # a due message waits until its group saw no change this long
        self.max_hold = max_hold  # ... at most this long
        self.problems: dict[str, Problem] = {}
        self.groups: dict[tuple[str, GroupKey], Group] = {}
        self._heap: list[tuple[float, int, Group]] = []
        self._seq = itertools.count()
        self._silenced: dict[str, Problem] = {}  # open problems a silence covered when last asked
        self._silence_at: float | None = None
        self.messages = 0  # messages built (one per route's group, before the copies per receiver)

    # -- what happens to devices ---------------------------------------------------------------
    def feed(self, transition: Transition, device: Device | None) -> None:
        """A transition of ``device`` (its inventory row now; None: no longer known)."""
        to = transition.to_state
        if to is State.UP:
            self.end(transition.device, transition.at)
        elif to is State.DOWN or to is State.UNREACHABLE:
            if device is None:
                problem = self.problems.get(transition.device)
                if problem is None:
                    return
                device = problem.device
            self.begin(device, "down" if to is State.DOWN else "unreachable",
                       transition.down_since or transition.at)

    def begin(self, device: Device, state: ProblemState, since: datetime) -> None:
        """``device`` is DOWN or UNREACHABLE: a new problem, or a change of the open one."""
        now = self.clock()
        problem = self.problems.get(device.name)
        if problem is None:
            problem = self.problems[device.name] = Problem(device, state, since)
            if self.suppressions is not None and self.suppressions.silenced(device, self.wall()):
                self._mark_silenced(problem, now)
        else:
            problem.device = device
            if problem.state == state:
                return
            problem.state = state
            if not problem.silenced:
                for group in problem.groups:
                    self._changed(group, now)
        self._route(problem, now)

    def end(self, name: str, at: datetime) -> None:
        """``name`` is UP again (or gone): its problem ends; a recovery for each group that was
        told of it."""
        problem = self.problems.pop(name, None)
        if problem is None:
            return
        now = self.clock()
        self._silenced.pop(name, None)
        ack = self.suppressions.acked(problem.device) if self.suppressions is not None else None
        for group in problem.groups:
            member = group.members.pop(name)
            if member.sent is not None:
                group.resolved[name] = (alert_item(problem, "up", ack, ended=at), member.sent)
                self._changed(group, now)
            elif not group.members and not group.resolved:
                self._drop(group)
        if self.suppressions is not None:
            self.suppressions.ended(problem.device, at)

    def forget(self, name: str, at: datetime) -> None:
        """``name`` left the inventory: its problem ends (a recovery if it was notified: nobody
        should wait for one that cannot come)."""
        self.end(name, at)

    def update_device(self, device: Device) -> None:
        """The inventory changed ``device`` (its groups stay; its items say what it is now)."""
        problem = self.problems.get(device.name)
        if problem is not None:
            problem.device = device

    def suppressions_changed(self) -> None:
        """Silences changed (a window added, ended early): every open problem is asked again."""
        if self.suppressions is None:
            return
        now, wall = self.clock(), self.wall()
        for problem in self.problems.values():
            self._ask_silenced(problem, now, wall)

    # -- routes and groups -------------------------------------------------------------------
    def _route(self, problem: Problem, now: float) -> None:
        device = problem.device
        labels_ = labels(device, problem.state)
        joined = {g.route.name for g in problem.groups}
        for route in routes_for(self.routes, labels_, device.tags):
            if route.name in joined:
                continue
            key = route.group_key(labels_)
            group = self.groups.get((route.name, key))
            if group is None:
                group = self.groups[(route.name, key)] = Group(route, key)
            group.members[device.name] = Member(problem)
            problem.groups.append(group)
            if not problem.silenced:
                self._changed(group, now)

    def _changed(self, group: Group, now: float) -> None:
        """Something in ``group`` changed: a message after group_wait (and group_interval after
        the last one); later changes before it go in the same message."""
        group.touched = now
        if group.change_at is not None:
            return
        route = group.route
        at = now + route.group_wait
        if group.sent_any:
            at = max(at, group.last_sent + route.group_interval)
        group.change_at = group.change_due = at
        self._schedule(group, at)

    def _schedule(self, group: Group, at: float) -> None:
        if group.timer_at is None or at < group.timer_at:
            group.timer_at = at
            heapq.heappush(self._heap, (at, next(self._seq), group))

    def _drop(self, group: Group) -> None:
        group.dead = True
        self.groups.pop((group.route.name, group.key), None)

    # -- silences ----------------------------------------------------------------------------
    def _mark_silenced(self, problem: Problem, now: float) -> None:
        problem.silenced = True
        self._silenced[problem.device.name] = problem
        if self._silence_at is None:
            self._silence_at = now + self.silence_recheck

    def _ask_silenced(self, problem: Problem, now: float, wall: datetime) -> bool:
        """Whether ``problem`` is silenced now; a silence that ended makes it a change."""
        assert self.suppressions is not None
        if self.suppressions.silenced(problem.device, wall):
            if not problem.silenced:
                self._mark_silenced(problem, now)
            return True
        if problem.silenced:
            problem.silenced = False
            name = problem.device.name
            self._silenced.pop(name, None)
            for group in problem.groups:
                group.members[name].again = True
                self._changed(group, now)
        return False

    def _recheck_silences(self, now: float) -> None:
        self._silence_at = None
        wall = self.wall()
        for problem in list(self._silenced.values()):
            self._ask_silenced(problem, now, wall)
        if self._silenced and self._silence_at is None:
            self._silence_at = now + self.silence_recheck

    # -- timers ------------------------------------------------------------------------------
    def next_due(self) -> float | None:
        """When :meth:`due` has something to do next (the ``clock``'s time), None: nothing."""
        heap = self._heap
        while heap and (heap[0][2].dead or heap[0][2].timer_at != heap[0][0]):
            heapq.heappop(heap)  # a group's earlier timer, or a group that is gone
        at = heap[0][0] if heap else None
        if self._silence_at is not None and (at is None or self._silence_at < at):
            return self._silence_at
        return at

    def due(self, now: float | None = None, limit: int | None = None) -> list[Notification]:
        """The messages due at ``now`` (default: the clock), one per receiver of its route: of
        every group due, or of the first ``limit`` (the caller asks again for the rest)."""
        now = self.clock() if now is None else now
        if self._silence_at is not None and self._silence_at <= now:
            self._recheck_silences(now)
        out: list[Notification] = []
        heap = self._heap
        flushed = 0
        while heap and heap[0][0] <= now and (limit is None or flushed < limit):
            at, _, group = heapq.heappop(heap)
            if group.dead or group.timer_at != at:
                continue
            group.timer_at = None
            out += self._flush(group, now)
            flushed += 1
        return out

    def _flush(self, group: Group, now: float) -> list[Notification]:
        route = group.route
        wall = self.wall()
        firing = self._visible(group, now, wall)
        changed = bool(group.resolved) or any(m.again or m.sent != m.problem.state for m in firing)
        if changed and group.change_at is None:  # a silence ended, seen only now
            self._changed(group, now)
        out: list[Notification] = []
        if group.change_at is not None and group.change_at <= now:
            # Still changing (a storm's verdicts, late on a starved loop): wait until it settles,
            # at most max_hold more.
            settled = min(group.touched + min(self.settle, route.group_wait / 2),
                          group.change_due + self.max_hold)
            if changed and settled > now:
                group.change_at = settled
            else:
                group.change_at = None
                if changed:
                    out = self._send(group, firing, now, wall)
        elif group.repeat_at is not None and group.repeat_at <= now:
            if group.change_at is not None:
                group.repeat_at = group.change_at  # that message repeats them (if it happens)
            elif firing and self._any_loud(firing):
                out = self._send(group, firing, now, wall)
            else:
                group.repeat_at = now + route.repeat_interval  # silenced or acknowledged: ask again
        if not group.members and not group.resolved:
            self._drop(group)
            return out
        for at in (group.change_at, group.repeat_at):
            if at is not None:
                self._schedule(group, at)
        return out

    def _visible(self, group: Group, now: float, wall: datetime) -> list[Member]:
        """The group's open problems that no silence covers now."""
        if self.suppressions is None:
            return list(group.members.values())
        return [m for m in group.members.values() if not self._ask_silenced(m.problem, now, wall)]

    def _any_loud(self, firing: Sequence[Member]) -> bool:
        """Whether a repeat is due for any of ``firing``: one nobody acknowledged, and not
        unreachable only behind acknowledged devices."""
        if self.suppressions is None:
            return bool(firing)
        memo: dict[str, bool] = {}
        acked = self.suppressions.acked
        return any(not quiet(self.problems, acked, m.problem.device.name, memo) for m in firing)

    # -- messages ----------------------------------------------------------------------------
    def _send(self, group: Group, firing: list[Member], now: float, wall: datetime) -> list[Notification]:
        route = group.route
        firing.sort(key=lambda m: (m.problem.state != "down", m.problem.device.name))
        acked = self.suppressions.acked if self.suppressions is not None else None
        items = tuple(alert_item(m.problem, m.problem.state, acked(m.problem.device) if acked else None)
                      for m in firing)
        ended = sorted(group.resolved.values(), key=lambda r: r[0].device)
        text = title(items, ended, group.key, roots_of(self.problems))
        for m in firing:
            m.sent = m.problem.state
            m.again = False
        group.resolved = {}
        group.sent_any = True
        group.last_sent = now
        group.change_at = None
        group.repeat_at = now + route.repeat_interval if firing else None
        self.messages += 1
        status: Literal["firing", "resolved"] = "firing" if items else "resolved"
        resolved = tuple(item for item, _ in ended)
        return [Notification(key=f"{self.site}:{route.name}:{receiver}:{uuid.uuid4().hex}",
                             site=self.site, route=route.name, receiver=receiver, status=status,
                             title=text, group=group.key, firing=items, resolved=resolved, created=wall)
                for receiver in route.receivers]

    # -- restart -----------------------------------------------------------------------------
    def restore(self, latest: Iterable[Notification], lookup: Lookup = lambda name: None) -> None:
        """Start again from the outbox's latest message per (route, group) (one per receiver: any
        of them): its firing problems were notified, so they will get their recovery, and are
        repeated on time. A route no longer configured is skipped (logged)."""
        now, wall = self.clock(), self.wall()
        for note in latest:
            route = self._by_name.get(note.route)
            if route is None:
                log.warning("notifications of route %r not restored: no such route now", note.route)
                continue
            key = tuple(note.group)
            group = self.groups.get((route.name, key))
            if group is None:
                group = self.groups[(route.name, key)] = Group(route, key)
            age = max(0.0, (wall - note.created).total_seconds())
            group.last_sent = max(group.last_sent, now - age) if group.sent_any else now - age
            group.sent_any = True
            for item in note.firing:
                if item.state not in ("down", "unreachable"):
                    continue
                self._restore_item(group, item, lookup(item.device))
            if group.members:
                group.repeat_at = group.last_sent + route.repeat_interval
                self._schedule(group, group.repeat_at)
            elif not group.resolved:
                self._drop(group)

    def _restore_item(self, group: Group, item: AlertItem, device: Device | None) -> None:
        state: ProblemState = "down" if item.state == "down" else "unreachable"
        problem = self.problems.get(item.device)
        if problem is None:
            device = device or Device(item.device, item.address, item.branch, item.region, item.type,
                                      parents=item.parents, tags=item.tags)
            problem = self.problems[item.device] = Problem(device, state, item.since)
        member = group.members.get(item.device)
        if member is None:
            group.members[item.device] = Member(problem, state)
            problem.groups.append(group)
        else:
            member.sent = state
