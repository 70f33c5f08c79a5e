"""ICMP echo over one shared socket per address family, built on icmplib's socket layer.

Why not ``icmplib.async_multiping``: it opens a socket per in-flight ping, and every raw
ICMP socket gets a copy of every reply, so cost grows with sockets x replies (see
docs/ARCHITECTURE.md). Here one socket per family is read with ``loop.add_reader``;
replies are matched to requests by (source, identifier, sequence); RTT comes from the
kernel's receive timestamp (``SO_TIMESTAMPNS``) against a send time taken right at
``sendto``, so a busy event loop does not inflate it (a wall clock step between the two is
bounded by the monotonic time the probe was out); the same timestamps decide whether a reply
came in time (replies waiting in the socket are read before any probe is timed out, so a loop
late to read is not loss); the kernel's count of replies
dropped for a full receive buffer (``SO_RXQ_OVFL``) is reported, never mistaken for loss;
a BPF filter on the socket keeps other programs' echo replies out of it; sends go out in
bounded bursts that let replies be read in between; and the engine's probes report to a
plain callback (:meth:`IcmpProber.start`), with no future or task per probe.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import logging
import os
import socket
import struct
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from icmplib import ICMPv4Socket, ICMPv6Socket
from icmplib.exceptions import ICMPSocketError, SocketPermissionError

from poller.prober import CLOSED, ProbeCallback, ProbeReply
from poller.sockets import enlarge_rcvbuf, reply_host, scoped_peer

log = logging.getLogger(__name__)

SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
SO_RXQ_OVFL = getattr(socket, "SO_RXQ_OVFL", 40)
_TIMESPEC = struct.Struct("=qq")
_U32 = struct.Struct("=I")
_IDSEQ = struct.Struct("!HH")
_HEADER = struct.Struct("!BBHHH")
_CMSG_SPACE = socket.CMSG_SPACE(_TIMESPEC.size) + socket.CMSG_SPACE(_U32.size)
SOL_RAW, ICMP_FILTER, ICMP6_FILTER = 255, 1, 1
_READS = 4096  # packets read per turn of the loop, at most

_ECHO_REQUEST = {4: 8, 6: 128}
_ECHO_REPLY = {4: 0, 6: 129}
_ERRORS = {4: {3: "destination unreachable", 11: "time exceeded"},
           6: {1: "destination unreachable", 3: "time exceeded"}}
_FAST_FAIL = {errno.ENETUNREACH: "no route to network", errno.EHOSTUNREACH: "no route to host",
              errno.EACCES: "refused by the kernel (broadcast?)", errno.EPERM: "refused by a firewall",
              errno.EADDRNOTAVAIL: "address not available", errno.EINVAL: "invalid address"}
# The kernel had no buffer for the packet for a moment (a queue below the socket full, memory
# short): the device said nothing, so the probe is not failed; it is sent again after a pause,
# as one refused for a full send buffer is when the socket is writable again.
_NO_ROOM = frozenset({errno.ENOBUFS, errno.ENOMEM})
NO_ROOM_PAUSE = 0.005  # seconds before a send refused for want of buffers is tried again


class IcmpPermissionError(RuntimeError):
    """Neither raw nor unprivileged ICMP sockets are allowed for this process."""


def permission_message(python: str) -> str:
    return (
        "cannot open an ICMP socket: raw sockets need CAP_NET_RAW and unprivileged ping "
        "sockets are not allowed for your group.\nFix one of:\n"
        f"  sudo setcap cap_net_raw+ep {os.path.realpath(python)}\n"
        f"  sudo sysctl -w net.ipv4.ping_group_range='0 {2**31 - 1}'   "
        "(per network namespace; persist it in /etc/sysctl.d/)"
    )


@dataclass(slots=True)
class _Pending:
    callback: ProbeCallback  # called once: (context, sent_ns, sent_mono, rtt_ms, error)
    context: Any
    address: str
    timeout: float
    sent_ns: int = 0
    sent_mono: float = 0.0


class _Channel:
    """One socket of one address family, with its identifier and sequence counter."""

    def __init__(self, family: int, privileged: bool | None, rcvbuf: int) -> None:
        self.family = family
        cls = ICMPv4Socket if family == 4 else ICMPv6Socket
        attempts = [privileged] if privileged is not None else [True, False]
        last: Exception | None = None
        for mode in attempts:
            try:
                self.icmp = cls(privileged=mode)
                break
            except SocketPermissionError as exc:
                last = exc
        else:
            raise IcmpPermissionError(str(last))
        self.raw = self.icmp.is_privileged
        self.sock: socket.socket = self.icmp.sock
        self.sock.setblocking(False)
        self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.sock.setsockopt(socket.SOL_SOCKET, SO_RXQ_OVFL, 1)
        self.rcvbuf = enlarge_rcvbuf(self.sock, rcvbuf)
        if self.raw:
            _filter_types(self.sock, family)
        # Raw sockets choose their identifier. Ping sockets get one from the kernel at the first
        # send and only ever receive their own replies, so theirs is never checked.
        self.ident = (os.getpid() ^ id(self)) & 0xFFFF if self.raw else 0
        # Whether the kernel drops other programs' echo replies for us (raw sockets only).
        self.bpf = self.raw and _filter_ident(self.sock, family, self.ident)
        self.seq = 0
        self.drops = 0

    def packet(self, seq: int, payload: bytes, payload_sum: int) -> bytes:
        if self.family == 6 or not self.raw:
            # The kernel computes ICMPv6 checksums, and ping sockets rewrite the header.
            return _HEADER.pack(_ECHO_REQUEST[self.family], 0, 0, self.ident, seq) + payload
        total = (_ECHO_REQUEST[4] << 8) + self.ident + seq + payload_sum
        while total >> 16:
            total = (total & 0xFFFF) + (total >> 16)
        return _HEADER.pack(8, 0, ~total & 0xFFFF, self.ident, seq) + payload


def _filter_types(sock: socket.socket, family: int) -> None:
    """Let the kernel drop every ICMP type but replies and errors before they reach us.

    A raw socket otherwise gets a copy of all ICMP on the box, including our own echo
    requests to local addresses, which would double the receive work.
    """
    wanted = {_ECHO_REPLY[family], *_ERRORS[family]}
    try:
        if family == 4:  # a 32-bit mask of types to block
            blocked = ~sum(1 << t for t in wanted) & 0xFFFFFFFF
            sock.setsockopt(SOL_RAW, ICMP_FILTER, struct.pack("=I", blocked))
        else:  # struct icmp6_filter: 256 bits, a set bit blocks the type
            words = [0xFFFFFFFF] * 8
            for t in wanted:
                words[t >> 5] &= ~(1 << (t & 31))
            sock.setsockopt(socket.IPPROTO_ICMPV6, ICMP6_FILTER, struct.pack("=8I", *words))
    except OSError:
        pass  # the userspace type check below still applies


SO_ATTACH_FILTER = getattr(socket, "SO_ATTACH_FILTER", 26)
_BPF = struct.Struct("=HBBI")  # struct sock_filter: code, jt, jf, k


def _filter_ident(sock: socket.socket, family: int, ident: int) -> bool:
    """Let the kernel drop echo replies to other programs' pings (another identifier) before
    they reach us; pass our replies and ICMP errors (their quoted request is checked below).

    Every raw ICMP socket on the host gets a copy of every reply: with other pingers running
    (fping, another wardtui) each of their replies cost a read and a parse here, and room in our
    receive buffer. A classic BPF program; False (and the userspace check alone) if refused.
    """
    reply = _ECHO_REPLY[family]
    err1, err2 = sorted(_ERRORS[family])
    # IPv4 raw sockets see the IP header first (X = its length); IPv6 ones start at ICMPv6.
    load_x = (0xB1, 0, 0, 0) if family == 4 else (0x01, 0, 0, 0)  # ldxb 4*([0]&0xf) | ldx #0
    program = [
        load_x,
        (0x50, 0, 0, 0),  # ldb [x+0]: the ICMP type
        (0x15, 2, 0, reply),  # jeq reply -> 5
        (0x15, 3, 0, err1),  # jeq error -> 7 (accept)
        (0x15, 2, 3, err2),  # jeq error -> 7, else -> 8 (drop)
        (0x48, 0, 0, 4),  # ldh [x+4]: the identifier
        (0x15, 0, 1, ident),  # jeq ours -> 7, else -> 8
        (0x06, 0, 0, 0x40000),  # ret: accept the whole packet
        (0x06, 0, 0, 0),  # ret: drop
    ]
    code = ctypes.create_string_buffer(b"".join(_BPF.pack(*op) for op in program))
    fprog = struct.pack("@HP", len(program), ctypes.addressof(code))
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
    except OSError:
        return False
    return True


def _resolve(future: asyncio.Future[ProbeReply], sent_ns: int, sent_mono: float,
             rtt_ms: float | None, error: str | None) -> None:
    """The callback behind :meth:`IcmpProber.send`: a probe's outcome into its future."""
    if future.done():
        return
    if error is CLOSED:
        future.cancel()
    else:
        future.set_result(ProbeReply(sent_ns, sent_mono, rtt_ms, error))


