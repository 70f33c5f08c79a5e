"""Review finding: attached, the transition log's events come from Redis: their text is data."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from poller.events import CheckResult, FlapChange, Reboot, State, Transition, Trap
from poller.live import decode_event, encode_event
from poller.text import first_unsafe
from wardtui.widgets.transition_log import TransitionLog

EVIL = "r1\x1b]0;pwned\x1b\\\u202e\x9b"


def test_events_from_the_stream_reach_the_log_without_terminal_control() -> None:
    now = datetime.now(UTC)
    interface = json.dumps({"t": "InterfaceChange", "device": EVIL, "address": EVIL, "at": now.timestamp(),
                            "ifindex": 3, "ifname": EVIL, "from_state": EVIL, "to_state": EVIL})
    events = [decode_event(interface)] + [decode_event(encode_event(e)) for e in (
        Transition(EVIL, EVIL, State.UP, State.DOWN, now, now, None),
        FlapChange(EVIL, EVIL, True, now, 5),
        Reboot(EVIL, EVIL, now, 5.0, 100.0, now),
        CheckResult(EVIL, EVIL, now, 1, 1, 1.0, State.UP),
    )]
    log = TransitionLog()
    log.add_interface(events[0])  # type: ignore[arg-type]
    log.add_transition(events[1])  # type: ignore[arg-type]
    log.add_flap(events[2])  # type: ignore[arg-type]
    log.add_reboot(events[3])  # type: ignore[arg-type]
    log.add_probe(events[4], EVIL)  # type: ignore[arg-type]
    assert len(log.lines_written) == 5
    for line in log.lines_written:
        assert first_unsafe(line) is None, repr(line)


def test_a_trap_no_other_line_tells_is_written_as_data_and_one_that_is_told_is_not() -> None:
    now = datetime.now(UTC)
    log = TransitionLog()
    for event in (Trap(EVIL, EVIL, now, "1.3.6.1.4.1.9.0.1", "1.3.6.1.4.1.9.0.1", "2c", None, None, "", EVIL),
                  Trap("r1", "10.0.0.1", now, "linkDown", "1.3.6.1.6.3.1.1.5.3", "2c", 1.0, 2, "Gi0/2", ""),
                  Trap("r1", "10.0.0.1", now, "coldStart", "1.3.6.1.6.3.1.1.5.1", "1", 1.0, None, "", ""),
                  Trap("r1", "10.0.0.1", now, "authenticationFailure", "1.3.6.1.6.3.1.1.5.5", "2c", 1.0, None,
                       "", "")):
        log.add_trap(decode_event(encode_event(event)))  # type: ignore[arg-type]
    assert len(log.lines_written) == 2  # the linkDown and coldStart have their own lines
    assert "trap authenticationFailure" in log.lines_written[1]
    for line in log.lines_written:
        assert first_unsafe(line) is None, repr(line)
