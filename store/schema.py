"""Schema versions of the history database: Alembic migrations on the async engines, checked at start.

One history of migrations (``store/migrations/versions``) serves SQLite and PostgreSQL. The
Alembic configuration is built here, in code, so an installed wheel needs no ``alembic.ini``.
Every migration runs inside ``AsyncConnection.run_sync`` on an aiosqlite or asyncpg engine.

To write a new revision (from a checkout)::

    python -c "from alembic import command; from store.schema import alembic_config; \\
        command.revision(alembic_config(url='sqlite+aiosqlite:///dev.db'), 'what changes', \\
        autogenerate=True, rev_id='0002')"

against a database at head; then read and fix what autogenerate wrote.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeVar

from sqlalchemy import inspect, pool, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import create_async_engine

from store.dburl import connect_args, shown
from store.files import prepare_sqlite
from store.models import ALL_TABLES

if TYPE_CHECKING:  # alembic (and the mako and pygments it loads) only when a schema is read
    from alembic.config import Config
    from alembic.script import ScriptDirectory

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
FIRST_REVISION = "0001"
"""The revision that creates the schema wardtui had before it had migrations."""

_OURS = frozenset(t.name for t in ALL_TABLES)
_PARTITIONED = frozenset({"checks", "rollup_1m", "if_rates", "if_rollup_1m"})
# What revision 0001 created, and what later revisions added to those tables since.
_FIRST_TABLES = frozenset({"devices", "transitions", "outages", "checks"})
# (Revision 0005 made keys of three of them, and replaced one: those are not compared either.)
_LATER_INDEXES = frozenset({"ix_checks_at", "ux_transitions_key", "ix_transitions_device_at",
                            "ix_outages_device_start", "ix_checks_device_at"})
# (Revisions 0007 and 0012 added the outages' cause and the devices' tags: not compared either.)
_LATER_COLUMNS = frozenset({("outages", "cause"), ("outages", "down_from"), ("devices", "tags")})
_T = TypeVar("_T")

State = Literal["empty", "unversioned", "behind", "head", "ahead"]


class SchemaError(Exception):
    """The history database's schema is not one this wardtui can use; the message says what to do."""


class SchemaBehindError(SchemaError):
    """The database is at an older revision: ``wardtui db upgrade`` brings it to head."""


class SchemaAheadError(SchemaError):
    """The database is at a revision this wardtui does not know: a newer wardtui wrote it."""


class SchemaMismatchError(SchemaError):
    """wardtui's tables without a migration version, and not those of the first revision."""


@dataclass(frozen=True, slots=True)
class SchemaStatus:
    """Where a database stands: its revision(s) (empty when none) against this wardtui's head."""

    current: tuple[str, ...]
    head: str
    state: State

    @property
    def at_head(self) -> bool:
        return self.state == "head"

    def describe(self) -> str:
        """One line for ``wardtui db current``."""
        revision = ",".join(self.current) or "none"
        return {
            "head": f"{revision} (head)",
            "behind": f"{revision} (behind head {self.head})",
            "ahead": f"{revision} (ahead of head {self.head}: written by a newer wardtui)",
            "empty": f"none (empty database; head is {self.head})",
            "unversioned": f"none (tables from before migrations; head is {self.head})",
        }[self.state]


def display_url(url: str) -> str:
    """The URL as an operator types it for ``--db``: the plain scheme, never the password."""
    backend = make_url(url).get_backend_name()
    return shown(backend + url[url.index("://"):]) if "://" in url else url


def alembic_config(connection: Connection | None = None, url: str | None = None) -> Config:
    """Alembic's configuration for wardtui's migrations, with the connection to run them on."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))  # ConfigParser syntax
    config.attributes["connection"] = connection
    return config


@lru_cache(maxsize=4)
def _scripts(location: Path) -> ScriptDirectory:
    # Keyed by location so tests can point MIGRATIONS_DIR at a copy with extra revisions.
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(location))
    return ScriptDirectory.from_config(config)


def _head() -> str:
    head = _scripts(MIGRATIONS_DIR).get_current_head()
    if head is None:  # pragma: no cover - the package always ships revisions
        raise RuntimeError(f"no migrations in {MIGRATIONS_DIR}")
    return head


def head_revision() -> str:
    """This wardtui's newest schema revision."""
    return _head()


