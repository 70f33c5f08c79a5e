"""What the notifier's parts say to each other: a route, a notification, a receiver.

The grouper (grouper.py) turns the engine's transitions into :class:`Notification` objects per
route and group; the outbox (outbox.py; durable: store/outbox.py) keeps them per receiver until
delivered; a :class:`Receiver` (receivers.py) delivers one. Everything here is plain data: a
notification is stored as the JSON of :meth:`Notification.to_dict` and read back with
:meth:`Notification.from_dict`, so what is retried after a restart is what was built.

Text that is not ours (device names, tags, notes) stays data: each receiver escapes it for its
format (HTML for email, mrkdwn for Slack, Markdown for Teams, control characters for syslog).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

Status = Literal["firing", "resolved", "test"]
AlertState = Literal["down", "unreachable", "up"]

# What a matcher may name; ``tag`` matches when any of the device's tags does.
MATCH_KEYS = ("device", "branch", "region", "type", "tag", "state")


@dataclass(frozen=True, slots=True)
class Matcher:
    """``key = value`` (``op`` "="), ``key != value`` ("!="), ``key =~ regex`` ("=~", anchored,
    as Alertmanager's) or ``key !~ regex`` ("!~"). ``state`` is "down" or "unreachable"."""

    key: str
    op: str
    value: str
    pattern: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    def matches(self, labels: dict[str, str], tags: tuple[str, ...]) -> bool:
        candidates = tags if self.key == "tag" else (labels.get(self.key, ""),)
        if self.op in ("=", "!="):
            hit = any(c == self.value for c in candidates)
        else:
            pattern = self.pattern or re.compile(self.value)
            hit = any(pattern.fullmatch(c) is not None for c in candidates)
        return hit if self.op in ("=", "=~") else not hit


@dataclass(frozen=True, slots=True)
class Route:
    """One route of the notify file: which problems (every matcher must match; none: all), to
    which receivers, grouped how and when (seconds), as Alertmanager's route."""

    name: str
    receivers: tuple[str, ...]
    matchers: tuple[Matcher, ...] = ()
    group_by: tuple[str, ...] = ("branch",)
    group_wait: float = 30.0
    group_interval: float = 300.0
    repeat_interval: float = 4 * 3600.0
    line: int = 0  # where the route starts in its file, for messages
    # Alertmanager's ``continue``: routes are tried in order and the first that matches takes the
    # problem; with ``continue_`` the routes after this one are tried too (config.routes_for).
    continue_: bool = False

    def matches(self, labels: dict[str, str], tags: tuple[str, ...]) -> bool:
        return all(m.matches(labels, tags) for m in self.matchers)

    def group_key(self, labels: dict[str, str]) -> tuple[tuple[str, str], ...]:
        return tuple((k, labels.get(k, "")) for k in self.group_by)


@dataclass(frozen=True, slots=True)
class AlertItem:
    """One device's problem (or its end) inside a notification."""

    device: str
    address: str
    state: AlertState  # "up" in a resolved item
    since: datetime  # when the problem began (the outage's down_since)
    branch: str = ""
    region: str = ""
    type: str = ""
    tags: tuple[str, ...] = ()
    parents: tuple[str, ...] = ()
    ended: datetime | None = None  # when it recovered (resolved items)
    acked_by: str | None = None
    ack_note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"device": self.device, "address": self.address, "state": self.state,
                "since": self.since.isoformat(), "branch": self.branch, "region": self.region,
                "type": self.type, "tags": list(self.tags), "parents": list(self.parents),
                "ended": self.ended.isoformat() if self.ended else None,
                "acked_by": self.acked_by, "ack_note": self.ack_note}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AlertItem:
        return cls(device=d["device"], address=d["address"], state=d["state"],
                   since=datetime.fromisoformat(d["since"]), branch=d.get("branch", ""),
                   region=d.get("region", ""), type=d.get("type", ""), tags=tuple(d.get("tags", ())),
                   parents=tuple(d.get("parents", ())),
                   ended=datetime.fromisoformat(d["ended"]) if d.get("ended") else None,
                   acked_by=d.get("acked_by"), ack_note=d.get("ack_note"))


@dataclass(frozen=True, slots=True)
class Notification:
    """One message for one receiver. ``key`` is its idempotency key: the same for every attempt
    and every restart (the outbox stores it), so a receiver can drop a repeat."""

    key: str
    site: str
    route: str
    receiver: str
    status: Status
    title: str  # one line: "north-b002-rtr DOWN, 40 devices unreachable behind it"
    group: tuple[tuple[str, str], ...]  # the route's group_by labels and their values
    firing: tuple[AlertItem, ...]  # problems open when it was built
    resolved: tuple[AlertItem, ...]  # problems that ended since the group's last message
    created: datetime

    def to_dict(self) -> dict[str, Any]:
        """The generic JSON body (webhook without preset, command's stdin, the outbox)."""
        return {"version": 1, "key": self.key, "site": self.site, "route": self.route,
                "receiver": self.receiver, "status": self.status, "title": self.title,
                "group": dict(self.group), "firing": [a.to_dict() for a in self.firing],
                "resolved": [a.to_dict() for a in self.resolved],
                "created": self.created.isoformat()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Notification:
        return cls(key=d["key"], site=d["site"], route=d["route"], receiver=d["receiver"],
                   status=d["status"], title=d["title"], group=tuple(d["group"].items()),
                   firing=tuple(AlertItem.from_dict(a) for a in d["firing"]),
                   resolved=tuple(AlertItem.from_dict(a) for a in d["resolved"]),
                   created=datetime.fromisoformat(d["created"]))


class DeliveryError(Exception):
    """A receiver could not deliver. ``retryable`` False: retrying the same message cannot help
    (a 4xx other than 408/429, a refused address); it is marked failed and counted.
    ``retry_after``: the receiver's own hint (HTTP Retry-After), in seconds."""

    def __init__(self, message: str, *, retryable: bool = True, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


class Receiver(Protocol):
    """Delivers one notification; raises :class:`DeliveryError` when it could not. A receiver
    must be safe to call again with the same notification (the key says it is a repeat)."""

    name: str
    kind: str  # "webhook", "email", "command", "syslog"

    async def send(self, notification: Notification) -> None: ...

    async def aclose(self) -> None: ...
