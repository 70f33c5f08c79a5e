"""Command line: ``wardtui`` (dashboard), ``wardtui poll`` (headless JSONL), ``wardtui serve`` (the
service: headless, history, SIGHUP reload), ``wardtui generate``,
``wardtui outages`` (outage history), ``wardtui history DEVICE`` (a device's checks or rollups),
``wardtui snmp DEVICE`` (its latest SNMP poll), ``wardtui report`` (availability over a period),
``wardtui db upgrade|current`` (the database's schema), ``wardtui doctor`` (is this machine ready),
``wardtui notify test|check`` (a test message through a route, a notify file checked),
``wardtui maintenance add|list|remove`` (maintenance windows in the database),
``wardtui ack DEVICE|list|remove`` (acknowledgements of devices' problems, in the database),
``wardtui events`` and ``wardtui status`` (a site's live feed on Redis: its events as JSON lines,
its service and figures).

One module per command under this package, each with ``register(sub)`` (its parser, which sets
``run``) and ``run(args)`` (its exit status); what they share is in :mod:`wardtui.cli.common`.
A command's heavy imports (the store's queries, Textual) happen inside its ``run``, so ``--help``
and the headless commands start without them."""

from __future__ import annotations

import argparse

from wardtui import __version__
from wardtui.cli import (
    ack,
    db,
    doctor,
    events,
    generate,
    history,
    maintenance,
    notify,
    outages,
    poll,
    report,
    serve,
    snmp,
    status,
)
from wardtui.cli.common import ENGINE_DEFAULTS, add_engine_options, add_site_options

EXAMPLES = """\
examples:
  wardtui                                   dashboard on the bundled example (loopback addresses)
  wardtui --redis redis://127.0.0.1:6379    attach to the site's `wardtui serve` (embedded if none runs)
  wardtui --inventory branches.csv --interval 30
  wardtui poll --inventory branches.yaml --duration 60 --jsonl | jq 'select(.type=="transition")'
  wardtui serve --inventory /etc/wardtui/inventory.csv   headless service (docs/OPERATIONS.md)
  wardtui events --jsonl --since-snapshot   a site's live feed (wardtui serve) as JSON lines
  wardtui status                            who publishes the site, its devices by state
  wardtui outages --since 24h               what went down in the last day, from the history
  wardtui report --from 30d --group-by region --format html -o month.html
  wardtui generate --devices 50000 -o big.csv
  wardtui db upgrade --db sqlite:///var/lib/wardtui/history.db
  wardtui doctor --inventory branches.csv   ICMP, buffers, inventory, credentials, database, clock
  wardtui notify test noc --notify notify.yaml   a test message to each receiver of route noc
  wardtui maintenance add --match branch=north-b002 --duration 2h --note "router swap"
  wardtui ack north-b002-rtr --note "on site, Alice"   no repeat notifications until it recovers

In the dashboard: ? lists every key; / filters, s sorts, Enter opens a device (Esc back),
e exports an availability report of what the table shows, q saves history and quits.
Each command has its own examples: wardtui COMMAND --help.
"""

# The order --help lists them in.
COMMANDS = (poll, serve, events, status, db, outages, history, report, snmp, notify, maintenance, ack,
            generate,
            doctor)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wardtui", description="A network monitor that lives in the terminal.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"wardtui {__version__}")
    add_engine_options(parser, ENGINE_DEFAULTS)
    add_site_options(parser)
    parser.add_argument("--embedded", action="store_true",
                        help="poll here even when a service publishes the site on Redis")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.register(sub)
    return parser


def main(argv: list[str] | None = None, *, collection_paused: bool = False) -> int:
    """Run the command ``argv`` says. ``collection_paused``: the entry (wardtui/start.py) turned
    the collector off while the modules loaded; the dashboard turns it on after its first
    frame, every other command now."""
    args = build_parser().parse_args(argv)
    if args.command is None:
        from wardtui.cli import dashboard

        return dashboard.run(args, collection_paused=collection_paused)
    if collection_paused:
        from wardtui.process import resume_collection

        resume_collection()
    code: int = args.run(args)
    return code
