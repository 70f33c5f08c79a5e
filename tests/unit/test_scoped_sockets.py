"""Zoned IPv6 addresses as requests and replies are keyed (poller/sockets.py): the zone as the
interface's index, which is what recvfrom gives as a link-local source's scope id."""

from __future__ import annotations

import socket

import pytest

from poller.sockets import reply_host, scoped_peer


def test_a_zone_is_keyed_by_the_interface_index_recvfrom_gives() -> None:
    lo = socket.if_nametoindex("lo")
    assert scoped_peer("fe80::1%lo", 161) == (f"fe80::1%{lo}", ("fe80::1", 161, 0, lo))
    assert scoped_peer("fe80::1%7", 0) == ("fe80::1%7", ("fe80::1", 0, 0, 7))
    # A reply from fe80::1 on lo, and the same address on another link: two different peers.
    assert reply_host(("fe80::1", 161, 0, lo)) == scoped_peer("fe80::1%lo", 161)[0]
    assert reply_host(("fe80::1", 161, 0, lo + 1000)) != scoped_peer("fe80::1%lo", 161)[0]
    # Sources without a scope are their address alone.
    assert reply_host(("2001:db8::1", 161, 0, 0)) == "2001:db8::1"
    assert reply_host(("127.0.0.1", 161)) == "127.0.0.1"


def test_a_zone_naming_no_interface_here_is_an_os_error() -> None:
    with pytest.raises(OSError):
        scoped_peer("fe80::1%no-such-if0", 161)


@pytest.mark.parametrize("version", ["2c", "3"])
async def test_each_request_to_a_zoned_agent_looks_its_interface_up_again(
        version: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """An interface made again (a VLAN, a tunnel, a veth) has a new index: a socket address kept
    from the first send went to the old index for ever (the v3 client did, seen in review)."""
    import asyncio
    from typing import Any

    from poller import sockets
    from poller.credentials import V3, V2c
    from poller.snmp_source import Agent, SnmpError
    from poller.snmp_usm_client import UsmGetBulk
    from poller.snmp_v2c import V2cGetBulk

    sent: list[tuple[Any, ...]] = []

    class Transport:
        def sendto(self, data: bytes, addr: tuple[Any, ...]) -> None:
            sent.append(addr)

    async def get(self: sockets.UdpSockets, family: int) -> Any:
        assert family == socket.AF_INET6
        return Transport()
    monkeypatch.setattr(sockets.UdpSockets, "get", get)
    index = [7]
    monkeypatch.setattr(sockets.socket, "if_nametoindex", lambda name: index[0])
    credential = V2c("c", "public") if version == "2c" else V3("l", "u", "sha", "auth-passphrase")
    agent = Agent("a", "fe80::1%wt-vlan7", 161, credential, timeout=0.05, retries=0)
    client = V2cGetBulk() if version == "2c" else UsmGetBulk()
    await client.open(agent)
    for new_index in (7, 9):
        index[0] = new_index
        with pytest.raises(SnmpError):
            await client.getbulk(agent, 1, 0, [(1, 3, 6, 1, 2, 1, 1, 3)])
    assert [addr[3] for addr in sent] == [7, 9]
    await asyncio.sleep(0)
    client.close()


async def test_requests_sharing_a_socket_that_cannot_open_each_get_the_os_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Two first requests wait on one opening; it fails (no IPv6 here): both get the OSError,
    not one a KeyError (seen in review), and the next request tries again."""
    import asyncio

    from poller import sockets

    tries = [0]

    def no_socket(*args: object) -> socket.socket:
        tries[0] += 1
        raise OSError(97, "Address family not supported by protocol")
    monkeypatch.setattr(sockets.socket, "socket", no_socket)
    udp = sockets.UdpSockets(lambda data, addr: None, lambda exc: None, 1 << 20)
    got = await asyncio.gather(udp.get(socket.AF_INET6), udp.get(socket.AF_INET6), return_exceptions=True)
    assert [type(e) for e in got] == [OSError, OSError] and tries == [1]
    with pytest.raises(OSError):
        await udp.get(socket.AF_INET6)
    assert tries == [2]
    udp.close()
