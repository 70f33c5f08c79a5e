"""The whole CLI on PostgreSQL, named by WARDTUI_DB: poll writes there (real ICMP on loopback),
history and outages read it back, db current reports its revision."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.postgres import PrivateCluster, pg_url  # noqa: F401
from tests.integration.test_cli_errors import assert_no_traceback, run


def test_poll_history_and_db_current_on_postgresql_named_by_wardtui_db(pg_url: str, tmp_path: Path) -> None:  # noqa: F811
    inventory = tmp_path / "net.csv"
    inventory.write_text("name,address,branch,region,type\n"
                         "r1,127.0.4.1,b1,north,router\nr2,127.0.4.2,b1,north,router\n", encoding="utf-8")
    env = {"WARDTUI_DB": pg_url.replace("+asyncpg", "")}
    poll = run("poll", "--inventory", str(inventory), "--jsonl", "--checks", "--interval", "0.5",
               "--duration", "2.2", cwd=tmp_path, env=env)
    assert poll.returncode == 0, poll.stderr
    checks = [json.loads(line) for line in poll.stdout.splitlines() if '"check"' in line]
    r1 = [c for c in checks if c["device"] == "r1"]
    assert len(r1) >= 4
    assert not (tmp_path / "xdg" / "wardtui" / "history.db").exists()  # nothing went to SQLite

    history = run("history", "r1", "--since", "1h", "--json", cwd=tmp_path, env=env)
    assert history.returncode == 0, history.stderr
    got = json.loads(history.stdout)
    assert got["tier"] == "raw"
    assert [p["rtt_ms"] for p in got["points"]] == [c["rtt_ms"] for c in r1]

    current = run("db", "current", cwd=tmp_path, env=env)
    assert current.returncode == 0 and current.stdout.endswith("(head)\n"), current.stderr
    outages = run("outages", "--json", cwd=tmp_path, env=env)
    assert (outages.returncode, json.loads(outages.stdout)) == (0, [])
    for proc in (poll, history, current, outages):
        assert_no_traceback(proc)


def test_libpq_sslmode_is_accepted_and_bad_query_keys_and_ports_are_one_line(pg_url: str,  # noqa: F811
                                                                             tmp_path: Path) -> None:
    plain = pg_url.replace("+asyncpg", "")
    upgrade = run("db", "upgrade", "--db", f"{plain}?sslmode=disable", cwd=tmp_path)
    assert upgrade.returncode == 0, upgrade.stderr
    assert_no_traceback(upgrade)
    base = plain.rsplit("/", 1)[0]
    for db, says in ((f"{plain}?sslmode=require&foo=1", "unknown URL query key 'foo'"),
                     (f"{plain}?sslmode=bogus", "sslmode='bogus'"),
                     (base.replace(":5432", ":99999") + "/x", "port '99999'")):
        for args in (("db", "current"), ("outages",), ("poll", "--jsonl", "--duration", "1")):
            proc = run(*args, "--db", db, cwd=tmp_path)
            assert proc.returncode == 2, (args, proc.stderr)
            assert_no_traceback(proc)
            [line] = proc.stderr.splitlines()
            assert line.startswith("wardtui: --db postgresql://") and says in line, line


def test_every_password_form_is_masked_and_an_ambiguous_at_is_refused(pg_url: str,  # noqa: F811
                                                                       tmp_path: Path) -> None:
    plain = pg_url.replace("+asyncpg", "")
    user = plain.split("://", 1)[1].split("@", 1)[0]
    missing = plain.rsplit("/", 1)[0] + "/wardtui_no_such_database"
    commands = (("db", "current"), ("outages",), ("report", "--from", "1d"),
                ("poll", "--jsonl", "--duration", "1"))
    # The server trusts 127.0.0.1, so a password given in the query is sent and ignored.
    for args in commands:
        proc = run(*args, "--db", f"{missing}?password=hunter2&sslmode=disable", cwd=tmp_path)
        assert proc.returncode == 1, (args, proc.stderr)
        assert "hunter2" not in proc.stderr + proc.stdout
        assert "?password=***&ssl=disable" in proc.stderr and "does not exist" in proc.stderr
    for args in commands:
        ambiguous = plain.replace(f"{user}@", f"{user}:se@cret99@")
        proc = run(*args, "--db", ambiguous, cwd=tmp_path)
        assert proc.returncode == 2, (args, proc.stderr)
        assert_no_traceback(proc)
        [line] = proc.stderr.splitlines()
        assert "cret99" not in line and "%40" in line and line.startswith("wardtui: --db postgresql://***@")
    socket_db = f"postgresql://{user}@/wardtui_no_such_database?host=/var/run/postgresql"
    proc = run("db", "current", "--db", socket_db, cwd=tmp_path)
    assert proc.returncode == 1
    assert f"{socket_db}: " in proc.stderr, proc.stderr


def test_a_failed_start_on_a_new_postgresql_url_leaves_no_spool_directory(pg_url: str,  # noqa: F811
                                                                          tmp_path: Path) -> None:
    missing = pg_url.replace("+asyncpg", "").rsplit("/", 1)[0] + "/wardtui_no_such_database"
    (tmp_path / "xdg").mkdir()
    proc = run("poll", "--jsonl", "--duration", "1", "--db", missing, cwd=tmp_path)
    assert proc.returncode == 1 and "does not exist" in proc.stderr, proc.stderr
    assert list((tmp_path / "xdg").iterdir()) == []  # no wardtui/spool/<db>-<hash>/ left behind
    spool = tmp_path / "kept-spool"
    spool.mkdir()
    proc = run("poll", "--jsonl", "--duration", "1", "--db", missing, "--spool", str(spool), cwd=tmp_path)
    assert proc.returncode == 1
    assert spool.is_dir()  # the operator's directory stays


@pytest.fixture
def password_pg() -> Iterator[PrivateCluster]:
    """A private server that asks every connection for the password (scram-sha-256)."""
    try:
        cluster = PrivateCluster(password=PASSWORD)
        cluster.start()
    except (OSError, RuntimeError) as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"cannot start a private PostgreSQL server: {exc}")
        pytest.skip(f"cannot start a private PostgreSQL server: {exc}")
    try:
        yield cluster
    finally:
        cluster.remove()


PASSWORD = "s3cret-Pw"


def test_the_password_can_stay_out_of_ps(password_pg: PrivateCluster, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """What README, docs/OPERATIONS.md and --help promise: ~/.pgpass, $PGPASSFILE, ?passfile= and
    $WARDTUI_DB give the password without it being on the command line."""
    db = f"postgresql://postgres@127.0.0.1:{password_pg.port}/postgres"
    home = tmp_path / "home"
    home.mkdir()
    for name in ("PGPASSFILE", "PGPASSWORD", "WARDTUI_DB"):  # set, even empty, each would count
        monkeypatch.delenv(name, raising=False)
    clean = {"HOME": str(home)}
    refused = run("db", "current", "--db", db, cwd=tmp_path, env=clean)
    assert refused.returncode == 1 and "password" in refused.stderr, refused.stderr
    assert_no_traceback(refused)
    pgpass = tmp_path / "pgpass"
    pgpass.write_text(f"127.0.0.1:{password_pg.port}:postgres:postgres:{PASSWORD}\n", encoding="utf-8")
    pgpass.chmod(0o600)
    for how, args, env in (
        ("PGPASSFILE", ("--db", db), {**clean, "PGPASSFILE": str(pgpass)}),
        ("?passfile=", ("--db", f"{db}?passfile={pgpass}"), clean),
        ("WARDTUI_DB", (), {**clean, "WARDTUI_DB": db.replace("postgres@", f"postgres:{PASSWORD}@")}),
    ):
        proc = run("db", "upgrade", *args, cwd=tmp_path, env=env)
        assert proc.returncode == 0, (how, proc.stderr)
        assert PASSWORD not in proc.stdout + proc.stderr
    shutil.copy(pgpass, home / ".pgpass")
    (home / ".pgpass").chmod(0o600)
    proc = run("db", "current", "--db", db, cwd=tmp_path, env=clean)
    assert proc.returncode == 0 and proc.stdout.endswith("(head)\n"), proc.stderr


@pytest.mark.parametrize("command", [(), ("poll",), ("outages",), ("history",), ("report",), ("snmp",),
                                     ("db", "current"), ("db", "upgrade")])
def test_help_says_how_to_keep_the_password_out_of_ps(command: tuple[str, ...], tmp_path: Path) -> None:
    text = " ".join(run(*command, "--help", cwd=tmp_path).stdout.split())
    assert "ps shows --db to every user: give a password in ~/.pgpass, $PGPASSFILE or $WARDTUI_DB" in text
    assert "a PostgreSQL server gets 5 s to answer" in text
