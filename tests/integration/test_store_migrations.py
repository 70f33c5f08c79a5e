"""Schema migrations on real databases (SQLite files and PostgreSQL): up, down, the start check, the CLI."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import create_async_engine

from poller.events import State, Transition
from store import HistoryStore, database_url, schema
from store.models import ALL_TABLES
from tests.integration.postgres import pg_url  # noqa: F401
from tests.integration.test_cli_errors import assert_no_traceback, run

OURS = {t.name for t in ALL_TABLES}
T0 = datetime(2026, 11, 3, 8, 0, tzinfo=UTC)

# A later revision, as a future wardtui would ship it: makes a database at 0001 "behind".
NEXT_REVISION = '''"""Test only: a column a future wardtui might add."""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("devices", sa.Column("site", sa.String(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("site")
'''


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same test on a new SQLite file and on a new PostgreSQL database."""
    if request.param == "sqlite":
        return database_url(str(tmp_path / "history.db"))
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def newer_migrations(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """This process's wardtui knows one revision more than the one installed (0002)."""
    location = tmp_path / "migrations"
    shutil.copytree(schema.MIGRATIONS_DIR, location, ignore=shutil.ignore_patterns("__pycache__"))
    (location / "versions" / "v0002_test_site.py").write_text(NEXT_REVISION, encoding="utf-8")
    monkeypatch.setattr(schema, "MIGRATIONS_DIR", location)
    yield location


async def on(url: str, step: Callable[[Connection], Any]) -> Any:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            return await conn.run_sync(step)
    finally:
        await engine.dispose()


def create_all(conn: Connection) -> None:
    ALL_TABLES[0].metadata.create_all(conn, tables=ALL_TABLES)


def table_names(conn: Connection) -> set[str]:
    return set(inspect(conn).get_table_names())


def snapshot(conn: Connection) -> dict[str, Any]:
    """Everything about wardtui's tables that a schema difference would change."""
    insp = inspect(conn)
    tables: dict[str, Any] = {}
    for name in sorted(OURS):
        tables[name] = {
            "columns": [(c["name"], str(c["type"]), c["nullable"]) for c in insp.get_columns(name)],
            "pk": insp.get_pk_constraint(name)["constrained_columns"],
            "fks": sorted((tuple(f["constrained_columns"]), f["referred_table"],
                           tuple(f["referred_columns"])) for f in insp.get_foreign_keys(name)),
            "unique": sorted(tuple(u["column_names"]) for u in insp.get_unique_constraints(name)),
            "indexes": sorted((i["name"], tuple(i["column_names"]), bool(i["unique"]))
                              for i in insp.get_indexes(name)),
        }
    # The index definitions as the server stores them: this is where a partial index's
    # predicate (one open outage per device) would differ.
    if conn.dialect.name == "sqlite":
        rows = conn.execute(text("SELECT name, sql FROM sqlite_master WHERE type = 'index' "
                                 "AND sql IS NOT NULL ORDER BY name"))
    else:
        rows = conn.execute(text("SELECT indexname, indexdef FROM pg_indexes "
                                 "WHERE schemaname = 'public' ORDER BY indexname"))
    tables["index_sql"] = [tuple(r) for r in rows]
    return tables


# -- migrations up and down ----------------------------------------------------------------


async def test_upgrade_from_empty_reaches_head(db_url: str) -> None:
    assert (await schema.current(db_url)).state == "empty"
    status = await schema.upgrade(db_url)
    assert status.at_head and status.current == (schema.FIRST_REVISION,) == (status.head,)
    assert OURS | {"alembic_version"} <= await on(db_url, table_names)
    assert await on(db_url, schema.differences) == []


async def test_migrated_schema_is_what_create_all_gives(db_url: str) -> None:
    """The first revision is written out by hand: it must not drift from store/models.py."""
    await schema.upgrade(db_url)
    migrated = await on(db_url, snapshot)
    await schema.downgrade(db_url, "base")
    assert not OURS & await on(db_url, table_names)
    await on(db_url, create_all)
    created = await on(db_url, snapshot)
    assert migrated == created
    assert any("WHERE" in sql and name == "ix_outages_open" for name, sql in created["index_sql"])


async def test_downgrade_to_base_and_up_again(db_url: str) -> None:
    await schema.upgrade(db_url)
    await on(db_url, lambda c: c.execute(text(
        "INSERT INTO devices (name, address, branch, region, type, first_seen) "
        "VALUES ('r1', '10.0.0.1', '', '', '', CURRENT_TIMESTAMP)")))
    down = await schema.downgrade(db_url, "base")
    assert down.state == "empty" and down.current == ()
    assert not OURS & await on(db_url, table_names)
    up = await schema.upgrade(db_url)
    assert up.at_head
    assert await on(db_url, lambda c: c.execute(text("SELECT count(*) FROM devices")).scalar()) == 0


async def test_the_open_outage_index_holds_after_migrating(db_url: str) -> None:
    await schema.upgrade(db_url)
    insert_outage = text("INSERT INTO outages (device_id, start) VALUES (1, CURRENT_TIMESTAMP)")

    def two_open_outages(conn: Connection) -> None:
        conn.execute(text("INSERT INTO devices (id, name, address, branch, region, type, first_seen) "
                          "VALUES (1, 'r1', '10.0.0.1', '', '', '', CURRENT_TIMESTAMP)"))
        conn.execute(insert_outage)
        conn.execute(insert_outage)

    with pytest.raises(IntegrityError):
        await on(db_url, two_open_outages)


# -- the check at start ----------------------------------------------------------------------


async def test_start_check_migrates_an_empty_database(db_url: str) -> None:
    assert (await schema.check(db_url)).at_head
    assert (await schema.current(db_url)).current == (schema.FIRST_REVISION,)


async def test_a_database_behind_head_is_refused_until_upgraded(
    db_url: str, newer_migrations: Path
) -> None:
    await schema.upgrade(db_url, schema.FIRST_REVISION)
    assert (await schema.current(db_url)).state == "behind"
    with pytest.raises(schema.SchemaBehindError) as info:
        await schema.check(db_url)
    message = str(info.value)
    assert "\n" not in message
    assert f"wardtui db upgrade --db {schema.display_url(db_url)}" in message
    assert "0001" in message and "0002" in message
    status = await schema.upgrade(db_url)
    assert status.at_head and status.current == ("0002",)
    assert "site" in await on(db_url, lambda c: {col["name"] for col in inspect(c).get_columns("devices")})
    assert (await schema.check(db_url)).at_head
    assert (await schema.downgrade(db_url, "0001")).state == "behind"


async def test_a_database_from_a_newer_wardtui_is_refused(
    db_url: str, newer_migrations: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await schema.upgrade(db_url)  # to 0002, which the installed wardtui does not know
    monkeypatch.undo()
    status = await schema.current(db_url)
    assert status.state == "ahead" and status.current == ("0002",) and status.head == "0001"
    for refused in (schema.check(db_url), schema.upgrade(db_url), schema.downgrade(db_url, "base")):
        with pytest.raises(schema.SchemaAheadError, match="newer wardtui"):
            await refused
    assert (await schema.current(db_url)).current == ("0002",)  # untouched


async def test_an_unknown_stamped_revision_is_ahead(db_url: str) -> None:
    await schema.upgrade(db_url)
    await on(db_url, lambda c: c.execute(text("UPDATE alembic_version SET version_num = 'ffff9999'")))
    with pytest.raises(schema.SchemaAheadError, match=r"ffff9999.*newer wardtui"):
        await schema.check(db_url)


async def test_a_database_from_before_migrations_is_stamped(db_url: str) -> None:
    await on(db_url, create_all)
    assert (await schema.current(db_url)).state == "unversioned"
    status = await schema.check(db_url)
    assert status.at_head and status.current == (schema.FIRST_REVISION,)


async def test_a_database_from_before_migrations_can_be_upgraded(db_url: str) -> None:
    await on(db_url, create_all)
    assert (await schema.upgrade(db_url)).current == (schema.FIRST_REVISION,)


async def test_a_foreign_unversioned_schema_is_refused(db_url: str) -> None:
    def altered(conn: Connection) -> None:
        create_all(conn)
        conn.execute(text("DROP INDEX ix_outages_open"))

    await on(db_url, altered)
    with pytest.raises(schema.SchemaMismatchError, match="ix_outages_open") as info:
        await schema.check(db_url)
    assert "no schema revision" in str(info.value)
    assert (await schema.current(db_url)).state == "unversioned"  # nothing was stamped


# -- HistoryStore (SQLite: the app's only engine for now) ----------------------------------


async def test_history_store_on_a_new_file_is_migrated(tmp_path: Path) -> None:
    db = tmp_path / "new" / "history.db"
    async with HistoryStore(database_url(str(db))) as store:
        await store.write_transition(Transition("r1", "10.0.0.1", State.UP, State.DOWN, T0, T0, None))
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT version_num FROM alembic_version").fetchall() == [("0001",)]


async def test_history_store_keeps_the_rows_of_a_pre_migration_file(tmp_path: Path) -> None:
    url = database_url(str(tmp_path / "old.db"))

    def old_file(conn: Connection) -> None:
        create_all(conn)
        conn.execute(text("INSERT INTO devices (id, name, address, branch, region, type, first_seen) "
                          "VALUES (1, 'r1', '10.0.0.1', '', '', '', '2026-11-03 08:00:00.000000')"))
        conn.execute(text("INSERT INTO outages (device_id, start) VALUES (1, '2026-11-03 08:00:00.000000')"))

    await on(url, old_file)
    async with HistoryStore(url) as store:
        assert await store.open_outages() == {"r1": T0}
    assert (await schema.current(url)).current == (schema.FIRST_REVISION,)


async def test_history_store_refuses_behind_and_ahead(tmp_path: Path, newer_migrations: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    url = database_url(str(tmp_path / "h.db"))
    await schema.upgrade(url, "0001")
    with pytest.raises(schema.SchemaBehindError, match="wardtui db upgrade --db sqlite:///"):
        await HistoryStore(url).open()
    await schema.upgrade(url)
    monkeypatch.undo()
    store = HistoryStore(url)
    with pytest.raises(schema.SchemaAheadError):
        await store.open()
    with pytest.raises(RuntimeError, match="not open"):
        _ = store.engine  # nothing left open


# -- the command line (subprocesses) -------------------------------------------------------


def test_cli_db_upgrade_and_current_on_sqlite(tmp_path: Path) -> None:
    db = tmp_path / "data" / "h.db"
    url = f"sqlite:///{db}"
    proc = run("db", "current", "--db", url, cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.startswith("none (empty database"), proc.stderr
    proc = run("db", "upgrade", "--db", url, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "upgraded" in proc.stdout and "0001 (head)" in proc.stdout
    proc = run("--db", url, "db", "current", cwd=tmp_path)  # --db before the subcommand counts too
    assert (proc.returncode, proc.stdout) == (0, "0001 (head)\n"), proc.stderr
    assert run("db", "upgrade", "--db", url, cwd=tmp_path).stdout.endswith("already at 0001 (head)\n")


def test_cli_db_commands_default_to_the_xdg_file(tmp_path: Path) -> None:
    proc = run("db", "upgrade", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "xdg" / "wardtui" / "history.db").is_file()
    assert run("db", "current", cwd=tmp_path).stdout == "0001 (head)\n"


def test_cli_db_upgrade_and_current_on_postgresql(tmp_path: Path, pg_url: str) -> None:  # noqa: F811
    plain = pg_url.replace("postgresql+asyncpg://", "postgresql://")
    proc = run("db", "upgrade", "--db", plain, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "0001 (head)" in proc.stdout
    assert run("db", "current", "--db", plain, cwd=tmp_path).stdout == "0001 (head)\n"


def test_cli_db_unreachable_postgresql_exits_1_without_the_password(tmp_path: Path) -> None:
    proc = run("db", "current", "--db", "postgresql://u:hunter2@127.0.0.1:1/x", cwd=tmp_path)
    assert proc.returncode == 1
    assert_no_traceback(proc)
    assert "cannot open the history database postgresql://u:***@127.0.0.1:1/x" in proc.stderr
    assert "hunter2" not in proc.stderr


def test_poll_and_dashboard_refuse_a_database_from_a_newer_wardtui(tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    assert run("db", "upgrade", "--db", str(db), cwd=tmp_path).returncode == 0
    with sqlite3.connect(db) as con:
        con.execute("UPDATE alembic_version SET version_num = 'ffff9999'")
    for args in (("poll", "--jsonl", "--duration", "1"), ()):
        proc = run(*args, "--db", f"sqlite:///{db}", cwd=tmp_path)
        assert proc.returncode == 2, (args, proc.stderr)
        assert_no_traceback(proc)
        [line] = proc.stderr.strip().splitlines()
        assert f"sqlite:///{db}" in line and "newer wardtui" in line and "ffff9999" in line
        assert proc.stdout == ""


def test_db_help_shows_examples(tmp_path: Path) -> None:
    for action in ("upgrade", "current"):
        proc = run("db", action, "--help", cwd=tmp_path)
        assert proc.returncode == 0
        assert f"examples:\n  wardtui db {action}" in proc.stdout
