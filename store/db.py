"""Turn what the user gave (a URL, a path or nothing) into an async SQLAlchemy database URL."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from urllib.parse import unquote

from store.dburl import URL_PATTERN, check_sqlite_query, postgres_url
from store.files import private_dirs

_SQLITE_DRIVERS = ("sqlite", "sqlite+aiosqlite")
_POSTGRES_DRIVERS = ("postgres", "postgresql", "postgresql+asyncpg", "postgresql+psycopg")


DB_ENV = "WARDTUI_DB"
"""The environment variable that names the history database when ``--db`` does not."""


def default_database_path() -> Path:
    """``$XDG_DATA_HOME/wardtui/history.db``, else ``~/.local/share/wardtui/history.db``."""
    data_home = os.environ.get("XDG_DATA_HOME", "")
    # The XDG spec says a relative XDG_DATA_HOME is invalid and must be ignored.
    if not data_home or not os.path.isabs(data_home):
        data_home = str(Path.home() / ".local" / "share")
    return Path(data_home) / "wardtui" / "history.db"


def default_spool_dir(url: str) -> Path:
    """Where rows wait while the database at ``url`` is unavailable: beside a SQLite file
    (``history.db.spool``), else ``$XDG_DATA_HOME/wardtui/spool/<database>-<hash of the URL>``."""
    from sqlalchemy.engine import make_url  # here, as below: the dashboard imports this module first

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        return Path(f"{parsed.database}.spool")
    key = parsed.set(password=None).render_as_string(hide_password=False)
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return default_database_path().parent / "spool" / f"{parsed.database or 'memory'}-{digest}"


def database_url(url: str | None, *, create: bool = True) -> str:
    """Map ``url`` to a URL for ``create_async_engine`` and (``create``) make the SQLite file's
    directory; commands that only read pass ``create=False`` and leave the disk as it was.

    ``None`` or ``""`` means ``$WARDTUI_DB`` if set, else the default path; a string without
    ``://`` is a SQLite file
    path; ``sqlite:///PATH`` becomes ``sqlite+aiosqlite:///PATH``; ``postgresql://...``
    becomes ``postgresql+asyncpg://...``. Anything else, or a SQLite path that is a directory,
    raises ``ValueError`` saying why.
    """
    if not url:
        url = os.environ.get(DB_ENV, "")
    if not url:
        return _sqlite_file_url(default_database_path(), create)
    if "://" not in url:
        return _sqlite_file_url(Path(url), create)
    if _scheme(url) in _POSTGRES_DRIVERS:
        return postgres_url(url)
    database = _sqlite_database(url)
    if database is None:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            parsed = make_url(url)
        except (ArgumentError, ValueError):
            raise ValueError(f"not a database URL: {_scheme(url)}://... (try sqlite:///PATH)") from None
        driver = parsed.drivername
        if driver not in _SQLITE_DRIVERS:
            # Only the scheme is echoed: the rest of a URL may carry a password.
            raise ValueError(f"unsupported database URL scheme '{driver}': "
                             "use sqlite:///PATH or postgresql://USER@HOST/DB")
        database = parsed.database or ""
    query = url.partition("?")[2]  # driver options such as ?timeout=... pass through
    check_sqlite_query(query)
    if database in ("", ":memory:"):
        return _with_query("sqlite+aiosqlite:///:memory:", query)
    return _with_query(_sqlite_file_url(Path(database), create), query)


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite ``url`` (as :func:`database_url` made it), else ``None``."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(str(parsed.database))


def _sqlite_file_url(path: Path, create: bool) -> str:
    path = path.expanduser()
    if path.is_dir():  # SQLite would say "unable to open database file", or outages "never ran"
        raise ValueError(f"{path} is a directory, not a SQLite database file")
    if create:
        private_dirs(path.parent)  # 0700: the history names the bank's devices
    # Built by hand: rendering a URL object would percent-encode the path.
    return f"sqlite+aiosqlite:///{path}"


def _with_query(url: str, query: str) -> str:
    return f"{url}?{query}" if query else url


# SQLAlchemy's own pattern with its own flags (store/dburl.py).
_SQLALCHEMY_URL = re.compile(URL_PATTERN, re.X)


def _sqlite_database(url: str) -> str | None:
    """The database of a SQLite ``url`` as ``make_url(url).database or ""`` reads it, without
    importing SQLAlchemy (the attached dashboard checks its --db before its first frame); None
    for any other URL, or one whose port SQLAlchemy would have to judge: then it reads it."""
    match = _SQLALCHEMY_URL.match(url)
    if match is None or match["name"] not in _SQLITE_DRIVERS:
        return None
    port = match["port"]
    if port and not (port.isascii() and port.isdigit()):
        return None
    return unquote(match["database"]) if match["database"] else ""


def _scheme(url: str) -> str:
    return url.split("://", 1)[0]
