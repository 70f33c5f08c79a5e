"""A database that is down is told in one line with its cause, never a chain of tracebacks;
a failure that is not about the connection keeps its traceback (a bug must be seen)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import asyncpg
import pytest
from sqlalchemy.exc import OperationalError, ProgrammingError

from store.dburl import cause, is_connection_error
from store.maintenance import Maintenance


def _wrapped(orig: BaseException) -> OperationalError:
    try:
        try:
            raise orig
        except BaseException as inner:
            raise OperationalError("INSERT ...", {}, inner) from inner
    except OperationalError as outer:
        return outer


@pytest.mark.parametrize("exc", [
    ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5432)"),
    TimeoutError(),
    asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    asyncpg.CannotConnectNowError("the database system is starting up"),
    _wrapped(ConnectionResetError(104, "Connection reset by peer")),
])
def test_connection_errors_are_recognised_through_their_wrapping(exc: BaseException) -> None:
    assert is_connection_error(exc)
    assert "\n" not in cause(exc) and cause(exc)


def test_other_errors_are_not_connection_errors() -> None:
    assert not is_connection_error(ProgrammingError("SELECT", {}, Exception("no such table: x")))
    assert not is_connection_error(asyncpg.QueryCanceledError("canceling statement: statement timeout"))
    refused = _wrapped(ConnectionRefusedError(111, "refused"))
    assert cause(refused) == "ConnectionRefusedError: [Errno 111] refused"


class _Failing(Maintenance):
    def __init__(self, exc: BaseException) -> None:
        super().__init__(store=Any, period=0.01)  # type: ignore[arg-type]
        self.exc = exc

    async def run_once(self, *args: Any, **kwargs: Any) -> Any:
        raise self.exc


async def _fail_a_few_times(exc: BaseException) -> None:
    maintenance = _Failing(exc)
    maintenance.start()
    await asyncio.sleep(0.1)
    await maintenance.stop()


def test_maintenance_says_a_database_outage_in_one_line(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="store.maintenance"):
        asyncio.run(_fail_a_few_times(_wrapped(ConnectionRefusedError(111, "Connect call failed"))))
    [record] = caplog.records
    assert record.exc_info is None
    assert record.getMessage() == ("history maintenance failed, will retry: "
                                   "ConnectionRefusedError: [Errno 111] Connect call failed")


def test_maintenance_keeps_the_traceback_of_anything_else(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="store.maintenance"):
        asyncio.run(_fail_a_few_times(ZeroDivisionError("a bug")))
    [record] = caplog.records
    assert record.exc_info is not None
