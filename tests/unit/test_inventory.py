"""Inventory loading: what an operator sees when the device list is right, and when it is wrong."""

from __future__ import annotations

import io
import ipaddress
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from poller.generate import bank_rows, write_csv
from poller.inventory import Device, InventoryError, Problem, load_inventory

REPO = Path(__file__).resolve().parents[2]
HEADER = "name,address,branch,region,type,parent,interval,tags\n"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def no_dns(host: str) -> str:
    raise OSError(f"name resolution is forbidden in tests ({host})")


def resolver(table: dict[str, str]) -> Callable[[str], str]:
    def resolve(host: str) -> str:
        try:
            return table[host]
        except KeyError:
            raise OSError(-2, "Name or service not known") from None
    return resolve


def problems_of(path: Path, resolve: Callable[[str], str] = no_dns) -> list[Problem]:
    with pytest.raises(InventoryError) as info:
        load_inventory(path, resolver=resolve)
    problems = info.value.problems
    # The exception text is what the CLI prints: every problem as file:line: reason.
    text = str(info.value)
    for p in problems:
        assert f"{path}:{p.line}: {p.reason}" in text
    return problems


def only(problems: list[Problem], line: int, *words: str) -> Problem:
    """The single problem on ``line``, whose reason mentions every word in ``words``."""
    on_line = [p for p in problems if p.line == line]
    assert len(on_line) == 1, f"expected one problem on line {line}, got {on_line}"
    for word in words:
        assert word in on_line[0].reason, on_line[0]
    return on_line[0]


# -- good inventories ------------------------------------------------------------------------

def test_csv_loads_every_field(tmp_path: Path) -> None:
    path = write(tmp_path, "net.csv", HEADER + """\
        core,127.0.0.10,dc,core,router,,,
        sw1,127.0.0.11,b1,north,switch,core,30,access;pci
        atm1,127.0.0.12,b1,north,atm,sw1,2.5,
    """)
    devices = load_inventory(path, resolver=no_dns)
    assert [d.name for d in devices] == ["core", "sw1", "atm1"]
    core, sw1, atm1 = devices
    assert core == Device(name="core", address="127.0.0.10", branch="dc", region="core",
                          type="router", host="127.0.0.10", parents=(), interval=None,
                          tags=(), line=2)
    assert (sw1.parent, sw1.interval, sw1.tags, sw1.line) == ("core", 30.0, ("access", "pci"), 3)
    assert (atm1.parent, atm1.interval, atm1.line) == ("sw1", 2.5, 4)


def test_csv_optional_columns_may_be_absent_and_blank_lines_and_comments_skipped(tmp_path: Path) -> None:
    path = write(tmp_path, "net.csv", """\
        name,address,branch,region,type

        r1,127.0.0.1,b1,north,router
        # r2,127.0.0.2,b1,north,router
        r3,127.0.0.3,b1,north,router
    """)
    devices = load_inventory(path, resolver=no_dns)
    assert [(d.name, d.line) for d in devices] == [("r1", 3), ("r3", 5)]
    assert all(d.parent is None and d.interval is None and d.tags == () for d in devices)


def test_yaml_list_form(tmp_path: Path) -> None:
    path = write(tmp_path, "net.yaml", """
        - name: core
          address: 127.0.0.10
          branch: dc
          region: core
          type: router
        - name: sw1
          address: 127.0.0.11
          branch: b1
          region: north
          type: switch
          parent: core
          interval: 30
          tags: [access, pci]
    """)
    devices = load_inventory(path, resolver=no_dns)
    assert [(d.name, d.address, d.line) for d in devices] == [("core", "127.0.0.10", 1),
                                                              ("sw1", "127.0.0.11", 6)]
    assert devices[1].parent == "core"
    assert devices[1].interval == 30.0
    assert devices[1].tags == ("access", "pci")


def test_yaml_devices_mapping_form(tmp_path: Path) -> None:
    path = write(tmp_path, "net.yml", """
        # the NOC's branch list
        devices:
          - {name: r1, address: 127.0.0.1, branch: b1, region: north, type: router, tags: "a b"}
          - {name: r2, address: "::1", branch: b1, region: north, type: router, parent: r1}
    """)
    devices = load_inventory(path, resolver=no_dns)
    assert [(d.name, d.address, d.line) for d in devices] == [("r1", "127.0.0.1", 3), ("r2", "::1", 4)]
    assert devices[0].tags == ("a", "b")
    assert devices[1].family == 6 and devices[0].family == 4


