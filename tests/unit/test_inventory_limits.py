"""Inventories written to hurt (issue 12): what is not a file, too big, YAML aliases, slow names.

Each of these once hung the start, ate gigabytes or ended in a traceback; now each is a
``file:line`` problem (the CLI prints one line each and exits 2) or loads correctly.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import resource
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from poller import inventory, resolve
from poller.generate import bank_rows, write_csv
from poller.inventory import Device, InventoryError, load_inventory
from poller.resolve import resolve_all
from tests.unit.test_inventory import HEADER, no_dns, only, problems_of, write
from wardtui.runtime import StartupError, load_devices

GOOD_ROW = "r1,127.0.0.1,b,r,router,,,\n"
YAML_R1 = "- {name: r1, address: 127.0.0.1, branch: b, region: r, type: router}\n"


# -- what is read: a regular file, of bounded size -------------------------------------------

REPO = Path(__file__).resolve().parents[2]


def load_in_a_box(path: Path) -> str:
    """Load ``path`` in a child with 1 GiB of address space and 20 s: what the loader says.

    Reading /dev/zero without limit would otherwise take this machine's memory, and a FIFO
    with no writer would hang the test run instead of failing it."""
    code = ("import sys\nfrom poller.inventory import InventoryError, load_inventory\n"
            "try:\n    load_inventory(sys.argv[1], resolver=lambda h: '127.0.0.1')\n"
            "except InventoryError as exc:\n    print(exc)\n")
    try:
        proc = subprocess.run([sys.executable, "-c", code, str(path)], cwd=REPO, capture_output=True,
                              text=True, timeout=20, preexec_fn=_one_gib)
    except subprocess.TimeoutExpired:
        pytest.fail(f"loading {path} did not end within 20 s")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    return proc.stdout


def _one_gib() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))


@pytest.mark.parametrize("kind", ["character device", "FIFO", "directory"])
def test_what_is_not_a_regular_file_is_refused_not_read_without_end(tmp_path: Path, kind: str) -> None:
    """Issue 12: a symlink to /dev/zero was read without limit; a FIFO blocks the open until
    someone writes. Each is one line naming the file, at once."""
    path = tmp_path / "net.csv"
    if kind == "character device":
        path.symlink_to("/dev/zero")
    elif kind == "FIFO":
        os.mkfifo(path)
    else:
        path.mkdir()
    assert load_in_a_box(path) == f"{path}:0: not a regular file (a {kind}): give an inventory file\n"


def test_a_unix_socket_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "net.csv"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        problem = only(problems_of(path), 0)
    assert "cannot read" in problem.reason or "not a regular file" in problem.reason


def test_a_symlink_to_a_regular_file_still_loads(tmp_path: Path) -> None:
    target = write(tmp_path, "real.csv", HEADER + GOOD_ROW)
    link = tmp_path / "net.csv"
    link.symlink_to(target)
    assert [d.name for d in load_inventory(link, resolver=no_dns)] == ["r1"]


def test_an_inventory_over_the_size_cap_is_refused_before_it_is_read(tmp_path: Path) -> None:
    """Issue 12: nothing bounded what was read. A sparse file costs no disk and would take
    256 MiB of memory (and minutes of parsing) if it were read."""
    path = tmp_path / "net.csv"
    with path.open("wb") as file:
        file.truncate(inventory.MAX_BYTES + 1)
    only(problems_of(path), 0, "too large", f"{inventory.MAX_BYTES + 1} bytes", "256 MiB")


def test_the_size_cap_is_what_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "net.csv", HEADER + GOOD_ROW)
    size = path.stat().st_size
    monkeypatch.setattr(inventory, "MAX_BYTES", size)
    assert [d.name for d in load_inventory(path, resolver=no_dns)] == ["r1"]
    monkeypatch.setattr(inventory, "MAX_BYTES", size - 1)
    only(problems_of(path), 0, "too large", f"{size} bytes")


def test_the_size_cap_leaves_room_for_a_million_devices() -> None:
    """What OPERATIONS.md promises: a 1,000,000-device CSV from ``wardtui generate`` (72 MiB
    measured) loads, with room for longer names and tags."""
    out = io.StringIO()
    rows = write_csv(out, bank_rows(devices=10_000))
    per_row = len(out.getvalue().encode()) / rows
    assert per_row * 1_000_000 * 2.5 < inventory.MAX_BYTES


# -- YAML aliases ----------------------------------------------------------------------------

def alias_bomb(indent: str) -> list[str]:
    """9 lists of 9 aliases of the one before: 9**9 strings once expanded, 9 lines of text."""
    lines = [f"{indent}- &l0 [x, x, x, x, x, x, x, x, x]"]
    for level in range(1, 9):
        lines.append(f"{indent}- &l{level} [" + ", ".join([f"*l{level - 1}"] * 9) + "]")
    return lines


@pytest.mark.parametrize("column", ["tags", "branch"])
def test_a_yaml_alias_bomb_is_refused_at_once(tmp_path: Path, column: str) -> None:
    """Issue 12: under tags: 90 s and 2.85 GB; under branch: a MemoryError. Now: every alias
    is a problem on its own line, and nothing is expanded."""
    fields = {"address": "127.0.0.1", "branch": "b", "region": "r", "type": "router"}
    lines = ["devices:", "  - name: r1", *(f"    {k}: {v}" for k, v in fields.items() if k != column)]
    lines += [f"    {column}:", *alias_bomb("      ")]
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    first = lines.index(f"    {column}:") + 3  # the list after &l0's
    out = load_in_a_box(path).splitlines()
    assert out[0] == f"{path}:{first}: YAML alias '*l0': aliases are not allowed in an inventory " \
                     "(write the value out)", out
    assert out[9] == f"{path}:{first + 1}: YAML alias '*l1': aliases are not allowed in an inventory " \
                     "(write the value out)", out
    assert len(out) == 8 * 9  # every alias, one line each


def test_yaml_aliases_of_scalars_and_of_whole_devices_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "net.yaml", """
        devices:
          - &r1 {name: r1, address: 127.0.0.1, branch: &b north-b001, region: north, type: router}
          - {name: r2, address: 127.0.0.2, branch: *b, region: north, type: router}
          - *r1
          - {name: r3, address: 127.0.0.3, branch: b, region: north, type: router, tags: [&t pci, *t]}
          - {name: r4, address: 127.0.0.4, branch: b, region: north, type: router, tags: &me [*me]}
    """)
    problems = problems_of(path)
    assert [(p.line, p.reason.split(":")[0]) for p in problems] == [
        (3, "YAML alias '*b'"), (4, "YAML alias '*r1'"), (5, "YAML alias '*t'"), (6, "YAML alias '*me'")]


def test_a_yaml_alias_of_an_empty_list_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "net.yaml", """
        - {name: r1, address: 127.0.0.1, branch: b, region: r, type: router, tags: &none []}
        - {name: r2, address: 127.0.0.2, branch: b, region: r, type: router, tags: *none}
    """)
    only(problems_of(path), 2, "YAML alias '*none'")


def test_an_anchor_never_used_is_harmless(tmp_path: Path) -> None:
    path = write(tmp_path, "net.yaml", """
        - {name: r1, address: 127.0.0.1, branch: &b b, region: r, type: router, tags: [&t x, y]}
    """)
    (device,) = load_inventory(path, resolver=no_dns)
    assert (device.branch, device.tags) == ("b", ("x", "y"))


def test_an_alias_to_an_anchor_outside_the_device_list_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "net.yaml", """
        defaults: &d {branch: b, region: r, type: router}
        devices:
          - {name: r1, address: 127.0.0.1, branch: b, region: r, type: *d}
    """)
    only(problems_of(path), 3, "YAML alias '*d'")


# -- host names: in parallel, each within a deadline, with progress --------------------------

@pytest.fixture
def dropping_dns() -> Iterator[Callable[[str], str]]:
    """A resolver whose names under ``.drop`` go to a UDP "DNS server" on 127.0.0.1 that never
    answers (the resolver waits for a reply as the C library would, only for ever); other names
    answer at once from a table. At the end the server answers, so no thread stays blocked."""
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    table = {f"gw{i}.branch.example": f"127.0.3.{i}" for i in range(1, 100)}

    def resolve(host: str) -> str:
        if not host.endswith(".drop"):
            return table[host]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.sendto(host.encode(), server.getsockname())
            client.recv(512)  # no answer comes
        raise OSError("answered too late to matter")

    yield resolve
    server.settimeout(0.2)
    with contextlib.suppress(OSError), server:
        while True:
            _, sender = server.recvfrom(512)
            server.sendto(b"bye", sender)


def load_within(seconds: float, path: Path, **kwargs: Any) -> list[Device] | InventoryError:
    """``load_inventory`` in a thread: a hang fails the test instead of hanging the run."""
    outcome: list[list[Device] | InventoryError] = []

    def run() -> None:
        try:
            outcome.append(load_inventory(path, **kwargs))
        except InventoryError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert outcome, f"loading {path} took more than {seconds} s"
    return outcome[0]


def test_names_that_get_no_answer_are_given_up_on_and_named_with_their_lines(
        tmp_path: Path, dropping_dns: Callable[[str], str]) -> None:
    """Issue 12: 6 names with a DNS server dropping queries took 61 s of silence. Now each name
    has a deadline, they are asked at once, and the ones that did not answer are named."""
    path = write(tmp_path, "net.csv", HEADER + """\
        a,gw1.branch.example,b,r,router,,,
        b,lost1.drop,b,r,router,,,
        c,gw2.branch.example,b,r,router,,,
        d,lost2.drop,b,r,router,,,
        e,gw3.branch.example,b,r,router,,,
        f,lost3.drop,b,r,router,,,
    """)
    began = time.monotonic()
    outcome = load_within(10, path, resolver=dropping_dns, resolve_timeout=1)
    took = time.monotonic() - began
    assert isinstance(outcome, InventoryError)
    assert [str(p) for p in outcome.problems] == [
        f"{path}:{line}: unresolvable name 'lost{n}.drop': no answer within 1 s "
        "(is the DNS server answering?)" for n, line in ((1, 3), (2, 5), (3, 7))]
    assert took < 1.9, took  # at once, not one after another (3 x 1 s)


def test_names_are_resolved_in_parallel(tmp_path: Path) -> None:
    """100 names answering in 0.2 s each: 20 s one after another."""
    def slow(host: str) -> str:
        time.sleep(0.2)
        return "127.0.4." + host.split(".")[0][2:]

    path = write(tmp_path, "net.csv", HEADER + "".join(
        f"r{i},gw{i}.branch.example,b,r,router,,,\n" for i in range(1, 101)))
    began = time.monotonic()
    devices = load_within(15, path, resolver=slow)
    assert isinstance(devices, list)
    assert [d.address for d in devices] == [f"127.0.4.{i}" for i in range(1, 101)]
    assert time.monotonic() - began < 4


def test_one_name_used_by_many_rows_is_asked_once(tmp_path: Path) -> None:
    asked: list[str] = []

    def resolve(host: str) -> str:
        asked.append(host)
        return "127.0.0.9"

    path = write(tmp_path, "net.csv", HEADER + "a,gw.example,b,r,router,,,\nb,gw.example,b,r,router,,,\n")
    only(problems_of(path, resolve), 3, "duplicate address")
    assert asked == ["gw.example"]


def test_a_resolver_that_fails_oddly_costs_its_name_only(tmp_path: Path) -> None:
    def broken(host: str) -> str:
        if host == "none.example":
            return None  # type: ignore[return-value]
        raise UnicodeError("label too long")

    path = write(tmp_path, "net.csv", HEADER + GOOD_ROW + "b,gw.example,b,r,router,,,\n"
                 + "c,none.example,b,r,router,,,\n")
    problems = problems_of(path, broken)
    only(problems, 3, "unresolvable name 'gw.example'", "UnicodeError: label too long")
    only(problems, 4, "unresolvable name 'none.example'", "None does not appear to be")


def test_slow_resolution_reports_progress() -> None:
    lines: list[str] = []

    def slow(host: str) -> str:
        time.sleep(0.1)
        return "127.0.0.1"

    names = [f"n{i}.example" for i in range(20)]
    answers = resolve_all(names, slow, workers=2, progress=lines.append, progress_every=0.2)
    assert answers == dict.fromkeys(names, "127.0.0.1")
    assert len(lines) >= 3, lines
    assert all(line.startswith("resolving 20 names: ") for line in lines), lines
    done = [int(line.split(": ")[1].split(" ")[0]) for line in lines]
    assert done == sorted(done) and 0 < done[0] < 20 and done[-1] == 20, lines
    assert re.fullmatch(r"resolving 20 names: 20 done in \d+\.\d s", lines[-1]), lines


def test_fast_resolution_says_nothing() -> None:
    lines: list[str] = []
    resolve_all(["a.example", "b.example"], lambda host: "127.0.0.1", progress=lines.append)
    assert lines == []


def test_the_cli_shows_resolution_progress_on_stderr(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    def slow(host: str) -> str:
        time.sleep(0.5)
        raise OSError("no such name")

    monkeypatch.setattr(inventory, "system_resolver", slow)
    monkeypatch.setattr(resolve, "PROGRESS_EVERY", 0.2)
    path = write(tmp_path, "net.csv", HEADER + GOOD_ROW + "b,gw.example,b,r,router,,,\n")
    with pytest.raises(StartupError):
        load_devices(path)
    err = capsys.readouterr().err
    assert "wardtui: resolving 1 name: 0 done\n" in err, err


# -- CSV and YAML that parse but do not say what they seem to --------------------------------

def test_a_csv_field_over_the_csv_modules_limit_is_a_problem_not_a_traceback(tmp_path: Path) -> None:
    """Issue 12: a 128 KiB field raised ``_csv.Error: field larger than field limit``."""
    path = write(tmp_path, "net.csv", HEADER + GOOD_ROW + f"r2,127.0.0.2,{'b' * 200_000},r,router,,,\n"
                 + "r3,127.0.0.3,b,r,router,,,\n")
    only(problems_of(path), 3, "not valid CSV: a field longer than 131072 characters")


@pytest.mark.parametrize(("file", "text"), [
    ("net.csv", HEADER),
    ("net.csv", HEADER + "\n# r1,127.0.0.1,b,r,router,,,\n\n"),
    ("net.yaml", "devices: []\n"),
    ("net.yaml", "[]\n"),
])
def test_an_inventory_without_devices_is_refused(tmp_path: Path, file: str, text: str) -> None:
    """Issue 12: a header-only CSV ran, watching nothing, and exited 0."""
    path = write(tmp_path, file, text)
    only(problems_of(path), 0, "no devices in the inventory")


def test_names_differing_only_in_case_are_refused_naming_both_lines(tmp_path: Path) -> None:
    """Issue 12: Router1 and router1 were both accepted; on a screen, in a report or typed in a
    filter they are one device to a person."""
    path = write(tmp_path, "net.csv", HEADER + """\
        Router1,127.0.0.1,b,r,router,,,
        sw1,127.0.0.2,b,r,switch,Router1,,
        router1,127.0.0.3,b,r,router,,,
        ROUTER1,127.0.0.4,b,r,router,,,
    """)
    problems = problems_of(path)
    assert [str(p) for p in problems] == [
        f"{path}:4: duplicate name 'router1': 'Router1' on line 2 differs only in case",
        f"{path}:5: duplicate name 'ROUTER1': 'Router1' on line 2 differs only in case"]


def test_a_yaml_field_given_twice_is_refused_with_both_lines(tmp_path: Path) -> None:
    """Issue 12: YAML duplicate keys: the last won silently."""
    path = write(tmp_path, "net.yaml", """
        devices:
          - name: r1
            address: 127.0.0.1
            branch: b
            region: r
            type: router
            address: 127.0.0.2
          - {name: r2, Name: r3, address: 127.0.0.3, branch: b, region: r, type: router}
    """)
    problems = problems_of(path)
    assert [str(p) for p in problems] == [f"{path}:7: 'address' given twice (first on line 3)",
                                          f"{path}:8: 'name' given twice (first on line 8)"]


def test_a_second_devices_list_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "net.yaml", """
        devices:
          - {name: r1, address: 127.0.0.1, branch: b, region: r, type: router}
        devices:
          - {name: r2, address: 127.0.0.2, branch: b, region: r, type: router}
    """)
    assert [str(p) for p in problems_of(path)] == [f"{path}:3: 'devices' given twice (first on line 1)"]


@pytest.mark.parametrize(("value", "kind"), [("[1, 2]", "a list"), ("{a: 1}", "a mapping"), ("[]", "a list")])
@pytest.mark.parametrize("column", ["name", "address", "type", "interval", "snmp_port"])
def test_a_yaml_list_or_mapping_where_one_value_belongs_is_refused(
        tmp_path: Path, column: str, value: str, kind: str) -> None:
    """Issue 12: ``type: [1, 2]`` was stored as the text "[1, 2]". (``parent`` may be a list
    since issue 15: tests/unit/test_inventory_parents.py.)"""
    fields = {"name": "r2", "address": "127.0.0.2", "branch": "b", "region": "r", "type": "router",
              column: value}
    device = "- " + "\n  ".join(f"{k}: {v}" for k, v in fields.items()) + "\n"
    path = write(tmp_path, "net.yaml", YAML_R1 + device)
    line = 2 + list(fields).index(column)
    assert [str(p) for p in problems_of(path)] == [
        f"{path}:{line}: '{column}' is {kind}: one value belongs here"]


@pytest.mark.parametrize("tags", ["[a, [b, c]]", "[a, {b: c}]", "{a: b}"])
def test_tags_are_words_or_a_list_of_words(tmp_path: Path, tags: str) -> None:
    path = write(tmp_path, "net.yaml", f"{YAML_R1[:-2]},\n   tags: {tags}}}\n")
    only(problems_of(path), 2, "'tags'", "a word or a list of words")


def test_a_yaml_field_name_must_be_a_word(tmp_path: Path) -> None:
    path = write(tmp_path, "net.yaml", """
        - name: r1
          address: 127.0.0.1
          branch: b
          region: r
          type: router
          ? [tags]
          : x
    """)
    assert [str(p) for p in problems_of(path)] == [f"{path}:6: a list where a field name belongs"]


@pytest.mark.parametrize("char", ["\n", "\r\n", "\x0b", "\x0c", "\x1c", "\x85"])
@pytest.mark.parametrize("where", ["end", "start"])
def test_a_quoted_csv_line_break_at_a_fields_end_is_refused_not_dropped(
        tmp_path: Path, char: str, where: str) -> None:
    """Issue 12: a quoted newline vanished: fields were stripped before the check for control
    characters, so "r2<LF>" loaded as r2. Line breaks and other controls that str.strip()
    removes are refused wherever they are, at the line where the record begins."""
    value = f"r2{char}" if where == "end" else f"{char}r2"
    path = tmp_path / "net.csv"
    path.write_bytes((HEADER + GOOD_ROW + f'"{value}",127.0.0.2,b,r,router,,,\n'
                      + "r3,127.0.0.3,b,r,router,,,bad\x1btag\n").encode())
    problems = problems_of(path)
    only(problems, 3, "control character U+", "in 'name'")
    only(problems, 5 if char in "\n\r\n" else 4, "control character U+001B (ESC) in 'tags'")


def test_a_csv_header_with_a_control_character_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "net.csv"
    path.write_bytes(b'"name\n",address,branch,region,type\nr1,127.0.0.1,b,r,router\n')
    only(problems_of(path), 1, "control character U+000A (LF) in the header")


# -- NUL: SQLite stored it, PostgreSQL failed the start blaming the database ------------------

ALL_COLUMNS = {"name": "r2", "address": "127.0.0.2", "branch": "b", "region": "r", "type": "router",
               "parent": "r1", "interval": "30", "tags": "atm", "snmp_credential": "v2", "snmp_port": "161"}
CSV_HEADER = ",".join(ALL_COLUMNS) + "\n"


@pytest.mark.parametrize("column", list(ALL_COLUMNS))
def test_a_nul_in_any_csv_field_is_refused_with_its_line(tmp_path: Path, column: str) -> None:
    row = {**ALL_COLUMNS, column: ALL_COLUMNS[column][:1] + "\x00" + ALL_COLUMNS[column][1:]}
    path = tmp_path / "net.csv"
    path.write_bytes((CSV_HEADER + "r1,127.0.0.1,b,r,router,,,,,\n" + ",".join(row.values()) + "\n").encode())
    only(problems_of(path), 3, "control character U+0000 (NUL)", f"'{column}'")


@pytest.mark.parametrize("column", list(ALL_COLUMNS))
def test_a_nul_escaped_in_any_yaml_field_is_refused_with_its_line(tmp_path: Path, column: str) -> None:
    row = {**ALL_COLUMNS, column: ALL_COLUMNS[column][:1] + "\\0" + ALL_COLUMNS[column][1:]}
    device = "- " + "\n  ".join(f'{k}: "{v}"' for k, v in row.items()) + "\n"
    path = write(tmp_path, "net.yaml", YAML_R1 + device)
    only(problems_of(path), 2, "control character U+0000 (NUL)", f"'{column}'")  # the device's line


def test_a_raw_nul_in_yaml_is_refused_with_its_line(tmp_path: Path) -> None:
    """libyaml gives only an offset, in bytes: the line is counted in bytes too (it said :0)."""
    path = tmp_path / "net.yaml"
    path.write_bytes(("# S\u00e3o Paulo " + "\u00e3" * 40 + "\n").encode()
                     + YAML_R1.encode()
                     + b"- {name: r2, address: 127.0.0.2, branch: b\x00, region: r, type: router}\n"
                     + b"#\n" * 20)
    only(problems_of(path), 3, "not valid YAML", "#x0000")


def test_binary_yaml_values_are_refused(tmp_path: Path) -> None:
    """``!!binary AA==`` is a NUL byte: it loaded as the text "b'\\x00'"."""
    path = write(tmp_path, "net.yaml", """
        - {name: r1, address: 127.0.0.1, branch: b, region: r, type: router}
        - {name: r2, address: 127.0.0.2, branch: b, region: r, type: router, parent: !!binary AA==}
        - {name: r3, address: 127.0.0.3, branch: b, region: r, type: router, tags: [a, !!binary AA==]}
    """)
    problems = problems_of(path)
    only(problems, 2, "'parent' is binary data (!!binary): text belongs here")
    only(problems, 3, "'tags' is binary data (!!binary): text belongs here")


# -- scoped IPv6 -----------------------------------------------------------------------------

@pytest.mark.parametrize(("written", "address"), [
    ("fe80::1%lo", "fe80::1%lo"), ("[fe80::1%lo]", "fe80::1%lo"), ("fe80::1%1", "fe80::1%1"),
    ("FE80:0::A:B%eth0.10", "fe80::a:b%eth0.10")])
def test_a_link_local_address_is_taken_with_its_zone(tmp_path: Path, written: str, address: str) -> None:
    """Issue 17: a zoned agent is probed and its replies matched with the zone
    (tests/integration/test_scoped_ipv6.py); the zone is kept as written."""
    path = write(tmp_path, "v6.csv", HEADER + GOOD_ROW + f'x,"{written}",b,r,router,,,\n')
    assert [d.address for d in load_inventory(path, resolver=no_dns)][1:] == [address]


@pytest.mark.parametrize(("written", "why"), [
    ("2001:db8::1%eth0", "a zone (%eth0) is only for a link-local address (fe80::/10)"),
    ("fe80::1", "a link-local address needs its zone: fe80::1%eth0"),
    ("fe80::1%eth 0", "a zone (%eth 0) is an interface's name or index"),
    ("fe80::1%a-very-long-interface", "a zone (%a-very-long-interface) is an interface's name or index")])
def test_a_zone_where_none_belongs_or_none_where_one_does_is_refused(tmp_path: Path, written: str,
                                                                     why: str) -> None:
    """A zone on a global address means nothing; a link-local address without one cannot be sent
    to; also when a name resolves to one."""
    path = write(tmp_path, "v6.csv", HEADER + GOOD_ROW + f'x,"{written}",b,r,router,,,\n')
    only(problems_of(path), 3, f"bad address '{written}': {why}")
    named = write(tmp_path, "n.csv", HEADER + "x,ll.lab,b,r,router,,,\n")
    only(problems_of(named, lambda host: written), 2, "bad address 'll.lab'", why)


def test_one_link_local_host_by_its_interface_name_and_its_index_is_one_duplicate(tmp_path: Path) -> None:
    """fe80::1%lo and fe80::1%<lo's index> are one host: the second is a duplicate (it loaded as
    a second device, seen in review); the same address on two links is two hosts."""
    import socket
    lo = socket.if_nametoindex("lo")
    path = write(tmp_path, "v6.csv", HEADER + GOOD_ROW + 'x,"fe80::1%lo",b,r,router,,,\n'
                 + f'y,"fe80::1%{lo}",b,r,router,,,\n' + 'z,"fe80::1%no-such-if0",b,r,router,,,\n')
    only(problems_of(path), 4, f"duplicate address fe80::1%{lo} of 'y' (also 'x' on line 3)")
