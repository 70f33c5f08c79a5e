"""The screen reads no outside text as markup: formatted strings reach Textual only through
wardtui/literal.py (issue 11). A source check, so that a new call site cannot forget it; the
UI tests (tests/ui/test_hostile_text.py) show the behaviour with hostile names."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "wardtui"
# Textual APIs that parse a str argument as markup (first positional argument).
PARSING_CALLS = {"Static", "Label", "RadioButton", "Button", "Hit", "DiscoveryHit", "Option",
                 "Text"}  # Rich's Text parses no markup but passes ESC through: clean() it
PARSING_METHODS = {"update", "add_row", "update_cell", "add_leaf", "add", "set_label", "add_column",
                   "add_columns"}
# Receivers whose methods are known not to parse (wardtui/literal.py, plain containers).
LITERAL_TYPES = {"Literal", "LiteralTable"}
BANNED_ATTRS = {"from_markup", "highlight"}  # Text/Content.from_markup, Matcher.highlight


def _formatted(node: ast.AST) -> bool:
    """Could this expression be a string built from data (f-string, +, join, format, str())?"""
    if isinstance(node, ast.Starred):
        return _formatted(node.value)
    if isinstance(node, ast.List | ast.Tuple):
        return any(_formatted(e) for e in node.elts)
    if isinstance(node, ast.JoinedStr):
        return True
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Mod):
        return _formatted(node.left) or _formatted(node.right) or isinstance(node.left, ast.Constant)
    if isinstance(node, ast.Call):
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr in {"join", "format"}:
            return True
        if isinstance(func, ast.Name) and func.id in {"str", "repr"}:
            return True
    return False


def _literal_receiver(node: ast.AST) -> bool:
    """``query_one("#x", Literal)`` or a ``Literal``/``LiteralTable`` made right there."""
    if isinstance(node, ast.Call):
        func = node.func
        if isinstance(func, ast.Name) and func.id in LITERAL_TYPES:
            return True
        return any(isinstance(a, ast.Name) and a.id in LITERAL_TYPES for a in node.args)
    return False


def offences(tree: ast.AST) -> Iterator[tuple[int, str]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            args = [*node.args, *(k.value for k in node.keywords if k.arg in {"label", "help", "prompt"})]
            if isinstance(func, ast.Name) and func.id in PARSING_CALLS:
                for arg in args:
                    if _formatted(arg):
                        yield node.lineno, f"{func.id}() of a formatted string: use Literal/literal()"
            if isinstance(func, ast.Attribute):
                if func.attr in BANNED_ATTRS:
                    yield node.lineno, f".{func.attr}() parses markup: use wardtui/literal.py"
                if func.attr == "notify" and not (isinstance(func.value, ast.Call)
                                                  and isinstance(func.value.func, ast.Name)
                                                  and func.value.func.id == "super"):
                    continue  # WardApp.notify is the boundary for every notice (tested in tests/ui)
                if func.attr in PARSING_METHODS and not _literal_receiver(func.value):
                    for arg in args:
                        if _formatted(arg):
                            yield node.lineno, f".{func.attr}() of a formatted string: use literal()"
            for keyword in node.keywords:
                value = keyword.value
                if keyword.arg == "markup" and isinstance(value, ast.Constant) and value.value:
                    yield node.lineno, "markup=True"
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Attribute) and target.attr in {"border_title", "border_subtitle"}:
                    value = node.value
                    constant = isinstance(value, ast.Constant)
                    wrapped = (isinstance(value, ast.Call) and isinstance(value.func, ast.Name)
                               and value.func.id == "literal")
                    if not (constant or wrapped):
                        yield node.lineno, f"{target.attr} = non-constant: use literal()"


PRAGMA = "# literal-ok:"  # on a line whose formatted text is wardtui's own (numbers), with why


def test_no_formatted_string_reaches_a_markup_api() -> None:
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        if path.name == "literal.py":
            continue
        source = path.read_text(encoding="utf-8")
        lines = source.splitlines()
        found += [f"{path.relative_to(ROOT.parent)}:{line}: {why}"
                  for line, why in offences(ast.parse(source)) if PRAGMA not in lines[line - 1]]
    assert not found, "\n".join(found)


def test_the_check_catches_what_it_is_for() -> None:
    """The checker itself: each pattern that crashed the dashboard is caught, the fix is not."""
    bad = [
        'Static(f"sysName {name}")',
        'self.query_one("#x", Static).update(f"outages: {msg}")',
        'table.add_row(*[", ".join(x)])',
        "widget.border_title = title",
        'widget.border_title = f"filter: {text}"',
        "Hit(1, matcher.highlight(device), cb)",
        'Text.from_markup(name)',
        'Text(f"{title}\\n  {message}")',
        "Static(x, markup=True)",
    ]
    good = [
        'Literal(f"sysName {name}")',
        'self.query_one("#x", Literal).update(f"outages: {msg}")',
        "widget.border_title = literal(title)",
        'widget.border_title = "engine"',
        'self.notify(f"no device named {name!r}")',
        'Static("fixed text")',
        'Text(clean_lines(f"{title}\\n  {message}"))',
    ]
    for source in bad:
        assert list(offences(ast.parse(source))), source
    for source in good:
        assert not list(offences(ast.parse(source))), source


def test_log_lines_and_error_lines_are_escaped(capsys: object) -> None:
    import logging

    from wardtui.messages import EscapingFormatter, error

    record = logging.LogRecord("store.spool", logging.WARNING, __file__, 1, "spool %s is full: %s", (
        "/var/x\x1b]0;t\x07", "db said \x1b[2J"), None)
    line = EscapingFormatter("%(name)s: %(message)s").format(record)
    assert line == "store.spool: spool /var/x\\x1b]0;t\\x07 is full: db said \\x1b[2J"
    error("no device named 'a\x9b2J'\nsecond line")
    err = capsys.readouterr().err  # type: ignore[attr-defined]
    assert err == "wardtui: no device named 'a\\x9b2J'\nsecond line\n"
