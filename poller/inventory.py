"""Load and validate a device inventory (CSV or YAML), reporting every problem with file:line."""

from __future__ import annotations

import csv
import io
import ipaddress
import os
import re
import socket
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from poller.resolve import TIMEOUT, Resolver, resolve_all
from poller.text import escaped, first_unsafe

REQUIRED = ("name", "address", "branch", "region", "type")
OPTIONAL = ("parent", "interval", "tags", "snmp_credential", "snmp_port")
COLUMNS = REQUIRED + OPTIONAL

MAX_BYTES = 256 * 1024 * 1024
"""The largest inventory file read. A 1,000,000-device CSV from ``wardtui generate`` weighs
72 MiB; the cap leaves room for longer names and for YAML, and keeps a wrong file (a disk
image, a log) from taking the machine's memory."""


_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"^(?=.{{1,253}}$)({_LABEL})(\.{_LABEL})*\.?$")
_NUMERIC = re.compile(r"^[0-9.]+$")
_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")


@dataclass(frozen=True, slots=True)
class Device:
    """One monitored device, its address already resolved to an IP."""

    name: str
    address: str  # an IPv4 or IPv6 address, never a name
    branch: str
    region: str
    type: str
    host: str = ""  # what the inventory said (a name or the address itself)
    # Devices this one is reached through; several are redundant paths (one UP is enough).
    parents: tuple[str, ...] = ()
    interval: float | None = None  # seconds; None means the engine's default
    tags: tuple[str, ...] = ()
    line: int = 0
    snmp_credential: str | None = None  # a name in the SNMP credentials file; None: no SNMP
    snmp_port: int = 161

    @property
    def family(self) -> int:
        return 6 if ":" in self.address else 4

    @property
    def parent(self) -> str | None:
        """The parents as the inventory's text (``a;b``), None for none: the history's
        ``parent`` column and the live feed's carry this (a parent's name holds no ``;``)."""
        return PARENT_SEPARATOR.join(self.parents) or None


PARENT_SEPARATOR = ";"


def split_parents(text: str | None) -> tuple[str, ...]:
    """``a; b`` -> ("a", "b"): the inverse of :attr:`Device.parent`."""
    if not text:
        return ()
    return tuple(p for p in (part.strip() for part in text.split(PARENT_SEPARATOR)) if p)


@dataclass(frozen=True, slots=True)
class Problem:
    file: str
    line: int
    reason: str

    def __str__(self) -> str:
        # Reasons may quote what the file holds: escaped, so a message never obeys it.
        return f"{escaped(self.file)}:{self.line}: {escaped(self.reason)}"


class InventoryError(Exception):
    """The inventory has problems; ``problems`` lists every one of them."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def system_resolver(host: str) -> str:
    """Resolve through the system (``/etc/hosts`` first, as configured in nsswitch)."""
    infos = socket.getaddrinfo(host, None, type=socket.SOCK_DGRAM)
    if not infos:
        raise OSError(f"no address for {host}")
    return str(infos[0][4][0])


def load_inventory(path: str | Path, resolver: Resolver | None = None, *,
                   progress: Callable[[str], None] | None = None,
                   resolve_timeout: float = TIMEOUT) -> list[Device]:
    """Read ``path`` (``.csv``, ``.yaml`` or ``.yml``) and return its devices.

    Host names are resolved in parallel (poller/resolve.py), each within ``resolve_timeout``
    seconds; ``progress`` gets a line now and then when that takes long.
    Raises :class:`InventoryError` listing every problem found, never just the first.
    """
    path = Path(path)
    name = str(path)
    data = _read(path, name)
    try:
        text = data.decode("utf-8-sig")  # spreadsheets often save UTF-8 with a byte-order mark
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise InventoryError([Problem(name, line, f"not UTF-8 text (byte 0x{data[exc.start]:02x}): "
                                                  "save the file as UTF-8")]) from None
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        from poller.inventory_yaml import yaml_rows  # imports this module: not at the top

        rows = list(yaml_rows(text, name))
    elif suffix == ".csv":
        rows = list(_csv_rows(text, name))
    else:
        raise InventoryError([Problem(name, 0, "unknown inventory format: use .csv, .yaml or .yml")])
    answers = resolve_all(_names(rows), resolver or system_resolver, timeout=resolve_timeout,
                          progress=progress)
    return _validate(rows, name, answers)


_KINDS = ((stat.S_ISDIR, "directory"), (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"),
          (stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket"))


def _read(path: Path, name: str) -> bytes:
    """The file's bytes, if it is a regular file of at most :data:`MAX_BYTES`. A symlink to
    /dev/zero was read without end; a FIFO would block the open until someone writes (hence
    O_NONBLOCK, which a regular file ignores), so the kind is checked on what was opened, not
    on the name beforehand."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise InventoryError([Problem(name, 0, f"cannot read: {exc.strerror or exc}")]) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = next((what for test, what in _KINDS if test(info.st_mode)), "special file")
            raise InventoryError([Problem(name, 0, f"not a regular file (a {kind}): give an inventory file")])
        size = info.st_size
        if size <= MAX_BYTES:
            with os.fdopen(fd, "rb", closefd=False) as file:
                data = file.read(MAX_BYTES + 1)  # bounded even if the file grows meanwhile
            size = len(data)
    except OSError as exc:
        raise InventoryError([Problem(name, 0, f"cannot read: {exc.strerror or exc}")]) from None
    finally:
        os.close(fd)
    if size > MAX_BYTES:
        raise InventoryError([Problem(name, 0, f"too large: {size} bytes, inventories are limited to "
                                               f"{MAX_BYTES >> 20} MiB ({MAX_BYTES} bytes)")])
    return data


