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
