"""Error lines on stderr: ``wardtui: ...``, with what they quote made inert.

Messages quote device names the operator typed, file paths, inventory values and database
errors; a terminal would obey an escape sequence in any of them (poller/text.py), so each line
is escaped here, once, for every command.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

from poller.text import escaped_lines


def error(message: str, prefix: str = "wardtui") -> None:
    """Print ``prefix: message`` on stderr, each line escaped."""
    print(f"{prefix}: {escaped_lines(message)}", file=sys.stderr)


class EscapingFormatter(logging.Formatter):
    """Log lines quote agents, paths and database errors: escaped like :func:`error`."""

    def format(self, record: logging.LogRecord) -> str:
        return escaped_lines(super().format(record))


def log_to_stderr(level: int = logging.WARNING) -> None:
    """The headless commands' log: one line per record on stderr, escaped. (The dashboard
    keeps Python's default: Textual owns the terminal's stderr while it runs.)"""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(EscapingFormatter("wardtui: %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler])


SERVICE_LOGGERS = ("wardtui", "poller", "store")
"""wardtui's own loggers, which ``wardtui serve`` lets say what they do (INFO); others warn only."""


def log_for_service(stream: TextIO | None = None) -> logging.Handler:
    """``wardtui serve``'s log: one line per record on stderr, ``LEVEL logger: message``, no
    colour, escaped. Under systemd (stderr not a terminal) without a time, which journald adds;
    on a terminal with an ISO 8601 one. Returns the handler (a test may remove it)."""
    stream = sys.stderr if stream is None else stream
    handler = logging.StreamHandler(stream)
    shape = "%(levelname)s %(name)s: %(message)s"
    tty = hasattr(stream, "isatty") and stream.isatty()
    handler.setFormatter(EscapingFormatter(f"%(asctime)s {shape}" if tty else shape,
                                           datefmt="%Y-%m-%dT%H:%M:%S%z"))
    logging.basicConfig(level=logging.WARNING, handlers=[handler], force=True)
    for name in SERVICE_LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO)
    return handler