def _known(revision: str) -> bool:
    from alembic.util.exc import CommandError

    try:
        return _scripts(MIGRATIONS_DIR).get_revision(revision) is not None
    except CommandError:
        return False


# -- synchronous steps, run inside AsyncConnection.run_sync --------------------------------


def status_of(conn: Connection) -> SchemaStatus:
    """Read the database's revision and compare it with this wardtui's head."""
    from alembic.runtime.migration import MigrationContext

    current = MigrationContext.configure(conn).get_current_heads()
    head = _head()
    state: State
    if not current:
        state = "unversioned" if _OURS & set(inspect(conn).get_table_names()) else "empty"
    elif not all(_known(r) for r in current):
        state = "ahead"
    else:
        state = "head" if current == (head,) else "behind"
    return SchemaStatus(current=current, head=head, state=state)


def differences(conn: Connection, tables: frozenset[str] = _OURS,
                skip_indexes: frozenset[str] = frozenset(),
                skip_columns: frozenset[tuple[str, str]] = frozenset()) -> list[str]:
    """How wardtui's ``tables`` in the database differ from the models (empty when they match).

    On PostgreSQL the tables the database has partitioned are left out: revisions 0002 and 0003
    write their DDL by hand (no id, no foreign key, a BRIN index), which the models cannot express.
    (Revision 0001's plain ``checks`` is still compared: it is what the models describe.)
    """
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    if conn.dialect.name == "postgresql":
        tables = tables - _partitioned(conn)

    # include_name filters what is reflected from the database, include_object also what the
    # models hold: both are needed, or every model table left out reads as "add_table".
    def include_name(name: str | None, type_: str, parents: object) -> bool:
        if type_ == "table":
            return name in tables
        if type_ == "column" and isinstance(parents, dict):
            return (parents.get("table_name"), name) not in skip_columns
        return not (type_ == "index" and name in skip_indexes)

    def include_object(obj: object, name: str | None, type_: str, _reflected: bool,
                       _compare_to: object) -> bool:
        table = getattr(getattr(obj, "table", None), "name", None)
        return include_name(name, type_, {"table_name": table} if type_ == "column" else None)

    context = MigrationContext.configure(
        conn, opts={"include_name": include_name, "include_object": include_object})
    return [_describe_diff(d) for d in compare_metadata(context, ALL_TABLES[0].metadata)]


def _partitioned(conn: Connection) -> frozenset[str]:
    rows = conn.execute(text(
        "SELECT c.relname FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = current_schema()"))
    return frozenset(name for (name,) in rows) & _PARTITIONED


def _describe_diff(diff: object) -> str:
    # compare_metadata gives tuples, or lists of tuples for column changes: name the op and object.
    first = diff[0] if isinstance(diff, list) else diff
    if isinstance(first, tuple) and first:
        names = [getattr(x, "name", None) for x in first[1:] if getattr(x, "name", None)]
        names += [x for x in first[1:4] if isinstance(x, str)]
        return f"{first[0]} {' '.join(str(n) for n in names)}".strip()
    return str(first)


MIGRATION_LOCK = 0x77617264  # "ward": pg_advisory_xact_lock's key for wardtui's migrations