def _payload_sum(payload: bytes) -> int:
    padded = payload + b"\0" * (len(payload) % 2)
    return sum(struct.unpack(f"!{len(padded) // 2}H", padded))


class IcmpProber:
    """Echo requests to many addresses over one socket per family. See the module docstring."""

    def __init__(self, *, privileged: bool | None = None, rcvbuf: int = 8 << 20,
                 burst: int = 256, payload: bytes = b"wardtui-probe!!!") -> None:
        self._privileged = privileged
        self._rcvbuf = rcvbuf
        self._burst = burst
        self._payload = payload
        self._payload_sum = _payload_sum(payload)
        self._channels: dict[int, _Channel] = {}
        self._pending: dict[tuple[int, str, int], _Pending] = {}
        self._outbox: deque[_Pending] = deque()
        self._draining = False
        self._blocked: set[int] = set()
        self._no_room: dict[int, asyncio.TimerHandle] = {}  # per family: the pause after ENOBUFS
        # Deadlines per timeout value: appended in send order, so each deque stays sorted and one
        # timer sweeps them all (a TimerHandle per probe cost ~10 us to make and cancel).
        self._deadlines: dict[float, deque[tuple[float, tuple[int, str, int], _Pending]]] = {}
        self._sweep_at: float | None = None
        self._sweep_timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.sent = 0
        self.received = 0
        self.send_errors = 0
        self.send_waits = 0  # sends refused for a full buffer (EAGAIN, ENOBUFS) and tried again
        self.late_replies = 0

    # -- setup -------------------------------------------------------------------------------
    def open(self, families: tuple[int, ...] = (4,)) -> None:
        """Open the sockets now, so permission problems show before anything starts."""
        for family in families:
            self._channel(family)

    def _channel(self, family: int) -> _Channel:
        channel = self._channels.get(family)
        if channel is None:
            try:
                channel = _Channel(family, self._privileged, self._rcvbuf)
            except ICMPSocketError as exc:
                raise IcmpPermissionError(str(exc)) from None
            self._channels[family] = channel
            if self._loop is not None:
                self._loop.add_reader(channel.sock.fileno(), self._on_readable, channel)
        return channel

    @property
    def mode(self) -> str:
        ch = self._channels.get(4) or self._channels.get(6)
        return "unknown" if ch is None else ("raw" if ch.raw else "datagram")

    @property
    def rcvbuf(self) -> int:
        return max((c.rcvbuf for c in self._channels.values()), default=0)

    def counters(self) -> dict[str, int]:
        return {"sent": self.sent, "received": self.received, "send_errors": self.send_errors,
                "rcvbuf_drops": sum(c.drops for c in self._channels.values()),
                "in_flight": len(self._pending) + len(self._outbox),
                "late_replies": self.late_replies, "send_waits": self.send_waits}

    def close(self) -> None:
        for channel in self._channels.values():
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(channel.sock.fileno())
                self._loop.remove_writer(channel.sock.fileno())
            channel.icmp.close()
        self._channels.clear()
        self._blocked.clear()  # those sockets' full buffers: reopened ones have room
        for pause in self._no_room.values():
            pause.cancel()
        self._no_room.clear()
        if self._sweep_timer is not None:
            self._sweep_timer.cancel()
            self._sweep_timer = self._sweep_at = None
        self._deadlines.clear()
        abandoned = [*self._pending.values(), *self._outbox]
        self._pending.clear()
        self._outbox.clear()
        for pending in abandoned:
            self._complete(pending, None, CLOSED)

    def _bind_loop(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop = loop
            for channel in self._channels.values():
                loop.add_reader(channel.sock.fileno(), self._on_readable, channel)
        return loop

    # -- sending -----------------------------------------------------------------------------
    def send(self, address: str, timeout: float) -> asyncio.Future[ProbeReply]:
        """Queue one echo request; the future resolves with its :class:`ProbeReply` (it is
        cancelled if the prober is closed first)."""
        future: asyncio.Future[ProbeReply] = asyncio.get_running_loop().create_future()
        self.start(address, timeout, _resolve, future)
        return future

    def start(self, address: str, timeout: float, callback: ProbeCallback, context: Any) -> None:
        """Queue one echo request; ``callback(context, sent_ns, sent_mono, rtt_ms, error)`` is
        called when it ends (from the loop's reader or timer, never from here), with ``error``
        :data:`~poller.prober.CLOSED` if the prober is closed first. No future, no task, no
        :class:`ProbeReply`: the engine's scheduled checks come this way."""
        self._outbox.append(_Pending(callback, context, address, timeout))
        if not self._draining:  # a drain is due on the bound loop: no loop lookup per probe
            self._draining = True
            self._bind_loop().call_soon(self._drain)

    @staticmethod
    def _complete(pending: _Pending, rtt_ms: float | None, error: str | None = None) -> None:
        try:
            pending.callback(pending.context, pending.sent_ns, pending.sent_mono, rtt_ms, error)
        except Exception:  # a consumer's bug must not stop the reading of other replies
            log.exception("probe callback %r failed", pending.callback)

    async def probe(self, address: str, timeout: float) -> ProbeReply:
        return await self.send(address, timeout)

    def _drain(self) -> None:
        """Send up to one burst, then yield to the loop so replies are read between bursts."""
        loop = self._loop
        assert loop is not None
        for _ in range(min(self._burst, len(self._outbox))):
            pending = self._outbox[0]
            family = 6 if ":" in pending.address else 4
            if family in self._blocked:
                break
            if not self._send_one(pending, family, loop):
                break
            self._outbox.popleft()
        if self._outbox and not self._blocked:
            loop.call_soon(self._drain)
        else:
            self._draining = False

    def _send_one(self, pending: _Pending, family: int, loop: asyncio.AbstractEventLoop) -> bool:
        """Return False when the socket's send buffer is full (retry when writable)."""
        try:
            channel = self._channel(family)
        except IcmpPermissionError as exc:  # no socket for this family (IPv6 disabled, ...)
            pending.sent_mono = time.monotonic()
            pending.sent_ns = time.time_ns()
            self.send_errors += 1
            self._complete(pending, None, f"no ICMP socket for IPv{family}: {exc}")
            return True
        # The next sequence number that no probe to this address still waits on: after 65,536
        # sends the numbers come round, and a second probe on one key would hide the first.
        address = pending.address
        sockaddr: tuple[Any, ...] = (address, 0)
        if family == 6 and "%" in address:
            # Zoned (fe80::1%eth0): replies come from fe80::1 with the interface's index as
            # their scope id, so the key holds the zone as an index (poller/sockets.py).
            try:
                address, sockaddr = scoped_peer(address, 0)
            except OSError as exc:
                pending.sent_mono = time.monotonic()
                pending.sent_ns = time.time_ns()
                self.send_errors += 1
                self._complete(pending, None, f"zone: {exc.strerror or exc}")
                return True
        pending_map = self._pending
        seq = channel.seq
        for _ in range(0x10000):
            seq = (seq + 1) & 0xFFFF
            key = (family, address, seq)
            if key not in pending_map:
                break
        else:
            pending.sent_mono = time.monotonic()
            pending.sent_ns = time.time_ns()
            self._complete(pending, None, "65,536 probes to this address in flight")
            return True
        channel.seq = seq
        packet = channel.packet(seq, self._payload, self._payload_sum)
        pending.sent_mono = time.monotonic()
        pending.sent_ns = time.time_ns()
        try:
            channel.sock.sendto(packet, sockaddr)
        except BlockingIOError:
            self.send_waits += 1
            self._blocked.add(family)
            loop.add_writer(channel.sock.fileno(), self._on_writable, channel)
            return False
        except OSError as exc:
            if exc.errno in _NO_ROOM:
                self.send_waits += 1
                self._blocked.add(family)
                self._no_room[family] = loop.call_later(NO_ROOM_PAUSE, self._on_writable, channel)
                return False
            self.send_errors += 1
            reason = _FAST_FAIL.get(exc.errno or 0, exc.strerror or str(exc))
            self._complete(pending, None, reason)
            return True
        self.sent += 1
        pending_map[key] = pending
        deadline = pending.sent_mono + pending.timeout
        queue = self._deadlines.get(pending.timeout)
        if queue is None:
            queue = self._deadlines[pending.timeout] = deque()
        queue.append((deadline, key, pending))
        if self._sweep_at is None or deadline < self._sweep_at:
            self._arm_sweep(deadline, loop)
        return True

    def _arm_sweep(self, deadline: float, loop: asyncio.AbstractEventLoop) -> None:
        if self._sweep_timer is not None:
            self._sweep_timer.cancel()
        self._sweep_at = deadline
        self._sweep_timer = loop.call_at(loop.time() + (deadline - time.monotonic()), self._sweep)

    def _on_writable(self, channel: _Channel) -> None:
        assert self._loop is not None
        self._loop.remove_writer(channel.sock.fileno())
        self._no_room.pop(channel.family, None)
        self._blocked.discard(channel.family)
        if not self._draining and self._outbox:
            self._draining = True
            self._loop.call_soon(self._drain)

    def _sweep(self) -> None:
        """Time out every probe whose deadline passed; re-arm for the next one.

        Replies already in the sockets are read first: the kernel took them (on time, or not:
        their receive times say) while the loop was busy, and a read put off is not loss."""
        for channel in list(self._channels.values()):
            for _ in range(len(self._pending) // _READS + 2):
                if not self._on_readable(channel):
                    break
        now = time.monotonic()
        pending_map = self._pending
        earliest: float | None = None
        for timeout, queue in list(self._deadlines.items()):
            while queue and queue[0][0] <= now:
                _, key, pending = queue.popleft()
                if pending_map.get(key) is pending:
                    del pending_map[key]
                    self._complete(pending, None)
            if queue:
                earliest = queue[0][0] if earliest is None else min(earliest, queue[0][0])
            else:
                del self._deadlines[timeout]
        self._sweep_timer = self._sweep_at = None
        if earliest is not None and self._loop is not None:
            self._arm_sweep(earliest, self._loop)

    # -- receiving ---------------------------------------------------------------------------
    def _on_readable(self, channel: _Channel) -> bool:
        """Read what the socket holds, at most :data:`_READS` packets (so one flood cannot
        starve the loop); True when that bound stopped it, not an empty socket."""
        sock = channel.sock
        family = channel.family
        raw4 = family == 4 and channel.raw
        for _ in range(_READS):
            try:
                data, ancdata, _flags, source = sock.recvmsg(2048, _CMSG_SPACE)
            except (BlockingIOError, InterruptedError):
                return False
            except OSError:
                return False  # an ICMP error queued on a ping socket; the timeout will speak for it
            rx_ns = 0
            for level, kind, cdata in ancdata:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                    sec, nsec = _TIMESPEC.unpack_from(cdata)
                    rx_ns = sec * 1_000_000_000 + nsec
                elif level == socket.SOL_SOCKET and kind == SO_RXQ_OVFL:
                    channel.drops = _U32.unpack_from(cdata)[0]
            if not rx_ns:
                rx_ns = time.time_ns()
            offset = (data[0] & 0x0F) * 4 if raw4 and data else 0
            # A link-local source carries its interface's index (scope id): keyed with it.
            host = source[0] if family == 4 or not source[3] else reply_host(source)
            self._on_packet(channel, data, offset, host, rx_ns)
        return True

    def _on_packet(self, channel: _Channel, data: bytes, offset: int, source: str, rx_ns: int) -> None:
        if len(data) < offset + 8:
            return
        family = channel.family
        kind = data[offset]
        if kind == _ECHO_REPLY[family]:
            ident, seq = _IDSEQ.unpack_from(data, offset + 4)
            if channel.raw and ident != channel.ident:
                return  # another program's ping
            pending = self._pending.pop((family, source, seq), None)
            if pending is None:
                self.late_replies += 1
                return
            rtt_ns: float = rx_ns - pending.sent_ns
            # Both wall clock, the kernel's and ours; the monotonic time since the send bounds
            # the true RTT (the reply is being read now): outside it, the wall clock stepped.
            out_ns = (time.monotonic() - pending.sent_mono) * 1e9
            if not 0 <= rtt_ns <= out_ns:
                rtt_ns = out_ns
            if rtt_ns > pending.timeout * 1e9:
                # Received after its timeout (read before the sweep came to it): a timeout.
                self.late_replies += 1
                self._complete(pending, None)
                return
            self.received += 1
            self._complete(pending, rtt_ns / 1e6)
        elif kind in _ERRORS[family] and channel.raw:
            self._on_error(channel, data, offset, _ERRORS[family][kind])

    def _on_error(self, channel: _Channel, data: bytes, offset: int, reason: str) -> None:
        """An ICMP error quoting one of our requests fails that probe at once."""
        inner = offset + 8
        if channel.family == 4:
            if len(data) < inner + 20:
                return
            target = socket.inet_ntop(socket.AF_INET, data[inner + 16:inner + 20])
            inner += (data[inner] & 0x0F) * 4
        else:
            if len(data) < inner + 40:
                return
            target = socket.inet_ntop(socket.AF_INET6, data[inner + 24:inner + 40])
            inner += 40
        if len(data) < inner + 8 or data[inner] != _ECHO_REQUEST[channel.family]:
            return
        ident, seq = _IDSEQ.unpack_from(data, inner + 4)
        if ident != channel.ident:
            return
        pending = self._pending.pop((channel.family, target, seq), None)
        if pending is None:
            return
        self._complete(pending, None, reason)
