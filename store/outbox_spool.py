"""The notification outbox's write-ahead spool: its changes kept on disk while the database is down.

The history spool's format and approach (store/spool.py, whose file helpers it shares): a
directory locked by one process, 0700, append-only segment files (``000000000001.outbox``) of
one compact JSON object per line, 0600, each append fsync'd before it returns and all or nothing
(a failed one is cut off again). A crash (SIGKILL, power) mid-append leaves at most a torn last
line in the newest segment: it is ignored when the spool is read and cut before the next append.

Replay (``store.outbox.SqlOutbox``) reads a whole segment, applies its records to the database
in one transaction, then deletes the segment: a crash in between applies them again, which
changes nothing (inserts by key, status changes only from ``pending``). An unreadable line in
an older segment (a damaged disk, a hand edit) is set aside beside it, logged, and skipped.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any

from store.spool import _fsync_dir, _lock, _whole_records, _write_all

log = logging.getLogger(__name__)

_SEGMENT = re.compile(r"(\d{12})\.outbox")
_ENCODER = json.JSONEncoder(separators=(",", ":"))
Record = dict[str, Any]


class OutboxSpool:
    """Records appended durably in ``directory``, read back oldest first, a segment at a time."""

    def __init__(self, directory: Path, *, segment_bytes: int = 1024 * 1024) -> None:
        self.directory = directory
        self.segment_bytes = segment_bytes
        self.damaged_records = 0
        self._lock_fd: int | None = _lock(directory)
        self._segments: dict[int, int] = {}  # seq -> bytes of whole records, oldest first
        self._rows: dict[int, int] = {}
        self._torn: set[int] = set()  # segments with bytes past their whole records
        self._fd: int | None = None  # the newest segment, open for append
        self._sealed = False  # the newest segment is being replayed: append to a new one
        self._last_seq = 0  # the highest segment number used (numbers are never reused)
        try:
            self._load()
        except BaseException:
            self.close()
            raise

    @property
    def rows(self) -> int:
        """Records not yet replayed. Read by gauges on the loop while a worker thread may be
        appending: list() of a dict's values is atomic under the GIL (a sum over the live view
        could meet a segment being added)."""
        return sum(list(self._rows.values()))

    @property
    def empty(self) -> bool:
        return not self._segments

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # -- writing ----------------------------------------------------------------------------

    def append(self, records: list[Record]) -> None:
        """Write ``records`` in order and fsync; on ``OSError`` none of them is in the spool."""
        if not records:
            return
        if self._lock_fd is None:
            raise OSError(f"outbox spool {self.directory} is closed")
        data = b"".join((_ENCODER.encode(r) + "\n").encode() for r in records)
        seq, fd = self._tail(len(data))
        end = self._segments[seq]
        try:
            self._torn.add(seq)
            _write_all(fd, data)
            os.fsync(fd)
        except BaseException:
            try:  # cut what was written (cutting needs no room); if that fails, cut at the next append
                os.ftruncate(fd, end)
                self._torn.discard(seq)
            except OSError:
                pass
            raise
        self._torn.discard(seq)
        self._segments[seq] = end + len(data)
        self._rows[seq] += len(records)

    def _tail(self, need: int) -> tuple[int, int]:
        if self._segments and not self._sealed:
            seq = next(reversed(self._segments))
            if self._fd is None:
                self._fd = os.open(self._path(seq), os.O_WRONLY | os.O_APPEND)
            if seq in self._torn:
                os.ftruncate(self._fd, self._segments[seq])
                os.fsync(self._fd)
                self._torn.discard(seq)
            if self._segments[seq] == 0 or self._segments[seq] + need <= self.segment_bytes:
                return seq, self._fd
        self._close_tail()
        seq = max(self._segments, default=self._last_seq) + 1
        self._last_seq = seq
        self._fd = os.open(self._path(seq), os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o600)
        self._segments[seq], self._rows[seq] = 0, 0
        self._sealed = False
        _fsync_dir(self.directory)
        return seq, self._fd

    # -- replaying --------------------------------------------------------------------------

    def oldest(self) -> tuple[int, list[Record]] | None:
        """The oldest segment's number and records; appends after this go to a new segment, so
        that :meth:`discard` removes only what was read."""
        if not self._segments:
            return None
        seq = next(iter(self._segments))
        if seq == next(reversed(self._segments)):
            self._sealed = True
            self._close_tail()
        path = self._path(seq)
        with path.open("rb") as f:
            data = f.read(self._segments[seq])
        records: list[Record] = []
        pos = 0
        for line in data.splitlines(keepends=True):
            try:
                record = json.loads(line)
                if not isinstance(record, dict):
                    raise ValueError("not an object")
            except ValueError as exc:
                self._set_aside(path, pos, line, exc)
            else:
                records.append(record)
            pos += len(line)
        return seq, records

    def discard(self, seq: int) -> None:
        """The segment's records are in the database: delete it."""
        if seq == next(reversed(self._segments), None):
            self._close_tail()
        self._path(seq).unlink(missing_ok=True)
        _fsync_dir(self.directory)
        self._segments.pop(seq, None)
        self._rows.pop(seq, None)
        self._torn.discard(seq)

    # -- files ------------------------------------------------------------------------------

    def _load(self) -> None:
        seqs = sorted(int(m[1]) for entry in self.directory.iterdir()
                      if (m := _SEGMENT.fullmatch(entry.name)))
        self._last_seq = max(seqs, default=0)
        for seq in seqs:
            path = self._path(seq)
            data = path.read_bytes()
            whole = _whole_records(data, path) if seq == seqs[-1] else len(data)
            if whole == 0 and len(data) == 0:
                path.unlink()
                continue
            self._segments[seq] = whole
            self._rows[seq] = data.count(b"\n", 0, whole)
            if whole < len(data):
                self._torn.add(seq)

    def _set_aside(self, path: Path, pos: int, line: bytes, exc: Exception) -> None:
        side = path.with_name(f"{path.name}.damaged-{pos}")
        fd = os.open(side, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            _write_all(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
        self.damaged_records += 1
        log.error("outbox spool %s: an unreadable record at byte %d (%s) set aside in %s", path, pos,
                  exc, side)

    def _close_tail(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _path(self, seq: int) -> Path:
        return self.directory / f"{seq:012d}.outbox"
