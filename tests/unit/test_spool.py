"""Spool on real files: order across appends and segments, batches, commits across restarts, torn
writes, the size cap, draining, the directory lock and corrupted records."""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from poller.events import CheckResult, InterfaceStat, SnmpFailure, SnmpPoll, State, Transition
from store.spool import Spool, SpoolError

T0 = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)
Record = Transition | CheckResult


def check(i: int) -> CheckResult:
    rtt = None if i % 5 == 0 else 0.25 * i
    return CheckResult(f"d{i % 7}", f"10.0.0.{i % 250}", T0 + timedelta(seconds=i, microseconds=i),
                       2, 0 if rtt is None else 2, rtt, State.DOWN if rtt is None else State.UP)


def transition(i: int) -> Transition:
    down = i % 2 == 0
    return Transition(f"d{i}", "10.0.0.1", State.UP if down else State.DOWN,
                      State.DOWN if down else State.UP, T0 + timedelta(minutes=i),
                      T0 + timedelta(minutes=i, seconds=-3) if down else None, None if down else 1.5)


def segments(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.spool"))


def replay(spool: Spool, max_rows: int = 1, *, commit: bool = False) -> list[Record]:
    """Every uncommitted record; with ``max_rows=1`` in exactly the order appended."""
    out: list[Record] = []
    for batch in spool.batches(max_rows):
        out += [*batch.transitions, *batch.checks]
        if commit:
            spool.commit(batch)
    return out


def by_kind(records: list[Record]) -> tuple[list[Record], list[Record]]:
    """Transitions and checks apart: a batch holds them in two lists, each in spool order."""
    return ([r for r in records if isinstance(r, Transition)],
            [r for r in records if isinstance(r, CheckResult)])


def fill(spool: Spool, calls: int = 6, per_call: int = 5) -> list[Record]:
    """Append ``calls`` times a transition and ``per_call`` checks; the records in spool order."""
    expected: list[Record] = []
    for n in range(calls):
        ts = [transition(n)]
        cs = [check(n * per_call + i) for i in range(per_call)]
        assert spool.append(ts, cs) == 0
        expected += [*ts, *cs]
    return expected


def test_round_trip_keeps_order_across_appends_and_segments(tmp_path: Path) -> None:
    with Spool(tmp_path / "a" / "spool", segment_bytes=1000) as spool:
        expected = fill(spool)
        assert spool.rows == len(expected) == 36
        assert len(segments(spool.directory)) >= 3
        assert all(p.stat().st_size <= 1000 for p in segments(spool.directory))
        assert replay(spool) == expected
        assert replay(spool) == expected  # reading commits nothing


def test_snmp_polls_answered_in_part_and_failed_polls_come_back_as_they_went(tmp_path: Path) -> None:
    eth0 = InterfaceStat(1, "eth0", "", "up", "up", 10**9, 8.0, None, 0, 0, 0, 0, True)
    polls = [SnmpPoll("ups", "10.0.0.9", T0, "", "", "1.3.6.1.4.1.705.1", None, (),
                      ("sysUpTime", "interface table")),
             SnmpFailure("rtr", "10.0.0.8", T0, "error", "agent error genErr at var-bind 3"),
             SnmpPoll("rtr", "10.0.0.8", T0 + timedelta(seconds=1), "rtr", "IOS", "1.3.6.1.4.1.9", 12.5,
                      (eth0,))]
    with Spool(tmp_path) as spool:
        spool.append([], [], polls)
        batches = list(spool.batches(100))
    assert [p for b in batches for p in b.polls] == polls


def test_lines_are_compact_json_with_iso_times_and_state_values(tmp_path: Path) -> None:
    with Spool(tmp_path) as spool:
        spool.append([transition(0)], [check(0)])
        lines = segments(tmp_path)[0].read_text().splitlines()
    assert segments(tmp_path)[0].name == "000000000001.spool"
    assert lines[0].startswith('{"k":"t","device":"d0"')
    assert '"at":"2026-11-28T03:00:00+00:00"' in lines[0] and '"to_state":"down"' in lines[0]
    assert '"k":"c"' in lines[1] and '"rtt_ms":null' in lines[1] and " " not in lines[1]


def test_batches_respect_max_rows_and_never_span_segments(tmp_path: Path) -> None:
    with Spool(tmp_path, segment_bytes=1000) as spool:
        expected = fill(spool)
        per_segment = {p: len(p.read_bytes().splitlines()) for p in segments(tmp_path)}
        batches = list(spool.batches(max_rows=4))
    assert all(0 < b.rows <= 4 for b in batches)
    for path, lines in per_segment.items():
        assert sum(b.rows for b in batches if b.segment == path) == lines
        assert [b.rows for b in batches if b.segment == path][:-1] == [4] * ((lines - 1) // 4)
    ordered = [b.segment for b in batches]
    assert ordered == sorted(ordered)
    assert sum(b.rows for b in batches) == len(expected)


def test_commit_survives_a_restart_and_replay_resumes_after_it(tmp_path: Path) -> None:
    spool = Spool(tmp_path, segment_bytes=1000)
    expected = fill(spool)
    it = spool.batches(max_rows=4)
    done = 0
    for _ in range(3):
        batch = next(it)
        spool.commit(batch)
        done += batch.rows
    bytes_left = spool.bytes
    spool.close()

    with Spool(tmp_path, segment_bytes=1000) as spool:
        assert spool.rows == len(expected) - done
        assert spool.bytes == bytes_left
        assert replay(spool) == expected[done:]


def test_commit_of_a_partial_batch_then_a_longer_one_counts_rows_once(tmp_path: Path) -> None:
    with Spool(tmp_path) as spool:
        expected = fill(spool, calls=2)
        long = next(spool.batches(max_rows=8))
        spool.commit(next(spool.batches(max_rows=3)))
        spool.commit(long)
        spool.commit(long)  # again: nothing to do
        assert spool.rows == len(expected) - 8
        assert replay(spool) == expected[8:]


def test_commit_out_of_order_is_refused(tmp_path: Path) -> None:
    with Spool(tmp_path) as spool:
        fill(spool, calls=1)
        it = spool.batches(max_rows=2)
        next(it)
        with pytest.raises(SpoolError, match="out of order"):
            spool.commit(next(it))


def test_appending_while_replaying_delivers_the_new_rows_in_order(tmp_path: Path) -> None:
    with Spool(tmp_path, segment_bytes=1000) as spool:
        expected = fill(spool, calls=2)
        seen: list[Record] = []
        for n, batch in enumerate(spool.batches(max_rows=3)):
            seen += [*batch.transitions, *batch.checks]
            spool.commit(batch)
            if n < 4:
                spool.append([transition(100 + n)], [check(100 + n)])
                expected += [transition(100 + n), check(100 + n)]
        assert by_kind(seen) == by_kind(expected)
        assert spool.empty and spool.bytes == 0


def test_drained_spool_leaves_no_segment_files_and_starts_a_new_one(tmp_path: Path) -> None:
    with Spool(tmp_path, segment_bytes=1000) as spool:
        expected = fill(spool)
        used = segments(tmp_path)
        assert by_kind(replay(spool, max_rows=5, commit=True)) == by_kind(expected)
        assert (spool.rows, spool.bytes, spool.empty) == (0, 0, True)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["lock"]

        spool.append([], [check(1)])
        assert segments(tmp_path)[0].name > used[-1].name  # numbers are not reused
        assert replay(spool) == [check(1)]
    with Spool(tmp_path) as spool:
        assert spool.rows == 1


TORN: dict[str, tuple[Callable[[bytes], bytes], int]] = {  # how to tear, records left intact
    "cut mid-line": (lambda data: data[:-10], 2),
    "partial record": (lambda data: data + b'{"k":"c","dev', 3),
    "zeros": (lambda data: data + b"\0" * 300, 3),
    "garbage line": (lambda data: data + b"\0\0\0\n", 3),
}


@pytest.mark.parametrize(("tear", "left"), TORN.values(), ids=TORN.keys())
def test_torn_last_record_is_ignored_then_cut_away(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                   tear: Callable[[bytes], bytes], left: int) -> None:
    records = [check(i) for i in range(3)]
    with Spool(tmp_path) as spool:
        spool.append([], records)
    last = segments(tmp_path)[-1]
    last.write_bytes(tear(last.read_bytes()))
    intact = records[:left]

    with caplog.at_level(logging.WARNING, logger="store.spool"), Spool(tmp_path) as spool:
        assert "torn last record" in caplog.text
        assert spool.rows == len(intact)
        assert replay(spool) == intact
        spool.append([transition(9)], [])
        assert replay(spool) == [*intact, transition(9)]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="store.spool"), Spool(tmp_path) as spool:
        assert replay(spool) == [*intact, transition(9)]
        assert caplog.text == ""


def test_torn_newest_segment_is_cut_before_rolling_over(tmp_path: Path) -> None:
    with Spool(tmp_path, segment_bytes=200) as spool:
        spool.append([], [check(1)])
    last = segments(tmp_path)[-1]
    last.write_bytes(last.read_bytes() + b'{"k":"c"')
    with Spool(tmp_path, segment_bytes=120) as spool:  # full now: the next record goes to a new one
        spool.append([], [check(2)])
        assert len(segments(tmp_path)) == 2
    with Spool(tmp_path) as spool:
        assert replay(spool) == [check(1), check(2)]


def test_checks_past_the_cap_are_dropped_but_transitions_never(tmp_path: Path,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    with Spool(tmp_path, max_bytes=2000, segment_bytes=700) as spool:
        checks = [check(i) for i in range(40)]
        with caplog.at_level(logging.WARNING, logger="store.spool"):
            dropped = spool.append([transition(0)], checks)
        assert 0 < dropped < 40 and spool.dropped_checks == dropped
        assert "is full" in caplog.text
        kept = checks[: 40 - dropped]
        assert spool.bytes <= 2000

        transitions = [transition(i) for i in range(1, 30)]
        assert spool.append(transitions, [check(99)]) == 1
        assert spool.dropped_checks == dropped + 1
        assert spool.bytes > 2000
        assert replay(spool) == [transition(0), *kept, *transitions]

        replay(spool, max_rows=1000, commit=True)
        assert spool.append([], [check(100)]) == 0  # room again once drained
        assert spool.dropped_checks == dropped + 1


def test_a_second_spool_on_the_same_directory_is_refused(tmp_path: Path) -> None:
    first = Spool(tmp_path)
    with pytest.raises(SpoolError, match="already in use by another wardtui"):
        Spool(tmp_path)
    first.close()
    first.close()
    with Spool(tmp_path) as again:
        assert again.empty
    with pytest.raises(SpoolError, match="closed"):
        again.append([], [check(1)])


def test_a_corrupted_record_in_the_middle_is_set_aside_and_the_rest_replayed(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with Spool(tmp_path) as spool:
        expected = fill(spool, calls=1)
    path = segments(tmp_path)[0]
    lines = path.read_bytes().splitlines(keepends=True)
    lines[3] = b'{"k":"c","device":"d3",\n'
    path.write_bytes(b"".join(lines))
    with Spool(tmp_path) as spool, caplog.at_level(logging.ERROR):
        assert replay(spool, max_rows=2, commit=True) == expected[:3] + expected[4:]
        assert spool.damaged_records == 1 and spool.empty
    side = tmp_path / f"{path.name}.damaged-{sum(map(len, lines[:3]))}"
    assert side.read_bytes() == lines[3]
    assert f"{path.name}: line 4" in caplog.text and str(side) in caplog.text


def test_nul_bytes_in_the_middle_of_a_spool_cost_only_the_lines_they_hit(tmp_path: Path) -> None:
    """40 NUL bytes over a record boundary (as seen on a damaged disk): the two records they hit
    are set aside, every other one is replayed, before and after them, and the spool drains."""
    with Spool(tmp_path) as spool:
        expected = fill(spool, calls=20)
    path = segments(tmp_path)[0]
    data = bytearray(path.read_bytes())
    boundary = data.index(b"\n", len(data) // 2)
    data[boundary - 20: boundary + 20] = b"\0" * 40
    path.write_bytes(bytes(data))
    with Spool(tmp_path) as spool:
        got = replay(spool, max_rows=1, commit=True)
        assert spool.damaged_records == 1 and spool.empty  # one line: its newline was hit too
    assert len(got) == len(expected) - 2
    assert got == [r for r in expected if r in got]  # the rest, in order
    assert len(list(tmp_path.glob("*.damaged-*"))) == 1
    assert segments(tmp_path) == []


def test_an_append_that_fails_leaves_the_spool_as_it_was(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Disk full in the middle of an append (here in its second segment): none of its rows is
    in the spool, so the writer that keeps them in memory writes each once."""
    with Spool(tmp_path, segment_bytes=600) as spool:
        before = fill(spool, calls=1)
        real_write = os.write
        calls = {"n": 0}

        def full(fd: int, data: bytes | memoryview) -> int:
            calls["n"] += 1
            if calls["n"] == 3:
                raise OSError(errno.ENOSPC, "No space left on device")
            return real_write(fd, data)

        monkeypatch.setattr(os, "write", full)
        with pytest.raises(OSError, match="No space"):
            spool.append([transition(7)], [check(100 + i) for i in range(20)])
        monkeypatch.setattr(os, "write", real_write)
        assert spool.rows == len(before)
        assert replay(spool, max_rows=1) == before
        after = [transition(8), check(500)]
        spool.append([after[0]], [after[1]])  # the cut-off bytes are gone before it
    with Spool(tmp_path) as spool:
        assert replay(spool, max_rows=1) == before + after


def test_progress_that_cannot_be_saved_is_kept_for_the_run(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """No room for the offset sidecar: the replay goes on (the rows have keys in the database, so
    a restart that replays them again adds nothing); the next start replays from the last saved
    point."""
    with Spool(tmp_path) as spool:
        expected = fill(spool, calls=3)
        batches = spool.batches(max_rows=4)
        spool.commit(next(batches))

        def full(seq: int, offset: int) -> None:
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(spool, "_save_offset", full)
        spool.commit(next(batches))
        assert spool.progress_error == "No space left on device"
        assert spool.rows == len(expected) - 8
        assert replay(spool, max_rows=1) == expected[8:]
    with Spool(tmp_path) as spool:  # from the saved point: 4 rows in
        assert spool.rows == len(expected) - 4


def test_a_corrupted_sidecar_is_an_error(tmp_path: Path) -> None:
    with Spool(tmp_path) as spool:
        fill(spool, calls=1)
        spool.commit(next(spool.batches(max_rows=2)))
    (tmp_path / "000000000001.offset").write_text("twelve")
    with pytest.raises(SpoolError, match=r"000000000001\.offset"):
        Spool(tmp_path)
    (tmp_path / "000000000001.offset").write_text("0")
    with Spool(tmp_path) as spool:  # the failed one released its lock
        assert spool.rows == 6


def test_the_spool_is_private_whatever_the_umask(tmp_path: Path) -> None:
    """It names the bank's devices and addresses: directories 0700, files 0600 (they were 0755
    and 0644 under the usual umask)."""
    old = os.umask(0o022)
    try:
        with Spool(tmp_path / "new" / "spool") as spool:
            fill(spool, calls=2)
            spool.commit(next(spool.batches(max_rows=2)))
    finally:
        os.umask(old)
    modes = {p.relative_to(tmp_path).as_posix(): p.stat().st_mode & 0o777
             for p in (tmp_path / "new", *(tmp_path / "new").rglob("*"))}
    assert modes == {"new": 0o700, "new/spool": 0o700, "new/spool/lock": 0o600,
                     "new/spool/000000000001.spool": 0o600, "new/spool/000000000001.offset": 0o600}


def test_a_cluster_member_s_transition_comes_back_with_its_epoch_and_a_bad_epoch_is_set_aside(
        tmp_path: Path) -> None:
    """serve --cluster spools each transition with the (shard, epoch) it was observed under
    (store/fenced_history.py writes it under that epoch even in the next run); a line whose
    epoch is not [shard, epoch] is damaged, set aside like any other, the rest replayed."""
    from store.spool_records import FencedTransition

    at = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)
    fenced = FencedTransition("a", "127.0.0.1", State.UP, State.DOWN, at, at, None, (7, 42))
    plain = Transition("b", "127.0.0.2", State.UP, State.DOWN, at, at, None)
    with Spool(tmp_path) as spool:
        spool.append([fenced, plain], [])
    segment = segments(tmp_path)[0]
    lines = segment.read_bytes().splitlines(keepends=True)
    assert b'"epoch":[7,42]' in lines[0] and b"epoch" not in lines[1]
    segment.write_bytes(lines[0] + lines[0].replace(b"[7,42]", b'[7,"42"]') + lines[1])
    with Spool(tmp_path) as spool:
        (batch,) = spool.batches()
    assert batch.transitions == [fenced, plain] and batch.damaged == 1
    assert isinstance(batch.transitions[0], FencedTransition) and batch.transitions[0].epoch == (7, 42)
