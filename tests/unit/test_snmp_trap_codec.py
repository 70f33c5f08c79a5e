"""The trap side of the v2c codec (poller/snmp_v2c.py): v1 traps in v2c terms, v2c traps and
informs, the inform's acknowledgement, and damaged datagrams refused as BerError only; and the
trap gauges as ``wardtui status`` and the engine panel say them."""

from __future__ import annotations

import contextlib
import io
import random
from types import SimpleNamespace
from typing import Any

import pytest
from pysnmp.proto import api

from poller.snmp_getbulk import OidValue
from poller.snmp_v2c import (
    INFORM,
    TRAP_V1,
    TRAP_V2,
    BerError,
    decode_notification,
    decode_response,
    encode_inform_ack,
)
from wardtui.cli.status import traps

LINK_DOWN = (1, 3, 6, 1, 6, 3, 1, 1, 5, 3)


def _pysnmp_v2(pdu_type: Any, request_id: int = 77) -> bytes:
    """A v2c Trap or InformRequest encoded by pysnmp, as a cross-check of our decoder."""
    from pyasn1.codec.ber import encoder

    p = api.PROTOCOL_MODULES[api.SNMP_VERSION_2C]
    pdu = pdu_type()
    p.apiTrapPDU.set_defaults(pdu) if pdu_type is p.SNMPv2TrapPDU else p.apiPDU.set_defaults(pdu)
    p.apiPDU.set_request_id(pdu, request_id)
    p.apiPDU.set_varbinds(pdu, [((1, 3, 6, 1, 2, 1, 1, 3, 0), p.TimeTicks(4242)),
                                ((1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0), p.ObjectIdentifier(LINK_DOWN)),
                                ((1, 3, 6, 1, 2, 1, 2, 2, 1, 1, 3), p.Integer(3)),
                                ((1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 1, 3), p.OctetString(b"Gi0/3"))])
    msg = p.Message()
    p.apiMessage.set_defaults(msg)
    p.apiMessage.set_community(msg, "c0mm")
    p.apiMessage.set_pdu(msg, pdu)
    return bytes(encoder.encode(msg))


def _pysnmp_v1(generic: int, specific: int = 0) -> bytes:
    from pyasn1.codec.ber import encoder

    p = api.PROTOCOL_MODULES[api.SNMP_VERSION_1]
    pdu = p.TrapPDU()
    p.apiTrapPDU.set_defaults(pdu)
    p.apiTrapPDU.set_enterprise(pdu, (1, 3, 6, 1, 4, 1, 9))
    p.apiTrapPDU.set_agent_address(pdu, "192.0.2.9")
    p.apiTrapPDU.set_generic_trap(pdu, generic)
    p.apiTrapPDU.set_specific_trap(pdu, specific)
    p.apiTrapPDU.set_timestamp(pdu, 999)
    p.apiTrapPDU.set_varbinds(pdu, [((1, 3, 6, 1, 2, 1, 2, 2, 1, 1, 4), p.Integer(4))])
    msg = p.Message()
    p.apiMessage.set_defaults(msg)
    p.apiMessage.set_community(msg, "c0mm")
    p.apiMessage.set_pdu(msg, pdu)
    return bytes(encoder.encode(msg))


def test_v2c_trap_and_inform_as_pysnmp_encodes_them() -> None:
    p = api.PROTOCOL_MODULES[api.SNMP_VERSION_2C]
    for pdu_type, tag in ((p.SNMPv2TrapPDU, TRAP_V2), (p.InformRequestPDU, INFORM)):
        n = decode_notification(_pysnmp_v2(pdu_type))
        assert (n.version, n.community, n.pdu, n.request_id, n.uptime_ticks, n.trap_oid) == \
            (1, b"c0mm", tag, 77, 4242, LINK_DOWN)
        assert n.varbinds == [((1, 3, 6, 1, 2, 1, 2, 2, 1, 1, 3), 3),
                              ((1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 1, 3), b"Gi0/3")]
    ack = decode_response(encode_inform_ack(decode_notification(_pysnmp_v2(p.InformRequestPDU))))
    assert (ack.request_id, ack.error_status, ack.community) == (77, 0, b"c0mm")
    assert ack.varbinds[1] == ((1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0), OidValue(LINK_DOWN))


@pytest.mark.parametrize(("generic", "specific", "oid"), [
    (0, 0, (1, 3, 6, 1, 6, 3, 1, 1, 5, 1)), (1, 0, (1, 3, 6, 1, 6, 3, 1, 1, 5, 2)),
    (2, 0, LINK_DOWN), (3, 0, (1, 3, 6, 1, 6, 3, 1, 1, 5, 4)), (6, 42, (1, 3, 6, 1, 4, 1, 9, 0, 42))])
def test_v1_trap_in_v2c_terms(generic: int, specific: int, oid: tuple[int, ...]) -> None:
    n = decode_notification(_pysnmp_v1(generic, specific))
    assert (n.version, n.pdu, n.trap_oid, n.uptime_ticks) == (0, TRAP_V1, oid, 999)
    assert n.varbinds == [((1, 3, 6, 1, 2, 1, 2, 2, 1, 1, 4), 4)]


def test_damaged_datagrams_are_refused_as_ber_errors_only() -> None:
    p = api.PROTOCOL_MODULES[api.SNMP_VERSION_2C]
    good = [_pysnmp_v2(p.SNMPv2TrapPDU), _pysnmp_v1(2)]
    rng = random.Random(17)
    for _ in range(3000):
        data = bytearray(rng.choice(good))
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        cut = bytes(data[:rng.randint(0, len(data))]) if rng.random() < 0.3 else bytes(data)
        with contextlib.suppress(BerError):  # anything else (IndexError, ...) fails the test
            decode_notification(cut)
    # A Response, a GetBulk, a trap with no snmpTrapOID.0: not notifications.
    for bad in (encode_inform_ack(decode_notification(good[0])), b"\x30\x00", b""):
        with pytest.raises(BerError):
            decode_notification(bad)


def test_status_says_the_trap_figures_and_none_without_a_receiver() -> None:
    def snap(**extra: float) -> Any:
        return SimpleNamespace(gauges=SimpleNamespace(extra=extra))

    found = traps(snap(traps_received=10.0, traps_accepted=6.0, traps_refused_community=3.0,
                       traps_rate_limited=1.0, traps_checks=2.0))
    assert found is not None and found["accepted"] == 6.0 and found["refused_unknown_source"] == 0.0
    assert traps(snap(lag_p99_ms=1.0)) is None and traps(None) is None


def test_the_engine_panel_shows_the_trap_row_only_with_a_receiver() -> None:
    from datetime import UTC, datetime

    from rich.console import Console

    from poller.events import Gauges
    from wardtui.widgets.gauges import _figures

    def shown(**extra: float) -> str:
        g = Gauges(datetime.now(UTC), 1, 0, 0, 0, 1.0, 1.0, 0, 0, 0, 0, 1.0, 2.0, 0.0, 0, 0, 0, extra=extra)
        console = Console(width=52, record=True, file=io.StringIO())
        console.print(_figures(g, "red"))
        return console.export_text()

    text = shown(traps_received=5000.0, traps_accepted=249.0, traps_rate_limited=4751.0,
                 traps_refused_community=2.0, traps_refused_unknown_source=1.0)
    assert "traps taken       249/5000" in text and "refused/flood      3/4751" in text
    assert "traps" not in shown(lag_p99_ms=1.0)
