"""Schema migrations on real databases (SQLite files and PostgreSQL): up, down, the start check, the CLI."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import bindparam, insert, inspect, select, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import create_async_engine

from poller.events import State, Transition
from store import HistoryStore, database_url, partitions, schema
from store.models import ALL_TABLES, checks_table, devices_table, outages_table, transitions_table
from tests.integration.postgres import pg_url  # noqa: F401
from tests.integration.test_cli_errors import assert_no_traceback, run

OURS = {t.name for t in ALL_TABLES}
# What revision 0001 made (the schema of databases from before migrations): the four tables,
# without the index on checks.at that revision 0002 added.
FIRST_TABLES = ("devices", "transitions", "outages", "checks")
LATER_INDEXES = ("ix_checks_at",)
LATER_COLUMNS = (("outages", "down_from"), ("outages", "cause"), ("devices", "tags"))  # revisions 0007, 0012
# Indexes of the first tables that revision 0005 made keys (unique): (name, table, columns).
KEYED_LATER = (("ux_transitions_key", "transitions", "device_id, at, to_state"),
               ("ix_outages_device_start", "outages", "device_id, start"),
               ("ix_checks_device_at", "checks", "device_id, at"))
PARTITIONED = ("checks", "rollup_1m")  # on PostgreSQL, from revision 0002 on
T0 = datetime(2026, 11, 3, 8, 0, tzinfo=UTC)

HEAD = ScriptDirectory.from_config(schema.alembic_config()).get_current_head() or ""  # "0002"
NEXT = f"{int(HEAD) + 1:04d}"  # "0003": the revision a future wardtui would ship

# A later revision, as a future wardtui would ship it: makes a database at HEAD "behind".
NEXT_REVISION = f'''"""Test only: a column a future wardtui might add."""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "{NEXT}"
down_revision = "{HEAD}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("devices", sa.Column("site", sa.String(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("site")
'''


@pytest.fixture
def newer_migrations(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """This process's wardtui knows one revision more (NEXT) than the one installed (HEAD)."""
    location = tmp_path / "migrations"
    shutil.copytree(schema.MIGRATIONS_DIR, location, ignore=shutil.ignore_patterns("__pycache__"))
    (location / "versions" / f"v{NEXT}_test_site.py").write_text(NEXT_REVISION, encoding="utf-8")
    monkeypatch.setattr(schema, "MIGRATIONS_DIR", location)
    yield location


async def on(url: str, step: Callable[[Connection], Any]) -> Any:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            return await conn.run_sync(step)
    finally:
        await engine.dispose()


def create_all(conn: Connection, tables: Iterable[str] = tuple(OURS)) -> None:
    metadata = ALL_TABLES[0].metadata
    metadata.create_all(conn, tables=[metadata.tables[name] for name in tables])


def create_first_revision_tables(conn: Connection) -> None:
    """What ``create_all`` made before migrations existed: revision 0001's four tables (today's
    models, less the index added since, with the indexes revision 0005 made keys as they were)."""
    create_all(conn, FIRST_TABLES)
    for table, column in LATER_COLUMNS:
        conn.execute(text(f"ALTER TABLE {table} DROP COLUMN {column}"))
    for index in LATER_INDEXES:
        conn.execute(text(f"DROP INDEX {index}"))
    for index, _, _ in KEYED_LATER:
        conn.execute(text(f"DROP INDEX {index}"))
    conn.execute(text("CREATE INDEX ix_transitions_device_at ON transitions (device_id, at)"))
    for index, table, columns in KEYED_LATER[1:]:
        conn.execute(text(f"CREATE INDEX {index} ON {table} ({columns})"))


async def make_unversioned(url: str) -> None:
    """A database from before migrations: revision 0001's schema without alembic_version rows."""
    await schema.upgrade(url, schema.FIRST_REVISION)
    await on(url, lambda c: c.execute(text("DELETE FROM alembic_version")))
    assert (await schema.current(url)).state == "unversioned"