Row = tuple[int, dict[str, Any]] | Problem
"""A row before validation: (line, fields), or a Problem already found while parsing."""


def _csv_rows(text: str, name: str) -> Iterator[Row]:
    # Not str.splitlines(): it also splits at FS/GS/RS, NEL and U+2028, which would cut a row
    # holding one in two instead of reporting the character.
    reader = csv.reader(io.StringIO(text, newline=""))
    header: list[str] | None = None
    while True:
        line = reader.line_num + 1  # where the record begins: a quoted field may hold line breaks
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:  # the default dialect's only one: a field over 128 KiB
            yield Problem(name, line, f"not valid CSV: {_csv_error(exc)}")
            return
        if header is None:
            if not fields or all(not f.strip() for f in fields):
                continue
            header = [f.strip().lower() for f in fields]
            yield from _column_problems(fields, header, name, line)
            continue
        if not fields or all(not f.strip() for f in fields) or fields[0].lstrip().startswith("#"):
            continue
        if len(fields) > len(header):
            yield Problem(name, line, f"{len(fields)} fields but the header has {len(header)}")
            continue
        # Not stripped here: strip() also removes line breaks and other controls at the ends, and
        # "r2<LF>" loaded as r2. _control_problems sees what the file holds; _text strips.
        yield line, {k: v for k, v in zip(header, fields, strict=False) if k in COLUMNS}
    if header is None:
        yield Problem(name, 1, "empty inventory: no header line")


def _csv_error(exc: csv.Error) -> str:
    if "field limit" in str(exc):
        return f"a field longer than {csv.field_size_limit()} characters (no inventory value is that long)"
    return str(exc)


def _column_problems(fields: list[str], header: list[str], name: str, line: int) -> Iterator[Problem]:
    for field in fields:
        what = first_unsafe(field)
        if what is not None:
            yield Problem(name, line, f"control character {what} in the header: remove it")
            return
    for col in REQUIRED:
        if col not in header:
            yield Problem(name, line, f"missing column '{col}'")
    for col in header:
        if col not in COLUMNS:
            yield Problem(name, line, f"unknown column '{col}' (known: {', '.join(COLUMNS)})")
    seen: set[str] = set()
    for col in header:
        if col in seen:
            yield Problem(name, line, f"column '{col}' appears twice")
        seen.add(col)


def _names(rows: Iterable[Row]) -> set[str]:
    """The host names among the addresses, to resolve all at once before validation."""
    names = set()
    for row in rows:
        if not isinstance(row, Problem):
            host = _text(row[1].get("address"))
            if _is_name(host):
                names.add(host)
    return names


def _is_name(host: str) -> bool:
    # No IP address passes: IPv4 ones are all digits and dots, IPv6 ones have colons.
    return ":" not in host and not _NUMERIC.match(host) and _HOSTNAME.match(host) is not None


