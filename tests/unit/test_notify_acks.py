"""Acknowledgements as the notifier sees them (poller/notify/acks.py's AckSuppressions, what
``wardtui serve --notify`` gives it, over the maintenance windows): an acknowledged problem gets
no repeat, the devices behind it neither, its recovery is still sent and says who and why; the
acknowledgement ends with the problem, and a re-read that still shows it (the history's writer
behind the notifier) does not acknowledge the device's next outage; removal makes repeats
resume; the windows still silence."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from poller.inventory import Device
from poller.notify.acks import Ack, AckSuppressions
from poller.notify.grouper import Grouper
from poller.notify.windows import Window, WindowSuppressions, parse_matcher
from tests.unit.test_notify_grouper import T0, Clock, branch, fail, one, route, run_until

NOTE = "[bold]x[/] \x1b[31mred\x1b[0m\nISP <ticket> *4411*"


def make(quiet: AckSuppressions, repeat: float = 10.0) -> tuple[Grouper, Clock]:
    clock = Clock()
    return Grouper((route(repeat=repeat),), site="hq", suppressions=quiet, clock=clock, wall=clock.wall,
                   silence_recheck=1.0), clock


def ack(device: Device, since: datetime = T0, who: str = "alice", note: str = NOTE, ack_id: int = 1) -> Ack:
    return Ack(ack_id, device.name, since, note, who, since + timedelta(minutes=1))


def test_an_acknowledged_router_gets_no_repeats_nor_its_branch_and_its_recovery_says_who() -> None:
    quiet = AckSuppressions(WindowSuppressions())
    g, clock = make(quiet)
    rtr, kids = branch(n=3)
    fail(g, clock, rtr)
    for kid in kids:
        fail(g, clock, kid, "unreachable")
    assert len(one(run_until(g, clock, 1.0))) == 1
    assert len(one(run_until(g, clock, 12.0))) == 1  # not acknowledged yet: repeated
    assert quiet.replace_acks([ack(rtr)]) is True
    assert quiet.replace_acks([ack(rtr)]) is False  # the same read again: nothing to tell
    g.suppressions_changed()
    assert run_until(g, clock, 100.0) == []
    for d in (rtr, *kids):
        g.end(d.name, clock.wall())
    [note] = one(run_until(g, clock, 200.0))
    assert note.status == "resolved" and len(note.resolved) == 4
    item = next(a for a in note.resolved if a.device == rtr.name)
    assert (item.acked_by, item.ack_note) == ("alice", NOTE)
    assert item.to_dict()["ack_note"] == NOTE  # carried to the receivers as it was typed
    assert quiet.acked(rtr) is None and quiet.acks == ()


def test_a_repeat_due_for_another_problem_lists_the_acknowledged_one_as_such() -> None:
    quiet = AckSuppressions(WindowSuppressions())
    g, clock = make(quiet)
    a, _ = branch("north-b002", 0)
    b = Device("north-b002-sw", "127.9.3.1", "north-b002", "north", "switch")
    fail(g, clock, a)
    fail(g, clock, b)
    run_until(g, clock, 1.0)
    quiet.replace_acks([ack(a, who="bob", note="on it")])
    [repeat] = one(run_until(g, clock, 11.0))
    assert {(x.device, x.acked_by, x.ack_note) for x in repeat.firing} == {(a.name, "bob", "on it"),
                                                                         (b.name, None, None)}


def test_a_stale_read_after_the_recovery_does_not_acknowledge_the_next_outage() -> None:
    quiet = AckSuppressions(WindowSuppressions())
    g, clock = make(quiet)
    rtr, _ = branch(n=0)
    fail(g, clock, rtr)
    run_until(g, clock, 1.0)
    quiet.replace_acks([ack(rtr)])
    g.end(rtr.name, clock.wall())
    assert [n.status for n in one(run_until(g, clock, 10.0))] == ["resolved"]
    # The history has not stored the recovery yet: the 30 s read still shows the ack open.
    assert quiet.replace_acks([ack(rtr)]) is False and quiet.acked(rtr) is None
    fail(g, clock, rtr)  # a new outage: not acknowledged
    assert [n.status for n in one(run_until(g, clock, 16.0))] == ["firing"]
    assert len(one(run_until(g, clock, 27.0))) == 1  # and repeated
    # An acknowledgement of the new outage (another start) does count.
    quiet.replace_acks([ack(rtr), ack(rtr, since=T0 + timedelta(seconds=15), who="bob", ack_id=2)])
    assert quiet.acked(rtr) == ("bob", NOTE)
    assert run_until(g, clock, 100.0) == []


def test_removing_the_acknowledgement_makes_repeats_resume() -> None:
    quiet = AckSuppressions(WindowSuppressions())
    g, clock = make(quiet)
    rtr, _ = branch(n=0)
    fail(g, clock, rtr)
    run_until(g, clock, 1.0)
    quiet.replace_acks([ack(rtr)])
    assert run_until(g, clock, 50.0) == []
    removed = Ack(1, rtr.name, T0, NOTE, "alice", T0, cleared_at=T0 + timedelta(seconds=50),
                  cleared_why="removed by bob")
    assert quiet.replace_acks([removed]) is True and quiet.acked(rtr) is None
    repeats = one(run_until(g, clock, 51.0))  # the repeat check after it (every 10 s) sends again
    assert len(repeats) == 1 and repeats[0].firing[0].acked_by is None


def test_the_windows_still_silence_and_the_latest_of_two_acks_counts() -> None:
    now = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)
    window = Window(1, (parse_matcher("branch=north-b002"),), starts_at=now - timedelta(hours=1),
                    ends_at=now + timedelta(hours=1))
    quiet = AckSuppressions(WindowSuppressions([window]))
    rtr, _ = branch(n=0)
    other = Device("south-b001-rtr", "127.9.4.1", "south-b001", "south", "router")
    assert quiet.silenced(rtr, now) and not quiet.silenced(other, now)
    quiet.replace_acks([ack(rtr, who="late", ack_id=5), ack(rtr, who="early", ack_id=4)])
    assert quiet.acked(rtr) == ("late", NOTE) and quiet.acked(other) is None
