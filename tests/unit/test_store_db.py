"""database_url: URL mapping, default path under XDG_DATA_HOME, clear errors; store imports no UI."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from store.db import database_url, default_database_path


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
