"""DeviceCounters: traffic rates, reboots and link changes an operator reads off successive SNMP polls."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from poller.events import InterfaceChange, Reboot, SnmpPoll
from poller.snmp_rates import DeviceCounters, PollOutcome, is_reboot
from poller.snmp_source import IfRow, RawPoll, SystemFacts

T0 = datetime(2024, 5, 1, 9, 0, 0, tzinfo=UTC)
MONO0 = 5000.0
DAY_TICKS = 86_400 * 100
M100 = 100_000_000
G1 = 1_000_000_000


def raw(t: float, uptime_ticks: int, *rows: IfRow, mono: float | None = None) -> RawPoll:
    """A poll ``t`` seconds after T0 (wall and monotonic clocks in step unless ``mono`` is given)."""
    return RawPoll(
        at=T0 + timedelta(seconds=t),
        system=SystemFacts(name="sw1", descr="Test switch", object_id="1.3.6.1.4.1.9.1.1",
                           uptime_ticks=uptime_ticks),
        interfaces=rows,
        counters_mono=MONO0 + t if mono is None else mono,
    )


def hc(ifindex: int, in_o: int, out_o: int, *, speed: int | None = G1, high_speed: int | None = None,
       admin: int = 1, oper: int = 1, disc: int | None = 0, name: str | None = None) -> IfRow:
    """An interface with 64-bit counters (and 32-bit ones, truncated, as agents report both)."""
    return IfRow(ifindex=ifindex, name=name or f"Gi0/{ifindex}", descr=f"GigabitEthernet0/{ifindex}",
                 alias="uplink", admin=admin, oper=oper, speed=speed, high_speed=high_speed,
                 in_octets=in_o % 2**32, out_octets=out_o % 2**32, hc_in_octets=in_o, hc_out_octets=out_o,
                 in_errors=3, out_errors=4, in_discards=5, out_discards=6, discontinuity=disc)


def c32(ifindex: int, in_o: int, out_o: int, *, speed: int | None = M100, admin: int = 1,
        oper: int = 1) -> IfRow:
    """An interface of an agent without ifXTable (a Windows XP-like host): 32-bit counters only."""
    return IfRow(ifindex=ifindex, descr=f"Intel PRO/100 #{ifindex}", admin=admin, oper=oper, speed=speed,
                 in_octets=in_o, out_octets=out_o)


def two_polls(first: RawPoll, second: RawPoll) -> PollOutcome:
    counters = DeviceCounters("sw1", "192.0.2.1")
    counters.update(first)
    return counters.update(second)


def rates(outcome: PollOutcome) -> dict[int, tuple[float | None, float | None]]:
    return {s.ifindex: (s.in_bps, s.out_bps) for s in outcome.poll.interfaces}


UP = 100 * DAY_TICKS  # a device up for 100 days


# -- first poll, steady traffic ----------------------------------------------------------------


def test_first_poll_gives_the_poll_but_no_rates_and_no_events() -> None:
    outcome = DeviceCounters("sw1", "192.0.2.1").update(raw(0, UP, hc(1, 10**12, 10**12), c32(2, 5, 6)))
    assert outcome.reboot is None and outcome.changes == ()
    assert (outcome.over_speed, outcome.no_rate) == (0, 0)
    assert rates(outcome) == {1: (None, None), 2: (None, None)}
    assert outcome.events == (outcome.poll,)
    poll = outcome.poll
    assert (poll.device, poll.address, poll.at) == ("sw1", "192.0.2.1", T0)
    assert (poll.sys_name, poll.sys_descr, poll.sys_object_id) == ("sw1", "Test switch", "1.3.6.1.4.1.9.1.1")
    assert poll.uptime_s == UP / 100
    gi, eth = poll.interfaces
    assert (gi.name, gi.alias, gi.admin, gi.oper, gi.speed_bps) == ("Gi0/1", "uplink", "up", "up", G1)
    assert (gi.in_errors, gi.out_errors, gi.in_discards, gi.out_discards) == (3, 4, 5, 6)
    assert gi.counters_64 is True
    assert (eth.name, eth.alias, eth.counters_64) == ("Intel PRO/100 #2", "", False)


def test_steady_64_bit_traffic_gives_the_exact_rate() -> None:
    # 60 s: in +750,000,000 octets = 100 Mbit/s; out +7,500,000 octets = 1 Mbit/s.
    outcome = two_polls(raw(0, UP, hc(1, 5 * 10**12, 10**9)),
                        raw(60, UP + 6000, hc(1, 5 * 10**12 + 750_000_000, 10**9 + 7_500_000)))
    assert rates(outcome) == {1: (100_000_000.0, 1_000_000.0)}
    assert outcome.poll.interfaces[0].counters_64 is True
    assert (outcome.over_speed, outcome.no_rate, outcome.reboot, outcome.changes) == (0, 0, None, ())


def test_elapsed_time_comes_from_the_monotonic_clock_not_the_wall_clock() -> None:
    # The wall clock jumped (NTP step): 60 s apart by wall time, 30 s by the monotonic clock.
    outcome = two_polls(raw(0, UP, hc(1, 0, 0)),
                        raw(60, UP + 3000, hc(1, 3_000_000, 0), mono=MONO0 + 30))
    assert rates(outcome)[1] == (800_000.0, 0.0)


# -- 32-bit counters ---------------------------------------------------------------------------


def test_a_32_bit_counter_that_wrapped_once_gives_the_right_rate() -> None:
    before_in, before_out = 2**32 - 1_000_000, 2**32 - 10
    outcome = two_polls(raw(0, UP, c32(1, before_in, before_out)),
                        raw(60, UP + 6000, c32(1, 6_500_000, 740)))
    # in: 1,000,000 + 6,500,000 = 7,500,000 octets in 60 s = 1 Mbit/s; out: 750 octets = 100 bit/s.
    assert rates(outcome) == {1: (1_000_000.0, 100.0)}
    assert outcome.poll.interfaces[0].counters_64 is False
    assert (outcome.over_speed, outcome.no_rate) == (0, 0)


def test_a_32_bit_wrap_that_would_mean_more_than_the_interface_speed_is_discarded() -> None:
    # A 10 Mbit/s port whose counter went from 5,000 to 100: as a wrap that is ~572 Mbit/s.
    outcome = two_polls(raw(0, UP, c32(1, 5_000, 5_000, speed=10_000_000)),
                        raw(60, UP + 6000, c32(1, 100, 80_000, speed=10_000_000)))
    assert rates(outcome)[1] == (None, 10_000.0)
    assert (outcome.over_speed, outcome.no_rate) == (1, 0)


def test_a_32_bit_gigabit_link_polled_every_60_s_gives_no_rate_a_second_wrap_could_explain() -> None:
    # 1 Gbit/s fills 2**32 octets in ~34 s: 7.5e6 octets in 60 s reads 1 Mbit/s or 1 + 573 Mbit/s.
    outcome = two_polls(raw(0, UP, c32(1, 0, 0, speed=G1)),
                        raw(60, UP + 6000, c32(1, 7_500_000, 7_500_000, speed=G1)))
    assert rates(outcome)[1] == (None, None)
    assert (outcome.over_speed, outcome.no_rate) == (0, 2)


def test_a_32_bit_gigabit_link_polled_often_enough_gives_rates() -> None:
    # At 20 s, a second wrap would mean > 1.7 Gbit/s: impossible on the link, so one reading only.
    outcome = two_polls(raw(0, UP, c32(1, 0, 0, speed=G1)),
                        raw(20, UP + 2000, c32(1, 2_500_000, 2_000_000_000, speed=G1)))
    assert rates(outcome)[1] == (1_000_000.0, 800_000_000.0)
    assert outcome.no_rate == 0 and outcome.over_speed == 0


def test_device_without_hc_counters_uses_32_bit_and_mixes_with_hc_interfaces() -> None:
    # One agent, one port with ifHC* counters, one without (virtual or old driver): each uses its own.
    outcome = two_polls(raw(0, UP, hc(1, 2**40, 2**40), c32(2, 2**32 - 100, 1000)),
                        raw(60, UP + 6000, hc(1, 2**40 + 750, 2**40), c32(2, 650, 1000)))
    assert rates(outcome) == {1: (100.0, 0.0), 2: (100.0, 0.0)}
    assert [s.counters_64 for s in outcome.poll.interfaces] == [True, False]


def test_64_bit_counters_are_preferred_over_the_32_bit_ones() -> None:
    # A 10 Gbit/s port moved 2**32 + 7500 octets in 60 s (~573 Mbit/s); its 32-bit counter shows
    # only 7500 of them (1 kbit/s). The 64-bit delta is the truth.
    ten_g = {"speed": 4294967295, "high_speed": 10_000}
    outcome = two_polls(raw(0, UP, hc(1, 10**9, 0, **ten_g)),
                        raw(60, UP + 6000, hc(1, 10**9 + 2**32 + 7500, 0, **ten_g)))
    assert rates(outcome)[1] == ((2**32 + 7500) * 8 / 60, 0.0)
    assert outcome.poll.interfaces[0].counters_64 is True


def test_counters_switching_between_32_and_64_bit_give_no_rate() -> None:
    # The agent stopped answering ifXTable for a poll: the readings are of different counters.
    first = hc(1, 10**6, 10**6, speed=M100)
    second = IfRow(ifindex=1, name="Gi0/1", admin=1, oper=1, speed=M100, in_octets=10**6 + 7500,
                   out_octets=10**6 + 7500, discontinuity=0)
    outcome = two_polls(raw(0, UP, first), raw(60, UP + 6000, second))
    assert rates(outcome)[1] == (None, None)
    assert outcome.no_rate == 2
    assert outcome.poll.interfaces[0].counters_64 is False


def test_a_32_bit_counter_read_beyond_32_bits_gives_no_negative_rate() -> None:
    # A broken agent reports 2**33 in a Counter32 column, then a sane value.
    outcome = two_polls(raw(0, UP, c32(1, 2**33, 0, speed=None)),
                        raw(60, UP + 6000, c32(1, 50, 0, speed=None)))
    assert rates(outcome)[1] == (None, 0.0)
    assert outcome.no_rate == 1


# -- resets, reboots ---------------------------------------------------------------------------


def test_a_64_bit_counter_going_backwards_is_a_reset_not_a_wrap() -> None:
    outcome = two_polls(raw(0, UP, hc(1, 10**12, 10**6)),
                        raw(60, UP + 6000, hc(1, 10**6, 10**6 + 7500)))
    assert rates(outcome)[1] == (None, 1000.0)
    assert (outcome.no_rate, outcome.over_speed) == (1, 0)


def test_a_reboot_gives_a_reboot_event_and_no_rates() -> None:
    # Up 100 days; 60 s later sysUpTime reads 45 s: it restarted 15 s after the previous poll.
    outcome = two_polls(raw(0, UP, hc(1, 10**12, 10**12), c32(2, 10**6, 10**6)),
                        raw(60, 4500, hc(1, 10**6, 10**6), c32(2, 2 * 10**6, 2 * 10**6)))
    at = T0 + timedelta(seconds=60)
    assert outcome.reboot == Reboot(device="sw1", address="192.0.2.1", at=at, uptime_s=45.0,
                                    previous_uptime_s=UP / 100, booted_at=at - timedelta(seconds=45))
    # Counter 2 went *up*: without the reboot it would be taken for traffic.
    assert rates(outcome) == {1: (None, None), 2: (None, None)}
    assert outcome.no_rate == 4 and outcome.over_speed == 0
    assert outcome.poll.uptime_s == 45.0
    assert outcome.events[:2] == (outcome.reboot, outcome.poll)


def test_rates_resume_on_the_poll_after_a_reboot() -> None:
    counters = DeviceCounters("sw1", "192.0.2.1")
    counters.update(raw(0, UP, hc(1, 10**12, 0)))
    assert counters.update(raw(60, 4500, hc(1, 1000, 0))).reboot is not None
    outcome = counters.update(raw(120, 10_500, hc(1, 1000 + 7500, 0)))
    assert outcome.reboot is None
    assert rates(outcome)[1] == (1000.0, 0.0)


def test_a_reboot_seen_even_when_uptime_rose_because_the_last_poll_was_early_in_its_life() -> None:
    # Polled 10 s after a boot; it restarted 5 s later: 60 s on, uptime reads 55 s (> 10 s, < 60 s).
    outcome = two_polls(raw(0, 1000, c32(1, 10**8, 0)), raw(60, 5500, c32(1, 10**8 + 7500, 0)))
    assert outcome.reboot is not None
    assert (outcome.reboot.uptime_s, outcome.reboot.previous_uptime_s) == (55.0, 10.0)
    assert rates(outcome)[1] == (None, None)


def test_uptime_a_little_short_of_the_interval_is_clock_jitter_not_a_reboot() -> None:
    # A young device: 60 s later the agent's clock advanced 59 s (its clock and ours disagree a bit).
    outcome = two_polls(raw(0, 1000, c32(1, 0, 0)), raw(60, 6900, c32(1, 7500, 0)))
    assert outcome.reboot is None
    assert rates(outcome)[1] == (1000.0, 0.0)


def test_an_agent_whose_uptime_never_moves_is_not_rebooting_every_poll() -> None:
    outcome = two_polls(raw(0, 0, c32(1, 0, 0)), raw(60, 0, c32(1, 7500, 0)))
    assert outcome.reboot is None
    assert rates(outcome)[1] == (1000.0, 0.0)


def test_sysuptime_wrapping_after_497_days_is_not_a_reboot() -> None:
    # 30 s before the 2**32-tick wrap; 60 s later sysUpTime reads 30 s (+0.4 s jitter).
    outcome = two_polls(raw(0, 2**32 - 3000, hc(1, 0, 0)), raw(60, 3040, hc(1, 7500, 0)))
    assert outcome.reboot is None
    assert rates(outcome)[1] == (1000.0, 0.0)
    assert outcome.no_rate == 0


def test_a_drop_near_the_uptime_wrap_that_does_not_fit_it_is_a_reboot() -> None:
    # Near the wrap, but uptime reads 5 minutes after 60 s: it restarted.
    outcome = two_polls(raw(0, 2**32 - 3000, hc(1, 0, 0)), raw(60, 30_000, hc(1, 7500, 0)))
    assert outcome.reboot is not None
    assert rates(outcome)[1] == (None, None)


@pytest.mark.parametrize(("previous", "now", "elapsed", "expected"), [
    (UP, UP + 6000, 60.0, False),  # normal
    (UP, 500, 60.0, True),  # dropped
    (2**32 - 100, 5900, 60.0, False),  # wrapped exactly as expected
    (2**32 - 100, 9000, 60.0, True),  # wrapped 31 s "too far": not the wrap
    (2**32 - 100, 500, 0.0, True),  # no time passed, yet it dropped 6 s past the wrap
    (2**32 - 100, 50, 1.0, False),  # 1 s later, just past the wrap
    (1000, 1000, 60.0, False),  # frozen uptime
    (1000, 5500, 60.0, True),  # rose, but restarted between polls
])
def test_is_reboot(previous: int, now: int, elapsed: float, expected: bool) -> None:
    assert is_reboot(previous, now, elapsed) is expected


def test_a_changed_counter_discontinuity_time_gives_no_rate() -> None:
    # The port's counters were reset (module reinserted) 10 s after the first poll.
    outcome = two_polls(raw(0, UP, hc(1, 10**9, 10**9, disc=0), hc(2, 10**9, 10**9, disc=0)),
                        raw(60, UP + 6000, hc(1, 10**9 + 7500, 10**9 + 7500, disc=UP + 1000),
                            hc(2, 10**9 + 7500, 10**9 + 7500, disc=0)))
    assert rates(outcome) == {1: (None, None), 2: (1000.0, 1000.0)}
    assert outcome.no_rate == 2


# -- speed ------------------------------------------------------------------------------------


def test_a_rate_above_the_interface_speed_is_discarded_and_counted() -> None:
    # 100 Mbit/s port: 60 s at 100 Mbit/s = 750,000,000 octets. Out sends 2 % more: impossible.
    outcome = two_polls(raw(0, UP, hc(1, 0, 0, speed=M100)),
                        raw(60, UP + 6000, hc(1, 750_000_000, 765_000_000, speed=M100)))
    assert rates(outcome)[1] == (100_000_000.0, None)
    assert (outcome.over_speed, outcome.no_rate) == (1, 0)


def test_a_rate_slightly_above_speed_is_timing_jitter_and_kept() -> None:
    outcome = two_polls(raw(0, UP, hc(1, 0, 0, speed=M100)),
                        raw(60, UP + 6000, hc(1, 757_000_000, 0, speed=M100)))  # +0.93 %
    assert rates(outcome)[1] == (pytest.approx(100_933_333.3), 0.0)
    assert outcome.over_speed == 0


def test_high_speed_is_used_when_ifspeed_is_the_4294967295_sentinel() -> None:
    # A 10 Gbit/s port: ifSpeed saturated at 2**32-1, ifHighSpeed 10000 Mbit/s; it carries 5 Gbit/s.
    ten_g = {"speed": 4294967295, "high_speed": 10_000}
    outcome = two_polls(raw(0, UP, hc(1, 0, 0, **ten_g)),
                        raw(60, UP + 6000, hc(1, 37_500_000_000, 0, **ten_g)))
    assert outcome.poll.interfaces[0].speed_bps == 10_000_000_000
    assert rates(outcome)[1] == (5_000_000_000.0, 0.0)
    assert outcome.over_speed == 0


def test_high_speed_caps_the_rate_too() -> None:
    ten_g = {"speed": 4294967295, "high_speed": 10_000}
    outcome = two_polls(raw(0, UP, hc(1, 0, 0, **ten_g)),
                        raw(60, UP + 6000, hc(1, 80_000_000_000, 0, **ten_g)))  # 10.7 Gbit/s
    assert rates(outcome)[1] == (None, 0.0)
    assert outcome.over_speed == 1


def test_the_sentinel_without_high_speed_means_an_unknown_speed_and_no_cap() -> None:
    sentinel = {"speed": 4294967295, "high_speed": None}
    outcome = two_polls(raw(0, UP, hc(1, 0, 0, **sentinel)),
                        raw(60, UP + 6000, hc(1, 37_500_000_000, 0, **sentinel)))
    assert outcome.poll.interfaces[0].speed_bps is None
    assert rates(outcome)[1] == (5_000_000_000.0, 0.0)
    assert outcome.over_speed == 0


def test_ifspeed_is_used_when_high_speed_is_zero() -> None:
    outcome = two_polls(raw(0, UP, hc(1, 0, 0, speed=M100, high_speed=0)),
                        raw(60, UP + 6000, hc(1, 1_500_000_000, 0, speed=M100, high_speed=0)))
    assert outcome.poll.interfaces[0].speed_bps == M100
    assert rates(outcome)[1] == (None, 0.0)  # 200 Mbit/s on a 100 Mbit/s port
    assert outcome.over_speed == 1


def test_a_link_that_renegotiated_down_is_capped_by_its_faster_speed() -> None:
    # 1 Gbit/s at the first poll, 100 Mbit/s now: 500 Mbit/s over the interval is believable.
    outcome = two_polls(raw(0, UP, hc(1, 0, 0, speed=G1)),
                        raw(60, UP + 6000, hc(1, 3_750_000_000, 0, speed=M100)))
    assert rates(outcome)[1] == (500_000_000.0, 0.0)


# -- interface changes -----------------------------------------------------------------------


def test_oper_change_on_an_admin_up_interface_is_an_interface_change() -> None:
    outcome = two_polls(raw(0, UP, hc(1, 0, 0, oper=1), hc(2, 0, 0, oper=2)),
                        raw(60, UP + 6000, hc(1, 0, 0, oper=2), hc(2, 0, 0, oper=7)))
    at = T0 + timedelta(seconds=60)
    assert outcome.changes == (
        InterfaceChange(device="sw1", address="192.0.2.1", at=at, ifindex=1, ifname="Gi0/1",
                        from_state="up", to_state="down"),
        InterfaceChange(device="sw1", address="192.0.2.1", at=at, ifindex=2, ifname="Gi0/2",
                        from_state="down", to_state="lowerLayerDown"),
    )
    assert outcome.events == (outcome.poll, *outcome.changes)


def test_an_interface_enabled_by_an_operator_coming_up_is_reported() -> None:
    outcome = two_polls(raw(0, UP, hc(1, 0, 0, admin=2, oper=2)),
                        raw(60, UP + 6000, hc(1, 0, 0, admin=1, oper=1)))
    assert [(c.from_state, c.to_state) for c in outcome.changes] == [("down", "up")]


def test_oper_change_on_an_admin_down_interface_is_not_reported() -> None:
    # The operator shut the port: it going down is their doing, not news.
    outcome = two_polls(raw(0, UP, hc(1, 0, 0, admin=1, oper=1)),
                        raw(60, UP + 6000, hc(1, 0, 0, admin=2, oper=2)))
    assert outcome.changes == ()
    assert outcome.poll.interfaces[0].admin == "down"


def test_no_change_when_the_oper_status_was_not_read() -> None:
    outcome = two_polls(raw(0, UP, IfRow(ifindex=1, name="Gi0/1", admin=1, oper=None)),
                        raw(60, UP + 6000, IfRow(ifindex=1, name="Gi0/1", admin=1, oper=1)))
    assert outcome.changes == ()
    assert outcome.poll.interfaces[0].oper == "up"


def test_a_port_found_down_after_a_reboot_is_reported() -> None:
    outcome = two_polls(raw(0, UP, hc(1, 0, 0, oper=1)), raw(60, 3000, hc(1, 0, 0, oper=2)))
    assert outcome.reboot is not None
    assert [(c.ifname, c.from_state, c.to_state) for c in outcome.changes] == [("Gi0/1", "up", "down")]
    assert outcome.events == (outcome.reboot, outcome.poll, *outcome.changes)


def test_a_new_interface_gets_no_rate_no_change_and_is_not_counted() -> None:
    outcome = two_polls(raw(0, UP, hc(1, 0, 0)),
                        raw(60, UP + 6000, hc(1, 7500, 0), hc(9, 10**9, 10**9, oper=2)))
    assert rates(outcome) == {1: (1000.0, 0.0), 9: (None, None)}
    assert outcome.changes == ()
    assert (outcome.no_rate, outcome.over_speed) == (0, 0)


def test_an_ifindex_given_to_another_interface_is_a_new_interface() -> None:
    # ifindex 3 was a tunnel; now it is another one with its own counters and status.
    outcome = two_polls(raw(0, UP, hc(3, 10**9, 10**9, name="Tunnel0", oper=1)),
                        raw(60, UP + 6000, hc(3, 2 * 10**9, 10**9, name="Tunnel7", oper=2)))
    assert rates(outcome)[3] == (None, None)
    assert outcome.changes == ()
    assert outcome.no_rate == 0


def test_an_interface_that_vanished_for_a_poll_starts_afresh() -> None:
    counters = DeviceCounters("sw1", "192.0.2.1")
    counters.update(raw(0, UP, hc(1, 0, 0), hc(2, 0, 0, oper=1)))
    counters.update(raw(60, UP + 6000, hc(1, 0, 0)))
    outcome = counters.update(raw(120, UP + 12_000, hc(1, 0, 0), hc(2, 10**12, 0, oper=2)))
    assert rates(outcome)[2] == (None, None)
    assert outcome.changes == ()


# -- time between polls ----------------------------------------------------------------------


@pytest.mark.parametrize("elapsed", [0.0, 0.5, -3.0])
def test_no_rates_when_no_usable_time_passed(elapsed: float) -> None:
    outcome = two_polls(raw(0, UP, hc(1, 0, 0), c32(2, 0, 0)),
                        raw(60, UP + 6000, hc(1, 7500, 0), c32(2, 7500, 0), mono=MONO0 + elapsed))
    assert rates(outcome) == {1: (None, None), 2: (None, None)}
    assert (outcome.no_rate, outcome.over_speed) == (0, 0)


def test_outcome_is_built_of_the_engine_events() -> None:
    outcome = two_polls(raw(0, UP, hc(1, 0, 0)), raw(60, 100, hc(1, 0, 0, oper=2)))
    assert [type(e) for e in outcome.events] == [Reboot, SnmpPoll, InterfaceChange]


# -- what traps told between polls (poller/snmp_traps.py) ----------------------------------------


def test_a_link_change_a_trap_told_is_not_told_again_by_the_polls() -> None:
    counters = DeviceCounters("sw1", "192.0.2.1")
    counters.update(raw(0, UP, hc(1, 0, 0)))
    assert counters.link_told(1, 2, T0 + timedelta(seconds=10)) == ("up", "Gi0/1")
    assert counters.link_told(9, 2, T0 + timedelta(seconds=10)) == ("unknown", "")  # never polled
    # A poll in flight when the trap came (begun at 5 s) still reads "up": older news, no change.
    stale = counters.update(raw(5, UP + 500, hc(1, 1000, 1000)))
    assert stale.changes == ()
    # The next poll agrees with the trap: nothing; the one after sees it come back: down -> up.
    assert counters.update(raw(60, UP + 6000, hc(1, 2000, 2000, oper=2))).changes == ()
    back = counters.update(raw(120, UP + 12000, hc(1, 3000, 3000, oper=1))).changes
    assert [(c.from_state, c.to_state) for c in back] == [("down", "up")]


def test_a_poll_after_the_trap_that_disagrees_tells_the_change_from_what_the_trap_said() -> None:
    counters = DeviceCounters("sw1", "192.0.2.1")
    counters.update(raw(0, UP, hc(1, 0, 0)))
    counters.link_told(1, 2, T0 + timedelta(seconds=10))
    changes = counters.update(raw(11, UP + 1100, hc(1, 1000, 1000, oper=1))).changes
    assert [(c.from_state, c.to_state) for c in changes] == [("down", "up")]


def test_a_reboot_a_trap_told_is_taken_for_the_rates_but_not_told_again() -> None:
    counters = DeviceCounters("sw1", "192.0.2.1")
    counters.update(raw(0, UP, hc(1, 0, 0)))
    assert counters.reboot_told(T0 + timedelta(seconds=30)) == UP / 100
    after = counters.update(raw(60, 3000, hc(1, 10, 10)))
    assert after.reboot is None and rates(after)[1] == (None, None)
    # Told once: a later restart is news again.
    assert counters.update(raw(120, 100, hc(1, 20, 20))).reboot is not None


# -- read times per request ----------------------------------------------------------------------
def test_each_interface_is_rated_over_the_time_between_its_own_two_readings() -> None:
    """A walk's later requests read their interfaces later; a resent one 2 s later still. Gi0/2
    (read 2 s after the poll began, in the second poll) carried 10 Mbit/s over 12 s, not 12 over
    10; Gi0/1's in counter was read with the poll, its out counter in a later answer."""
    first = raw(0, UP, dataclasses.replace(hc(1, 0, 0), in_read=MONO0, out_read=MONO0 + 0.1),
                dataclasses.replace(hc(2, 0, 0), in_read=MONO0 + 0.1, out_read=MONO0 + 0.1))
    second = raw(10, UP + 1000,
                 dataclasses.replace(hc(1, 12_500_000, 25_000_000), in_read=MONO0 + 10,
                                     out_read=MONO0 + 12.6),
                 dataclasses.replace(hc(2, 15_000_000, 0), in_read=MONO0 + 12.1, out_read=MONO0 + 12.1))
    got = rates(two_polls(first, second))
    assert got[1] == (pytest.approx(10e6), pytest.approx(16e6))  # 100 Mbit over 10 s; 200 over 12.5
    assert got[2] == (pytest.approx(10e6), pytest.approx(0.0))  # 120 Mbit over 12 s
    # Rows without read times (a client that gives none) are timed by the poll, as before.
    assert rates(two_polls(raw(0, UP, hc(3, 0, 0)), raw(10, UP + 1000, hc(3, 12_500_000, 0))))[3] \
        == (pytest.approx(10e6), pytest.approx(0.0))
