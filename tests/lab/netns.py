"""A network-namespace test lab: healthy, dead, lossy, delayed and unroutable hosts.

Layout (names unique per run, ``wtl<pid>-<n>`` + ``m``/``h``/``d``)::

    M (monitor) --veth 10.250.0.1/30 <-> 10.250.0.2/30-- H (hosts)
        10.99.1.0/24 healthy   (local route on lo: every address answers)
        10.99.2.0/24 dead      (local route, echo-requests dropped by nft)
        10.99.3.0/24 lossy     (local route, nft drops 10 % of echo-requests at random)
        @blocked nft set       (lab.block(addr) / lab.unblock(addr) at runtime)
    M --veth 10.250.0.5/30 <-> 10.250.0.6/30-- D (delay)
        10.99.4.1 on lo, kernel echo off, echo_responder.py answers after 20 ms
    10.99.200.0/24: no route in M, so probing it fails with ENETUNREACH at once.

M has no default route: nothing sent from M can leave the machine. Every probing process
must run inside M (``lab.run`` / ``lab.popen``). The veth pairs are created directly
inside the namespaces, so the root namespace never sees a lab interface or address.
"""

from __future__ import annotations

import ipaddress
import itertools
import os
import select
import subprocess
import sys
from pathlib import Path
from types import TracebackType
from typing import Any

HEALTHY_NET = "10.99.1.0/24"
DEAD_NET = "10.99.2.0/24"
LOSSY_NET = "10.99.3.0/24"
DELAYED = "10.99.4.1"
NO_ROUTE_NET = "10.99.200.0/24"
LOSS_PCT = 10
RESPONDER = Path(__file__).with_name("echo_responder.py")
_counter = itertools.count()


class LabError(RuntimeError):
    """A lab command failed; the message names the command and its stderr."""


