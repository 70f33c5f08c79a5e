"""The grouper's timing and content, on an injected clock: group_wait, group_interval, repeats,
recoveries (always for what was notified, never for what was not), one problem across DOWN <->
UNREACHABLE, routes with ``continue``, silences, acknowledgements and a restart."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from poller.events import State, Transition
from poller.inventory import Device
from poller.notify.grouper import Grouper
from poller.notify.model import Matcher, Notification, Route
from poller.notify.suppressions import MemorySuppressions

T0 = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)


class Clock:
    """Monotonic seconds from 0 and the wall clock they stand for."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t

    def wall(self) -> datetime:
        return T0 + timedelta(seconds=self.t)


def route(name: str = "noc", *matchers: Matcher, receivers: tuple[str, ...] = ("ops", "mail"),
          wait: float = 0.5, interval: float = 5.0, repeat: float = 100.0, cont: bool = False,
          group_by: tuple[str, ...] = ("branch",)) -> Route:
    return Route(name, receivers, matchers, group_by=group_by, group_wait=wait, group_interval=interval,
                 repeat_interval=repeat, continue_=cont)


def branch(b: str = "north-b002", n: int = 40) -> tuple[Device, list[Device]]:
    rtr = Device(f"{b}-rtr", "127.9.0.1", b, "north", "router")
    kids = [Device(f"{b}-d{i:02d}", f"127.9.1.{i + 1}", b, "north", "atm", parents=(rtr.name,))
            for i in range(n)]
    return rtr, kids


def make(*routes: Route, suppressions: MemorySuppressions | None = None) -> tuple[Grouper, Clock]:
    clock = Clock()
    return Grouper(routes or (route(),), site="hq", suppressions=suppressions, clock=clock,
                   wall=clock.wall, silence_recheck=1.0), clock


def run_until(g: Grouper, clock: Clock, t: float) -> list[Notification]:
    """Every message due up to ``t``, at the time each is due."""
    out: list[Notification] = []
    while (at := g.next_due()) is not None and at <= t:
        clock.t = at
        out += g.due()
    clock.t = t
    return out


def one(notes: list[Notification], receiver: str = "ops") -> list[Notification]:
    return [n for n in notes if n.receiver == receiver]


def fail(g: Grouper, clock: Clock, device: Device, state: str = "down") -> None:
    g.begin(device, "down" if state == "down" else "unreachable", clock.wall())


def test_a_router_and_its_children_in_any_order_make_one_message_per_receiver() -> None:
    g, clock = make()
    rtr, kids = branch()
    for kid in kids[:20]:
        fail(g, clock, kid, "unreachable")
    clock.t = 0.1
    fail(g, clock, rtr)
    clock.t = 0.2
    for kid in kids[20:]:
        fail(g, clock, kid, "unreachable")
    assert g.next_due() == 0.5  # group_wait from the group's first problem
    assert g.due(0.49) == []
    notes = run_until(g, clock, 0.5)
    assert sorted(n.receiver for n in notes) == ["mail", "ops"]
    assert len({n.key for n in notes}) == 2 and all(n.key.startswith("hq:noc:") for n in notes)
    note = one(notes)[0]
    assert note.title == "north-b002-rtr DOWN, 40 devices unreachable behind it"
    assert note.status == "firing" and note.group == (("branch", "north-b002"),)
    assert [a.device for a in note.firing][:2] == ["north-b002-rtr", "north-b002-d00"]
    assert {a.state for a in note.firing[1:]} == {"unreachable"} and note.resolved == ()
    assert note.created == T0 + timedelta(seconds=0.5)


