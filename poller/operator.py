"""Who an operator is: the login name of the session, carried by every command and record an
operator makes (a probe asked for, a maintenance window, an acknowledgement, a viewer attached)."""

from __future__ import annotations

import os


def login_name() -> str:
    """The session's login name; else the user's name; else the uid as text."""
    try:
        return os.getlogin()
    except OSError:
        import pwd

        try:
            return pwd.getpwuid(os.getuid()).pw_name
        except KeyError:
            return str(os.getuid())