def sh(*cmd: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` (check=True) and turn a failure into a LabError that says what failed."""
    try:
        return subprocess.run(list(cmd), check=True, capture_output=True, text=True, input=input)
    except subprocess.CalledProcessError as exc:
        raise LabError(f"lab command failed (exit {exc.returncode}): {' '.join(cmd)}\n"
                       f"{exc.stderr.strip()}") from exc


def hosts(network: str, count: int) -> list[str]:
    """The first ``count`` host addresses of ``network``."""
    return [str(a) for a in itertools.islice(ipaddress.ip_network(network).hosts(), count)]


class Lab:
    """Builds the namespaces on ``__enter__`` and removes all of them on ``__exit__``."""

    healthy_net = HEALTHY_NET
    dead_net = DEAD_NET
    lossy_net = LOSSY_NET
    delayed = DELAYED
    no_route_net = NO_ROUTE_NET
    loss_pct = LOSS_PCT

    def __init__(self, delay_ms: float = 20.0, prefix: str | None = None) -> None:
        self.delay_ms = delay_ms
        # The counter keeps two labs of one process apart; the pid keeps runs apart.
        self.prefix = prefix or f"wtl{os.getpid()}-{next(_counter)}"
        self.m, self.h, self.d = (f"{self.prefix}{s}" for s in "mhd")
        self._created: list[str] = []
        self._responder: subprocess.Popen[str] | None = None

    # ----- public helpers -----------------------------------------------------------
    def healthy(self, count: int, start: int = 0) -> list[str]:
        return hosts(HEALTHY_NET, start + count)[start:]

    def dead(self, count: int) -> list[str]:
        return hosts(DEAD_NET, count)

    def lossy(self, count: int) -> list[str]:
        return hosts(LOSSY_NET, count)

    def no_route(self, count: int = 1) -> list[str]:
        return hosts(NO_ROUTE_NET, count)

    def block(self, address: str) -> None:
        """Drop echo-requests to ``address`` from now on (H's addresses only)."""
        self._check_in_h(address)
        sh("ip", "netns", "exec", self.h, "nft", "add", "element", "ip", "wardlab", "blocked",
           f"{{ {address} }}")

    def unblock(self, address: str) -> None:
        self._check_in_h(address)
        sh("ip", "netns", "exec", self.h, "nft", "delete", "element", "ip", "wardlab", "blocked",
           f"{{ {address} }}")

    def command(self, cmd: list[str]) -> list[str]:
        """``cmd`` wrapped to run inside the monitor namespace."""
        return ["ip", "netns", "exec", self.m, *cmd]

    def run(self, cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[Any]:
        """``subprocess.run`` inside M (same keyword arguments)."""
        return subprocess.run(self.command(cmd), **kwargs)

    def popen(self, cmd: list[str], **kwargs: Any) -> subprocess.Popen[Any]:
        """``subprocess.Popen`` inside M; ``ip netns exec`` execs, so the pid is the command's."""
        return subprocess.Popen(self.command(cmd), **kwargs)

    # ----- context manager --------------------------------------------------------
    def __enter__(self) -> Lab:
        try:
            self._build()
        except BaseException:
            self.close()  # never leave half a lab behind
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Kill the responder and delete every namespace we made, collecting all errors."""
        errors: list[str] = []
        if self._responder is not None:
            if self._responder.poll() is None:
                self._responder.terminate()
                try:
                    self._responder.wait(timeout=3)
                except subprocess.TimeoutExpired:
                    self._responder.kill()
                    self._responder.wait(timeout=3)
            self._responder = None
        for ns in reversed(self._created):
            # Deleting a namespace also destroys its veth ends, nft tables and routes.
            result = subprocess.run(["ip", "netns", "del", ns], capture_output=True, text=True)
            if result.returncode != 0:
                errors.append(f"ip netns del {ns}: {result.stderr.strip()}")
        self._created.clear()
        if errors:
            raise LabError("lab teardown incomplete:\n" + "\n".join(errors))

    # ----- construction -----------------------------------------------------------
    def _check_in_h(self, address: str) -> None:
        ip = ipaddress.ip_address(address)
        if not any(ip in ipaddress.ip_network(n) for n in (HEALTHY_NET, DEAD_NET, LOSSY_NET)):
            raise ValueError(f"{address} is not served by the hosts namespace")

    def _ns(self, ns: str, *cmd: str) -> None:
        sh("ip", "-n", ns, *cmd)

    def _build(self) -> None:
        existing = sh("ip", "netns", "list").stdout.split()
        clash = [ns for ns in (self.m, self.h, self.d) if ns in existing]
        if clash:
            raise LabError(f"namespaces already exist (stale lab?): {clash}")
        for ns in (self.m, self.h, self.d):
            sh("ip", "netns", "add", ns)
            self._created.append(ns)
            self._ns(ns, "link", "set", "lo", "up")
        # Veths are born inside M with the peer moved straight into H/D.
        self._ns(self.m, "link", "add", "toh", "type", "veth", "peer", "name", "tom",
                 "netns", self.h)
        self._ns(self.m, "link", "add", "tod", "type", "veth", "peer", "name", "tom",
                 "netns", self.d)
        for ns, dev, addr in ((self.m, "toh", "10.250.0.1/30"), (self.h, "tom", "10.250.0.2/30"),
                              (self.m, "tod", "10.250.0.5/30"), (self.d, "tom", "10.250.0.6/30")):
            self._ns(ns, "addr", "add", addr, "dev", dev)
            self._ns(ns, "link", "set", dev, "up")
        # M: only the lab's prefixes, no default route (NO_ROUTE_NET deliberately absent).
        for net in (HEALTHY_NET, DEAD_NET, LOSSY_NET):
            self._ns(self.m, "route", "add", net, "via", "10.250.0.2")
        self._ns(self.m, "route", "add", f"{DELAYED}/32", "via", "10.250.0.6")
        # H: a local route makes the kernel answer for every address of the prefix.
        for net in (HEALTHY_NET, DEAD_NET, LOSSY_NET):
            self._ns(self.h, "route", "add", "local", net, "dev", "lo")
        sh("ip", "netns", "exec", self.h, "nft", "-f", "-", input=self._ruleset())
        # D: the kernel must not answer; the userspace responder does, late.
        self._ns(self.d, "addr", "add", f"{DELAYED}/32", "dev", "lo")
        sh("ip", "netns", "exec", self.d, "sysctl", "-qw", "net.ipv4.icmp_echo_ignore_all=1")
        self._start_responder()

    @staticmethod
    def _ruleset() -> str:
        return f"""
table ip wardlab {{
    set blocked {{ type ipv4_addr; }}
    chain input {{
        type filter hook input priority 0; policy accept;
        icmp type echo-request ip daddr @blocked drop
        icmp type echo-request ip daddr {DEAD_NET} drop
        icmp type echo-request ip daddr {LOSSY_NET} numgen random mod 100 < {LOSS_PCT} drop
    }}
}}
"""

    def _start_responder(self) -> None:
        self._responder = subprocess.Popen(
            ["ip", "netns", "exec", self.d, sys.executable, str(RESPONDER),
             "--address", DELAYED, "--delay-ms", str(self.delay_ms)],
            # stderr inherited: an undrained pipe could fill up and stall the responder.
            stdout=subprocess.PIPE, text=True)
        assert self._responder.stdout is not None
        # Wait for "ready" (socket bound) so no test races the responder's start.
        ready, _, _ = select.select([self._responder.stdout], [], [], 10)
        line = self._responder.stdout.readline().strip() if ready else ""
        if line != "ready":
            self._responder.kill()
            self._responder.wait(timeout=5)
            raise LabError(f"echo responder did not start (got {line!r}); see its stderr above")
