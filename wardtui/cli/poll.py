"""``wardtui poll``: its options and exit codes; the run itself is wardtui/headless.py."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from poller.live import DEFAULT_SITE, check_site
from wardtui.cli.common import Commands, add_engine_options, command, engine_options, positive
from wardtui.messages import error, log_for_service, log_to_stderr
from wardtui.process import POLL
from wardtui.runtime import Runtime, StartupError

EXAMPLES = """\
examples:
  wardtui poll --inventory net.csv --duration 30 --jsonl
  wardtui poll --inventory net.csv --interval 5 --jsonl --checks > events.jsonl
  wardtui poll --inventory net.csv --jsonl --notify notify.yaml > events.jsonl
"""


def register(sub: Commands) -> None:
    poll = command(sub, "poll", run, "poll without a screen and print events as JSON lines", EXAMPLES)
    add_engine_options(poll, None)
    poll.add_argument("--duration", type=positive, metavar="S",
                      help="stop after S seconds (default: run until SIGINT/SIGTERM)")
    poll.add_argument("--jsonl", action="store_true", required=True,
                      help="print one JSON object per line (the only output format)")
    poll.add_argument("--checks", action="store_true",
                      help="also print every check result (type 'check') and SNMP poll (type 'snmp')")
    poll.add_argument("--notify", type=Path, metavar="FILE", default=None,
                      help="notify as wardtui serve --notify does (routes, receivers: docs/NOTIFICATIONS.md)")
    poll.add_argument("--site", metavar="NAME", default=None,
                      help=f"with --notify: the site named in the messages (default: {DEFAULT_SITE})")


def run(args: argparse.Namespace) -> int:
    from wardtui.headless import run_headless

    notify = None
    site = args.site or DEFAULT_SITE
    try:
        if args.notify is not None:
            from wardtui.notifying import read_notify

            check_site(site)
            notify = read_notify(args.notify, args.credentials)
        elif args.site is not None:
            raise StartupError("--site goes with --notify", code=2)
        # The freeze once the store has started; the lease says "poll".
        runtime = Runtime(engine_options(args), process=POLL, kind="poll")
    except ValueError as exc:
        error(f"--site: {exc}")
        return 2
    except StartupError as exc:
        error(f"{exc}")
        return exc.code
    if notify is not None:
        log_for_service()  # the notifier's lines, one per event, as the service writes them
    else:
        log_to_stderr()
    POLL.enter()
    try:
        return asyncio.run(run_headless(runtime, args.duration, checks=args.checks, notify=notify, site=site))
    except StartupError as exc:
        error(f"{exc}")
        return exc.code
    except KeyboardInterrupt:
        return 130
