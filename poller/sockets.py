"""Socket settings shared by the ICMP prober and the SNMP clients, and the SNMP clients' UDP
sockets (one per address family) and destinations."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Callable
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


def udp_peer(ip: ipaddress.IPv4Address | ipaddress.IPv6Address,
             port: int) -> tuple[tuple[str, int], tuple[Any, ...]]:
    """An agent's ``(host, port)`` as its replies are keyed (:func:`reply_host`) and the address
    ``sendto`` takes. A zone's interface is looked up now, at each send: an interface made again
    (a VLAN, a tunnel) has a new index, and a socket address kept from the first send would go
    to the old one for ever. Raises OSError when no interface here has the zone's name."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id:
        host, sockaddr = scoped_peer(ip.compressed, port)
        return (host, port), sockaddr
    destination = (ip.compressed, port)
    return destination, destination


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, owner: UdpSockets) -> None:
        self.owner = owner

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.owner.received(data, addr)

    def error_received(self, exc: Exception) -> None:
        self.owner.errored(exc)


class UdpSockets:
    """One non-blocking UDP socket per address family with a large receive buffer, opened at its
    first use and shared by every request of its owner (an SNMP client): ``received(data,
    addr)`` gets every datagram, ``errored(exc)`` every error the kernel reports (e.g. ICMP port
    unreachable from a host with no agent)."""

    def __init__(self, received: Callable[[bytes, Any], None], errored: Callable[[Exception], None],
                 rcvbuf: int) -> None:
        self.received = received
        self.errored = errored
        self.rcvbuf = rcvbuf
        self._opening: dict[int, asyncio.Future[asyncio.DatagramTransport]] = {}

    async def get(self, family: int) -> asyncio.DatagramTransport:
        """The socket of ``family``; raises OSError when it cannot be opened (e.g. no IPv6 here:
        the request fails and says why, and the next one tries again)."""
        opening = self._opening.get(family)
        if opening is None:
            # A future at once: the first requests start together and must share one socket.
            opening = self._opening[family] = asyncio.ensure_future(self._open(family))
        try:
            return await asyncio.shield(opening)
        except OSError:
            if self._opening.get(family) is opening:  # not a newer attempt another request made
                del self._opening[family]
            raise

    async def _open(self, family: int) -> asyncio.DatagramTransport:
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            enlarge_rcvbuf(sock, self.rcvbuf)
            transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
                lambda: _Datagrams(self), sock=sock)
        except BaseException:
            sock.close()
            raise
        return transport

    def close(self) -> None:
        for opening in self._opening.values():
            if opening.done() and not opening.cancelled() and opening.exception() is None:
                opening.result().close()
            else:
                opening.cancel()
        self._opening.clear()