def test_ipv6_addresses_are_normalised(tmp_path: Path) -> None:
    path = write(tmp_path, "v6.csv", HEADER + """\
        a,2001:DB8:0:0:0:0:0:1,b,r,router,,,
        b,[fe80:0000::0001%eth0],b,r,router,,,
        c,0:0:0:0:0:0:0:1,b,r,router,,,
    """)
    devices = load_inventory(path, resolver=no_dns)
    assert [d.address for d in devices] == ["2001:db8::1", "fe80::1%eth0", "::1"]
    assert all(d.family == 6 for d in devices)


def test_ipv6_duplicate_written_differently_is_caught(tmp_path: Path) -> None:
    path = write(tmp_path, "v6.csv", HEADER + """\
        a,2001:db8::1,b,r,router,,,
        b,2001:0DB8:0000::0001,b,r,router,,,
    """)
    only(problems_of(path), 3, "duplicate address", "2001:db8::1", "'a'")


def test_tags_parsing(tmp_path: Path) -> None:
    path = write(tmp_path, "tags.csv", HEADER + """\
        a,127.0.0.1,b,r,router,,,core;pci
        b,127.0.0.2,b,r,router,,,core pci  lab
        c,127.0.0.3,b,r,router,,, ; ;
        d,127.0.0.4,b,r,router,,,"x; y ;z"
    """)
    devices = load_inventory(path, resolver=no_dns)
    assert [d.tags for d in devices] == [("core", "pci"), ("core", "pci", "lab"), (), ("x", "y", "z")]


def test_resolvable_name_uses_the_injected_resolver(tmp_path: Path) -> None:
    path = write(tmp_path, "names.csv", HEADER + """\
        gw,gw1.branch.example,b,r,router,,,
        v6,gw6.branch.example,b,r,router,,,
    """)
    asked: list[str] = []
    table = {"gw1.branch.example": "127.0.0.77", "gw6.branch.example": "0:0::1"}

    def resolve(host: str) -> str:
        asked.append(host)
        return table[host]

    devices = load_inventory(path, resolver=resolve)
    assert sorted(asked) == ["gw1.branch.example", "gw6.branch.example"]
    assert [(d.host, d.address) for d in devices] == [("gw1.branch.example", "127.0.0.77"),
                                                      ("gw6.branch.example", "::1")]


def test_localhost_resolves_with_the_default_resolver(tmp_path: Path) -> None:
    """``localhost`` is in /etc/hosts, so the system resolver answers without DNS."""
    path = write(tmp_path, "hosts.csv", HEADER + "lo,localhost,b,r,router,,,\n")
    (device,) = load_inventory(path)
    assert device.host == "localhost"
    assert ipaddress.ip_address(device.address).is_loopback


# -- bad inventories: every problem, with file:line and a reason -----------------------------

@pytest.mark.parametrize("bad", ["300.1.2.3", "10.0.0", "bad host!", "1.2.3.4.5", "2001:db8::zz",
                                 "-leading-dash.example"])
def test_bad_address(tmp_path: Path, bad: str) -> None:
    path = write(tmp_path, "bad.csv", HEADER + f'ok,127.0.0.1,b,r,router,,,\nx,"{bad}",b,r,router,,,\n')
    problems = problems_of(path)
    assert len(problems) == 1
    only(problems, 3, "bad address", bad)


def test_unresolvable_name(tmp_path: Path) -> None:
    path = write(tmp_path, "names.csv", HEADER + "gw,nowhere.branch.example,b,r,router,,,\n")
    problems = problems_of(path, resolver({}))
    only(problems, 2, "unresolvable", "nowhere.branch.example")


def test_resolver_returning_garbage_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    path = write(tmp_path, "names.csv", HEADER + "gw,gw.example,b,r,router,,,\n")
    only(problems_of(path, resolver({"gw.example": "not-an-ip"})), 2, "gw.example")


def test_duplicate_name(tmp_path: Path) -> None:
    path = write(tmp_path, "dup.csv", HEADER + """\
        r1,127.0.0.1,b,r,router,,,
        r2,127.0.0.2,b,r,router,,,
        r1,127.0.0.3,b,r,router,,,
    """)
    only(problems_of(path), 4, "duplicate name", "r1", "line 2")