def _lock(conn: Connection) -> None:
    """On PostgreSQL, wait for any other wardtui migrating this database, and keep it waiting
    until this transaction ends. Two pollers started at once on an empty database both
    created the tables, and one died with a duplicate key on pg_type."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})


def ensure_current(conn: Connection, label: str) -> SchemaStatus:
    """What a start does: migrate an empty database, stamp a matching pre-migration one, and
    raise :class:`SchemaError` for one that is behind, ahead or unrecognised."""
    from alembic import command

    _lock(conn)
    status = status_of(conn)
    if status.state == "empty":
        command.upgrade(alembic_config(conn), "head")
        return status_of(conn)
    if status.state == "unversioned":
        _stamp_unversioned(conn, label)
        status = status_of(conn)
    if status.state == "behind":
        raise SchemaBehindError(
            f"the history database {label} is at schema revision {','.join(status.current)}, older than "
            f"this wardtui's {status.head}: run `wardtui db upgrade --db {label}` (back it up first)"
        )
    if status.state == "ahead":
        raise _ahead(status, label)
    return status


def upgrade_to(conn: Connection, label: str, revision: str = "head") -> SchemaStatus:
    """``wardtui db upgrade``: any database this wardtui knows goes to ``revision``."""
    from alembic import command

    _lock(conn)
    status = status_of(conn)
    if status.state == "ahead":
        raise _ahead(status, label)
    if status.state == "unversioned":
        _stamp_unversioned(conn, label)
    command.upgrade(alembic_config(conn), revision)
    return status_of(conn)


def downgrade_to(conn: Connection, label: str, revision: str) -> SchemaStatus:
    """Undo migrations down to ``revision`` (``"base"`` drops wardtui's tables and their rows)."""
    from alembic import command

    _lock(conn)
    status = status_of(conn)
    if status.state == "ahead":
        raise _ahead(status, label)
    command.downgrade(alembic_config(conn), revision)
    return status_of(conn)


def _stamp_unversioned(conn: Connection, label: str) -> None:
    from alembic import command

    # Databases written before migrations existed were made by create_all from the same models
    # as the first revision: if they still match it, recording that revision is all they need.
    found = (differences(conn, _FIRST_TABLES, _LATER_INDEXES, _LATER_COLUMNS)
             if set(inspect(conn).get_table_names()) >= _FIRST_TABLES else ["missing tables"])
    if found:
        shown = "; ".join(found[:3]) + ("; ..." if len(found) > 3 else "")
        raise SchemaMismatchError(
            f"the history database {label} has wardtui tables but no schema revision, and they do "
            f"not match revision {FIRST_REVISION} ({shown}): move it aside and start with a new one"
        )
    command.stamp(alembic_config(conn), FIRST_REVISION)


def _ahead(status: SchemaStatus, label: str) -> SchemaAheadError:
    return SchemaAheadError(
        f"the history database {label} is at schema revision {','.join(status.current)}, which this "
        f"wardtui (head {status.head}) does not know: it was written by a newer wardtui; "
        "refusing to start (upgrade wardtui)"
    )


# -- async entry points: a short-lived engine of their own ---------------------------------


async def _on_engine(url: str, step: Callable[[Connection], _T], *, create: bool = True) -> _T:
    # NullPool: these run once (CLI, start check); no connection should outlive the call.
    if create:
        prepare_sqlite(url)  # a new SQLite file is 0600, not the umask's 0644
    engine = create_async_engine(url, poolclass=pool.NullPool, connect_args=connect_args(url))
    try:
        async with engine.begin() as conn:
            return await conn.run_sync(step)
    finally:
        await engine.dispose()


async def current(url: str) -> SchemaStatus:
    """The database's revision against head; changes nothing."""
    return await _on_engine(url, status_of, create=False)


async def check(url: str) -> SchemaStatus:
    """The start check of :func:`ensure_current` on its own engine."""
    return await _on_engine(url, lambda c: ensure_current(c, display_url(url)))


async def upgrade(url: str, revision: str = "head") -> SchemaStatus:
    """Bring the database to ``revision`` (``wardtui db upgrade``); returns where it ends."""
    return await _on_engine(url, lambda c: upgrade_to(c, display_url(url), revision))


async def downgrade(url: str, revision: str) -> SchemaStatus:
    """Take the database back to ``revision``; returns where it ends."""
    return await _on_engine(url, lambda c: downgrade_to(c, display_url(url), revision))


async def read_only(url: str, step: Callable[[Connection], _T]) -> _T:
    """``step`` on a short-lived engine of its own, without making a SQLite file's directory
    or mode and without migrating: for reads that must change nothing (``serve --check``)."""
    return await _on_engine(url, step, create=False)
