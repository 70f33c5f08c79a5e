"""What a notification says, in words: its title and its devices, the children behind a parent.

Shared by every receiver: email (its plain part, and the rows of its HTML part), command and
Slack take :func:`plain_text`; syslog one line of it; Teams and the HTML part :func:`sections`.
A DOWN router with UNREACHABLE children in the same message is one entry with the children
listed under it ("40 devices unreachable behind it"); the message's title (one line, made by the
grouper: titles.py) says the same.

Everything here is plain text with terminal control made visible-but-inert (poller/text.py's
``clean``: a newline or an ESC in a device name becomes U+FFFD); each format escapes what is
special to it (HTML, mrkdwn, Markdown, RFC 5424) on top of this.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from poller.durations import format_duration
from poller.notify.model import AlertItem, Notification
from poller.text import clean

STATE_WORDS = {"down": "DOWN", "unreachable": "UNREACHABLE", "up": "UP"}


@dataclass(frozen=True, slots=True)
class Entry:
    """A device, and the devices of the same message that are out because it is."""

    item: AlertItem
    behind: tuple[AlertItem, ...] = ()
    unlisted: int = 0  # devices behind it left out of the listing (a message has a size limit)

    @property
    def count(self) -> int:
        """How many devices are behind it, listed or not."""
        return len(self.behind) + self.unlisted


@dataclass(frozen=True, slots=True)
class Section:
    heading: str  # "Firing: 41 devices", "Resolved: 2 devices"
    resolved: bool
    entries: tuple[Entry, ...] = field(default=())
    unlisted: int = 0  # devices of the section not listed at all (past the limit)


def fold(items: Sequence[AlertItem], resolved: bool = False) -> list[Entry]:
    """``items`` with each one whose parents in the message lead to a DOWN device (firing) or
    to any device (resolved) listed under that device, in the order given."""
    by_name = {item.device: item for item in items}
    roots: dict[str, list[AlertItem]] = {}
    placed: dict[str, str] = {}
    for item in items:
        root = _root(item, by_name, resolved)
        if root is None:
            roots.setdefault(item.device, [])
        else:
            placed[item.device] = root
    for item in items:
        if item.device in placed:
            roots.setdefault(placed[item.device], []).append(item)
    return [Entry(by_name[name], tuple(behind)) for name, behind in roots.items()]


def _root(item: AlertItem, by_name: dict[str, AlertItem], resolved: bool) -> str | None:
    """The device ``item`` is listed under, or None when it stands on its own: a firing item
    goes under the DOWN device its chain of parents in the message reaches; a resolved one
    under the top of its chain in the message."""
    if not resolved and item.state != "unreachable":
        return None
    seen = {item.device}
    current = item
    while True:
        parent = next((by_name[p] for p in current.parents if p in by_name and p not in seen), None)
        if parent is None:
            return None if current is item or not resolved else current.device
        if not resolved and parent.state == "down":
            return parent.device
        seen.add(parent.device)
        current = parent


def _count(n: int, what: str = "device") -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


def _names(entries: Sequence[Entry], word: str) -> str:
    first = clean(entries[0].item.device)
    return f"{first} {word}" if len(entries) == 1 else f"{first} and {len(entries) - 1} more {word}"


def stamp(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def columns(item: AlertItem) -> list[str]:
    """A device's fields as shown: name, address, state, since (or how long it was out), branch,
    and who acknowledged it; cleaned of terminal control."""
    state = STATE_WORDS.get(item.state, item.state.upper())
    if item.state == "up" and item.ended is not None:
        when = f"was out from {stamp(item.since)} for {format_duration(item.ended - item.since)}"
    else:
        when = f"since {stamp(item.since)}"
    shown = [item.device, item.address, state, when, f"branch {item.branch}" if item.branch else ""]
    if item.acked_by:
        note = f": {item.ack_note}" if item.ack_note else ""
        shown.append(f"acknowledged by {item.acked_by}{note}")
    return [clean(text) for text in shown]


def item_line(item: AlertItem) -> str:
    return "  ".join(c for c in columns(item) if c)


def behind_line(entry: Entry, resolved: bool) -> str:
    n = _count(entry.count)
    return f"{n} behind it recovered too:" if resolved else f"{n} unreachable behind it:"


def unlisted_line(count: int) -> str:
    return f"... and {_count(count)} more, not listed here"


def sections(notification: Notification, limit: int | None = None) -> list[Section]:
    """The firing and the resolved devices, folded; with ``limit``, at most that many device
    lines in all (a chat service refuses a message past its size): the rest are counted."""
    found = []
    budget = [limit]
    if notification.firing:
        found.append(_listed(f"Firing: {_count(len(notification.firing))}", False,
                             fold(notification.firing), budget))
    if notification.resolved:
        found.append(_listed(f"Resolved: {_count(len(notification.resolved))}", True,
                             fold(notification.resolved, resolved=True), budget))
    return found


def _listed(heading: str, resolved: bool, entries: list[Entry], budget: list[int | None]) -> Section:
    left = budget[0]
    if left is None:
        return Section(heading, resolved, tuple(entries))
    kept: list[Entry] = []
    unlisted = 0
    for entry in entries:
        if left <= 0:
            unlisted += 1 + entry.count
            continue
        shown = entry.behind[: left - 1]
        kept.append(Entry(entry.item, shown, entry.count - len(shown)))
        left -= 1 + len(shown)
    budget[0] = left
    return Section(heading, resolved, tuple(kept), unlisted)


def footer(notification: Notification) -> str:
    group = ", ".join(f"{k}={v}" for k, v in notification.group)
    return clean(f"site {notification.site}, route {notification.route}"
                 + (f", group {group}" if group else "") + f", sent {stamp(notification.created)}")


PLAIN_LIMIT = 500  # device lines in a text message (email's plain part, Slack has its own)


def plain_text(notification: Notification, limit: int | None = PLAIN_LIMIT) -> str:
    """The whole message as text: the title, a line per device (the children indented under
    their parent; past ``limit`` lines, counted), where it came from."""
    lines = [clean(notification.title)]
    if notification.status == "test":
        lines.append(f"A test from wardtui to receiver {clean(notification.receiver)}: no device is out.")
    for section in sections(notification, limit):
        lines += ["", section.heading]
        for entry in section.entries:
            lines.append(f"- {item_line(entry.item)}")
            if entry.count:
                lines.append(f"    {behind_line(entry, section.resolved)}")
                lines += [f"    - {item_line(child)}" for child in entry.behind]
                if entry.unlisted:
                    lines.append(f"    {unlisted_line(entry.unlisted)}")
        if section.unlisted:
            lines.append(unlisted_line(section.unlisted))
    lines += ["", footer(notification)]
    return "\n".join(lines)