def test_duplicate_address(tmp_path: Path) -> None:
    path = write(tmp_path, "dup.csv", HEADER + """\
        r1,127.0.0.1,b,r,router,,,
        r2,127.0.0.1,b,r,router,,,
    """)
    only(problems_of(path), 3, "duplicate address", "127.0.0.1", "'r2'", "'r1'", "line 2")


def test_duplicate_address_after_resolution(tmp_path: Path) -> None:
    path = write(tmp_path, "dup.csv", HEADER + """\
        r1,127.0.0.9,b,r,router,,,
        r2,alias.example,b,r,router,,,
    """)
    only(problems_of(path, resolver({"alias.example": "127.0.0.9"})), 3,
         "duplicate address", "127.0.0.9", "'r1'")


def test_unknown_parent(tmp_path: Path) -> None:
    path = write(tmp_path, "p.csv", HEADER + """\
        r1,127.0.0.1,b,r,router,,,
        sw,127.0.0.2,b,r,switch,r9,,
    """)
    only(problems_of(path), 3, "unknown parent", "r9", "sw")


def test_parent_cycle_of_two(tmp_path: Path) -> None:
    path = write(tmp_path, "p.csv", HEADER + """\
        a,127.0.0.1,b,r,router,b,,
        b,127.0.0.2,b,r,router,a,,
        c,127.0.0.3,b,r,router,a,,
    """)
    problems = problems_of(path)
    cycles = [p for p in problems if "cycle" in p.reason]
    assert len(cycles) == 1, problems  # one cycle, reported once (not once per member or child)
    assert cycles[0].line in (2, 3)
    assert "a -> b -> a" in cycles[0].reason or "b -> a -> b" in cycles[0].reason


def test_parent_cycle_longer_and_self_parent(tmp_path: Path) -> None:
    path = write(tmp_path, "p.csv", HEADER + """\
        root,127.0.0.1,b,r,router,,,
        a,127.0.0.2,b,r,router,c,,
        b,127.0.0.3,b,r,router,a,,
        c,127.0.0.4,b,r,router,b,,
        leaf,127.0.0.5,b,r,router,c,,
        me,127.0.0.6,b,r,router,me,,
    """)
    problems = problems_of(path)
    cycles = [p for p in problems if "cycle" in p.reason]
    assert len(cycles) == 2, problems
    long_cycle = next(p for p in cycles if "me" not in p.reason)
    for name in ("a", "b", "c"):
        assert name in long_cycle.reason.split("cycle", 1)[1]
    only(problems, 7, "cycle", "me -> me")


def test_missing_required_column_csv(tmp_path: Path) -> None:
    path = write(tmp_path, "cols.csv", "name,address,branch,type\nr1,127.0.0.1,b,router\n")
    problems = problems_of(path)
    assert any(p.line == 1 and "missing column 'region'" in p.reason for p in problems), problems


def test_unknown_column_csv(tmp_path: Path) -> None:
    path = write(tmp_path, "cols.csv", HEADER.strip() + ",vendor\nr1,127.0.0.1,b,r,router,,,,cisco\n")
    only(problems_of(path), 1, "unknown column 'vendor'")


def test_missing_and_unknown_column_yaml(tmp_path: Path) -> None:
    path = write(tmp_path, "cols.yaml", """
        - name: r1
          address: 127.0.0.1
          branch: b
          type: router
        - name: r2
          address: 127.0.0.2
          branch: b
          region: r
          type: router
          vendor: cisco
    """)
    problems = problems_of(path)
    only(problems, 1, "missing column 'region'")
    only(problems, 10, "unknown column 'vendor'")


@pytest.mark.parametrize("interval", ["fast", "0", "-5", "0.001", "100000", "nan"])
def test_bad_interval(tmp_path: Path, interval: str) -> None:
    path = write(tmp_path, "iv.csv", HEADER + f"r1,127.0.0.1,b,r,router,,{interval},\n")
    only(problems_of(path), 2, "interval")


def test_empty_required_field(tmp_path: Path) -> None:
    path = write(tmp_path, "e.csv", HEADER + "r1,127.0.0.1,,r,router,,,\n")
    only(problems_of(path), 2, "branch")


