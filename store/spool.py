"""An on-disk spool of history rows kept while the database is down, replayed in order when it returns.
Its directories are created 0700 and its files 0600.

Rows go to append-only segment files (``000000000001.spool``, ...), one compact JSON object per line,
fsync'd before ``append`` returns, so what the engine saw during an outage survives a crash or a
restart. A sidecar per segment (``000000000001.offset``) holds how far it has been written to the
database, so a crash replays at most the batch that was not yet committed (the database
recognises rows it already holds by their keys, so such a replay adds nothing).

An ``append`` is all or nothing: one that fails (disk full) leaves the spool as it was. A record
that cannot be read back (a damaged disk, a hand edit) is set aside in a side file next to its
segment (``000000000001.spool.damaged-OFFSET``), logged and counted, and replay goes on after it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from poller.events import CheckResult, SnmpFailure, SnmpPoll, Transition
from store.files import private_dirs
from store.spool_records import (
    Line,
    PollRecord,
    SnmpEventIn,
    decode,
    encode_check,
    encode_event,
    encode_poll,
    encode_transition,
)

log = logging.getLogger(__name__)

_SEGMENT = re.compile(r"(\d{12})\.spool")
_SIDECAR = re.compile(r"(\d{12})\.offset")


class SpoolError(Exception):
    """The spool cannot be used: another process holds it, or a record or sidecar in it is unreadable."""


@dataclass(frozen=True, slots=True)
class SpoolBatch:
    """Consecutive records of one segment; give it to ``Spool.commit`` once it is in the database."""

    transitions: list[Transition]
    checks: list[CheckResult]
    segment: Path
    start: int  # byte offsets of the batch's records in ``segment``
    end: int
    polls: list[PollRecord] = field(default_factory=list)  # answered and failed SNMP polls
    events: list[SnmpEventIn] = field(default_factory=list)  # SNMP reboots, interface and agent changes
    damaged: int = 0  # lines between start and end that could not be read (set aside)

    @property
    def rows(self) -> int:
        """Records (lines) in the batch: an SNMP poll with its interfaces is one."""
        return len(self.transitions) + len(self.checks) + len(self.polls) + len(self.events)


@dataclass(slots=True)
class _Segment:
    seq: int
    path: Path
    end: int  # bytes of whole records
    committed: int  # bytes already in the database
    rows: int  # records after ``committed``
    torn: bool = False  # bytes past ``end`` (a crash or failed write): cut before appending


class Spool:
    """Append-only spool in ``directory``, capped at ``max_bytes`` of uncommitted records.

    Transitions and SNMP events are never dropped: they are the outage history, and their number
    is bounded by the devices and the clock. Check results and SNMP polls that would pass the
    cap are dropped and counted.
    Methods hold an internal lock, so ``append`` and ``commit`` (which block on fsync) may run in
    worker threads; batches must still be committed in the order ``batches`` gave them.
    The directory is created (with its parents) at construction, as it holds the lock.
    """

    def __init__(self, directory: Path, *, max_bytes: int = 256 * 1024 * 1024,
                 segment_bytes: int = 8 * 1024 * 1024) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.dropped_checks = 0
        self.dropped_polls = 0
        self.damaged_records = 0  # lines set aside as unreadable (see _set_aside)
        self.progress_error: str | None = None  # why replay progress could not be saved, if so
        self._segments: dict[int, _Segment] = {}  # by sequence number, oldest first
        self._fd: int | None = None  # the newest segment, open for append
        self._next_seq = 1
        self._dropping = False
        self._mutex = threading.RLock()
        self._lock_fd: int | None = _lock(directory)
        try:
            self._load()
        except BaseException:
            self.close()
            raise

    # -- state ----------------------------------------------------------------------------

    # Read without the lock: a gauge or a check on the event loop must never wait for a worker
    # thread's fsync. list() of a dict's values is atomic under the GIL; the sum may mix an
    # append's before and after, which a gauge can live with.

    @property
    def bytes(self) -> int:
        """Bytes of records not yet committed (what ``max_bytes`` caps)."""
        return sum(s.end - s.committed for s in list(self._segments.values()))

    @property
    def rows(self) -> int:
        """Records not yet committed."""
        return sum(s.rows for s in list(self._segments.values()))

    @property
    def empty(self) -> bool:
        return self.rows == 0

    def close(self) -> None:
        """Close the segment and release the directory for another process (idempotent)."""
        with self._mutex:
            self._close_tail()
            if self._lock_fd is not None:
                os.close(self._lock_fd)  # releases the flock
                self._lock_fd = None

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, exc_type: type[BaseException] | None,
                 exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    # -- writing --------------------------------------------------------------------------

    def append(self, transitions: Sequence[Transition], checks: Sequence[CheckResult],
               polls: Sequence[PollRecord] = (), events: Sequence[SnmpEventIn] = ()) -> int:
        """Write the transitions, the SNMP events, then the checks and the SNMP polls, durably
        (fsync'd); return how many checks and polls were dropped: the newest of this call that
        would take the spool past ``max_bytes`` (counted in ``dropped_checks``, ``dropped_polls``).

        On ``OSError`` (disk full, ...) none of them is in the spool (see ``_write``).
        """
        lines = [encode_transition(t) for t in transitions] + [encode_event(e) for e in events]
        checks_in = [encode_check(c) for c in checks]
        polls_in = [encode_poll(p) for p in polls]
        with self._mutex:
            self._check_open()
            room = self.max_bytes - self.bytes - sum(map(len, lines))
            kept: list[Line] = []
            for encoded in (checks_in, polls_in):
                for line in encoded:
                    room -= len(line)
                    if room < 0:
                        break
                    kept.append(line)
            kept_checks = min(len(kept), len(checks_in))
            dropped_checks = len(checks_in) - kept_checks
            dropped_polls = len(polls_in) - (len(kept) - kept_checks)
            self._count_dropped(dropped_checks, dropped_polls, bool(checks_in or polls_in))
            self._write([*lines, *kept])
        return dropped_checks + dropped_polls

    def _count_dropped(self, dropped_checks: int, dropped_polls: int, had_samples: bool) -> None:
        if dropped_checks or dropped_polls:
            self.dropped_checks += dropped_checks
            self.dropped_polls += dropped_polls
            if not self._dropping:
                log.warning("spool %s is full (%d bytes): dropping check results and SNMP polls until "
                            "it drains", self.directory, self.max_bytes)
        if had_samples:
            self._dropping = (dropped_checks + dropped_polls) > 0

    def _write(self, lines: list[Line]) -> None:
        """Append ``lines`` in order, all or nothing: if a write or fsync fails (disk full), the
        segments are put back as they were (cut to their old end, new ones removed) and the error
        raised, so the caller knows none of its rows are in the spool."""
        newest = self._newest()
        before = (newest.seq, newest.end, newest.rows) if newest is not None else None
        try:
            self._write_lines(lines)
        except BaseException:
            self._roll_back(before)
            raise

    def _roll_back(self, before: tuple[int, int, int] | None) -> None:
        for seq in [seq for seq in self._segments if before is None or seq > before[0]]:
            self._discard(self._segments[seq])  # made by this append: nothing else is in it
        if before is not None and (seg := self._segments.get(before[0])) is not None:
            seg.end, seg.rows = before[1], before[2]
            seg.torn = True  # cut at the next append; only the newest segment may end torn
            with contextlib.suppress(OSError):  # best effort now (cutting needs no space)
                fd = self._fd if self._fd is not None else os.open(seg.path, os.O_WRONLY | os.O_APPEND)
                self._fd = fd
                os.ftruncate(fd, seg.end)
                seg.torn = False

    def _write_lines(self, lines: list[Line]) -> None:
        i = 0
        while i < len(lines):
            seg, fd = self._tail(len(lines[i]))
            j, size = i + 1, len(lines[i])
            while j < len(lines) and seg.end + size + len(lines[j]) <= self.segment_bytes:
                size += len(lines[j])
                j += 1
            seg.torn = True  # until the whole chunk is known to be on disk
            _write_all(fd, b"".join(lines[i:j]))
            os.fsync(fd)
            seg.torn = False
            seg.end += size
            seg.rows += j - i
            i = j

    def _tail(self, need: int) -> tuple[_Segment, int]:
        """The newest segment, open and cut back to its whole records, or a new one if it is full."""
        seg = self._newest()
        if seg is not None:
            if self._fd is None:
                self._fd = os.open(seg.path, os.O_WRONLY | os.O_APPEND)
            if seg.torn:  # also before rolling over: only the newest segment may end torn
                os.ftruncate(self._fd, seg.end)
                os.fsync(self._fd)
                seg.torn = False
            if seg.end == 0 or seg.end + need <= self.segment_bytes:
                return seg, self._fd
            self._close_tail()
        seq = self._next_seq
        self._next_seq += 1
        self._sidecar(seq).unlink(missing_ok=True)  # a stale one would skip rows of the new segment
        seg = _Segment(seq, self._path(seq), 0, 0, 0)
        self._fd = os.open(seg.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o600)
        self._segments[seq] = seg
        _fsync_dir(self.directory)
        return seg, self._fd

    # -- replaying ------------------------------------------------------------------------

    def batches(self, max_rows: int = 5000) -> Iterator[SpoolBatch]:
        """Uncommitted records oldest first, in the order appended, at most ``max_rows`` per batch
        (an SNMP poll weighs its interfaces plus one; a batch holds at least one record) and
        never two segments in one. Rows appended meanwhile are included; the iterator ends
        once it has caught up."""
        if max_rows < 1:
            raise ValueError("max_rows must be at least 1")
        seq, pos = 0, 0
        while True:
            with self._mutex:
                self._check_open()
                batch = self._next_batch(seq, pos, max_rows)
            if batch is None:
                return
            seq, pos = _seq(batch.segment), batch.end
            yield batch

    def _next_batch(self, after_seq: int, pos: int, max_rows: int) -> SpoolBatch | None:
        for seg in self._segments.values():
            if seg.seq < after_seq:
                continue
            start = max(seg.committed, pos) if seg.seq == after_seq else seg.committed
            if start < seg.end:
                return self._read(seg, start, max_rows)
        return None

    def _read(self, seg: _Segment, start: int, max_rows: int) -> SpoolBatch:
        batch = SpoolBatch([], [], seg.path, start, start)
        pos, weight, damaged = start, 0, 0
        with seg.path.open("rb") as f:
            f.seek(start)
            while pos < seg.end and weight < max_rows:
                line = f.readline(seg.end - pos)
                try:
                    record = decode(line)
                except (ValueError, KeyError, TypeError) as exc:
                    self._set_aside(seg, pos, line, exc)
                    damaged += 1
                    weight += 1
                    pos += len(line)
                    continue
                if isinstance(record, SnmpPoll):
                    if weight and weight + 1 + len(record.interfaces) > max_rows:
                        break  # the next batch starts with it
                    batch.polls.append(record)
                    weight += len(record.interfaces)
                elif isinstance(record, SnmpFailure):
                    batch.polls.append(record)
                elif isinstance(record, Transition):
                    batch.transitions.append(record)
                elif isinstance(record, CheckResult):
                    batch.checks.append(record)
                else:
                    batch.events.append(record)
                weight += 1
                pos += len(line)
        return SpoolBatch(batch.transitions, batch.checks, seg.path, start, pos, batch.polls, batch.events,
                          damaged)

    def _set_aside(self, seg: _Segment, pos: int, line: Line, exc: Exception) -> None:
        """Copy an unreadable line to a side file (named by its offset: doing it again after a
        crash writes the same file) before replay moves past it; SpoolError if that fails."""
        side = seg.path.with_name(f"{seg.path.name}.damaged-{pos}")
        where = f"spool {seg.path}: line {_line_number(seg.path, pos)} ({len(line)} bytes)"
        try:
            fd = os.open(side, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                _write_all(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)
            _fsync_dir(self.directory)
        except OSError as error:
            raise SpoolError(f"{where} is unreadable ({exc}) and could not be set aside in {side} "
                             f"({error.strerror or error}); replay waits for it") from error
        self.damaged_records += 1
        log.error("%s is unreadable (%s): set aside in %s; replaying the rest", where, exc, side)

    def commit(self, batch: SpoolBatch) -> None:
        """Record durably that ``batch`` is in the database; delete its segment once all of it is
        (the newest one too: the next append starts a new segment)."""
        with self._mutex:
            self._check_open()
            seg = self._segments.get(_seq(batch.segment))
            if seg is None or batch.end <= seg.committed:
                return  # committed before
            if batch.start > seg.committed or seg.seq != next(iter(self._segments)):
                raise SpoolError(f"spool {self.directory}: batch committed out of order "
                                 f"({batch.segment.name} at {batch.start})")
            rows = batch.rows + batch.damaged if batch.start == seg.committed else \
                _count_lines(seg.path, seg.committed, batch.end)
            if batch.end >= seg.end:
                self._discard(seg)
                return
            seg.committed = batch.end
            seg.rows -= rows
            try:
                self._save_offset(seg.seq, batch.end)
            except OSError as exc:
                # Disk full: the progress stays in memory for this run. A restart replays from
                # the last saved offset, which adds nothing (the rows have keys in the database).
                if self.progress_error is None:
                    log.warning("spool %s: cannot save replay progress (%s); a restart replays from "
                                "the last saved point, without duplicating rows", self.directory,
                                exc.strerror or exc)
                self.progress_error = exc.strerror or str(exc)
            else:
                self.progress_error = None

    # -- files ----------------------------------------------------------------------------

    def _load(self) -> None:
        """Learn what a previous run left: segments, how far each was committed, rows to replay."""
        seqs: list[int] = []
        sidecars: set[int] = set()
        for entry in self.directory.iterdir():
            if m := _SEGMENT.fullmatch(entry.name):
                seqs.append(int(m[1]))
            elif m := _SIDECAR.fullmatch(entry.name):
                sidecars.add(int(m[1]))
            elif entry.name.endswith(".offset.tmp"):
                entry.unlink()  # a sidecar write that never finished; the old sidecar stands
        self._next_seq = max([*seqs, *sidecars], default=0) + 1
        for seq in sidecars.difference(seqs):
            self._sidecar(seq).unlink()
        seqs.sort()
        for seq in seqs:
            seg = self._scan(seq, newest=seq == seqs[-1])
            self._segments[seq] = seg
            if seg.committed >= seg.end:
                self._discard(seg)

    def _scan(self, seq: int, *, newest: bool) -> _Segment:
        path = self._path(seq)
        with path.open("rb") as f:
            size = os.fstat(f.fileno()).st_size
            committed = self._load_offset(seq)
            if committed > size:
                log.warning("spool %s: committed offset %d is past its end (%d bytes)", path, committed, size)
                committed = size
            f.seek(committed)
            data = f.read()
        # Only the newest segment can end in a torn write; elsewhere a bad line is an error when read.
        whole = _whole_records(data, path) if newest else len(data)
        end = committed + whole
        return _Segment(seq, path, end, committed, data.count(b"\n", 0, whole), torn=end < size)

    def _load_offset(self, seq: int) -> int:
        path = self._sidecar(seq)
        try:
            text = path.read_text()
        except FileNotFoundError:
            return 0
        try:
            offset = int(text)
        except ValueError:
            offset = -1
        if offset < 0:
            raise SpoolError(f"spool sidecar {path} is unreadable: {text[:40]!r}")
        return offset

    def _save_offset(self, seq: int, offset: int) -> None:
        path = self._sidecar(seq)
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            _write_all(fd, f"{offset}\n".encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        _fsync_dir(self.directory)

    def _discard(self, seg: _Segment) -> None:
        if seg is self._newest():
            self._close_tail()
        seg.path.unlink(missing_ok=True)
        _fsync_dir(self.directory)  # gone for good before its sidecar goes, or it would replay in full
        self._sidecar(seg.seq).unlink(missing_ok=True)
        del self._segments[seg.seq]

    def _newest(self) -> _Segment | None:
        return self._segments[next(reversed(self._segments))] if self._segments else None

    def _close_tail(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _check_open(self) -> None:
        if self._lock_fd is None:
            raise SpoolError(f"spool {self.directory} is closed")

    def _path(self, seq: int) -> Path:
        return self.directory / f"{seq:012d}.spool"

    def _sidecar(self, seq: int) -> Path:
        return self.directory / f"{seq:012d}.offset"


def _lock(directory: Path) -> int:
    """Create ``directory`` if needed and lock it: two processes appending to and deleting the
    same segments would lose or duplicate rows. What the spool holds names the bank's devices
    and addresses: the directories it creates are 0700 and its files 0600, whatever the umask."""
    if not directory.is_dir():
        private_dirs(directory)
        _fsync_dir(directory.parent)
    fd = os.open(directory / "lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise SpoolError(f"spool {directory} is already in use by another wardtui process "
                         f"(pid {holder})") from None
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _whole_records(data: bytes, path: Path) -> int:
    """Length of ``data`` up to the end of its last whole record. A crash mid-write leaves a last
    line without its newline or, on some filesystems, with zeros or garbage in place of its bytes."""
    end = data.rfind(b"\n") + 1
    if end and end == len(data):
        start = data.rfind(b"\n", 0, end - 1) + 1
        try:
            json.loads(data[start:end])
        except ValueError:
            end = start
    if end < len(data):
        log.warning("spool %s: ignoring a torn last record (%d bytes), cut on the next append",
                    path, len(data) - end)
    return end


def _seq(path: Path) -> int:
    return int(path.stem)


def _line_number(path: Path, offset: int) -> int:
    with path.open("rb") as f:
        return f.read(offset).count(b"\n") + 1


def _count_lines(path: Path, start: int, end: int) -> int:
    with path.open("rb") as f:
        f.seek(start)
        return f.read(end - start).count(b"\n")


def _write_all(fd: int, data: Line) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
