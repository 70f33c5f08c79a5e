"""database_url: URL mapping, default path under XDG_DATA_HOME, clear errors; store imports no UI."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from store.db import database_url, default_database_path
from store.dburl import failure, shown
from store.schema import display_url


def test_sqlite_url_maps_to_aiosqlite_and_creates_parent(tmp_path: Path) -> None:
    db = tmp_path / "a" / "b" / "history.db"
    assert database_url(f"sqlite:///{db}") == f"sqlite+aiosqlite:///{db}"
    assert db.parent.is_dir()


def test_aiosqlite_url_and_bare_path_are_accepted(tmp_path: Path) -> None:
    db = tmp_path / "x" / "h.db"
    assert database_url(f"sqlite+aiosqlite:///{db}") == f"sqlite+aiosqlite:///{db}"
    assert database_url(str(db)) == f"sqlite+aiosqlite:///{db}"


def test_default_path_honours_xdg_data_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    expected = tmp_path / "data" / "wardtui" / "history.db"
    assert default_database_path() == expected
    assert database_url(None) == f"sqlite+aiosqlite:///{expected}"
    assert expected.parent.is_dir()


@pytest.mark.parametrize("value", [None, "", "relative/dir"])
def test_default_path_falls_back_to_local_share(
    value: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    if value is None:
        monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    else:
        monkeypatch.setenv("XDG_DATA_HOME", value)
    assert default_database_path() == tmp_path / ".local" / "share" / "wardtui" / "history.db"


@pytest.mark.parametrize("url", ["postgresql://u:secret@db:5433/ward?ssl=require",
                                 "postgres://u:secret@db:5433/ward?ssl=require",
                                 "postgresql+asyncpg://u:secret@db:5433/ward?ssl=require"])
def test_postgresql_maps_to_asyncpg(url: str) -> None:
    assert database_url(url) == "postgresql+asyncpg://u:secret@db:5433/ward?ssl=require"


def test_unknown_scheme_is_refused_without_echoing_credentials() -> None:
    with pytest.raises(ValueError, match="unsupported database URL scheme 'mysql'") as info:
        database_url("mysql://root:hunter2@db/ward")
    assert "hunter2" not in str(info.value)


def test_memory_database_is_allowed() -> None:
    assert database_url("sqlite://") == "sqlite+aiosqlite:///:memory:"


def test_store_imports_no_ui() -> None:
    code = (
        "import sys, store, store.writer, store.history\n"
        "bad = [m for m in ('textual', 'rich', 'wardtui') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])


def test_path_with_spaces_and_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert database_url("~/my data/h.db") == f"sqlite+aiosqlite:///{tmp_path}/my data/h.db"
    assert (tmp_path / "my data").is_dir()


def test_wardtui_db_names_the_database_when_no_url_is_given(monkeypatch: pytest.MonkeyPatch,
                                                            tmp_path: Path) -> None:
    monkeypatch.setenv("WARDTUI_DB", "postgresql://noc@db.example.net/wardtui")
    assert database_url(None) == "postgresql+asyncpg://noc@db.example.net/wardtui"
    assert database_url(f"sqlite:///{tmp_path}/x.db") == f"sqlite+aiosqlite:///{tmp_path}/x.db"  # --db wins
    monkeypatch.setenv("WARDTUI_DB", "")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert database_url(None) == f"sqlite+aiosqlite:///{tmp_path}/wardtui/history.db"


@pytest.mark.parametrize(("query", "expected"), [
    ("sslmode=require", "ssl=require"),  # libpq's spelling: asyncpg calls it ssl
    ("sslmode=verify-full&host=/var/run/postgresql", "ssl=verify-full&host=/var/run/postgresql"),
    ("host=%2Fvar%2Frun%2Fpostgresql&port=5433", "host=/var/run/postgresql&port=5433"),
    ("passfile=/etc/wardtui/pgpass", "passfile=/etc/wardtui/pgpass"),
])
def test_postgresql_query_keys_that_asyncpg_takes(query: str, expected: str) -> None:
    assert database_url(f"postgresql://u@db/ward?{query}") == f"postgresql+asyncpg://u@db/ward?{expected}"


@pytest.mark.parametrize(("url", "says"), [
    ("postgresql://u@db/ward?foo=1", "unknown URL query key 'foo'"),
    ("postgresql://u@db/ward?application_name=x", "unknown URL query key 'application_name'"),
    ("postgresql://u@db/ward?sslmode=required", "sslmode='required': use one of disable,"),
    ("postgresql://u@db/ward?sslmode=require&ssl=disable", "sslmode and ssl both given"),
    ("postgresql://u@db/ward?host=a&host=b", "'host' given twice"),
    ("postgresql://u@db:99999/ward", "port '99999' is not a port number (1 to 65535)"),
    ("postgresql://u@db:0/ward", "port '0' is not a port number"),
    ("postgresql://u@db:http/ward", "port 'http' is not a port number"),
    ("postgresql://u@db/ward?port=70000", "?port= '70000' is not a port number"),
])
def test_postgresql_urls_asyncpg_would_choke_on_are_refused(url: str, says: str) -> None:
    with pytest.raises(ValueError, match=re.escape(says)):
        database_url(url)


@pytest.mark.parametrize(("url", "expected"), [
    ("postgresql://noc:s3cret@db:5433/ward", "postgresql://noc:***@db:5433/ward"),
    ("postgresql://noc:pa/ss?x@db/ward", "postgresql://noc:***@db/ward"),  # SQLAlchemy's reading
    ("postgresql://postgres:se@cret99@127.0.0.1/ward", "postgresql://***@127.0.0.1/ward"),
    ("postgresql://noc:p@ss/x@db/ward", "postgresql://***@db/ward"),
    ("postgresql://noc@db/ward?password=hunter2&sslmode=require",
     "postgresql://noc@db/ward?password=***&sslmode=require"),
    ("postgresql://noc@db/ward?pass%77ord=hunter2", "postgresql://noc@db/ward?pass%77ord=***"),
    ("postgresql://noc@/ward?host=%2Fvar%2Frun%2Fpostgresql", "postgresql://noc@/ward?host=/var/run/postgresql"),
    ("postgresql://noc@/ward?host=/var/run/postgresql", "postgresql://noc@/ward?host=/var/run/postgresql"),
    ("sqlite:////var/lib/w@rd/h.db", "sqlite:////var/lib/w@rd/h.db"),
    ("/var/lib/wardtui/h.db", "/var/lib/wardtui/h.db"),
])
def test_shown_masks_every_password_form(url: str, expected: str) -> None:
    assert shown(url) == expected


def test_display_url_of_what_database_url_made_shows_the_socket_path_and_no_password() -> None:
    url = database_url("postgresql://noc:s3cret@/ward?host=/var/run/postgresql&password=hunter2")
    assert display_url(url) == "postgresql://noc:***@/ward?host=/var/run/postgresql&password=***"


@pytest.mark.parametrize("url", ["postgresql://postgres:se@cret99@127.0.0.1/ward",
                                 "postgresql://noc:p@ss/x@db/ward", "postgresql://a@b@db/ward"])
def test_an_at_sign_that_is_not_percent_encoded_is_refused_with_a_hint(url: str) -> None:
    with pytest.raises(ValueError, match="not percent-encoded: write it as %40") as info:
        database_url(url)
    assert "cret99" not in str(info.value) and "ss/x" not in str(info.value)


def test_a_percent_encoded_at_sign_in_a_password_is_kept() -> None:
    url = database_url("postgresql://postgres:se%40cret99@127.0.0.1/ward")
    assert url == "postgresql+asyncpg://postgres:se%40cret99@127.0.0.1/ward"
    assert make_url(url).password == "se@cret99" and make_url(url).host == "127.0.0.1"


def test_a_timeout_names_the_server_and_the_wait() -> None:
    url = database_url("postgresql://noc:s3cret@127.0.0.1:6543/ward")
    assert failure(TimeoutError(), url) == "no answer from 127.0.0.1:6543 within 5 s"
    assert failure(TimeoutError(), database_url("postgresql://noc@/w?host=/run/pg")) \
        == "no answer from /run/pg within 5 s"
    assert failure(TimeoutError(), database_url("postgresql://noc@db/w")) \
        == "no answer from db:5432 within 5 s"
    assert failure(ConnectionRefusedError(111, "Connection refused"), url) == "[Errno 111] Connection refused"
    assert failure(OSError(), url) == "OSError"  # never an empty reason


@pytest.mark.parametrize(("query", "says"), [
    ("foo=1", "unknown URL query key 'foo'"),  # SQLAlchemy ignored it with a warning
    ("timeout=abc", "timeout='abc': seconds from 0 to 3600"),  # a ValueError traceback at connect
    ("timeout=nan", "timeout='nan'"),
    ("uri=maybe", "uri='maybe': use true or false"),
])
def test_sqlite_query_keys_that_would_be_ignored_or_fail_are_refused(query: str, says: str,
                                                                    tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=re.escape(says)):
        database_url(f"sqlite:///{tmp_path}/h.db?{query}")


def test_sqlite_timeout_and_uri_parameters_pass(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/h.db?timeout=30&uri=true&mode=rwc"
    assert database_url(url) == f"sqlite+aiosqlite:///{tmp_path}/h.db?timeout=30&uri=true&mode=rwc"


def test_a_sqlite_url_is_read_as_sqlalchemy_reads_it_without_importing_it() -> None:
    """store.db reads sqlite:// URLs itself (the attached dashboard checks its --db before its
    first frame, without SQLAlchemy): the same database as make_url's, or None to let it judge."""
    from sqlalchemy.engine import make_url

    from store.db import _sqlite_database

    urls = ["sqlite:///x.db", "sqlite:////tmp/a%20b.db?timeout=5", "sqlite://", "sqlite:///:memory:",
            "sqlite+aiosqlite:///p?mode=ro&uri=true", "sqlite://user:pw@host:12/db", "sqlite:///%2Ftmp",
            "sqlite://[::1]:5/d", "sqlite:///", "sqlite:///a?b\nc"]
    for url in urls:
        assert _sqlite_database(url) == (make_url(url).database or ""), url
    for url in ["sqlite://h:abc/db", "sqlite://h:\u0665/db", "mysql:///x", "postgresql:///x"]:
        assert _sqlite_database(url) is None, url