def test_later_changes_wait_group_interval_and_group_wait_and_go_together() -> None:
    g, clock = make()
    rtr, kids = branch(n=2)
    fail(g, clock, rtr)
    assert len(one(run_until(g, clock, 0.5))) == 1
    clock.t = 1.0
    fail(g, clock, kids[0])  # a change 0.5 s after the first message: not before 0.5 + 5
    assert g.next_due() == 5.5
    clock.t = 5.3
    fail(g, clock, kids[1])
    notes = one(run_until(g, clock, 10.0))
    assert len(notes) == 1 and notes[0].title == "3 devices DOWN in north-b002"
    # Due at 5.5; the last change 0.2 s before: it settles for 0.25 s (settle, at most half
    # of group_wait) after it.
    assert notes[0].created == T0 + timedelta(seconds=5.55)
    # Long after: a change waits group_wait (not sent at once) so what follows it within
    # milliseconds goes with it.
    clock.t = 50.0
    g.end(rtr.name, clock.wall())
    clock.t = 50.01
    g.end(kids[0].name, clock.wall())
    notes = one(run_until(g, clock, 60.0))
    assert len(notes) == 1 and notes[0].created == T0 + timedelta(seconds=50.5)
    assert [a.device for a in notes[0].resolved] == ["north-b002-d00", "north-b002-rtr"]
    assert notes[0].title == "north-b002-d01 DOWN; 2 devices UP again in north-b002"


def test_a_group_still_changing_when_due_waits_to_settle_at_most_max_hold() -> None:
    g, clock = make()
    _, kids = branch(n=40)
    for i, kid in enumerate(kids[:8]):  # a verdict every 0.1 s until 0.7: settles at 0.95
        clock.t = i * 0.1
        fail(g, clock, kid)
    notes = one(run_until(g, clock, 5.0))
    assert [(n.created - T0, len(n.firing)) for n in notes] == [(timedelta(seconds=0.95), 8)]
    g2, clock2 = make()
    sent: list[Notification] = []
    for i, kid in enumerate(kids):  # a verdict every 0.1 s for 4 s: sent at 0.5 + max_hold
        sent += one(run_until(g2, clock2, i * 0.1))
        fail(g2, clock2, kid)
    assert [(n.created - T0, len(n.firing)) for n in sent] == [(timedelta(seconds=1.5), 15)]


def test_open_problems_are_repeated_every_repeat_interval_until_they_end() -> None:
    g, clock = make(route(repeat=30.0))
    rtr, _ = branch()
    fail(g, clock, rtr)
    first = one(run_until(g, clock, 0.5))
    repeats = one(run_until(g, clock, 95.0))
    assert [n.created - first[0].created for n in repeats] == [timedelta(seconds=s) for s in (30, 60, 90)]
    assert {n.title for n in repeats} == {"north-b002-rtr DOWN"} and len({n.key for n in repeats}) == 3
    g.end(rtr.name, clock.wall())
    end = one(run_until(g, clock, 200.0))
    assert [(n.status, n.title) for n in end] == [("resolved", "north-b002-rtr UP again")]
    assert end[0].resolved[0].ended == T0 + timedelta(seconds=95) and end[0].resolved[0].state == "up"
    assert g.next_due() is None and not g.groups and not g.problems


def test_a_recovery_names_the_router_and_counts_the_devices_behind_it() -> None:
    g, clock = make()
    rtr, kids = branch()
    fail(g, clock, rtr)
    for kid in kids:
        fail(g, clock, kid, "unreachable")
    run_until(g, clock, 0.5)
    clock.t = 20.0
    for d in (rtr, *kids):
        g.end(d.name, clock.wall())
    notes = one(run_until(g, clock, 100.0))
    assert [(n.status, n.title, len(n.resolved), n.firing) for n in notes] == [
        ("resolved", "north-b002-rtr UP again, 40 devices reachable", 41, ())]


def test_a_problem_never_notified_sends_nothing_when_it_ends() -> None:
    g, clock = make()
    rtr, kids = branch(n=1)
    fail(g, clock, rtr)
    clock.t = 0.3
    g.end(rtr.name, clock.wall())  # inside group_wait
    assert run_until(g, clock, 100.0) == [] and not g.groups and not g.problems
    # Between two messages: begins and ends before the next one could go.
    fail(g, clock, rtr)
    assert len(one(run_until(g, clock, 100.5))) == 1
    clock.t = 101.0
    fail(g, clock, kids[0], "unreachable")
    clock.t = 102.0
    g.end(kids[0].name, clock.wall())
    assert run_until(g, clock, 150.0) == []


