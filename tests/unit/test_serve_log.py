"""wardtui serve's log lines: LEVEL logger: message; an ISO time first on a terminal only; escaped."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator

import pytest

from wardtui.messages import SERVICE_LOGGERS, log_for_service


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _logging_as_it_was() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {name: logging.getLogger(name).level for name in SERVICE_LOGGERS}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, old in levels.items():
        logging.getLogger(name).setLevel(old)


def test_without_a_terminal_no_time_one_line_per_record_escaped() -> None:
    out = io.StringIO()
    log_for_service(out)
    logging.getLogger("wardtui.serve").info("device %s added", "r1\x1b]0;owned\x07")
    logging.getLogger("store.writer").warning("writes resumed")
    logging.getLogger("sqlalchemy.engine").info("SELECT 1")  # not ours: below WARNING, not shown
    assert out.getvalue().splitlines() == ["INFO wardtui.serve: device r1\\x1b]0;owned\\x07 added",
                                           "WARNING store.writer: writes resumed"]


def test_on_a_terminal_an_iso_time_comes_first() -> None:
    out = Terminal()
    log_for_service(out)
    logging.getLogger("poller.engine").error("listener failed")
    (line,) = out.getvalue().splitlines()
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4}"
    assert re.fullmatch(stamp + r" ERROR poller\.engine: listener failed", line), line