def test_every_problem_is_reported_at_once_with_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "many.csv", HEADER + """\
        ok,127.0.0.1,b,r,router,,,
        badip,300.1.2.3,b,r,router,,,
        short,10.0.0,b,r,router,,,
        space,bad host!,b,r,router,,,
        lost,nowhere.example,b,r,router,,,
        ok,127.0.0.2,b,r,router,,,
        dupaddr,127.0.0.1,b,r,router,,,
        orphan,127.0.0.3,b,r,router,ghost,,
        slow,127.0.0.4,b,r,router,,soon,
        x,127.0.0.5,b,r,router,y,,
        y,127.0.0.6,b,r,router,x,,
    """)
    problems = problems_of(path)
    only(problems, 3, "bad address", "300.1.2.3")
    only(problems, 4, "bad address", "10.0.0")
    only(problems, 5, "bad address", "bad host!")
    only(problems, 6, "unresolvable", "nowhere.example")
    only(problems, 7, "duplicate name", "ok")
    only(problems, 8, "duplicate address", "127.0.0.1")
    only(problems, 9, "unknown parent", "ghost")
    only(problems, 10, "interval", "soon")
    assert any("cycle" in p.reason and p.line in (11, 12) for p in problems)
    assert len(problems) == 9
    assert [p.line for p in problems] == sorted(p.line for p in problems)