def _validate(rows: Iterable[Row], name: str, answers: dict[str, str | OSError]) -> list[Device]:
    problems: list[Problem] = []
    devices: list[Device] = []
    by_name: dict[str, Device] = {}
    by_folded: dict[str, Device] = {}  # Router1 and router1 are one device to a person
    by_addr: dict[str, Device] = {}
    for row in rows:
        if isinstance(row, Problem):
            problems.append(row)
            continue
        line, fields = row
        device = _device(fields, line, name, answers, problems)
        if device is None:
            continue
        folded = device.name.casefold()
        first = by_folded.get(folded)
        if first is not None:
            problems.append(Problem(name, line, f"duplicate name '{device.name}' (first on line {first.line})"
                                    if first.name == device.name else f"duplicate name '{device.name}': "
                                    f"'{first.name}' on line {first.line} differs only in case"))
            continue
        address = _same_host(device.address)
        first = by_addr.get(address)
        if first is not None:
            problems.append(Problem(
                name, line,
                f"duplicate address {device.address} of '{device.name}' "
                f"(also '{first.name}' on line {first.line})",
            ))
            continue
        by_name[device.name] = device
        by_folded[folded] = device
        by_addr[address] = device
        devices.append(device)
    problems.extend(_parent_problems(devices, by_name, name))
    if not devices and not problems:  # a header alone ran, watching nothing, and exited 0
        problems.append(Problem(name, 0, "no devices in the inventory: nothing to monitor"))
    if problems:
        problems.sort(key=lambda p: p.line)
        raise InventoryError(problems)
    return devices


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _control_problems(fields: dict[str, Any], line: int, name: str) -> list[Problem]:
    """Names, branches, tags... are shown on terminals and in reports: no control characters
    (poller/text.py says which and why)."""
    found: list[Problem] = []
    for col, value in fields.items():
        for item in value if isinstance(value, list) else [value]:
            what = first_unsafe(item) if isinstance(item, str) else None
            if what is not None:
                found.append(Problem(name, line, f"control character {what} in '{col}': "
                                                 "remove it (names are shown on terminals)"))
                break
    return found


def _device(fields: dict[str, Any], line: int, name: str, answers: dict[str, str | OSError],
            problems: list[Problem]) -> Device | None:
    controls = _control_problems(fields, line, name)
    if controls:
        problems.extend(controls)
        return None
    before = len(problems)
    for col in REQUIRED:
        if not _text(fields.get(col)):
            problems.append(Problem(name, line, f"empty '{col}'"))
    host = _text(fields.get("address"))
    address = _address(host, line, name, answers, problems) if host else None
    interval = _interval(fields.get("interval"), line, name, problems)
    snmp_port = _port(fields.get("snmp_port"), line, name, problems)
    parents = _parents(fields.get("parent"), line, name, problems)
    if len(problems) > before or address is None:
        return None
    tags = fields.get("tags")
    if isinstance(tags, list):
        tag_list = tuple(_text(t) for t in tags if _text(t))
    else:
        tag_list = tuple(t for t in re.split(r"[;\s]+", _text(tags)) if t)
    return Device(
        name=_text(fields["name"]), address=address, host=host,
        branch=_text(fields["branch"]), region=_text(fields["region"]), type=_text(fields["type"]),
        parents=parents, interval=interval, tags=tag_list, line=line,
        snmp_credential=_text(fields.get("snmp_credential")) or None, snmp_port=snmp_port,
    )


def _address(host: str, line: int, name: str, answers: dict[str, str | OSError],
             problems: list[Problem]) -> str | None:
    try:
        # Fast path for the common case, an IPv4 address already written the canonical way
        # (inet_ntop gives it back unchanged): ~8 times cheaper than ipaddress at 20,000 rows.
        if socket.inet_ntop(socket.AF_INET, socket.inet_pton(socket.AF_INET, host)) == host \
                and 0 < int(host.split(".", 1)[0]) < 224:
            return host
    except OSError:
        pass
    try:
        return _unicast(ipaddress.ip_address(host.strip("[]")), host, line, name, problems)
    except ValueError:
        pass
    if host not in answers:  # answers holds every host name (see _names), and only those
        problems.append(Problem(name, line, f"bad address '{host}': not an IPv4/IPv6 address or host name"))
        return None
    answer = answers[host]
    if isinstance(answer, OSError):
        problems.append(Problem(name, line, f"unresolvable name '{host}': {answer}"))
        return None
    try:
        resolved = ipaddress.ip_address(answer)
    except ValueError as exc:
        problems.append(Problem(name, line, f"unresolvable name '{host}': {exc}"))
        return None
    return _unicast(resolved, host, line, name, problems)


def _unicast(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, host: str, line: int, name: str,
             problems: list[Problem]) -> str | None:
    """The address if one host can answer at it. 0.0.0.0 "answered" from 127.0.0.1 (the
    kernel's own), and broadcast or multicast ones were shown DOWN or answered by many."""
    if isinstance(ip, ipaddress.IPv6Address):
        why = _zone_problem(ip)
        if why is not None:
            problems.append(Problem(name, line, f"bad address '{host}': {why}"))
            return None
    ip4 = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped else ip
    kind = ("unspecified" if ip4.is_unspecified else "multicast" if ip4.is_multicast
            else "broadcast or reserved" if isinstance(ip4, ipaddress.IPv4Address) and (
                ip4.is_reserved or ip4 in _THIS_NETWORK) else None)
    if kind is not None:
        problems.append(Problem(name, line, f"bad address '{host}': {kind}, not one host's address"))
        return None
    return _canonical(ip)


