"""Text from outside (inventory, agents, database) never carries terminal control past wardtui."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from poller.inventory import InventoryError, load_inventory
from poller.text import REPLACEMENT, clean, escaped, first_unsafe

HEADER = "name,address,branch,region,type,parent,interval,tags\n"
# What an attacker would put in a field: retitle the terminal, clear it, write the clipboard
# (OSC 52), a C1 CSI, DEL, a bidi override, a record separator (which str.splitlines() splits at).
HOSTILE = {
    "osc-title": "\x1b]0;pwned\x07",
    "clear": "\x1b[2J",
    "osc52": "\x1b]52;c;ZWNobyBoaQ==\x07",
    "c1-csi": "\x9b2J",
    "del": "a\x7fb",
    "bidi": "abc\u202edcba",
    "isolate": "x\u2066y",
    "record-sep": "a\x1eb",
    "nul": "a\x00b",
    "line-sep": "a\u2028b",
}
RAW_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u2028\u2029]")


def assert_no_control(message: str) -> None:
    """One problem a line: newlines between them are ours, nothing else may be a control."""
    for line in message.split("\n"):
        assert not RAW_CONTROL.search(line), repr(line)


def no_dns(host: str) -> str:
    raise OSError(f"name resolution is forbidden in tests ({host})")


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_clean_and_escaped_leave_no_control(kind: str) -> None:
    value = HOSTILE[kind]
    assert first_unsafe(value) is not None
    assert not RAW_CONTROL.search(clean(value))
    assert REPLACEMENT in clean(value)
    assert not RAW_CONTROL.search(escaped(value))
    assert "\\x" in escaped(value) or "\\u" in escaped(value)


def test_ordinary_text_is_untouched() -> None:
    for text in ("north-b002-rtr", "Zürich Bahnhofstrasse", "[b]bold[/b]", "<script>", "a\tb", "東京",
                 "עברית"):
        assert first_unsafe(text) is None
        assert escaped(text) == text
    assert clean("a\tb") == "a b"
    assert clean("a\tb", tab=REPLACEMENT) == f"a{REPLACEMENT}b"
    assert first_unsafe("\x1b[2J") == "U+001B (ESC)"
    assert first_unsafe("x\u202e") == "U+202E (RIGHT-TO-LEFT OVERRIDE)"


@pytest.mark.parametrize("column", ["name", "branch", "region", "type", "tags", "parent"])
@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_csv_inventory_refuses_control_characters_with_file_and_line(
        tmp_path: Path, column: str, kind: str) -> None:
    fields = {"name": "ok-1", "address": "127.0.0.2", "branch": "b1", "region": "r1", "type": "router",
              "parent": "", "interval": "", "tags": "atm"}
    fields[column] = HOSTILE[kind]
    row = ",".join('"' + v.replace('"', '""') + '"' for v in fields.values())
    path = tmp_path / "inv.csv"
    path.write_text(HEADER + "good,127.0.0.1,b1,r1,router,,,\n" + row + "\n", encoding="utf-8")
    with pytest.raises(InventoryError) as info:
        load_inventory(path, resolver=no_dns)
    problems = info.value.problems
    assert [p.line for p in problems] == [3], problems
    assert "control character U+" in problems[0].reason
    assert f"'{column}'" in problems[0].reason
    message = str(info.value)
    assert message.startswith(f"{path}:3: control character")
    assert_no_control(message)


def test_yaml_inventory_refuses_escapes_written_as_yaml_escapes(tmp_path: Path) -> None:
    path = tmp_path / "inv.yaml"
    path.write_text(
        "devices:\n"
        "  - {name: ok, address: 127.0.0.1, branch: b, region: r, type: router}\n"
        '  - name: "evil\\e]0;pwned\\a"\n'
        "    address: 127.0.0.2\n"
        "    branch: b\n"
        "    region: r\n"
        "    type: router\n"
        '    tags: [atm, "x\\u202ey"]\n', encoding="utf-8")
    with pytest.raises(InventoryError) as info:
        load_inventory(path, resolver=no_dns)
    problems = info.value.problems
    assert [p.line for p in problems] == [3, 3]
    assert {p.reason.split(" in ")[1].split(":")[0] for p in problems} == {"'name'", "'tags'"}
    assert_no_control(str(info.value))


def test_yaml_error_messages_echo_no_control(tmp_path: Path) -> None:
    """A key holding an escape is quoted back escaped, not obeyed."""
    path = tmp_path / "inv.yaml"
    path.write_text('- {name: a, address: 127.0.0.1, branch: b, region: r, type: t, "k\\e[2J": 1}\n',
                    encoding="utf-8")
    with pytest.raises(InventoryError) as info:
        load_inventory(path, resolver=no_dns)
    text = str(info.value)
    assert "unknown column" in text
    assert "\\x1b[2j" in text  # keys are lower-cased
    assert_no_control(text)


def test_markup_and_tabs_are_data_not_problems(tmp_path: Path) -> None:
    """Markup is not refused: the screen and reports show it literally (tested there)."""
    path = tmp_path / "inv.csv"
    path.write_text(HEADER + '"[/]",127.0.0.1,"[link=http://evil]click[/link]","[@click=app.quit]x[/]",'
                             '"<script>alert(1)</script>",,,"a\tb"\n', encoding="utf-8")
    (device,) = load_inventory(path, resolver=no_dns)
    assert device.name == "[/]"
    assert device.branch == "[link=http://evil]click[/link]"
    assert device.region == "[@click=app.quit]x[/]"
