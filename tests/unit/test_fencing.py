"""store/fencing.py without a server: SQLite (what ``serve --cluster`` will print) is refused
before anything opens, and a refusal's message shows the owner read from the database literally."""

from __future__ import annotations

from pathlib import Path

import pytest

from store.database import Database
from store.db import database_url
from store.fencing import ClusterNeedsPostgres, Fenced, Fencing, require_postgres


def test_sqlite_is_refused_with_a_message_naming_postgresql(tmp_path: Path) -> None:
    url = database_url(str(tmp_path / "history.db"))
    with pytest.raises(ClusterNeedsPostgres) as refused:
        Fencing(Database(url), "bank")
    message = str(refused.value)
    assert message.startswith("a cluster needs a PostgreSQL history database (--db postgresql://")
    assert f"sqlite:///{tmp_path / 'history.db'} is SQLite" in message  # as the operator typed it
    assert "+aiosqlite" not in message
    assert not (tmp_path / "history.db").exists()  # refused before anything was opened or made
    with pytest.raises(ClusterNeedsPostgres, match="is SQLite"):
        require_postgres("sqlite+aiosqlite:///:memory:")


def test_postgresql_is_accepted_and_the_idle_limit_must_be_positive() -> None:
    url = "postgresql+asyncpg://ward:s3cret@127.0.0.1:5432/history"
    require_postgres(url)
    Fencing(Database(url), "bank")  # no connection is made until a take or a write
    with pytest.raises(ValueError, match="idle_limit"):
        Fencing(Database(url), "bank", idle_limit=0)


def test_a_refusal_names_the_shard_the_epochs_and_the_owner_literally() -> None:
    refused = Fenced("bank", 3, 7, 8, "host\x1b]0;pwned\x07:42", (3, 5))
    message = str(refused)
    assert "\x1b" not in message and "\x07" not in message  # a row's text, shown, never obeyed
    assert ("shard 3 of site 'bank' at epoch 7, taken over at epoch 8 by "
            "'host\ufffd]0;pwned\ufffd:42'") in message
    assert "(stale shards: 3, 5)" in message and message.endswith("it stands down from the shard")
    assert (refused.shard, refused.held, refused.current, refused.shards) == (3, 7, 8, (3, 5))
    never = Fenced("bank", 2, 1, None, None)
    assert "which was never taken" in str(never) and never.shards == (2,)
