"""poller/quiet.py: the quiet state's questions (who is acknowledged, who is in maintenance, when
that changes) and its JSON, which comes from Redis and is read as untrusted input."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from poller.inventory import Device
from poller.jsonl import event_record
from poller.live import decode_event, encode_event
from poller.notify.acks import Ack
from poller.notify.model import Matcher
from poller.notify.windows import Window
from poller.quiet import MAX_ITEMS, MAX_TEXT, Quiet, QuietChanged, QuietFormatError, quiet_from_json, quiet_of

T0 = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)
ATM = Device("b2-atm", "127.0.0.2", "b2", "north", "atm", tags=("pci",))
RTR = Device("b1-rtr", "127.0.0.1", "b1", "north", "router")
HOSTILE = "[bold]x[/] \x1b[31m\u202e\n"


def window(wid: int = 1, *matchers: str, start: datetime = T0, hours: float = 1.0, **more: object) -> Window:
    parsed = tuple(Matcher(*m.split("=", 1)[:1], "=", m.split("=", 1)[1]) for m in matchers or ("branch=b2",))
    return Window(id=wid, matchers=parsed, starts_at=start, ends_at=start + timedelta(hours=hours),
                  note=HOSTILE, created_by="alice", created_at=T0, **more)  # type: ignore[arg-type]


def ack(aid: int = 1, device: str = "b2-atm", down_since: datetime = T0, at: datetime = T0,
        **more: object) -> Ack:
    return Ack(id=aid, device=device, down_since=down_since, note=HOSTILE, who="bob", at=at,
               **more)  # type: ignore[arg-type]


def test_an_ack_holds_for_its_own_outage_only() -> None:
    quiet = Quiet(acks=(ack(),))
    assert quiet.ack_of("b2-atm") == ack()
    assert quiet.ack_of("b2-atm", T0) == ack()
    assert quiet.ack_of("b2-atm", T0 + timedelta(minutes=5)) is None  # failed again since: not acked
    assert quiet.ack_of("b1-rtr") is None


def test_the_latest_ack_of_a_device_speaks_and_closed_ones_do_not() -> None:
    later = ack(2, at=T0 + timedelta(minutes=1))
    assert Quiet(acks=(later, ack(1))).ack_of("b2-atm") == later
    assert Quiet(acks=(ack(cleared_at=T0),)).ack_of("b2-atm") is None
    assert quiet_of((), [ack(recovered_at=T0)], T0).acks == ()  # only those in force are kept


def test_maintenance_by_matchers_and_time() -> None:
    quiet = Quiet(windows=(window(1, "branch=b2"), window(2, "tag=pci", start=T0 + timedelta(hours=2))))
    assert quiet.in_maintenance(ATM, T0 + timedelta(minutes=30))
    assert not quiet.in_maintenance(RTR, T0 + timedelta(minutes=30))
    assert not quiet.in_maintenance(ATM, T0 + timedelta(minutes=90))  # between the two
    assert [w.id for w in quiet.windows_of(ATM, T0 + timedelta(hours=2, minutes=1))] == [2]
    assert quiet.next_change(T0 + timedelta(minutes=1)) == T0 + timedelta(hours=1)
    assert quiet.next_change(T0 + timedelta(hours=1, minutes=1)) == T0 + timedelta(hours=2)
    assert Quiet().next_change(T0) is None


def test_a_recurring_window_is_answered_on_its_local_clock() -> None:
    nightly = Window(id=3, matchers=(Matcher("device", "=", "b1-rtr"),), cron="0 2 * * *", duration_s=3600,
                     tz="Europe/Paris", note="backups")
    quiet = Quiet(windows=(nightly,))
    assert quiet.in_maintenance(RTR, datetime(2026, 12, 6, 1, 30, tzinfo=UTC))  # 02:30 in Paris
    assert not quiet.in_maintenance(RTR, datetime(2026, 12, 6, 2, 30, tzinfo=UTC))
    # summer time: 02:00 in Paris is 00:00 UTC
    assert quiet.in_maintenance(RTR, datetime(2026, 7, 6, 0, 30, tzinfo=UTC))


def test_equality_ignores_when_it_was_read() -> None:
    a = quiet_of([window()], [ack()], T0)
    b = quiet_of([window()], [ack()], T0 + timedelta(seconds=30))
    assert a == b and a.read_at != b.read_at
    assert a != quiet_of([window(2)], [ack()], T0)
    assert not Quiet() and Quiet(acks=(ack(),))


def test_json_round_trip_keeps_every_field_and_the_text_as_typed() -> None:
    nightly = Window(id=3, matchers=(Matcher("tag", "=", HOSTILE),), cron="30 2 * * 0", duration_s=5400.0,
                     tz="Europe/Paris", note=HOSTILE, created_by="c", created_at=T0)
    quiet = quiet_of([window(1, "device=b2-atm", "region=north"), nightly], [ack(), ack(2, "b1-rtr")], T0)
    back = quiet_from_json(quiet.to_json())
    assert back == quiet and back.read_at == T0
    assert back.windows[1].matchers[0].value == HOSTILE and back.acks[0].note == HOSTILE
    assert back.ack_of("b1-rtr") is not None


def test_the_event_travels_on_the_stream_and_prints_as_json_lines() -> None:
    event = QuietChanged(quiet_of([window()], [ack()], T0), by="carol")
    back = decode_event(encode_event(event))
    assert isinstance(back, QuietChanged)
    assert back.quiet == event.quiet and back.by == "carol"
    record = event_record(event)  # type: ignore[arg-type]
    assert record is not None and record["type"] == "quiet" and record["by"] == "carol"
    assert record["acks"][0]["down_since"] == T0.isoformat()
    assert record["windows"][0]["ends_at"] == (T0 + timedelta(hours=1)).isoformat()
    assert json.loads(json.dumps(record))["windows"][0]["note"] == HOSTILE


W = '"note": "", "created_by": ""'
ONE_OFF = '"starts_at": 1, "ends_at": 2'
CRON = '"cron": "0 * * * *", "duration_s": 60'


@pytest.mark.parametrize("doc", [
    "[]", "{", '"x"', '{"windows": {}}', '{"acks": [1]}',
    f'{{"windows": [{{"id": "1", "matchers": ["branch=b"], {ONE_OFF}, {W}}}]}}',
    f'{{"windows": [{{"id": 1, "matchers": ["colour=red"], {ONE_OFF}, {W}}}]}}',
    f'{{"windows": [{{"id": 1, "matchers": [7], {ONE_OFF}, {W}}}]}}',
    f'{{"windows": [{{"id": 1, "matchers": ["branch=b"], "starts_at": 2, "ends_at": 1, {W}}}]}}',
    f'{{"windows": [{{"id": 1, "matchers": ["branch=b"], "cron": "61 * * * *", "duration_s": 60, '
    f'"tz": "UTC", {W}}}]}}',
    f'{{"windows": [{{"id": 1, "matchers": ["branch=b"], {CRON}, "tz": "../etc/x", {W}}}]}}',
    f'{{"windows": [{{"id": 1, "matchers": ["branch=b"], "cron": "0 * * * *", "duration_s": NaN, '
    f'"tz": "UTC", {W}}}]}}',
    '{"acks": [{"id": 1, "device": "d", "down_since": 1e300, "note": "", "who": "", "at": 1}]}',
    '{"acks": [{"id": 1, "device": "d", "down_since": true, "note": "", "who": "", "at": 1}]}',
    '{"acks": [{"id": 1, "device": 5, "down_since": 1, "note": "", "who": "", "at": 1}]}',
    '{"read_at": "now"}',
    "[" * 100_000 + "]" * 100_000,
])
def test_what_is_not_a_quiet_state_is_refused_with_a_reason(doc: str) -> None:
    with pytest.raises(QuietFormatError):
        quiet_from_json(doc)


def test_a_forged_state_of_too_many_entries_is_refused_before_it_is_decoded() -> None:
    entry = {"id": 1, "device": "d", "down_since": 1, "note": "", "who": "", "at": 1}
    with pytest.raises(QuietFormatError, match="more than"):
        quiet_from_json(json.dumps({"acks": [entry] * (MAX_ITEMS + 1)}))


def test_long_text_is_cut_not_refused() -> None:
    doc = json.loads(quiet_of([], [ack()], T0).to_json())
    doc["acks"][0]["note"] = "n" * (MAX_TEXT * 10)
    assert len(quiet_from_json(doc).acks[0].note) == MAX_TEXT
    with pytest.raises(ValueError):  # through the stream: a damaged event, not a crash
        decode_event(json.dumps({"t": "QuietChanged", "q": "nope"}))