def test_yaml_problems_carry_yaml_lines(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.yaml", """
        devices:
          - name: r1
            address: 127.0.0.1
            branch: b
            region: r
            type: router
          - name: r2
            address: 300.0.0.1
            branch: b
            region: r
            type: router
            interval: never
    """)
    problems = problems_of(path)
    assert {p.line for p in problems} == {7}
    assert any("bad address" in p.reason for p in problems)
    assert any("interval" in p.reason for p in problems)


def test_broken_yaml_and_wrong_shape(tmp_path: Path) -> None:
    broken = write(tmp_path, "broken.yaml", "devices:\n  - name: [unclosed\n")
    assert problems_of(broken)
    scalar = write(tmp_path, "scalar.yaml", "just a string\n")
    assert "list of devices" in problems_of(scalar)[0].reason


def test_unreadable_and_unknown_format(tmp_path: Path) -> None:
    missing = problems_of(tmp_path / "absent.csv")
    assert "cannot read" in missing[0].reason
    txt = write(tmp_path, "net.txt", HEADER)
    assert "format" in problems_of(txt)[0].reason


# -- the bundled example ---------------------------------------------------------------------

def test_bundled_bank_example_loads_cleanly() -> None:
    devices = load_inventory(REPO / "examples" / "bank.csv", resolver=no_dns)
    assert 850 <= len(devices) <= 900
    assert all(ipaddress.ip_address(d.address) in ipaddress.ip_network("127.0.0.0/8") for d in devices)
    regions = {d.region for d in devices}
    assert len(regions - {"core"}) == 10
    by_name = {d.name: d for d in devices}
    roots = [d for d in devices if d.parent is None]
    assert len(roots) == 1  # everything hangs off the core
    assert all(d.parent in by_name for d in devices if d.parent is not None)
    branches = {d.branch for d in devices if d.type == "router" and d.parent and d.parent.endswith("-hub")}
    assert 100 <= len(branches) <= 160


def test_bundled_example_equals_the_generator() -> None:
    out = io.StringIO()
    assert write_csv(out, bank_rows()) == len(load_inventory(REPO / "examples" / "bank.csv", resolver=no_dns))
    assert (REPO / "examples" / "bank.csv").read_text(encoding="utf-8") == out.getvalue()


# -- encodings spreadsheets produce ----------------------------------------------------------

def test_csv_saved_with_a_byte_order_mark_loads(tmp_path: Path) -> None:
    """Excel's "CSV UTF-8" starts with a BOM and uses CRLF; the header must still be recognised."""
    path = tmp_path / "excel.csv"
    path.write_bytes(b"\xef\xbb\xbfname,address,branch,region,type\r\n"
                     b"r1,127.0.0.1,S\xc3\xa3o Paulo,r,router\r\n")
    (device,) = load_inventory(path, resolver=no_dns)
    assert (device.name, device.branch, device.line) == ("r1", "S\u00e3o Paulo", 2)


def test_non_utf8_file_is_a_problem_with_its_line_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes(HEADER.encode() + b"r1,127.0.0.1,b,r,router,,,\nr2,127.0.0.2,S\xe3o Paulo,r,router,,,\n")
    only(problems_of(path), 3, "UTF-8")


def test_ipv4_mapped_ipv6_address_is_probed_as_ipv4(tmp_path: Path) -> None:
    path = tmp_path / "net.csv"
    path.write_text("name,address,branch,region,type\na,::ffff:127.0.0.9,b,r,router\n", encoding="utf-8")
    (device,) = load_inventory(path)
    assert (device.address, device.family) == ("127.0.0.9", 4)


def test_snmp_columns_name_a_credential_and_a_port(tmp_path: Path) -> None:
    csv_path = write(tmp_path, "net.csv", """\
        name,address,branch,region,type,snmp_credential,snmp_port
        r1,127.0.0.1,b1,north,router,branch-v2,
        r2,127.0.0.2,b1,north,switch,core-v3,1161
        r3,127.0.0.3,b1,north,atm,,
        """)
    devices = {d.name: d for d in load_inventory(csv_path, no_dns)}
    assert (devices["r1"].snmp_credential, devices["r1"].snmp_port) == ("branch-v2", 161)
    assert (devices["r2"].snmp_credential, devices["r2"].snmp_port) == ("core-v3", 1161)
    assert devices["r3"].snmp_credential is None  # no SNMP for this one
    yaml_path = write(tmp_path, "net.yaml", """\
        - {name: r1, address: 127.0.0.1, branch: b1, region: north, type: router,
           snmp_credential: branch-v2, snmp_port: 16100}
        """)
    (device,) = load_inventory(yaml_path, no_dns)
    assert (device.snmp_credential, device.snmp_port) == ("branch-v2", 16100)


@pytest.mark.parametrize("port", ["0", "65536", "snmp", "-1", "161.5"])
def test_a_bad_snmp_port_is_a_problem_on_its_line(tmp_path: Path, port: str) -> None:
    path = write(tmp_path, "net.csv", f"""\
        name,address,branch,region,type,snmp_credential,snmp_port
        r1,127.0.0.1,b1,north,router,branch-v2,{port}
        """)
    assert problems_of(path) == [Problem(str(path), 2, f"bad snmp_port '{port}': a UDP port, 1 to 65535")]


@pytest.mark.parametrize("written", ["127.0.0.1", "127.1.2.3", "223.255.255.255", "1.0.0.0", "127.0.0.01",
                                     "127.000.0.1", "::ffff:127.0.0.1", "[::1]", "2001:DB8::1"])
def test_addresses_load_as_ipaddress_spells_them(tmp_path: Path, written: str) -> None:
    """The IPv4 fast path (inet_pton/inet_ntop) gives exactly what ipaddress gives, and leaves
    everything it does not recognise as canonical to ipaddress, which rejects or normalises it."""
    path = write(tmp_path, "a.csv", HEADER + f'x,"{written}",b,r,router,,,\n')
    try:
        ip = ipaddress.ip_address(written.strip("[]"))
    except ValueError:
        only(problems_of(path), 2, "bad address", written)
        return
    mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
    (device,) = load_inventory(path)
    assert device.address == str(mapped or ip.compressed)


@pytest.mark.parametrize("written", ["0.0.0.0", "255.255.255.255", "224.0.0.1", "239.1.2.3", "240.0.0.1",
                                     "0.1.2.3", "::", "ff02::1", "::ffff:224.0.0.1"])
def test_addresses_that_are_not_one_hosts_are_refused(tmp_path: Path, written: str) -> None:
    """Issue 12: 0.0.0.0 "answered" from 127.0.0.1 and broadcast or multicast addresses were
    accepted and shown DOWN. Each is refused with file:line, and so is a name resolving to one."""
    path = write(tmp_path, "a.csv", HEADER + f'x,"{written}",b,r,router,,,\n')
    only(problems_of(path), 2, "bad address", written, "not one host's address")
    named = write(tmp_path, "b.csv", HEADER + "x,bcast.lab,b,r,router,,,\n")
    only(problems_of(named, resolver({"bcast.lab": written})), 2, "bad address 'bcast.lab'")
