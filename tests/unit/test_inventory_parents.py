"""The inventory's ``parent`` column: one or more names (``a;b`` in CSV, a list in YAML), each
checked with its file:line."""

from __future__ import annotations

import time
from pathlib import Path

from poller.inventory import Device, load_inventory, split_parents
from poller.inventory_diff import diff_inventories
from tests.unit.test_inventory import HEADER, no_dns, only, problems_of, write


def test_csv_parents_separated_by_semicolons(tmp_path: Path) -> None:
    path = write(tmp_path, "p.csv", HEADER + """\
        r1,127.0.0.1,b,r,router,,,
        r2,127.0.0.2,b,r,router,,,
        atm,127.0.0.3,b,r,atm, r1 ; r2 ,,
        cam,127.0.0.4,b,r,camera,r1;,,
    """)
    devices = {d.name: d for d in load_inventory(path, resolver=no_dns)}
    assert devices["atm"].parents == ("r1", "r2")
    assert devices["atm"].parent == "r1;r2"  # what the history's column and the wire carry
    assert devices["cam"].parents == ("r1",)
    assert devices["r1"].parents == () and devices["r1"].parent is None


def test_yaml_parent_a_list_or_a_name(tmp_path: Path) -> None:
    path = write(tmp_path, "p.yaml", """
        - {name: r1, address: 127.0.0.1, branch: b, region: r, type: router}
        - {name: r2, address: 127.0.0.2, branch: b, region: r, type: router}
        - {name: atm, address: 127.0.0.3, branch: b, region: r, type: atm, parent: [r1, r2]}
        - name: cam
          address: 127.0.0.4
          branch: b
          region: r
          type: camera
          parent:
            - r2
        - {name: pos, address: 127.0.0.5, branch: b, region: r, type: pos, parent: "r2;r1"}
    """)
    devices = {d.name: d for d in load_inventory(path, resolver=no_dns)}
    assert devices["atm"].parents == ("r1", "r2")
    assert devices["cam"].parents == ("r2",)
    assert devices["pos"].parents == ("r2", "r1")


def test_each_unknown_parent_reported_on_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "p.csv", HEADER + """\
        r1,127.0.0.1,b,r,router,,,
        atm,127.0.0.3,b,r,atm,r1;ghost,,
        cam,127.0.0.4,b,r,camera,nobody;r1;ghost2,,
    """)
    problems = problems_of(path)
    only(problems, 3, "unknown parent 'ghost'", "'atm'")
    cam = [p.reason for p in problems if p.line == 4]
    assert sorted(cam) == ["unknown parent 'ghost2' of 'cam'", "unknown parent 'nobody' of 'cam'"]
    assert len(problems) == 3


def test_a_parent_given_twice_in_a_row(tmp_path: Path) -> None:
    path = write(tmp_path, "p.csv", HEADER + """\
        r1,127.0.0.1,b,r,router,,,
        atm,127.0.0.3,b,r,atm,r1;r1,,
    """)
    only(problems_of(path), 3, "parent 'r1' given twice")


def test_yaml_parent_shapes_refused_with_their_line(tmp_path: Path) -> None:
    path = write(tmp_path, "p.yaml", """
        - {name: r1, address: 127.0.0.1, branch: b, region: r, type: router}
        - {name: a, address: 127.0.0.2, branch: b, region: r, type: atm, parent: [[r1]]}
        - {name: c, address: 127.0.0.3, branch: b, region: r, type: atm, parent: {r1: 1}}
        - {name: d, address: 127.0.0.4, branch: b, region: r, type: atm, parent: ["r1;x"]}
    """)
    problems = problems_of(path)
    only(problems, 2, "'parent' is a nested list", "a name or a list of names")
    only(problems, 3, "'parent' is a mapping")
    only(problems, 4, "bad parent 'r1;x'", "';'")


def test_a_cycle_through_a_second_parent(tmp_path: Path) -> None:
    path = write(tmp_path, "p.csv", HEADER + """\
        root,127.0.0.1,b,r,router,,,
        a,127.0.0.2,b,r,router,root;c,,
        c,127.0.0.3,b,r,router,a,,
    """)
    problems = problems_of(path)
    assert len(problems) == 1, problems
    only(problems, 3, "parent cycle: a -> c -> a")


def test_a_diamond_is_no_cycle(tmp_path: Path) -> None:
    """Two redundant routers under one core, a branch switch under both: valid."""
    path = write(tmp_path, "p.csv", HEADER + """\
        core,127.0.0.1,b,r,router,,,
        r1,127.0.0.2,b,r,router,core,,
        r2,127.0.0.3,b,r,router,core,,
        sw,127.0.0.4,b,r,switch,r1;r2,,
        atm,127.0.0.5,b,r,atm,sw;r2,,
    """)
    devices = load_inventory(path, resolver=no_dns)
    assert [d.parents for d in devices][-2:] == [("r1", "r2"), ("sw", "r2")]


def test_a_long_chain_and_a_wide_tree_are_checked_quickly(tmp_path: Path) -> None:
    """A chain 20,000 deep (no recursion limit) and 20,000 children of two parents each."""
    rows = ["c0,10.0.0.1,b,r,router,,,"]
    rows += [f"c{i},10.0.{i // 250}.{i % 250 + 2},b,r,router,c{i - 1},," for i in range(1, 20000)]
    rows += [f"k{i},10.1.{i // 250}.{i % 250 + 2},b,r,atm,c{i};c{i // 2},," for i in range(1, 20000)]
    path = tmp_path / "big.csv"
    path.write_text(HEADER + "\n".join(rows) + "\n", encoding="utf-8")
    started = time.perf_counter()
    devices = load_inventory(path, resolver=no_dns)
    assert len(devices) == 39999 and devices[-1].parents == ("c19999", "c9999")
    assert time.perf_counter() - started < 10


def test_split_parents_is_the_inverse_of_parent() -> None:
    device = Device("x", "127.0.0.1", "b", "r", "t", parents=("a", "b c"))
    assert split_parents(device.parent) == device.parents
    assert split_parents(None) == split_parents("") == ()


def test_a_change_of_parents_is_a_change_of_the_device() -> None:
    old = [Device("x", "127.0.0.1", "b", "r", "t", parents=("a",))]
    new = [Device("x", "127.0.0.1", "b", "r", "t", parents=("a", "b"))]
    diff = diff_inventories(old, new)
    assert [c.fields for c in diff.changed] == [("parent",)]
    assert diff.lines() == ["~ x: parent a -> a;b"]