def table_names(conn: Connection) -> set[str]:
    return set(inspect(conn).get_table_names())


def snapshot(conn: Connection, names: Iterable[str] = tuple(OURS)) -> dict[str, Any]:
    """Everything about the named tables that a schema difference would change."""
    insp = inspect(conn)
    names = sorted(names)
    tables: dict[str, Any] = {}
    for name in names:
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
                                 "AND sql IS NOT NULL AND tbl_name IN :names ORDER BY name")
                            .bindparams(bindparam("names", expanding=True)), {"names": names})
    else:
        rows = conn.execute(text("SELECT indexname, indexdef FROM pg_indexes "
                                 "WHERE schemaname = 'public' AND tablename IN :names "
                                 "ORDER BY indexname")
                            .bindparams(bindparam("names", expanding=True)), {"names": names})
    tables["index_sql"] = [tuple(r) for r in rows]
    return tables


def partitioned_tables(conn: Connection) -> set[str]:
    """PostgreSQL: the tables partitioned (the parents, not their partitions)."""
    rows = conn.execute(text("SELECT c.relname FROM pg_partitioned_table p "
                             "JOIN pg_class c ON c.oid = p.partrelid"))
    return {name for (name,) in rows}


async def partition_names(url: str, table: str) -> set[str]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return set((await partitions.existing(conn, table)).values())
    finally:
        await engine.dispose()


def dialect_of(url: str) -> str:
    return make_url(url).get_backend_name()