_ZONE = re.compile(r"[0-9]{1,10}|[A-Za-z0-9_.:@-]{1,15}")  # an index, or an interface's name


def _zone_problem(ip: ipaddress.IPv6Address) -> str | None:
    """A link-local address is one host's only with its zone, the interface it is reached on
    (fe80::1%eth0, or %2 by index): probes go out there and replies are matched with it
    (poller/sockets.py). Other addresses take none."""
    zone = ip.scope_id
    if zone is None:
        return "a link-local address needs its zone: fe80::1%eth0" if ip.is_link_local else None
    if not ip.is_link_local:
        return f"a zone (%{zone}) is only for a link-local address (fe80::/10)"
    if not _ZONE.fullmatch(zone):
        return f"a zone (%{zone}) is an interface's name or index"
    return None


def _same_host(address: str) -> str:
    """``address`` as duplicates are found: a zone as its interface's index where this host has
    that interface (fe80::1%lo and fe80::1%1 are one host when lo's index is 1), as written
    where it has not (a file checked on another machine)."""
    host, percent, zone = address.partition("%")
    if not percent or zone.isdigit():
        return address
    try:
        return f"{host}%{socket.if_nametoindex(zone)}"
    except OSError:
        return address


def _canonical(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """One spelling per host: an IPv4-mapped IPv6 address (::ffff:a.b.c.d) is probed as IPv4,
    since an ICMPv6 echo to it never gets an answer and the device would look DOWN."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return ip.compressed


def _interval(value: Any, line: int, name: str, problems: list[Problem]) -> float | None:
    if value is None or _text(value) == "":
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        problems.append(Problem(name, line, f"bad interval '{value}': a number of seconds"))
        return None
    if not 0.01 <= seconds <= 86400:
        problems.append(Problem(name, line, f"bad interval {seconds:g}: between 0.01 and 86400 seconds"))
        return None
    return seconds


def _port(value: Any, line: int, name: str, problems: list[Problem]) -> int:
    if value is None or _text(value) == "":
        return 161
    text = _text(value)
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        problems.append(Problem(name, line, f"bad snmp_port '{value}': a UDP port, 1 to 65535"))
        return 161
    return int(text)


def _parents(value: Any, line: int, name: str, problems: list[Problem]) -> tuple[str, ...]:
    """One or more names: ``a;b`` in CSV (or a YAML string), a list of names in YAML."""
    if isinstance(value, list):
        names: list[str] = []
        for item in value:
            text = _text(item)
            if PARENT_SEPARATOR in text:
                problems.append(Problem(name, line, f"bad parent '{text}': a name with "
                                                    f"'{PARENT_SEPARATOR}' cannot be a parent"))
                return ()
            if text:
                names.append(text)
        found = tuple(names)
    else:
        found = split_parents(_text(value))
    seen: set[str] = set()
    for parent in found:
        if parent in seen:
            problems.append(Problem(name, line, f"parent '{parent}' given twice"))
            return ()
        seen.add(parent)
    return found


def _parent_problems(devices: list[Device], by_name: dict[str, Device], name: str) -> Iterator[Problem]:
    for device in devices:
        for parent in device.parents:
            if parent not in by_name:
                yield Problem(name, device.line, f"unknown parent '{parent}' of '{device.name}'")
    yield from _cycles(devices, by_name, name)


def _cycles(devices: list[Device], by_name: dict[str, Device], name: str) -> Iterator[Problem]:
    """Each cycle of parents found by one depth-first walk (no recursion: 100,000 devices deep
    is possible), reported once, on the line of its first name in sort order."""
    done: set[str] = set()
    reported: set[tuple[str, ...]] = set()
    for device in devices:
        if device.name in done:
            continue
        path: list[str] = [device.name]
        on_path = {device.name: 0}
        todo: list[Iterator[str]] = [iter(device.parents)]
        while todo:
            parent = next(todo[-1], None)
            if parent is None:
                todo.pop()
                left = path.pop()
                del on_path[left]
                done.add(left)
                continue
            if parent in on_path:
                cycle = path[on_path[parent]:]
                first = cycle.index(min(cycle))
                cycle = cycle[first:] + cycle[:first]
                if tuple(cycle) not in reported:
                    reported.add(tuple(cycle))
                    shown = " -> ".join([*cycle, cycle[0]])
                    yield Problem(name, by_name[cycle[0]].line, f"parent cycle: {shown}")
                continue
            node = by_name.get(parent)
            if node is None or parent in done:
                continue
            on_path[parent] = len(path)
            path.append(parent)
            todo.append(iter(node.parents))
