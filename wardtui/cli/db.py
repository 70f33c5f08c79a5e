"""``wardtui db upgrade|current``: migrate the history database's schema, or show its revision."""

from __future__ import annotations

import argparse
import asyncio

from wardtui.cli.common import Commands, add_db_option, command
from wardtui.messages import error
from wardtui.runtime import db_option

EXAMPLES = """\
examples:
  wardtui db current                                  the default history file's revision
  wardtui db upgrade --db sqlite:///var/lib/wardtui/history.db
  wardtui db upgrade --db postgresql://wardtui@db.example.net/wardtui
"""
ACTIONS = (
    ("upgrade", "migrate the history database to this wardtui's schema (back it up first)",
     "  wardtui db upgrade --db sqlite:///var/lib/wardtui/history.db\n"
     "  wardtui db upgrade --db postgresql://wardtui@db.example.net/wardtui\n"),
    ("current", "print the database's schema revision and whether it is at head",
     "  wardtui db current\n  wardtui db current --db postgresql://wardtui@db.example.net/wardtui\n"),
)


def register(sub: Commands) -> None:
    db = command(sub, "db", run, "the history database's schema: upgrade it, show its revision", EXAMPLES)
    actions = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    for name, text, example in ACTIONS:
        action = actions.add_parser(name, help=text, description=text, epilog="examples:\n" + example,
                                    formatter_class=argparse.RawDescriptionHelpFormatter)
        add_db_option(action)  # `wardtui --db X db upgrade` keeps X


def run(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from store import schema
    from store.db import database_url, sqlite_file
    from store.dburl import failure
    from store.files import prepare_sqlite

    try:
        url = database_url(args.db, create=args.db_command != "current")
    except (ValueError, OSError) as exc:
        error(f"{db_option(args.db)}: {exc}")
        return 2
    label = schema.display_url(url)
    path = sqlite_file(url)
    if args.db_command == "current" and path is not None and not path.is_file():
        # What an empty database reads as, without making the file (or its directory) to ask.
        print(f"none (no database file yet; head is {schema.head_revision()})")
        return 0
    try:
        if args.db_command == "current":
            print(asyncio.run(schema.current(url)).describe())
            return 0
        prepare_sqlite(url)  # a new file is 0600 (reading its revision first would make it 0644)
        before = asyncio.run(schema.current(url))
        after = asyncio.run(schema.upgrade(url))
    except schema.SchemaError as exc:
        error(f"{exc}")
        return 2
    except (SQLAlchemyError, OSError) as exc:
        error(f"cannot open the history database {label}: {failure(exc, url)}")
        return 1
    if before.current == after.current:
        print(f"{label}: already at {after.describe()}")
    else:
        print(f"{label}: upgraded from {before.describe()} to {after.describe()}")
    return 0
