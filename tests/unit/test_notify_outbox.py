"""The outbox's pure parts: summaries, backoff, error cleaning, the memory outbox's order, the spool."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from poller.notify.delivery import Backoff, Delivery
from poller.notify.model import AlertItem, Notification
from poller.notify.outbox import MemoryOutbox, clean_error, summarise
from store.outbox_spool import OutboxSpool

T0 = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)


def item(device: str, since: datetime = T0, state: str = "down") -> AlertItem:
    return AlertItem(device=device, address="10.0.0.1", state=state, since=since)  # type: ignore[arg-type]


def msg(i: int, firing: tuple[str, ...] = (), resolved: tuple[AlertItem, ...] = (), receiver: str = "a",
        title: str | None = None, status: str = "firing") -> Notification:
    return Notification(key=f"k{i}", site="s", route="r", receiver=receiver, status=status,  # type: ignore[arg-type]
                        title=title or f"t{i}", group=(("branch", "b"),),
                        firing=tuple(item(d) for d in firing), resolved=resolved,
                        created=T0 + timedelta(seconds=i))


def test_a_summary_keeps_the_newest_firing_list_and_every_recovery_once() -> None:
    older = [msg(0, ("x",)), msg(1, ("x", "y")), msg(2, ("y",), (item("x", state="up"),)),
             msg(3, ("x",), (item("y", state="up"), item("x", T0 - timedelta(days=1), "up")))]
    newest = msg(4, ("z",), (item("x", state="up"),))
    summary = summarise(older, newest)
    assert summary.key == "k4" and summary.firing == newest.firing
    assert [(a.device, a.since) for a in summary.resolved] == [
        ("x", T0), ("y", T0), ("x", T0 - timedelta(days=1))]
    assert summary.title == "t4 (summary of 5 messages)"
    again = summarise([summary], msg(5, ("z",), title="t5"))
    assert again.title == "t5 (summary of 6 messages)"


def test_backoff_doubles_to_its_cap_and_retry_after_replaces_it_up_to_an_hour() -> None:
    b = Backoff()
    assert [b.delay(n, None, lambda: 0.0) for n in (1, 2, 3, 9, 10, 50)] == [1, 2, 4, 256, 300, 300]
    assert b.delay(3, None, lambda: 1.0) == pytest.approx(3.2)  # a fifth less at most
    assert b.delay(3, 7.5, lambda: 1.0) == 7.5
    assert b.delay(1, 1e9, lambda: 0.0) == 3600


def test_error_text_is_cleaned_and_bounded() -> None:
    cleaned = clean_error("\x1b]0;pwned\x07line1\nline2\r\u202e" + "x" * 1000)
    assert cleaned.startswith("\ufffd]0;pwned\ufffdline1\ufffdline2\ufffd\ufffdxxx")
    assert len(cleaned) == 300 and cleaned.endswith("\u2026")
    assert clean_error("<b>*_~</b> [bold]x[/]") == "<b>*_~</b> [bold]x[/]"  # markup is data, kept


async def test_a_receivers_head_is_never_passed_and_receivers_are_apart() -> None:
    outbox = MemoryOutbox()
    await outbox.put([msg(0), msg(1), msg(2, receiver="b"), msg(3)])
    await outbox.mark_retry("k0", 1, T0 + timedelta(seconds=10), "down")
    assert await outbox.due("a", T0, 10) == []
    assert [p.key for p in await outbox.due("b", T0, 10)] == ["k2"]
    assert [p.key for p in await outbox.due("a", T0 + timedelta(seconds=10), 10)] == ["k0", "k1", "k3"]
    await outbox.mark_sent("k0", T0)
    assert [p.key for p in await outbox.due("a", T0, 1)] == ["k1"]
    await outbox.put([msg(0)])  # held once already: not again
    assert outbox.stats().queued == 3 and outbox.stats().sent == 1


async def test_messages_of_a_receiver_no_longer_configured_are_marked_failed_at_start() -> None:
    outbox = MemoryOutbox()
    await outbox.put([msg(0, receiver="gone"), msg(1, receiver="gone")])
    delivery = Delivery(outbox, {})
    await delivery.start()
    await delivery.stop()
    assert outbox.stats().failed == 2 and outbox.receivers() == set()


def test_the_spool_ignores_a_torn_last_record_and_appends_after_it(tmp_path: Path) -> None:
    spool = OutboxSpool(tmp_path / "s")
    spool.append([{"k": "s", "key": "a"}, {"k": "s", "key": "b"}])
    spool.close()
    (segment,) = (tmp_path / "s").glob("*.outbox")
    with segment.open("ab") as f:
        f.write(b'{"k":"s","ke')
    spool = OutboxSpool(tmp_path / "s")
    assert spool.rows == 2
    spool.append([{"k": "s", "key": "c"}])
    lines = segment.read_bytes().splitlines()
    assert [json.loads(line)["key"] for line in lines] == ["a", "b", "c"]
    seq, records = spool.oldest()  # type: ignore[misc]
    assert [r["key"] for r in records] == ["a", "b", "c"]
    spool.append([{"k": "s", "key": "d"}])  # sealed: goes to a new segment
    spool.discard(seq)
    assert [r["key"] for r in spool.oldest()[1]] == ["d"]  # type: ignore[index]
    assert segment.exists() is False
    spool.close()


def test_an_unreadable_record_in_an_older_segment_is_set_aside(tmp_path: Path) -> None:
    spool = OutboxSpool(tmp_path / "s", segment_bytes=40)
    spool.append([{"k": "s", "key": "a" * 20}])
    spool.append([{"k": "s", "key": "b" * 20}])
    spool.close()
    first = sorted((tmp_path / "s").glob("*.outbox"))[0]
    first.write_bytes(b"not json\n" + first.read_bytes())
    spool = OutboxSpool(tmp_path / "s")
    _seq, records = spool.oldest()  # type: ignore[misc]
    assert [r["key"] for r in records] == ["a" * 20]
    assert spool.damaged_records == 1 and list((tmp_path / "s").glob("*.damaged-0"))
    spool.close()


def test_the_spool_directory_is_one_process_s(tmp_path: Path) -> None:
    spool = OutboxSpool(tmp_path / "s")
    with pytest.raises(Exception, match="in use"):
        OutboxSpool(tmp_path / "s")
    spool.close()
    assert oct((tmp_path / "s").stat().st_mode & 0o777) == "0o700"
