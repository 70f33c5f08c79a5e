"""Records every ICMP echo request that reaches the lab's hosts namespace: who probed what, when.

Run inside the hosts namespace (``ip netns exec H python probe_recorder.py --out FILE``). A raw
ICMP socket there gets a copy of every echo request delivered to the namespace's addresses (the
kernel still answers them itself; a request nft drops is not delivered, so not seen). Each line
of FILE is ``<arrival, epoch seconds> <destination> <identifier> <sequence>``: the identifier
tells probing processes apart (wardtui's raw-socket prober picks one per process). Lines are
flushed every 0.1 s; a final line ``overflow N`` counts requests the socket's buffer dropped.
Prints ``ready`` on stdout once the socket is bound; exits on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import select
import signal
import socket
import struct
import sys
import time
from pathlib import Path

SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
SO_RXQ_OVFL = getattr(socket, "SO_RXQ_OVFL", 40)
_TIMESPEC = struct.Struct("=qq")
_ECHO_REQUEST = 8


def record(out: Path) -> int:
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    sock.setsockopt(socket.SOL_SOCKET, SO_RXQ_OVFL, 1)
    stop = False

    def stopping(_sig: int, _frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, stopping)
    signal.signal(signal.SIGINT, stopping)
    overflow = 0
    print("ready", flush=True)
    with out.open("w", encoding="ascii") as file:
        flushed = time.monotonic()
        while not stop:
            ready, _, _ = select.select([sock], [], [], 0.1)
            if ready:
                packet, ancdata, _flags, _source = sock.recvmsg(
                    65535, socket.CMSG_SPACE(_TIMESPEC.size) + socket.CMSG_SPACE(4))
                arrived = time.time()
                for level, kind, data in ancdata:
                    if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                        sec, nsec = _TIMESPEC.unpack(data[: _TIMESPEC.size])
                        arrived = sec + nsec / 1e9
                    elif level == socket.SOL_SOCKET and kind == SO_RXQ_OVFL:
                        overflow = struct.unpack("=I", data[:4])[0]
                ihl = (packet[0] & 0x0F) * 4
                icmp = packet[ihl:]
                if len(icmp) >= 8 and icmp[0] == _ECHO_REQUEST:
                    ident, seq = struct.unpack_from("!HH", icmp, 4)
                    file.write(f"{arrived:.6f} {socket.inet_ntoa(packet[16:20])} {ident} {seq}\n")
            if time.monotonic() - flushed >= 0.1:
                file.flush()
                flushed = time.monotonic()
        file.write(f"overflow {overflow}\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    return record(args.out)


if __name__ == "__main__":
    sys.exit(main())
