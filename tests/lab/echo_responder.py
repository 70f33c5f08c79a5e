"""Userspace ICMP echo responder that answers after a fixed delay.

This kernel has no ``tc netem``, so a host with a known RTT is made by hand: the lab's
delay namespace sets ``net.ipv4.icmp_echo_ignore_all=1`` (the kernel stays silent) and
runs this script, which reads echo requests for one address from a raw socket and sends
the echo reply ``--delay-ms`` after the request *arrived* (kernel receive timestamp, so a
busy event loop does not add to the delay). Identifier, sequence and payload are kept,
source and destination swapped (the kernel builds the IP header from the bound address).

Run it inside the namespace: ``ip netns exec D python echo_responder.py --address A``.
It prints ``ready`` on stdout once the socket is bound, and exits on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import socket
import struct
import sys
import time

SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
_TIMESPEC = struct.Struct("=qq")
_ECHO_REQUEST = 8
_ECHO_REPLY = 0


def checksum(data: bytes) -> int:
    """RFC 1071 internet checksum of ``data`` (odd length padded with a zero byte)."""
    if len(data) % 2:
        data += b"\x00"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def make_reply(icmp: bytes) -> bytes:
    """Turn an ICMP echo request (header + payload) into the matching echo reply."""
    # Keep identifier, sequence and payload (bytes 4..): the pinger matches on them.
    body = icmp[4:]
    unsummed = struct.pack("!BBH", _ECHO_REPLY, 0, 0) + body
    return struct.pack("!BBH", _ECHO_REPLY, 0, checksum(unsummed)) + body


class Responder:
    """Reads echo requests to ``address`` and schedules each reply ``delay`` s later."""

    def __init__(self, address: str, delay: float) -> None:
        self.address = address
        self.delay = delay
        self.answered = 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        # Bound to the pinged address so replies leave with it as their source.
        self.sock.bind((address, 0))
        self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.sock.setblocking(False)
        self.loop = asyncio.get_running_loop()

    def on_readable(self) -> None:
        while True:
            try:
                packet, ancdata, _flags, (source, _port) = self.sock.recvmsg(
                    65535, socket.CMSG_SPACE(_TIMESPEC.size))
            except BlockingIOError:
                return
            arrived = time.time()
            for level, kind, data in ancdata:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                    sec, nsec = _TIMESPEC.unpack(data[: _TIMESPEC.size])
                    arrived = sec + nsec / 1e9
            self.handle(packet, source, arrived)

    def handle(self, packet: bytes, source: str, arrived: float) -> None:
        # A raw IPv4 socket hands us the IP header too; skip it (IHL words).
        ihl = (packet[0] & 0x0F) * 4
        if len(packet) < ihl + 8:
            return
        destination = socket.inet_ntoa(packet[16:20])
        icmp = packet[ihl:]
        # The socket also sees our own replies and other ICMP: answer requests only.
        if icmp[0] != _ECHO_REQUEST or icmp[1] != 0 or destination != self.address:
            return
        if checksum(icmp) != 0:
            return  # corrupt request: a real host would drop it too
        # Convert the wall-clock target into loop time so the delay counts from arrival.
        when = self.loop.time() + (arrived + self.delay - time.time())
        self.loop.call_at(when, self.send, make_reply(icmp), source)

    def send(self, reply: bytes, destination: str) -> None:
        try:
            self.sock.sendto(reply, (destination, 0))
            self.answered += 1
        except OSError as exc:  # a full queue must not kill the lab's only delayed host
            print(f"echo_responder: send to {destination} failed: {exc}", file=sys.stderr)


async def serve(address: str, delay: float) -> None:
    responder = Responder(address, delay)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        responder.loop.add_signal_handler(sig, stop.set)
    responder.loop.add_reader(responder.sock.fileno(), responder.on_readable)
    print("ready", flush=True)
    await stop.wait()
    responder.sock.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", required=True, help="IPv4 address to answer for")
    parser.add_argument("--delay-ms", type=float, default=20.0, help="reply delay (ms)")
    args = parser.parse_args(argv)
    asyncio.run(serve(args.address, args.delay_ms / 1000.0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
