"""wardtui uses Textual through its public API only: a private name of Textual's (an
underscore attribute wardtui does not define) or a redeclared Textual reactive breaks
without notice on an upgrade. (issue 13: the log redeclared ``virtual_size`` and called
``_scroll_update``; the app read ``_driver``.)"""

from __future__ import annotations

import ast
from pathlib import Path

from textual.app import App
from textual.reactive import Reactive
from textual.screen import Screen
from textual.scroll_view import ScrollView
from textual.widget import Widget

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted((ROOT / "wardtui").rglob("*.py"))
# Underscore names of the standard library, not Textual's: (module, name).
STDLIB = {("os", "_exit"), ("argparse", "_SubParsersAction")}
REACTIVE_MAKERS = {"Reactive", "reactive", "var"}


def _trees() -> list[tuple[Path, ast.Module]]:
    return [(path, ast.parse(path.read_text(encoding="utf-8"))) for path in SOURCES]


def _defined(trees: list[tuple[Path, ast.Module]]) -> set[str]:
    """Every name wardtui defines: functions, classes, attributes it assigns, variables, imports."""
    names: set[str] = set()
    for _, tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.Import | ast.ImportFrom):
                names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    return names


def test_no_private_attribute_of_textual_is_used() -> None:
    trees = _trees()
    ours = _defined(trees)
    found = []
    for path, tree in trees:
        for node in ast.walk(tree):
            if not isinstance(node, ast.Attribute) or not node.attr.startswith("_"):
                continue
            if node.attr.startswith("__"):
                continue  # dunders are Python's
            owner = node.value.id if isinstance(node.value, ast.Name) else ""
            if node.attr not in ours and (owner, node.attr) not in STDLIB:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: .{node.attr}")
    assert found == []


def test_no_reactive_of_textual_is_redeclared() -> None:
    textual_reactives = {name for cls in (Widget, ScrollView, Screen, App) for name in dir(cls)
                         if isinstance(getattr(cls, name, None), Reactive)}
    assert {"virtual_size", "scroll_y", "theme"} <= textual_reactives
    found = []
    for path, tree in _trees():
        for cls in (node for node in ast.walk(tree) if isinstance(node, ast.ClassDef)):
            for stmt in cls.body:
                target = stmt.target if isinstance(stmt, ast.AnnAssign) else (
                    stmt.targets[0] if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 else None)
                value = stmt.value if isinstance(stmt, ast.AnnAssign | ast.Assign) else None
                if not isinstance(target, ast.Name) or not isinstance(value, ast.Call):
                    continue
                maker = value.func.id if isinstance(value.func, ast.Name) else (
                    value.func.attr if isinstance(value.func, ast.Attribute) else "")
                if maker in REACTIVE_MAKERS and target.id in textual_reactives:
                    found.append(f"{path.relative_to(ROOT)}:{stmt.lineno}: {cls.name}.{target.id}")
    assert found == []
