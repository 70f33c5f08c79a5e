"""Error lines on stderr: ``wardtui: ...``, with what they quote made inert.

Messages quote device names the operator typed, file paths, inventory values and database
errors; a terminal would obey an escape sequence in any of them (poller/text.py), so each line
is escaped here, once, for every command.
"""

from __future__ import annotations

import sys

from poller.text import escaped


def error(message: str, prefix: str = "wardtui") -> None:
    """Print ``prefix: message`` on stderr, each line escaped."""
    lines = "\n".join(escaped(line) for line in message.split("\n"))
    print(f"{prefix}: {lines}", file=sys.stderr)