def test_down_unreachable_down_is_one_problem_with_one_since() -> None:
    g, clock = make()
    _, kids = branch(n=1)
    since = clock.wall()
    fail(g, clock, kids[0])
    first = one(run_until(g, clock, 0.5))
    assert first[0].firing[0].state == "down"
    g.begin(kids[0], "unreachable", clock.wall())
    g.begin(kids[0], "down", clock.wall())  # back as it was: nothing new to say
    assert run_until(g, clock, 90.0) == []
    g.begin(kids[0], "unreachable", clock.wall())  # this one stays
    notes = one(run_until(g, clock, 99.0))
    assert len(notes) == 1 and notes[0].firing[0].state == "unreachable"
    assert notes[0].firing[0].since == since and notes[0].title == "north-b002-d00 unreachable"
    g.end(kids[0].name, clock.wall())
    end = one(run_until(g, clock, 200.0))
    assert [n.title for n in end] == ["north-b002-d00 reachable again"]


def test_transitions_feed_problems_and_unknown_to_up_is_nothing() -> None:
    g, clock = make()
    rtr, _ = branch(n=0)
    at = clock.wall()
    g.feed(Transition(rtr.name, rtr.address, State.UNKNOWN, State.UP, at, None, 1.0), rtr)
    assert not g.problems and g.next_due() is None
    g.feed(Transition(rtr.name, rtr.address, State.UP, State.DOWN, at, at - timedelta(seconds=3), None), rtr)
    g.feed(Transition(rtr.name, rtr.address, State.DOWN, State.UNREACHABLE, at, at - timedelta(seconds=3),
                      None), None)  # the device left the inventory meanwhile: the problem's own
    note = one(run_until(g, clock, 1.0))[0]
    assert note.firing[0].since == at - timedelta(seconds=3) and note.firing[0].state == "unreachable"
    g.feed(Transition(rtr.name, rtr.address, State.UNREACHABLE, State.UP, at, None, 1.0), rtr)
    assert one(run_until(g, clock, 10.0))[0].status == "resolved"


def test_first_matching_route_and_later_ones_only_through_continue() -> None:
    routers = route("routers", Matcher("type", "=", "router"), receivers=("pager",), cont=True)
    everything = route("all", receivers=("ops",))
    never = route("never", receivers=("nobody",))
    g, clock = make(routers, everything, never)
    rtr, kids = branch(n=1)
    fail(g, clock, rtr)
    fail(g, clock, kids[0])
    notes = run_until(g, clock, 1.0)
    assert sorted((n.route, n.receiver, len(n.firing)) for n in notes) == [
        ("all", "ops", 2), ("routers", "pager", 1)]


def test_a_state_change_brings_a_problem_into_a_route_for_that_state() -> None:
    down_only = route("down", Matcher("state", "=", "down"), receivers=("pager",), cont=True)
    g, clock = make(down_only, route("all", receivers=("ops",)))
    _, kids = branch(n=1)
    fail(g, clock, kids[0], "unreachable")
    assert [n.route for n in run_until(g, clock, 1.0)] == ["all"]
    g.begin(kids[0], "down", clock.wall())  # its parent came back, it did not
    notes = run_until(g, clock, 10.0)
    assert sorted((n.route, n.firing[0].state) for n in notes) == [("all", "down"), ("down", "down")]


def test_group_by_none_and_several_labels_and_the_titles_place() -> None:
    g, clock = make(route(group_by=()), route("r2", group_by=("region", "branch")))
    a, _ = branch("north-b001", 0)
    b, _ = branch("north-b002", 0)
    fail(g, clock, a)
    fail(g, clock, b)
    notes = one(run_until(g, clock, 1.0))
    assert [(n.group, n.title) for n in notes] == [((), "2 devices DOWN")]


