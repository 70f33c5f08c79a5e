"""Notifications the receivers' tests send: a branch router DOWN with its children UNREACHABLE
behind it, its recovery, and text from outside that tries to be markup or terminal control."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from poller.notify.model import AlertItem, AlertState, Notification

# Rich markup, HTML, Slack/Markdown emphasis, an ANSI colour, a newline, RFC 5424's and JSON's
# specials: every format must show it as the text it is.
HOSTILE = '[bold]x[/] <script>alert(1)</script> *_~ `c` \x1b[31mred\nnext & "q" \\ ] <!channel>'
T0 = datetime(2026, 12, 6, 5, 50, tzinfo=UTC)
KEY = "bank:branches:hook:0f1e2d3c4b5a69788796a5b4c3d2e1f0"


def router(name: str = "north-b002-rtr", state: AlertState = "down", **more: Any) -> AlertItem:
    return AlertItem(device=name, address="10.2.0.1", state=state, since=T0, branch="north-b002",
                     region="north", type="router", **more)


def children(n: int, parent: str = "north-b002-rtr", state: AlertState = "unreachable") -> list[AlertItem]:
    return [AlertItem(device=f"north-b002-atm{i:02d}", address=f"10.2.0.{10 + i}", state=state,
                      since=T0 + timedelta(seconds=3), branch="north-b002", region="north", type="atm",
                      parents=(parent,)) for i in range(1, n + 1)]


def outage(n: int = 40, *, key: str = KEY, title: str | None = None, receiver: str = "hook",
           hostile: bool = False) -> Notification:
    """The router DOWN and ``n`` children UNREACHABLE behind it; ``hostile``: a child with a
    hostile name and an acknowledgement note, and a hostile group value."""
    items = [router(), *children(n)]
    group = (("branch", "north-b002"),)
    if hostile:
        items.append(AlertItem(device=HOSTILE, address="10.2.0.99", state="unreachable", since=T0,
                               branch="north-b002", parents=("north-b002-rtr",), acked_by="op",
                               ack_note=HOSTILE))
        group = (("branch", HOSTILE),)
    return Notification(key=key, site="bank", route="branches", receiver=receiver, status="firing",
                        title=title or f"north-b002-rtr DOWN, {len(items) - 1} devices unreachable behind it",
                        group=group, firing=tuple(items), resolved=(), created=T0 + timedelta(seconds=30))


def recovery(n: int = 40) -> Notification:
    ended = T0 + timedelta(minutes=12, seconds=5)
    items = [router(state="up", ended=ended), *(
        AlertItem(device=c.device, address=c.address, state="up", since=c.since, branch=c.branch,
                  parents=c.parents, ended=ended) for c in children(n))]
    return Notification(key=KEY.replace("0f1e", "aaaa"), site="bank", route="branches", receiver="hook",
                        status="resolved", title="north-b002-rtr UP again, 40 devices behind it recovered",
                        group=(("branch", "north-b002"),), firing=(), resolved=tuple(items),
                        created=ended + timedelta(seconds=30))
