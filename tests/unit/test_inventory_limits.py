"""Inventories written to hurt (issue 12): what is not a file, too big, YAML aliases, slow names.

Each of these once hung the start, ate gigabytes or ended in a traceback; now each is a
``file:line`` problem (the CLI prints one line each and exits 2) or loads correctly.
"""

from __future__ import annotations

import io
import os
import resource
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from poller import inventory
from poller.generate import bank_rows, write_csv
from poller.inventory import load_inventory
from tests.unit.test_inventory import HEADER, no_dns, only, problems_of, write

GOOD_ROW = "r1,127.0.0.1,b,r,router,,,\n"


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