def test_one_group_per_branch_in_a_storm() -> None:
    g, clock = make()
    for b in range(250):
        rtr, kids = branch(f"b{b:03d}", 39)
        fail(g, clock, rtr)
        for kid in kids:
            fail(g, clock, kid, "unreachable")
    notes = one(run_until(g, clock, 1.0))
    assert len(notes) == 250 and g.messages == 250
    assert {n.title.split(" ", 1)[1] for n in notes} == {"DOWN, 39 devices unreachable behind it"}


# -- suppressions --------------------------------------------------------------------------------

def test_a_silence_over_100_flapping_devices_sends_nothing_then_one_message_for_those_still_down() -> None:
    quiet = MemorySuppressions()
    g, clock = make(suppressions=quiet)
    _, kids = branch("north-b009", 100)
    quiet.silence((Matcher("branch", "=", "north-b009"),), T0, T0 + timedelta(seconds=60), "works")
    for flap in range(5):
        for kid in kids:
            clock.t = flap * 10.0
            fail(g, clock, kid)
        assert run_until(g, clock, flap * 10.0 + 5) == []
        for kid in kids[10:] if flap == 4 else kids:
            g.end(kid.name, clock.wall())
    assert run_until(g, clock, 59.9) == []
    notes = one(run_until(g, clock, 100.0))  # the window ends at 60: noticed within 1 s
    assert len(notes) == 1 and len(notes[0].firing) == 10
    assert notes[0].title == "10 devices DOWN in north-b009"
    assert 60.5 <= (notes[0].created - T0).total_seconds() <= 61.5
    for kid in kids[:10]:
        g.end(kid.name, clock.wall())
    assert [n.status for n in one(run_until(g, clock, 200.0))] == ["resolved"]


def test_a_problem_notified_before_a_silence_still_gets_its_recovery_but_no_repeat() -> None:
    quiet = MemorySuppressions()
    g, clock = make(route(repeat=20.0), suppressions=quiet)
    rtr, _ = branch(n=0)
    fail(g, clock, rtr)
    assert len(one(run_until(g, clock, 1.0))) == 1
    quiet.silence((Matcher("device", "=", rtr.name),), T0 + timedelta(seconds=2), T0 + timedelta(hours=1))
    assert run_until(g, clock, 50.0) == []  # repeats at 20.5, 40.5: silenced
    g.end(rtr.name, clock.wall())
    notes = one(run_until(g, clock, 100.0))
    assert [(n.status, n.title) for n in notes] == [("resolved", "north-b002-rtr UP again")]


def test_a_problem_open_when_its_window_ends_is_notified_once_again() -> None:
    quiet = MemorySuppressions()
    g, clock = make(route(repeat=1000.0), suppressions=quiet)
    rtr, _ = branch(n=0)
    fail(g, clock, rtr)
    assert len(one(run_until(g, clock, 1.0))) == 1
    clock.t = 2.0
    quiet.silence((Matcher("device", "=", rtr.name),), T0 + timedelta(seconds=2), T0 + timedelta(seconds=30))
    g.suppressions_changed()  # what the command path that added the window says
    assert run_until(g, clock, 29.0) == []
    notes = one(run_until(g, clock, 100.0))
    assert [n.title for n in notes] == ["north-b002-rtr DOWN"]
    assert 30 < (notes[0].created - T0).total_seconds() < 32


def test_an_acknowledged_problem_gets_no_repeats_and_its_recovery_says_who() -> None:
    quiet = MemorySuppressions()
    g, clock = make(route(repeat=10.0), suppressions=quiet)
    rtr, kids = branch(n=3)
    fail(g, clock, rtr)
    for kid in kids:
        fail(g, clock, kid, "unreachable")
    assert len(one(run_until(g, clock, 1.0))) == 1
    quiet.ack(rtr.name, "alice", "ISP ticket 4411")
    # The devices behind an acknowledged router are not repeated either.
    assert run_until(g, clock, 100.0) == []
    for d in (rtr, *kids):
        g.end(d.name, clock.wall())
    notes = one(run_until(g, clock, 200.0))
    assert [n.status for n in notes] == ["resolved"]
    rtr_item = next(a for a in notes[0].resolved if a.device == rtr.name)
    assert (rtr_item.acked_by, rtr_item.ack_note) == ("alice", "ISP ticket 4411")
    assert quiet.acked(rtr) is None  # the acknowledgement ended with the problem