# Checks on three UTC days with a gap (Nov 2 has none), including both edges of a day.
DAY_EDGES = [
    datetime(2026, 11, 1, 0, 0, tzinfo=UTC),
    datetime(2026, 11, 1, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(2026, 11, 3, 0, 0, tzinfo=UTC),
    datetime(2026, 11, 3, 8, 0, 0, 123456, tzinfo=UTC),
    datetime(2026, 11, 4, 23, 59, 59, tzinfo=UTC),
]


def insert_history(conn: Connection) -> None:
    """Two devices, an outage, a transition and checks on DAY_EDGES, through the models' types
    (the columns the checks table has in every revision; day partitions made where needed)."""
    if conn.dialect.name == "postgresql" and "checks" in partitioned_tables(conn):
        for day in DAY_EDGES:
            conn.execute(text(partitions.create_sql("checks", day)))
    conn.execute(insert(devices_table), [
        {"id": 1, "name": "r1", "address": "10.0.0.1", "first_seen": T0},
        {"id": 2, "name": "r2", "address": "10.0.0.2", "first_seen": T0},
    ])
    conn.execute(insert(transitions_table), [
        {"device_id": 1, "from_state": "up", "to_state": "down", "at": T0, "down_since": T0},
    ])
    conn.execute(insert(outages_table), [{"device_id": 1, "start": T0}])
    conn.execute(insert(checks_table), [
        {"device_id": 1 + i % 2, "at": at, "sent": 1 + i, "received": i % 2,
         "rtt_ms": None if i % 2 == 0 else 0.5 * i}
        for i, at in enumerate(DAY_EDGES)
    ])


def history_rows(conn: Connection) -> dict[str, list[tuple[Any, ...]]]:
    """The rows of the four first tables, in a form that survives a change of checks' id."""
    c = checks_table
    return {
        "devices": [tuple(r) for r in conn.execute(
            select(devices_table.c.id, devices_table.c.name, devices_table.c.address)
            .order_by(devices_table.c.id))],
        "transitions": [tuple(r) for r in conn.execute(
            select(transitions_table.c.device_id, transitions_table.c.to_state, transitions_table.c.at))],
        "outages": [tuple(r) for r in conn.execute(
            select(outages_table.c.device_id, outages_table.c.start, outages_table.c.end))],
        "checks": [tuple(r) for r in conn.execute(
            select(c.c.device_id, c.c.at, c.c.sent, c.c.received, c.c.rtt_ms).order_by(c.c.at))],
    }


# -- migrations up and down ----------------------------------------------------------------


async def test_upgrade_from_empty_reaches_head(db_url: str) -> None:
    assert (await schema.current(db_url)).state == "empty"
    status = await schema.upgrade(db_url)
    assert status.at_head and status.current == (HEAD,) == (status.head,)
    assert OURS | {"alembic_version"} <= await on(db_url, table_names)
    assert await on(db_url, schema.differences) == []


async def test_first_revision_is_what_create_all_gave(db_url: str) -> None:
    """Revision 0001 is written out by hand: it must give what ``create_all`` gave before
    migrations, which is what stamping an unversioned database relies on."""
    await schema.upgrade(db_url, schema.FIRST_REVISION)
    migrated = await on(db_url, lambda c: snapshot(c, FIRST_TABLES))
    await schema.downgrade(db_url, "base")
    assert not OURS & await on(db_url, table_names)
    await on(db_url, create_first_revision_tables)
    created = await on(db_url, lambda c: snapshot(c, FIRST_TABLES))
    assert migrated == created
    assert any("WHERE" in sql and name == "ix_outages_open" for name, sql in created["index_sql"])


async def test_head_is_what_the_models_describe(db_url: str) -> None:
    """The revisions must not drift from store/models.py: at head, every table the models can
    express (on PostgreSQL all but the partitioned ones) is what ``create_all`` gives."""
    await schema.upgrade(db_url)
    assert await on(db_url, schema.differences) == []
    # (partitions.PARTITIONED: every table partitioned at head, revision 0003's if_rates too.)
    plain = sorted(OURS - set(partitions.PARTITIONED)) if dialect_of(db_url) == "postgresql" else sorted(OURS)
    migrated = await on(db_url, lambda c: snapshot(c, plain))
    await schema.downgrade(db_url, "base")
    assert not OURS & await on(db_url, table_names)
    await on(db_url, lambda c: create_all(c, plain))
    assert await on(db_url, lambda c: snapshot(c, plain)) == migrated
    if dialect_of(db_url) == "sqlite":
        assert "ix_checks_at" in {i[0] for i in migrated["checks"]["indexes"]}


async def test_differences_sees_a_changed_table(db_url: str) -> None:
    await schema.upgrade(db_url)
    await on(db_url, lambda c: c.execute(text("DROP INDEX ix_transitions_at")))
    assert await on(db_url, schema.differences) == ["add_index ix_transitions_at"]


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


async def test_upgrade_to_0002_keeps_every_check_in_day_partitions(db_url: str) -> None:
    await schema.upgrade(db_url, schema.FIRST_REVISION)
    await on(db_url, insert_history)
    before = await on(db_url, history_rows)
    assert len(before["checks"]) == len(DAY_EDGES)

    assert (await schema.upgrade(db_url, "0002")).current == ("0002",)
    assert await on(db_url, history_rows) == before
    assert {"rollup_1m", "rollup_1h", "rollup_state"} <= await on(db_url, table_names)
    if dialect_of(db_url) == "sqlite":
        indexes = await on(db_url, lambda c: {i["name"] for i in inspect(c).get_indexes("checks")})
        assert {"ix_checks_at", "ix_checks_device_at"} <= indexes
        return
    assert set(PARTITIONED) <= await on(db_url, partitioned_tables)
    # One partition per UTC day that had rows, none for the day between them.
    assert await partition_names(db_url, "checks") == {
        "checks_p20261101", "checks_p20261103", "checks_p20261104"}
    per_partition = await on(db_url, lambda c: sorted(
        tuple(r) for r in c.execute(text("SELECT tableoid::regclass::text, count(*) FROM checks "
                                         "GROUP BY 1"))))
    assert per_partition == [("checks_p20261101", 2), ("checks_p20261103", 2), ("checks_p20261104", 1)]
    assert await partition_names(db_url, "rollup_1m") == set()  # nothing rolled up yet
    # The old table and its id sequence are gone; the new one has no id.
    assert "checks_0001" not in await on(db_url, table_names)
    columns = await on(db_url, lambda c: [col["name"] for col in inspect(c).get_columns("checks")])
    assert columns == ["device_id", "at", "sent", "received", "rtt_ms"]


async def test_downgrade_to_0001_brings_back_its_schema_with_the_rows(db_url: str) -> None:
    await schema.upgrade(db_url, schema.FIRST_REVISION)
    first = await on(db_url, lambda c: snapshot(c, FIRST_TABLES))
    await schema.upgrade(db_url)
    await on(db_url, insert_history)
    before = await on(db_url, history_rows)

    down = await schema.downgrade(db_url, schema.FIRST_REVISION)
    assert down.current == (schema.FIRST_REVISION,) and down.state == "behind"
    assert await on(db_url, lambda c: snapshot(c, FIRST_TABLES)) == first
    assert not {"rollup_1m", "rollup_1h", "rollup_state"} & await on(db_url, table_names)
    assert await on(db_url, history_rows) == before
    if dialect_of(db_url) == "postgresql":
        assert not await on(db_url, partitioned_tables)
        assert not {n for n in await on(db_url, table_names) if n.startswith("checks_")}
    # The checks table has its id back, and new rows get one.
    await on(db_url, lambda c: c.execute(insert(checks_table), {
        "device_id": 1, "at": T0, "sent": 1, "received": 1, "rtt_ms": 1.0}))
    ids = await on(db_url, lambda c: [r[0] for r in c.execute(text("SELECT id FROM checks"))])
    assert len(set(ids)) == len(DAY_EDGES) + 1

    # And back up: the rows survive the round trip.
    assert (await schema.upgrade(db_url)).at_head
    assert len((await on(db_url, history_rows))["checks"]) == len(DAY_EDGES) + 1


# -- the check at start ----------------------------------------------------------------------


async def test_start_check_migrates_an_empty_database(db_url: str) -> None:
    assert (await schema.check(db_url)).at_head
    assert (await schema.current(db_url)).current == (HEAD,)


async def test_a_database_behind_head_is_refused_until_upgraded(
    db_url: str, newer_migrations: Path
) -> None:
    await schema.upgrade(db_url, HEAD)
    assert (await schema.current(db_url)).state == "behind"
    with pytest.raises(schema.SchemaBehindError) as info:
        await schema.check(db_url)
    message = str(info.value)
    assert "\n" not in message
    assert f"wardtui db upgrade --db {schema.display_url(db_url)}" in message
    assert HEAD in message and NEXT in message
    status = await schema.upgrade(db_url)
    assert status.at_head and status.current == (NEXT,)
    assert "site" in await on(db_url, lambda c: {col["name"] for col in inspect(c).get_columns("devices")})
    assert (await schema.check(db_url)).at_head
    assert (await schema.downgrade(db_url, HEAD)).state == "behind"


async def test_a_database_at_the_first_revision_is_behind(db_url: str) -> None:
    await schema.upgrade(db_url, schema.FIRST_REVISION)
    status = await schema.current(db_url)
    assert (status.state, status.current, status.head) == ("behind", ("0001",), HEAD)
    with pytest.raises(schema.SchemaBehindError, match=f"revision 0001, older than this wardtui's {HEAD}"):
        await schema.check(db_url)
    assert (await schema.upgrade(db_url)).at_head


async def test_a_database_from_a_newer_wardtui_is_refused(
    db_url: str, newer_migrations: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await schema.upgrade(db_url)  # to NEXT, which the installed wardtui does not know
    monkeypatch.undo()
    status = await schema.current(db_url)
    assert status.state == "ahead" and status.current == (NEXT,) and status.head == HEAD
    for refused in (schema.check(db_url), schema.upgrade(db_url), schema.downgrade(db_url, "base")):
        with pytest.raises(schema.SchemaAheadError, match="newer wardtui"):
            await refused
    assert (await schema.current(db_url)).current == (NEXT,)  # untouched


async def test_an_unknown_stamped_revision_is_ahead(db_url: str) -> None:
    await schema.upgrade(db_url)
    await on(db_url, lambda c: c.execute(text("UPDATE alembic_version SET version_num = 'ffff9999'")))
    with pytest.raises(schema.SchemaAheadError, match=r"ffff9999.*newer wardtui"):
        await schema.check(db_url)


async def test_a_database_from_before_migrations_is_recognised_then_behind(db_url: str) -> None:
    """An unversioned database with revision 0001's schema is taken for revision 0001, so the
    start check reports it behind head; the refused check commits nothing (the stamp is
    rolled back with it), and ``db upgrade`` stamps and upgrades it."""
    await make_unversioned(db_url)
    with pytest.raises(schema.SchemaBehindError,
                       match=f"revision {schema.FIRST_REVISION}, older than this wardtui's {HEAD}"):
        await schema.check(db_url)
    assert (await schema.current(db_url)).state == "unversioned"
    status = await schema.upgrade(db_url, schema.FIRST_REVISION)  # stamps, nothing to run
    assert (status.state, status.current) == ("behind", (schema.FIRST_REVISION,))
    assert (await schema.upgrade(db_url)).at_head


async def test_a_create_all_database_from_before_migrations_is_recognised(db_url: str) -> None:
    await on(db_url, create_first_revision_tables)
    assert (await schema.current(db_url)).state == "unversioned"
    with pytest.raises(schema.SchemaBehindError, match=f"revision {schema.FIRST_REVISION},"):
        await schema.check(db_url)
    assert (await schema.upgrade(db_url)).current == (HEAD,)


async def test_a_database_from_before_migrations_can_be_upgraded(db_url: str) -> None:
    await make_unversioned(db_url)
    await on(db_url, insert_history)
    before = await on(db_url, history_rows)
    assert (await schema.upgrade(db_url)).current == (HEAD,)
    assert await on(db_url, history_rows) == before


async def test_a_foreign_unversioned_schema_is_refused(db_url: str) -> None:
    await make_unversioned(db_url)
    await on(db_url, lambda c: c.execute(text("DROP INDEX ix_outages_open")))
    with pytest.raises(schema.SchemaMismatchError, match="ix_outages_open") as info:
        await schema.check(db_url)
    assert "no schema revision" in str(info.value)
    assert (await schema.current(db_url)).state == "unversioned"  # nothing was stamped


async def test_an_unversioned_database_missing_a_table_is_refused(db_url: str) -> None:
    await on(db_url, lambda c: create_all(c, ("devices", "outages")))
    with pytest.raises(schema.SchemaMismatchError, match="missing tables"):
        await schema.check(db_url)


# -- HistoryStore --------------------------------------------------------------------------


async def test_history_store_on_a_new_file_is_migrated(tmp_path: Path) -> None:
    db = tmp_path / "new" / "history.db"
    async with HistoryStore(database_url(str(db))) as store:
        await store.write_transition(Transition("r1", "10.0.0.1", State.UP, State.DOWN, T0, T0, None))
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT version_num FROM alembic_version").fetchall() == [(HEAD,)]


async def test_history_store_keeps_the_rows_of_a_pre_migration_database(db_url: str) -> None:
    await make_unversioned(db_url)
    await on(db_url, insert_history)
    # Stamped as revision 0001 and so behind: the store refuses until it is upgraded ...
    with pytest.raises(schema.SchemaBehindError):
        await HistoryStore(db_url).open()
    assert (await schema.upgrade(db_url)).at_head
    # ... after which every row is there.
    async with HistoryStore(db_url) as store:
        assert await store.open_outages() == {"r1": T0}
        assert [c.at for c in await store.checks("r1")] == DAY_EDGES[0::2]
        assert [c.at for c in await store.checks("r2")] == DAY_EDGES[1::2]


async def test_history_store_refuses_behind_and_ahead(tmp_path: Path, newer_migrations: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    url = database_url(str(tmp_path / "h.db"))
    await schema.upgrade(url, HEAD)
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
    assert (proc.returncode, proc.stdout) == (0, f"none (no database file yet; head is {HEAD})\n"), \
        proc.stderr
    assert not db.parent.exists()  # db current only reads
    proc = run("db", "upgrade", "--db", url, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "upgraded" in proc.stdout and f"{HEAD} (head)" in proc.stdout
    proc = run("--db", url, "db", "current", cwd=tmp_path)  # --db before the subcommand counts too
    assert (proc.returncode, proc.stdout) == (0, f"{HEAD} (head)\n"), proc.stderr
    assert run("db", "upgrade", "--db", url, cwd=tmp_path).stdout.endswith(f"already at {HEAD} (head)\n")


def test_cli_db_commands_default_to_the_xdg_file(tmp_path: Path) -> None:
    proc = run("db", "upgrade", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "xdg" / "wardtui" / "history.db").is_file()
    assert run("db", "current", cwd=tmp_path).stdout == f"{HEAD} (head)\n"


def test_cli_db_upgrade_and_current_on_postgresql(tmp_path: Path, pg_url: str) -> None:  # noqa: F811
    plain = pg_url.replace("postgresql+asyncpg://", "postgresql://")
    proc = run("db", "upgrade", "--db", plain, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert f"{HEAD} (head)" in proc.stdout
    assert run("db", "current", "--db", plain, cwd=tmp_path).stdout == f"{HEAD} (head)\n"


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


async def test_upgrade_to_row_keys_keeps_one_row_of_each_key(db_url: str) -> None:
    """Revision 0005: histories written twice before it (a replayed spool) keep the first row of
    each key, and nothing else is lost."""
    await schema.upgrade(db_url, "0004")
    await on(db_url, insert_history)
    before = await on(db_url, history_rows)

    def write_twice(conn: Connection) -> None:
        conn.execute(insert(transitions_table), [
            {"device_id": 1, "from_state": "up", "to_state": "down", "at": T0, "down_since": T0}])
        conn.execute(insert(outages_table), [{"device_id": 1, "start": T0, "end": DAY_EDGES[-1]}])
        conn.execute(insert(checks_table), [
            {"device_id": 1, "at": DAY_EDGES[0], "sent": 1, "received": 0, "rtt_ms": None}] * 2)

    await on(db_url, write_twice)
    assert len((await on(db_url, history_rows))["checks"]) == len(before["checks"]) + 2
    assert (await schema.upgrade(db_url)).at_head
    assert await on(db_url, history_rows) == before
    assert await on(db_url, schema.differences) == []


def test_concurrent_starts_on_an_empty_postgresql_database_all_succeed(pg_url: str,  # noqa: F811
                                                                         tmp_path: Path) -> None:
    """Two pollers started at once raced the migration: one died with a duplicate key on pg_type.
    Migrations run under an advisory lock: starts (HistoryStore.open, as poll and the dashboard
    do) and `wardtui db upgrade`, all at once in their own processes, all succeed."""
    import os
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(repo), "XDG_DATA_HOME": str(tmp_path / "xdg")}
    start = ("import asyncio, sys\nfrom store import HistoryStore\n"
             "async def main():\n    async with HistoryStore(sys.argv[1]):\n        pass\n"
             "asyncio.run(main())\n")
    commands = [[sys.executable, "-c", start, pg_url] for _ in range(4)]
    commands += [[sys.executable, "-m", "wardtui", "db", "upgrade", "--db", pg_url] for _ in range(4)]
    procs = [subprocess.Popen(c, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for c in commands]
    results = [(p.wait(timeout=120), p.communicate()[1]) for p in procs]
    assert [err for code, err in results if code != 0] == []
    assert run("db", "current", "--db", pg_url, cwd=tmp_path).stdout == f"{HEAD} (head)\n"
