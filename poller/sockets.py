"""Socket settings shared by the ICMP prober and the SNMP clients."""

from __future__ import annotations

import socket

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
