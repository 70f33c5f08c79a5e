"""A device's last traps in its drill-down (issue 17): those received before it was opened (kept
by the dashboard) and those that come while it is open, newest first, the sender's text shown
literally (markup and terminal control in a var-bind are data)."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from poller.inventory import Device
from poller.snmp_v2c import _integer, _tlv, encode_oid
from tests.fakes import FakeProber, FakeSnmpClient
from tests.integration.test_snmp_traps import link_down
from wardtui.app import WardApp
from wardtui.runtime import Options, Runtime
from wardtui.screens.device import DeviceScreen
from wardtui.widgets.transition_log import TransitionLog

HOSTILE = "[@click=app.quit] [b]x[/b] \x1b[2J\u202e"


def enterprise_trap(community: bytes, text: str) -> bytes:
    """An enterprise trap (1.3.6.1.4.1.9.9.41.2.0.1) carrying ``text`` in one var-bind."""
    def varbind(oid: tuple[int, ...], value: bytes) -> bytes:
        return _tlv(0x30, _tlv(0x06, encode_oid(oid)) + value)

    trap_oid = encode_oid((1, 3, 6, 1, 4, 1, 9, 9, 41, 2, 0, 1))
    varbinds = (varbind((1, 3, 6, 1, 2, 1, 1, 3, 0), _tlv(0x43, (4242).to_bytes(4, "big")))
                + varbind((1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0), _tlv(0x06, trap_oid))
                + varbind((1, 3, 6, 1, 4, 1, 9, 9, 41, 1, 2, 3, 1, 5, 1), _tlv(0x04, text.encode())))
    pdu = _tlv(0xA7, _integer(77) + _integer(0) + _integer(0) + _tlv(0x30, varbinds))
    return _tlv(0x30, _integer(1) + _tlv(0x04, community) + pdu)


async def test_the_drill_down_shows_the_devices_last_traps_literally(tmp_path: Path) -> None:
    credentials = tmp_path / "credentials.yaml"
    credentials.write_text("v2:\n  version: 2c\n  community: tr4p\n", encoding="utf-8")
    credentials.chmod(0o600)
    devices = [Device("edge", "127.0.0.1", "b", "r", "router", snmp_credential="v2"),
               Device("other", "127.0.0.2", "b", "r", "router")]
    runtime = Runtime(Options(db=f"sqlite:///{tmp_path / 'h.db'}", credentials=credentials,
                              traps=("127.0.0.1", 0)),
                      prober=FakeProber(), devices=devices, snmp_client=FakeSnmpClient())
    assert runtime.traps is not None and runtime.traps.sock is not None
    port = runtime.traps.sock.getsockname()[1]
    app = WardApp(runtime)
    async with app.run_test(size=(120, 50)) as pilot:
        try:
            async def until(what: object, timeout: float = 10.0) -> None:
                deadline = time.monotonic() + timeout
                while not what():  # type: ignore[operator]
                    assert time.monotonic() < deadline, "condition not met in time"
                    await pilot.pause(0.05)

            await until(lambda: any("first answer" in line
                                    for line in app.screen.query_one(TransitionLog).lines_written))
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.sendto(link_down(b"tr4p", 7), ("127.0.0.1", port))
                await until(lambda: len(app.dashboard.recent_traps.of("edge")) == 1)
                await pilot.press("enter")  # the cursor is on the first row: edge
                await until(lambda: isinstance(app.screen, DeviceScreen))
                screen = app.screen
                assert isinstance(screen, DeviceScreen) and screen.device == "edge"

                def text(selector: str) -> str:
                    return str(screen.query_one(selector).render())

                await until(lambda: screen.query_one("#traps").display)
                assert text("#traps-title") == "traps · 1 received (UTC)"
                assert "  linkDown  ifIndex 7  v2c  1.3.6.1.2.1.2.2.1.1.7=7" in text("#traps")
                # While it is open: a trap with markup and terminal control in its var-binds.
                s.sendto(enterprise_trap(b"tr4p", HOSTILE), ("127.0.0.1", port))
                await until(lambda: "[@click=app.quit]" in text("#traps"), timeout=5.0)
            lines = text("#traps").splitlines()
            assert len(lines) == 2 and "linkDown" in lines[1]  # newest first
            assert ("1.3.6.1.4.1.9.9.41.2.0.1  v2c  "
                    "1.3.6.1.4.1.9.9.41.1.2.3.1.5.1=[@click=app.quit] [b]x[/b]") in lines[0]
            assert "\x1b" not in lines[0] and "\u202e" not in lines[0]
            assert text("#traps-title") == "traps · the last 2 received (UTC)"
            assert isinstance(app.screen, DeviceScreen)  # no click action ran, nothing broke
            await pilot.press("escape")
            await pilot.press("down", "enter")  # the other device: no traps, no section
            await until(lambda: isinstance(app.screen, DeviceScreen) and app.screen.device == "other")
            await pilot.pause(0.2)
            assert not app.screen.query_one("#traps").display
            assert not app.screen.query_one("#traps-title").display
        finally:
            await app.action_quit()
