"""Real SNMP agents on loopback for integration tests and benchmarks: Debian's snmpd and snmpsim.

Both run as child processes in their own process group, with every file they write (config,
persistent state, index cache, log) in a private temporary directory, and bind only to
127.x.y.z addresses. They are stopped and their directory removed on ``stop()``/``close()``,
on leaving a ``with`` block, when garbage collected, and at interpreter exit.

The credentials an agent accepts are exposed in the shape of wardtui's credentials file
(:mod:`poller.credentials`): ``agent.v2c_community``, ``agent.v3_users`` and
``agent.credentials()``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import ipaddress
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from tests.ports import free_port

SYS_UPTIME = "1.3.6.1.2.1.1.3.0"
SNMP_ENGINE_BOOTS = "1.3.6.1.6.3.10.2.1.2.0"
SNMP_ENGINE_ID = "1.3.6.1.6.3.10.2.1.1.0"

# wardtui's protocol names (poller/credentials.py) -> what net-snmp's createUser and tools take.
NET_SNMP_AUTH = {"md5": "MD5", "sha": "SHA", "sha224": "SHA-224", "sha256": "SHA-256",
                 "sha384": "SHA-384", "sha512": "SHA-512"}
NET_SNMP_PRIV = {"des": "DES", "aes": "AES", "aes192": "AES-192", "aes256": "AES-256",
                 "aes192c": "AES-192-C", "aes256c": "AES-256-C"}
# "3des" is accepted by wardtui but net-snmp 5.9 has no 3DES: no agent here can offer it.

V2C_COMMUNITY = "wardtui-lab-ro"

# Name -> credential entry, as in a credentials file. Keys are >= 8 characters (RFC 3414).
DEFAULT_V3_USERS: dict[str, dict[str, Any]] = {
    "lab-sha": dict(version=3, user="wt-sha", auth_protocol="sha", auth_key="auth-sha-key"),
    "lab-sha-aes": dict(version=3, user="wt-sha-aes", auth_protocol="sha", auth_key="auth-sha-key",
                        priv_protocol="aes", priv_key="priv-aes-key"),
    "lab-sha256-aes": dict(version=3, user="wt-sha256-aes", auth_protocol="sha256",
                           auth_key="auth-sha256-key", priv_protocol="aes",
                           priv_key="priv-aes-key"),
    "lab-sha512-aes256": dict(version=3, user="wt-sha512-aes256", auth_protocol="sha512",
                              auth_key="auth-sha512-key", priv_protocol="aes256",
                              priv_key="priv-aes256-key"),
    # SHA-1 (20-byte key) with AES-256 needs key extension: net-snmp uses Blumenthal's.
    "lab-sha-aes256": dict(version=3, user="wt-sha-aes256", auth_protocol="sha",
                           auth_key="auth-sha-key", priv_protocol="aes256",
                           priv_key="priv-aes256-key"),
    "lab-md5-des": dict(version=3, user="wt-md5-des", auth_protocol="md5", auth_key="auth-md5-key",
                        priv_protocol="des", priv_key="priv-des-key"),
}


class AgentError(RuntimeError):
    """An agent could not be started or controlled; the message carries the log tail."""


# -- small helpers --------------------------------------------------------------------------

def require_loopback(address: str) -> str:
    """Return ``address`` if it is an IPv4 loopback address (127/8), else raise ValueError."""
    if not ipaddress.IPv4Address(address).is_loopback:
        raise ValueError(f"{address} is not a 127.x.y.z address: lab agents bind to loopback only")
    return address


def free_udp_port(host: str = "127.0.0.1") -> int:
    """A UDP port that is free on ``host`` right now (not the kernel's pick: see tests/ports.py)."""
    return free_port(require_loopback(host))


def loopback_addresses(count: int, first: str = "127.0.1.1") -> list[str]:
    """``count`` consecutive 127/8 addresses from ``first``, skipping x.y.z.0 and x.y.z.255."""
    out: list[str] = []
    current = int(ipaddress.IPv4Address(require_loopback(first)))
    while len(out) < count:
        address = ipaddress.IPv4Address(current)
        if not address.is_loopback:
            raise ValueError(f"{count} addresses from {first} run past 127.255.255.255")
        if current & 0xFF not in (0, 255):
            out.append(str(address))
        current += 1
    return out


def net_snmp_auth_args(credential: Mapping[str, Any]) -> list[str]:
    """net-snmp command-line options for a credentials-file entry (v2c or v3)."""
    if str(credential.get("version")) in ("2c", "2"):
        return ["-v2c", "-c", str(credential["community"])]
    if credential.get("auth_protocol") == "none":
        return ["-v3", "-u", str(credential["user"]), "-l", "noAuthNoPriv"]
    args = ["-v3", "-u", str(credential["user"]),
            "-a", NET_SNMP_AUTH[str(credential["auth_protocol"])],
            "-A", str(credential["auth_key"])]
    if credential.get("priv_protocol"):
        return [*args, "-l", "authPriv", "-x", NET_SNMP_PRIV[str(credential["priv_protocol"])],
                "-X", str(credential["priv_key"])]
    return [*args, "-l", "authNoPriv"]


def _parse_oq(text: str) -> dict[str, str]:
    """Parse ``-On -Oq -Ot`` output (``.1.3.6... value``) into {oid without leading dot: value}."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        oid, _, value = line.partition(" ")
        value = value.strip()
        # noSuchObject/noSuchInstance/endOfMibView: absent, not a value (snmpbulkwalk prints
        # endOfMibView under the last OID it got, which would overwrite that OID's value)
        if oid.startswith(".") and not value.startswith(_NET_SNMP_EXCEPTIONS):
            values[oid[1:]] = value.strip('"')
    return values


_NET_SNMP_EXCEPTIONS = ("No Such Object", "No Such Instance", "No more variables")


def _run_tool(tool: str, host: str, port: int, oids: Sequence[str], credential: Mapping[str, Any],
              timeout: float, retries: int, netns: str | None = None) -> dict[str, str] | None:
    cmd = [tool, *net_snmp_auth_args(credential), "-On", "-Oq", "-Ot", "-t", str(timeout),
           "-r", str(retries), f"udp:{require_loopback(host)}:{port}", *oids]
    if netns:
        cmd = ["ip", "netns", "exec", netns, *cmd]
    budget = timeout * (retries + 1) * max(1, len(oids)) + 10
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=budget, check=False)
    if done.returncode != 0:
        if "Timeout" in done.stderr or "No Response" in done.stderr:
            return None
        raise AgentError(f"{tool} failed ({done.returncode}): {done.stderr.strip()}")
    return _parse_oq(done.stdout)


def snmpget(host: str, port: int, oids: Sequence[str], credential: Mapping[str, Any], *,
            timeout: float = 0.5, retries: int = 0, netns: str | None = None) -> dict[str, str] | None:
    """GET ``oids`` with net-snmp's ``snmpget``: {oid: value} (TimeTicks raw), None on timeout.
    With ``netns``, from inside that network namespace (the test's own)."""
    return _run_tool("snmpget", host, port, oids, credential, timeout, retries, netns)


def snmpwalk(host: str, port: int, oid: str, credential: Mapping[str, Any], *,
             timeout: float = 0.5, retries: int = 0) -> dict[str, str] | None:
    """Walk ``oid`` with ``snmpbulkwalk`` (``snmpwalk`` for v1): {oid: value}, None on timeout."""
    return _run_tool("snmpbulkwalk", host, port, [oid], credential, timeout, retries)


def write_credentials_file(path: str | Path, credentials: Mapping[str, Mapping[str, Any]]) -> Path:
    """Write credentials-file entries as YAML, readable by its owner only (wardtui insists)."""
    import yaml

    target = Path(path)
    target.write_text(yaml.safe_dump({n: dict(e) for n, e in credentials.items()},
                                     sort_keys=False))
    target.chmod(0o600)
    return target


def snmpd_missing() -> list[str]:
    """What this machine lacks to run :class:`SnmpdAgent` (empty: nothing)."""
    return [f"'{tool}' not found on PATH (Debian packages snmpd, snmp)"
            for tool in ("snmpd", "snmpget", "snmpbulkwalk") if shutil.which(tool) is None]


def snmpsim_missing() -> list[str]:
    """What this machine lacks to run :class:`SnmpsimAgent` (empty: nothing)."""
    missing = [f"'{tool}' not found on PATH (Debian package snmp)"
               for tool in ("snmpget", "snmpbulkwalk") if shutil.which(tool) is None]
    for module in ("snmpsim", "pysmi"):
        if importlib.util.find_spec(module) is None:
            missing.append(f"Python package {module!r} not installed")
    if snmpsim_executable() is None:
        missing.append("'snmpsim-command-responder' not found")
    return missing


# -- process lifecycle shared by both agents ------------------------------------------------

@dataclass
class _Owned:
    """What an agent must release; held by a finalizer so cleanup never needs the agent."""

    workdir: Path | None = None
    remove_workdir: bool = True
    process: subprocess.Popen[bytes] | None = None
    log_file: Any = None
    children: list[int] = field(default_factory=list)


def _kill(owned: _Owned, grace: float = 5.0) -> None:
    process, owned.process = owned.process, None
    if process is not None and process.poll() is None:
        for sig in (signal.SIGTERM, signal.SIGCONT):  # CONT: a paused agent must see the TERM
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(grace)
    if process is not None:  # a group may outlive its leader; make sure nothing is left
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
    if owned.log_file is not None:
        owned.log_file.close()
        owned.log_file = None


def _release(owned: _Owned) -> None:
    _kill(owned)
    if owned.workdir is not None and owned.remove_workdir:
        shutil.rmtree(owned.workdir, ignore_errors=True)
    owned.workdir = None


def _raise_nofile_limit() -> None:
    """In the child: lift the soft open-files limit to the hard one (one socket per address)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class _Agent:
    """Start/stop/pause of one child process group, readiness by a real ``snmpget``."""

    name = "agent"
    start_timeout = 15.0
    netns: str | None = None  # run inside this network namespace (one the test made)

    def __init__(self, addresses: Iterable[str], port: int | None, workdir: str | Path | None) -> None:
        self.addresses: tuple[str, ...] = tuple(require_loopback(a) for a in addresses)
        if not self.addresses:
            raise ValueError("at least one 127.x.y.z address is needed")
        self.port = port if port is not None else free_udp_port(self.addresses[0])
        if workdir is None:
            path, remove = Path(tempfile.mkdtemp(prefix=f"wardtui-{self.name}-")), True
        else:
            path, remove = Path(workdir), False
            path.mkdir(parents=True, exist_ok=True)
        self.workdir = path
        self.log_path = path / f"{self.name}.log"
        self._owned = _Owned(workdir=path, remove_workdir=remove)
        self._finalizer = weakref.finalize(self, _release, self._owned)
        self.paused = False
        self.started_at: float | None = None  # time.time() just before the process was spawned
        self.startup_seconds: float | None = None  # spawn -> first answer, last start

    # subclasses provide these
    def _command(self) -> list[str]:
        raise NotImplementedError

    def _environment(self) -> dict[str, str]:
        return dict(os.environ)

    def _probe_credential(self) -> Mapping[str, Any]:
        raise NotImplementedError

    @property
    def pid(self) -> int | None:
        process = self._owned.process
        return process.pid if process is not None else None

    @property
    def running(self) -> bool:
        process = self._owned.process
        return process is not None and process.poll() is None

    def log_tail(self, lines: int = 25) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:]) or "(empty log)"

    def answers(self, address: str | None = None, timeout: float = 0.3) -> bool:
        """Whether the agent answers a GET of sysUpTime on ``address`` (default: the first)."""
        got = snmpget(address or self.addresses[0], self.port, [SYS_UPTIME],
                      self._probe_credential(), timeout=timeout, netns=self.netns)
        return bool(got)

    def sys_uptime(self, address: str | None = None, timeout: float = 0.5) -> int | None:
        """sysUpTime.0 in hundredths of a second, None if there is no answer."""
        got = snmpget(address or self.addresses[0], self.port, [SYS_UPTIME],
                      self._probe_credential(), timeout=timeout, netns=self.netns)
        return int(got[SYS_UPTIME]) if got and SYS_UPTIME in got else None

    def start(self) -> None:
        """Spawn the agent and return once it answers on its first and last address."""
        if self.running:
            raise AgentError(f"{self.name} on port {self.port} is already running")
        if self._owned.workdir is None:
            raise AgentError(f"{self.name} was closed; make a new one")
        if self.netns is None:  # inside a namespace of the test's own, the ports are its own too
            self._check_port_free()
        self._prepare()
        self._owned.log_file = open(self.workdir / f"{self.name}.stdout", "ab")  # noqa: SIM115
        self.started_at = time.time()
        command = self._command()
        if self.netns is not None:  # `ip netns exec` execs: the pid and group are the agent's
            command = ["ip", "netns", "exec", self.netns, *command]
        self._owned.process = subprocess.Popen(
            command, env=self._environment(), cwd=self.workdir,
            stdin=subprocess.DEVNULL, stdout=self._owned.log_file, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=_raise_nofile_limit)
        self.paused = False
        try:
            self._wait_ready(time.monotonic() + self.start_timeout)
        except BaseException:
            _kill(self._owned)
            raise
        self.startup_seconds = time.time() - self.started_at

    def _prepare(self) -> None:
        """Write config/data files before spawning (subclasses)."""

    def _check_port_free(self) -> None:
        # snmpd (and pysnmp) set SO_REUSEADDR: a second agent would bind the same UDP port
        # without error and the two would share its requests. A plain bind detects the owner.
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if len(self.addresses) + 64 > hard:
            raise AgentError(f"{len(self.addresses)} addresses need as many sockets; the open-files "
                             f"limit is {soft} (hard {hard}): raise it (ulimit -n)")
        for address in self.addresses:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                try:
                    probe.bind((address, self.port))
                except OSError as exc:
                    raise AgentError(f"{self.name}: UDP {address}:{self.port} is in use "
                                     f"({exc.strerror})") from None

    def _wait_ready(self, deadline: float) -> None:
        pending = list(dict.fromkeys((self.addresses[0], self.addresses[-1])))
        while pending:
            process = self._owned.process
            assert process is not None
            if process.poll() is not None:
                raise AgentError(f"{self.name} exited with status {process.returncode} while "
                                 f"starting on port {self.port}; {self._describe_log()}")
            if time.monotonic() > deadline:
                raise AgentError(f"{self.name} did not answer on {pending[0]}:{self.port} within "
                                 f"{self.start_timeout:.0f} s; {self._describe_log()}")
            if self.answers(pending[0], timeout=0.2):
                pending.pop(0)
            else:
                time.sleep(0.05)

    def _describe_log(self) -> str:
        out = self.workdir / f"{self.name}.stdout"
        extra = out.read_text(errors="replace").strip()[-2000:] if out.exists() else ""
        return (f"log {self.log_path} ends with:\n{self.log_tail()}"
                + (f"\nstdout/stderr:\n{extra}" if extra else ""))

    def stop(self) -> None:
        """Stop the agent (TERM to its process group, KILL after 5 s); files are kept."""
        _kill(self._owned)
        self.paused = False

    def close(self) -> None:
        """Stop the agent and remove its working directory (if it created it)."""
        self._finalizer()

    def pause(self) -> None:
        """SIGSTOP the agent: it keeps its sockets but answers nothing (a hung device)."""
        self._signal(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        """SIGCONT a paused agent; requests queued in its socket buffer are then answered."""
        self._signal(signal.SIGCONT)
        self.paused = False

    def _signal(self, sig: signal.Signals) -> None:
        if not self.running:
            raise AgentError(f"{self.name} on port {self.port} is not running")
        assert self._owned.process is not None
        os.killpg(self._owned.process.pid, sig)

    def __enter__(self) -> _Agent:
        if not self.running:
            self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "paused" if self.paused else "running" if self.running else "stopped"
        shown = ",".join(self.addresses[:3]) + (",..." if len(self.addresses) > 3 else "")
        return f"<{type(self).__name__} {shown}:{self.port} {state}>"


# -- Debian net-snmp snmpd ------------------------------------------------------------------

class SnmpdAgent(_Agent):
    """Debian's net-snmp ``snmpd`` in the foreground with a private config and state.

    Serves the host's real MIB-II (system, interfaces, ifXTable with 64-bit counters) to the
    v2c read-only ``community`` and to ``v3_users`` (credentials-file entries; default:
    :data:`DEFAULT_V3_USERS`), on every address in ``addresses`` at ``port``.

    The persistent directory survives ``restart()``: the engineID stays the same and
    snmpEngineBoots goes up by one at each start, as on a real device that reboots.
    """

    name = "snmpd"
    start_timeout = 20.0

    def __init__(self, addresses: Iterable[str] = ("127.0.0.1",), port: int | None = None, *,
                 community: str = V2C_COMMUNITY,
                 v3_users: Mapping[str, Mapping[str, Any]] | None = None,
                 workdir: str | Path | None = None, start_timeout: float | None = None,
                 netns: str | None = None) -> None:
        addresses = [require_loopback(a) for a in addresses]  # before anything else
        self.netns = netns
        if shutil.which("snmpd") is None:
            raise AgentError("snmpd not found on PATH (Debian package: snmpd)")
        users = DEFAULT_V3_USERS if v3_users is None else v3_users
        for name, entry in users.items():
            self._check_user(name, entry)
        super().__init__(addresses, port, workdir)
        self.v2c_community = community
        self.v3_users: dict[str, dict[str, Any]] = {n: dict(e) for n, e in users.items()}
        self.config_path = self.workdir / "snmpd.conf"
        self.persistent_dir = self.workdir / "persist"
        if start_timeout is not None:
            self.start_timeout = start_timeout

    @staticmethod
    def _check_user(name: str, entry: Mapping[str, Any]) -> None:
        if entry.get("auth_protocol") == "none" and not entry.get("priv_protocol"):
            return  # noAuthNoPriv
        if entry.get("auth_protocol") not in NET_SNMP_AUTH:
            raise ValueError(f"v3 user {name!r}: auth_protocol must be one of {list(NET_SNMP_AUTH)} "
                             "(or none, without privacy)")
        priv = entry.get("priv_protocol")
        if priv is not None and priv not in NET_SNMP_PRIV:
            raise ValueError(f"v3 user {name!r}: priv_protocol {priv!r} is not supported by "
                             f"net-snmp (one of {list(NET_SNMP_PRIV)})")

    @property
    def v2c(self) -> dict[str, Any]:
        """The v2c credential as a credentials-file entry."""
        return {"version": "2c", "community": self.v2c_community}

    def credentials(self) -> dict[str, dict[str, Any]]:
        """Every credential this agent accepts, keyed like a credentials file (``lab-v2c`` + v3)."""
        return {"lab-v2c": self.v2c, **{n: dict(e) for n, e in self.v3_users.items()}}

    def write_credentials(self, path: str | Path) -> Path:
        """Write :meth:`credentials` as a wardtui credentials file (mode 0600); return its path."""
        return write_credentials_file(path, self.credentials())

    def _probe_credential(self) -> Mapping[str, Any]:
        return self.v2c

    def config_text(self) -> str:
        lines = [
            "# written by tests/lab/snmp_agents.py; private to this agent",
            f"# listening addresses ({len(self.addresses)}) are on the command line: snmpd joins",
            "# agentAddress lines into one 2,560-byte buffer (~110 addresses at most)",
            f"rocommunity {self.v2c_community} 127.0.0.0/8",
            "dontLogTCPWrappersConnects yes",
            f"sysName wardtui-lab-snmpd-{self.port}",
            "sysLocation loopback lab",
            "sysContact wardtui tests",
        ]
        for entry in self.v3_users.values():
            if entry["auth_protocol"] == "none":
                lines += [f"createUser {entry['user']}", f"rouser {entry['user']} noauth"]
                continue
            create = (f"createUser {entry['user']} {NET_SNMP_AUTH[entry['auth_protocol']]} "
                      f"\"{entry['auth_key']}\"")
            if entry.get("priv_protocol"):
                create += f" {NET_SNMP_PRIV[entry['priv_protocol']]} \"{entry['priv_key']}\""
            level = "priv" if entry.get("priv_protocol") else "auth"
            lines += [create, f"rouser {entry['user']} {level}"]
        return "\n".join(lines) + "\n"

    def _prepare(self) -> None:
        self.persistent_dir.mkdir(exist_ok=True)
        (self.persistent_dir / "snmpd.conf").touch()  # named by -c: must exist, or it is logged
        self.config_path.write_text(self.config_text())
        self.config_path.chmod(0o600)

    def _command(self) -> list[str]:
        # -C: no /etc/snmp files and no default persistent file either, so the private
        # persistent file is named explicitly; that keeps engineID and engineBoots across
        # restarts. -I -smux: smux would listen on TCP 0.0.0.0:199. -m '' -M '': no MIB files
        # (Debian ships none; loading them only fills the log).
        return ["snmpd", "-f", "-C", "-c", f"{self.config_path},{self.persistent_dir}/snmpd.conf",
                "-A", "-Lf", str(self.log_path), "-I", "-smux", "-m", "", "-M", "",
                "-p", str(self.workdir / "snmpd.pid"),
                *(f"udp:{address}:{self.port}" for address in self.addresses)]

    def _environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(SNMP_PERSISTENT_DIR=str(self.persistent_dir), SNMPCONFPATH=str(self.workdir),
                   MIBS="", HOME=str(self.workdir))
        return env

    def restart(self, keep_state: bool = True) -> None:
        """Stop and start again, like a reboot: sysUpTime restarts near 0, engineBoots + 1.

        ``keep_state=False`` removes the persistent directory first, as ``snmpd -C`` with a fresh
        one does (and devices that keep no boot counter): snmpEngineBoots stays 1, the engine's
        time restarts at 0 and snmpd makes a new engineID."""
        self.stop()
        if not keep_state:
            shutil.rmtree(self.persistent_dir, ignore_errors=True)
        self.start()

    def restart_with_clock_back(self) -> None:
        """Stop and start again keeping the engineID and snmpEngineBoots: the engine's time
        restarts at 0 and nothing else tells the manager so (a device whose boot counter is
        not saved). The persistent file's boots is set one back, since snmpd adds one at start."""
        boots = self.engine_boots()
        self.stop()
        state = self.persistent_dir / "snmpd.conf"
        lines = [f"engineBoots {(boots or 1) - 1}" if line.startswith("engineBoots ") else line
                 for line in state.read_text().splitlines()]
        state.write_text("\n".join(lines) + "\n")
        self.start()

    def engine_id(self) -> str | None:
        """snmpEngineID as net-snmp's snmpget prints it (None if no answer)."""
        got = snmpget(self.addresses[0], self.port, [SNMP_ENGINE_ID], self.v2c, netns=self.netns)
        return got[SNMP_ENGINE_ID] if got else None

    def engine_boots(self) -> int | None:
        """snmpEngineBoots as the agent reports it (None if no answer)."""
        got = snmpget(self.addresses[0], self.port, [SNMP_ENGINE_BOOTS], self.v2c, netns=self.netns)
        return int(got[SNMP_ENGINE_BOOTS]) if got else None

    def __enter__(self) -> SnmpdAgent:
        super().__enter__()
        return self


# -- snmpsim: recorded and crafted devices --------------------------------------------------

SNMPSIM_RECORDED = {"linux": "linux-full-walk.snmprec", "winxp": "winxp-full-walk.snmprec"}
_RECORDING_SUFFIXES = (".snmprec", ".snmpwalk", ".sapwalk")


def shipped_recordings() -> dict[str, Path]:
    """Every recording snmpsim ships in its ``data`` directory, by a community made of its path
    (``recorded-eaton-9PX-partial-walk``, ``variation-delay``, ``foreignformats-winxp2``)."""
    root = _snmpsim_package_dir() / "data"
    found = sorted(p for p in root.rglob("*") if p.suffix in _RECORDING_SUFFIXES)
    return {str(p.relative_to(root).with_suffix("")).replace("/", "-"): p for p in found}
COUNTER32_MODULUS = 2**32
_IF = "1.3.6.1.2.1.2.2.1"  # ifEntry
_IFX = "1.3.6.1.2.1.31.1.1.1"  # ifXEntry


def if_oid(column: str, if_index: int) -> str:
    """Numeric OID of an interface column by its IF-MIB name, e.g. ``if_oid('ifHCInOctets', 1)``."""
    table, number = IF_COLUMNS[column]
    return f"{table}.{number}.{if_index}"


IF_COLUMNS = {
    "ifDescr": (_IF, 2), "ifType": (_IF, 3), "ifSpeed": (_IF, 5), "ifAdminStatus": (_IF, 7),
    "ifOperStatus": (_IF, 8), "ifInOctets": (_IF, 10), "ifInErrors": (_IF, 14),
    "ifOutOctets": (_IF, 16), "ifOutErrors": (_IF, 20), "ifName": (_IFX, 1),
    "ifHCInOctets": (_IFX, 6), "ifHCOutOctets": (_IFX, 10), "ifHighSpeed": (_IFX, 15),
    "ifAlias": (_IFX, 18),
}


@dataclass(frozen=True)
class SimInterface:
    """One simulated interface whose octet counters grow at a known, exact rate.

    Counters follow snmpsim's ``numeric`` variation: ``initial + rate * (t - t0)`` where t0
    is when the responder loaded the module (just after spawning). 32-bit counters are the
    64-bit value modulo 2**32 (``max=2**32,wrap=1``), so both views agree.
    """

    index: int
    name: str
    speed_bps: int  # the real line speed; ifSpeed saturates at 2**32-1, ifHighSpeed in Mbit/s
    in_octets_per_s: float
    out_octets_per_s: float
    in_initial: int = 0
    out_initial: int = 0
    oper_up: bool = True

    @property
    def in_bps(self) -> float:
        return self.in_octets_per_s * 8

    @property
    def out_bps(self) -> float:
        return self.out_octets_per_s * 8

    @property
    def if_speed(self) -> int:
        return min(self.speed_bps, COUNTER32_MODULUS - 1)

    @property
    def in_wrap_period_32(self) -> float:
        """Seconds between wraps of the 32-bit ifInOctets (inf if it never moves)."""
        return COUNTER32_MODULUS / self.in_octets_per_s if self.in_octets_per_s else float("inf")


@dataclass(frozen=True)
class SimDevice:
    """A crafted snmpsim recording: system group, ifTable and (if ``hc``) ifXTable."""

    community: str
    description: str
    interfaces: tuple[SimInterface, ...]
    hc: bool = True

    def interface(self, index: int) -> SimInterface:
        return next(i for i in self.interfaces if i.index == index)

    def snmprec(self) -> str:
        rows: dict[str, str] = {
            "1.3.6.1.2.1.1.1.0": f"4|{self.description}",
            "1.3.6.1.2.1.1.2.0": "6|1.3.6.1.4.1.8072.3.2.10",
            "1.3.6.1.2.1.1.3.0": "67:numeric|rate=100",
            "1.3.6.1.2.1.1.4.0": "4|wardtui tests",
            "1.3.6.1.2.1.1.5.0": f"4|sim-{self.community}",
            "1.3.6.1.2.1.1.6.0": "4|loopback lab",
            "1.3.6.1.2.1.2.1.0": f"2|{len(self.interfaces)}",
        }
        for i in self.interfaces:
            rows.update(self._interface_rows(i))
        ordered = sorted(rows, key=lambda oid: tuple(int(p) for p in oid.split(".")))
        return "".join(f"{oid}|{rows[oid]}\n" for oid in ordered)

    def _interface_rows(self, i: SimInterface) -> dict[str, str]:
        def c32(rate: float, initial: int) -> str:
            return (f"65:numeric|rate={rate},initial={initial % COUNTER32_MODULUS},"
                    f"max={COUNTER32_MODULUS},wrap=1")

        rows = {
            f"{_IF}.1.{i.index}": f"2|{i.index}",
            f"{_IF}.2.{i.index}": f"4|{i.name}",
            f"{_IF}.3.{i.index}": "2|6",
            f"{_IF}.4.{i.index}": "2|1500",
            f"{_IF}.5.{i.index}": f"66|{i.if_speed}",
            f"{_IF}.6.{i.index}": f"4x|02000000{i.index:04x}",
            f"{_IF}.7.{i.index}": "2|1",
            f"{_IF}.8.{i.index}": f"2|{1 if i.oper_up else 2}",
            f"{_IF}.9.{i.index}": "67|0",
            f"{_IF}.10.{i.index}": c32(i.in_octets_per_s, i.in_initial),
            f"{_IF}.14.{i.index}": "65|0",
            f"{_IF}.16.{i.index}": c32(i.out_octets_per_s, i.out_initial),
            f"{_IF}.20.{i.index}": "65|0",
        }
        if self.hc:
            rows.update({
                f"{_IFX}.1.{i.index}": f"4|{i.name}",
                f"{_IFX}.6.{i.index}": f"70:numeric|rate={i.in_octets_per_s},initial={i.in_initial}",
                f"{_IFX}.10.{i.index}":
                    f"70:numeric|rate={i.out_octets_per_s},initial={i.out_initial}",
                f"{_IFX}.15.{i.index}": f"66|{i.speed_bps // 1_000_000}",
                f"{_IFX}.18.{i.index}": f"4|{i.name} (simulated)",
            })
        return rows


GBIT = 1_000_000_000
# 64-bit counters at known rates. eth1 carries more than its speed; xe0's ifSpeed saturates
# (use ifHighSpeed) and its 32-bit counters wrap every ~1.7 s (use the HC ones).
RATE64 = SimDevice("rate64", "wardtui sim: 64-bit counters at known rates", (
    SimInterface(1, "eth0", GBIT, 12_500_000, 2_500_000, 10**12, 5 * 10**11),
    SimInterface(2, "eth1", 10_000_000, 2_500_000, 125_000, 4 * 10**9, 10**6),
    SimInterface(3, "xe0", 40 * GBIT, 2_500_000_000, 1_250_000_000, 7 * 10**12, 3 * 10**12),
    SimInterface(4, "eth2", GBIT, 0, 0, 123_456, 654_321, oper_up=False),
))
# 32-bit counters only (no ifXTable). wan0's ifInOctets wraps every 4.29 s whenever you look,
# the first time ~2 s after start; lan0's wraps ~20 s after start, then every 343.6 s.
WRAP32 = SimDevice("wrap32", "wardtui sim: 32-bit counters only, wrapping", (
    SimInterface(1, "wan0", 8 * GBIT, 1_000_000_000, 1_250_000,
                 COUNTER32_MODULUS - 2_000_000_000, 0),
    SimInterface(2, "lan0", 100_000_000, 12_500_000, 1_250_000,
                 COUNTER32_MODULUS - 250_000_000, 0),
), hc=False)
SIM_DEVICES = (RATE64, WRAP32)


class SnmpsimAgent(_Agent):
    """``snmpsim-command-responder`` serving recorded and crafted devices by v2c community.

    Communities: ``linux`` (recorded Linux host, ifHC counters), ``winxp`` (recorded Windows
    XP, 32-bit counters only), one per crafted :class:`SimDevice` (default ``rate64`` and
    ``wrap32``) and one per file of ``recordings`` (see :func:`shipped_recordings`). With
    pysnmp 7, snmpsim 1.2.2 selects data by community only. It answers one request at a time:
    a recording that delays (``variation-delay``) holds every other community's answers too,
    so it gets an agent of its own.
    """

    name = "snmpsim"
    start_timeout = 60.0

    def __init__(self, addresses: Iterable[str] = ("127.0.0.1",), port: int | None = None, *,
                 devices: Sequence[SimDevice] = SIM_DEVICES, recorded: bool = True,
                 recordings: Mapping[str, Path] | None = None,
                 workdir: str | Path | None = None, start_timeout: float | None = None,
                 log_level: str = "info") -> None:
        addresses = [require_loopback(a) for a in addresses]  # before anything else
        self.log_level = log_level  # "info" logs every request; benchmarks want "error"
        self.executable = snmpsim_executable()
        if self.executable is None:
            raise AgentError("snmpsim-command-responder not found (pip install snmpsim pysmi)")
        super().__init__(addresses, port, workdir)
        self.devices = tuple(devices)
        self.recorded = recorded
        self.data_dir = self.workdir / "data"
        self.cache_dir = self.workdir / "cache"
        self.recordings = dict(recordings or {})  # community -> a recording file of any format
        self.communities = ((tuple(SNMPSIM_RECORDED) if recorded else ())
                            + tuple(d.community for d in self.devices) + tuple(self.recordings))
        if start_timeout is not None:
            self.start_timeout = start_timeout

    def device(self, community: str) -> SimDevice:
        return next(d for d in self.devices if d.community == community)

    def v2c(self, community: str) -> dict[str, Any]:
        """A credentials-file entry for one simulated device."""
        if community not in self.communities:
            raise KeyError(f"no simulated device with community {community!r}")
        return {"version": "2c", "community": community}

    def _probe_credential(self) -> Mapping[str, Any]:
        return self.v2c(self.communities[0])

    def _prepare(self) -> None:
        self.data_dir.mkdir(exist_ok=True)
        self.cache_dir.mkdir(exist_ok=True)
        if self.recorded:
            source = _snmpsim_package_dir() / "data" / "recorded"
            for community, filename in SNMPSIM_RECORDED.items():
                shutil.copyfile(source / filename, self.data_dir / f"{community}.snmprec")
        for device in self.devices:
            (self.data_dir / f"{device.community}.snmprec").write_text(device.snmprec())
        for community, path in self.recordings.items():
            shutil.copyfile(path, self.data_dir / f"{community}{path.suffix}")

    def _command(self) -> list[str]:
        return [self.executable or "snmpsim-command-responder",
                f"--data-dir={self.data_dir}", f"--cache-dir={self.cache_dir}",
                f"--variation-modules-dir={_snmpsim_package_dir() / 'variation'}",
                f"--logging-method=file:{self.log_path}", f"--log-level={self.log_level}",
                *(f"--agent-udpv4-endpoint={a}:{self.port}" for a in self.addresses)]

    def _environment(self) -> dict[str, str]:
        env = dict(os.environ)
        # root is refused unless allowed; HOME: snmpsim also scans ~/.snmpsim for modules/data
        env.update(SNMPSIM_ALLOW_ROOT="true", HOME=str(self.workdir), PYTHONDONTWRITEBYTECODE="1")
        return env

    def __enter__(self) -> SnmpsimAgent:
        super().__enter__()
        return self


def _snmpsim_package_dir() -> Path:
    spec = importlib.util.find_spec("snmpsim")
    if spec is None or spec.origin is None:
        raise AgentError("the snmpsim package is not installed (pip install snmpsim pysmi)")
    return Path(spec.origin).parent


def snmpsim_executable() -> str | None:
    """The responder script: next to this Python first (the venv), then on PATH."""
    beside = Path(sys.executable).parent / "snmpsim-command-responder"
    if beside.exists():
        return str(beside)
    return shutil.which("snmpsim-command-responder")
