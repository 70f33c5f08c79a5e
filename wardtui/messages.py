"""Error lines on stderr: ``wardtui: ...``, with what they quote made inert.

Messages quote device names the operator typed, file paths, inventory values and database
errors; a terminal would obey an escape sequence in any of them (poller/text.py), so each line
is escaped here, once, for every command.
"""

from __future__ import annotations

import logging
import sys

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
