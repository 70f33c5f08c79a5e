"""Files and directories wardtui creates are private: 0600 and 0700, whatever the umask.

The history names the bank's devices and addresses, and reports list them with their outages:
none of it is for other users of the machine. A file is created with its mode at ``open``
(never created under the umask and tightened afterwards: a reader who opened it in between
would keep reading). Files that exist already are the operator's and keep their mode, except
reports written with an explicit mode (:func:`open_output`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from pathlib import Path
from typing import TextIO

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700
log = logging.getLogger(__name__)
_WARNED: set[Path] = set()  # databases said to be open to others, once per process


def missing_dirs(directory: Path) -> list[Path]:
    """``directory`` and those of its parents that do not exist yet, deepest first."""
    missing: list[Path] = []
    for path in (directory, *directory.parents):
        if path.exists() or path.is_symlink():
            break
        missing.append(path)
    return missing


def private_dirs(directory: Path) -> None:
    """Create ``directory`` and any missing parent, each 0700; existing ones are left alone.
    (``Path.mkdir(mode=, parents=True)`` gives the parents the umask's mode.)"""
    for path in reversed(missing_dirs(directory)):
        try:
            os.mkdir(path, PRIVATE_DIR)
        except FileExistsError:  # made meanwhile by another process, or a file: the next step says
            continue


def create_private(path: Path) -> None:
    """Create ``path`` empty and 0600 unless it exists (its parents 0700)."""
    private_dirs(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, PRIVATE_FILE)
    except FileExistsError:
        return
    os.close(fd)


def prepare_sqlite(url: str) -> None:
    """Before SQLite opens the file of ``url``: create it 0600 (and its directory 0700) if it is
    not there. SQLite would create it under the umask (0644); its -wal, -shm and -journal files
    take the database file's mode, so they are 0600 too. Nothing for PostgreSQL or ``:memory:``."""
    from sqlalchemy.engine import make_url  # here: the dashboard writes files without SQLAlchemy

    parsed = make_url(url)
    database = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or database in ("", ":memory:") or database.startswith("file:"):
        return
    path = Path(database)
    create_private(path)
    with contextlib.suppress(OSError):
        info = path.stat()
        if info.st_mode & 0o077 and info.st_uid == os.geteuid() and path not in _WARNED:
            # Made by an older wardtui under the umask, or opened up on purpose: not changed here.
            _WARNED.add(path)
            log.warning("%s is mode %04o: other users can read the history; run `chmod 600 %s` "
                        "unless that is meant", path, stat.S_IMODE(info.st_mode), path)


def parse_mode(text: str) -> int:
    """An octal file mode such as ``600`` or ``0640`` (permission bits only); ValueError if not."""
    try:
        mode = int(text, 8)
    except ValueError:
        raise ValueError(f"{text!r} is not an octal file mode such as 600 or 640") from None
    if not 0 <= mode <= 0o777:
        raise ValueError(f"{text!r} is not a file mode between 000 and 777")
    return mode


def open_output(path: Path, mode: int = PRIVATE_FILE) -> TextIO:
    """``path`` opened for writing text (created or truncated) with exactly ``mode``: a new file
    is created with it; a regular file of ours that exists is set to it (the operator asked for
    this mode, or for the private default). Anything else (a FIFO, /dev/stdout, another user's
    file) is written as it is."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        info = os.fstat(fd)
        if stat.S_ISREG(info.st_mode) and info.st_uid == os.geteuid() and stat.S_IMODE(info.st_mode) != mode:
            os.fchmod(fd, mode)  # the umask may have taken bits away, or the file was there already
        return open(fd, "w", encoding="utf-8", newline="")
    except BaseException:
        os.close(fd)
        raise
