"""Review finding: attached, the transition log's events come from Redis: their text is data."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from poller.events import CheckResult, FlapChange, Reboot, State, Transition
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
