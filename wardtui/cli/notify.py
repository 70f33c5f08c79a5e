"""``wardtui notify test ROUTE --notify FILE`` (a test message to each receiver of a route, now)
and ``wardtui notify check FILE`` (the notify file checked, its routes and receivers listed).

Exit codes: 0 every receiver took the test (check: the file is right); 1 one or more could not
(each says why); 2 a bad notify or credentials file (every ``file:line`` problem on stderr) or
a route the file does not have. docs/NOTIFICATIONS.md is the notify file's reference."""

from __future__ import annotations

import argparse
import asyncio
import shlex
from pathlib import Path
from typing import TYPE_CHECKING

from wardtui.cli.common import Commands, command, write_out
from wardtui.messages import error

if TYPE_CHECKING:
    from poller.notify.config import NotifyConfig
    from poller.notify.model import Receiver
    from poller.notify.receiver_config import ReceiverConfig

EXAMPLES = """\
examples:
  wardtui notify check /etc/wardtui/notify.yaml
  wardtui notify test north-routers --notify /etc/wardtui/notify.yaml
  wardtui notify test noc --notify examples/notify.yaml --credentials ~/.config/wardtui/credentials.yaml

exit codes: 0 sent to every receiver (check: the file is right), 1 a receiver failed, 2 a bad
file or an unknown route.
"""
ACTIONS = (
    ("test", "send a test notification to every receiver of ROUTE now, one line per receiver",
     "  wardtui notify test north-routers --notify /etc/wardtui/notify.yaml\n"
     "  wardtui notify test noc --notify notify.yaml --credentials credentials.yaml --site paris-dc1\n"),
    ("check", "check a notify file (every problem with its line) and list its routes and receivers",
     "  wardtui notify check /etc/wardtui/notify.yaml\n"
     "  wardtui notify check notify.yaml --credentials credentials.yaml\n"),
)
CREDENTIALS_HELP = ("the credentials file the receivers' secrets are read from (kind: secret entries; "
                    "default: $XDG_CONFIG_HOME/wardtui/credentials.yaml)")


def register(sub: Commands) -> None:
    notify = command(sub, "notify", run, "notifications: send a test message through a route, check "
                     "a notify file", EXAMPLES)
    actions = notify.add_subparsers(dest="notify_command", metavar="ACTION", required=True)
    for name, text, example in ACTIONS:
        action = actions.add_parser(name, help=text, description=text, epilog="examples:\n" + example,
                                    formatter_class=argparse.RawDescriptionHelpFormatter)
        if name == "test":
            action.add_argument("route", metavar="ROUTE", help="the route's name in the notify file")
            action.add_argument("--notify", type=Path, metavar="FILE", required=True,
                                help="the notify file (YAML; docs/NOTIFICATIONS.md)")
            # SUPPRESS: `wardtui --site X notify test ...` keeps X.
            action.add_argument("--site", metavar="NAME", default=argparse.SUPPRESS,
                                help="the site named in the message and its key (default: wardtui)")
        else:
            action.add_argument("file", type=Path, metavar="FILE", help="the notify file (YAML)")
        action.add_argument("--credentials", type=Path, metavar="FILE", default=argparse.SUPPRESS,
                            help=CREDENTIALS_HELP)


def run(args: argparse.Namespace) -> int:
    from poller.notify.config import NotifyError, load_notify

    path = args.notify if args.notify_command == "test" else args.file
    try:
        config = load_notify(path, getattr(args, "credentials", None))
    except NotifyError as exc:
        for problem in exc.problems:
            error(problem)
        return 2
    if args.notify_command == "check":
        write_out(describe(config))
        return 0
    route = config.route(args.route)
    if route is None:
        error(f"{path}: no route named {args.route!r} (routes: {', '.join(r.name for r in config.routes)})")
        return 2
    site = getattr(args, "site", None) or "wardtui"
    results = asyncio.run(send_tests(config, route.name, site))
    write_out("\n".join(f"{name} ({kind}): {outcome}" for name, kind, outcome in results))
    return 0 if all(outcome == "sent" for _, _, outcome in results) else 1


async def send_tests(config: NotifyConfig, route: str, site: str) -> list[tuple[str, str, str]]:
    """Send a test notification to each receiver of ``route`` at once; (name, kind, outcome)."""
    from poller.notify.receivers import build_receiver, build_test_notification

    chosen = config.route(route)
    names = chosen.receivers if chosen else ()
    receivers = {name: build_receiver(config.receivers[name]) for name in names}

    async def one(name: str, receiver: Receiver) -> tuple[str, str, str]:
        from poller.notify.model import DeliveryError

        try:
            await receiver.send(build_test_notification(site, route, name))
        except DeliveryError as exc:
            later = "retryable" if exc.retryable else "not retryable"
            return name, receiver.kind, f"failed: {exc} ({later})"
        finally:
            await receiver.aclose()
        return name, receiver.kind, "sent"

    return list(await asyncio.gather(*(one(n, r) for n, r in receivers.items())))


def describe(config: NotifyConfig) -> str:
    from poller.notify.config import describe_route

    lines = [f"{config.path}: {len(config.routes)} routes, {len(config.receivers)} receivers"]
    lines += [f"route {describe_route(route)}" for route in config.routes]
    lines += [f"receiver {describe_receiver(receiver)}" for receiver in config.receivers.values()]
    return "\n".join(lines)


def describe_receiver(receiver: ReceiverConfig) -> str:
    """One line, no secret: a webhook's URL as its origin, a password as "(password)"."""
    from poller.notify.receiver_config import CommandConfig, EmailConfig, WebhookConfig, origin

    if isinstance(receiver, WebhookConfig):
        signed = ", signed" if receiver.hmac_secret else ""
        return f"{receiver.name}: webhook {origin(receiver.url)} ({receiver.preset}{signed})"
    if isinstance(receiver, EmailConfig):
        tls = "implicit TLS" if receiver.implicit_tls else "STARTTLS" if receiver.starttls else "no TLS"
        auth = f", as {receiver.username}" if receiver.username else ""
        return (f"{receiver.name}: email via {receiver.host}:{receiver.port} ({tls}{auth}) to "
                f"{', '.join(receiver.to)}")
    if isinstance(receiver, CommandConfig):
        return f"{receiver.name}: command {shlex.join(receiver.argv)}"
    return f"{receiver.name}: syslog {receiver.transport}://{receiver.host}:{receiver.port}"
