"""Socket settings shared by the ICMP prober and the SNMP clients."""

from __future__ import annotations

import socket
from typing import Any

SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)


def enlarge_rcvbuf(sock: socket.socket, size: int) -> int:
    """Ask for a ``size``-byte receive buffer, so that replies arriving together are not dropped
    by the kernel (which looks exactly like loss or timeouts); return the size the kernel gave.

    ``SO_RCVBUFFORCE`` (CAP_NET_ADMIN, e.g. root) may pass ``net.core.rmem_max``; ``SO_RCVBUF`` is capped
    by it.
    """
    for opt in (SO_RCVBUFFORCE, socket.SO_RCVBUF):
        try:
            sock.setsockopt(socket.SOL_SOCKET, opt, size)
            break
        except OSError:
            continue
    return sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)


def scoped_peer(address: str, port: int) -> tuple[str, tuple[str, int, int, int]]:
    """A zoned IPv6 address (``fe80::1%eth0``, ``fe80::1%2``) as replies from it are keyed
    (``fe80::1%2``: the zone as the interface's index, which is what ``recvfrom`` gives) and
    as ``sendto`` takes it. Raises OSError when no interface here has that name."""
    host, _, zone = address.partition("%")
    index = int(zone) if zone.isdigit() else socket.if_nametoindex(zone)
    return f"{host}%{index}", (host, port, 0, index)


def reply_host(sockaddr: tuple[Any, ...]) -> str:
    """The host of a datagram's source as :func:`scoped_peer` keys it: an IPv6 source with a
    scope (link-local: ``recvfrom`` gives ``('fe80::1', port, flowinfo, index)``) carries it as
    ``%index``; any other is its address alone."""
    if len(sockaddr) == 4 and sockaddr[3]:
        return f"{sockaddr[0]}%{sockaddr[3]}"
    host: str = sockaddr[0]
    return host