def test_an_unacknowledged_device_beside_an_acknowledged_one_is_repeated_with_both() -> None:
    quiet = MemorySuppressions()
    g, clock = make(route(repeat=10.0), suppressions=quiet)
    a, _ = branch("north-b002", 0)
    b = Device("north-b002-sw", "127.9.3.1", "north-b002", "north", "switch")
    fail(g, clock, a)
    fail(g, clock, b)
    run_until(g, clock, 1.0)
    quiet.ack(a.name, "bob")
    repeats = one(run_until(g, clock, 11.0))
    assert len(repeats) == 1
    assert {(x.device, x.acked_by) for x in repeats[0].firing} == {(a.name, "bob"), (b.name, None)}


# -- restart -------------------------------------------------------------------------------------

def test_restore_sends_the_recovery_of_what_was_notified_before_a_restart() -> None:
    g, clock = make(route(repeat=3600.0))
    rtr, kids = branch(n=2)
    fail(g, clock, rtr)
    for kid in kids:
        fail(g, clock, kid, "unreachable")
    latest = run_until(g, clock, 1.0)
    stored = [Notification.from_dict(n.to_dict()) for n in latest]  # as the outbox keeps them

    again, clock2 = make(route(repeat=3600.0))
    clock2.t = 600.0  # ten minutes later
    again.restore(stored, {rtr.name: rtr}.get)
    assert set(again.problems) == {rtr.name, *(k.name for k in kids)}
    assert again.next_due() == 3600.0 + 0.5  # the repeat keeps its time
    for d in (rtr, *kids):
        again.end(d.name, clock2.wall())
    notes = one(run_until(again, clock2, 700.0))
    assert [(n.status, n.title) for n in notes] == [
        ("resolved", "north-b002-rtr UP again, 2 devices reachable")]
    assert notes[0].resolved[0].address == kids[0].address  # rebuilt from the stored item


def test_restore_skips_a_route_that_is_gone_and_a_resolved_message() -> None:
    g, clock = make(route("gone"))
    rtr, _ = branch(n=0)
    fail(g, clock, rtr)
    stored = run_until(g, clock, 1.0)
    again, _ = make(route("other"))
    again.restore(stored)
    assert not again.problems and again.next_due() is None


def test_devices_behind_an_unreachable_router_are_behind_the_core_that_is_down() -> None:
    g, clock = make()
    core = Device("core-rtr", "127.9.9.1", "core", "north", "router")
    rtr = Device("north-b002-rtr", "127.9.0.1", "north-b002", "north", "router", parents=(core.name,))
    kids = [Device(f"north-b002-d{i}", f"127.9.1.{i + 1}", "north-b002", "north", "atm",
                   parents=(rtr.name,)) for i in range(3)]
    fail(g, clock, core)
    for d in (rtr, *kids):
        fail(g, clock, d, "unreachable")
    titles = sorted(n.title for n in one(run_until(g, clock, 1.0)))
    assert titles == ["4 devices unreachable in north-b002 behind core-rtr", "core-rtr DOWN"]


def test_hostile_names_stay_data_and_a_title_stays_one_line() -> None:
    g, clock = make()
    evil = Device("<script>alert(1)</script>\x1b]0;pwned\x07", "127.9.0.1", "[bold]b\n2[/]", "north",
                  "router", tags=("*_~",))
    fail(g, clock, evil)
    [note] = one(run_until(g, clock, 1.0))
    assert "\n" not in note.title and "\x1b" not in note.title and "\x07" not in note.title
    assert note.title.startswith("<script>alert(1)</script>")
    assert note.firing[0].device == evil.name and note.group == (("branch", "[bold]b\n2[/]"),)
    assert Notification.from_dict(note.to_dict()) == note  # what the outbox stores is what was built
