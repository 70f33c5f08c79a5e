"""Layering: the engine and the store load without any screen library; the engine stands alone."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

PROBE = """
import importlib, json, pkgutil, sys
packages = sys.argv[1].split(",")
imported = []
for name in packages:
    pkg = importlib.import_module(name)
    imported.append(name)
    for info in pkgutil.walk_packages(pkg.__path__, name + "."):
        importlib.import_module(info.name)
        imported.append(info.name)
print(json.dumps({"imported": imported, "modules": sorted(sys.modules)}))
"""


def import_all(*packages: str) -> tuple[list[str], set[str]]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", PROBE, ",".join(packages)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    return data["imported"], set(data["modules"])


def top_level(modules: set[str]) -> set[str]:
    return {m.split(".")[0] for m in modules}


def test_poller_and_store_import_no_screen_library() -> None:
    imported, modules = import_all("poller", "store")
    assert {"poller.engine", "poller.icmp", "poller.inventory", "poller.scheduler"} <= set(imported)
    assert any(m.startswith("store.") for m in imported)
    assert "textual" not in top_level(modules)
    assert "rich" not in top_level(modules)


def test_poller_alone_imports_neither_store_nor_wardtui() -> None:
    imported, modules = import_all("poller")
    assert len(imported) >= 10
    assert not top_level(modules) & {"store", "wardtui", "textual", "rich"}


def test_poller_source_never_names_store_wardtui_or_screens() -> None:
    """Also catches imports inside functions, which a plain import test would not run."""
    forbidden = {"store", "wardtui", "textual", "rich"}
    found: list[str] = []
    for path in sorted((REPO / "poller").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            found += [f"{path.name}:{node.lineno} {n}" for n in names if n.split(".")[0] in forbidden]
    assert found == []


def test_store_source_never_imports_screens() -> None:
    forbidden = {"wardtui", "textual", "rich"}
    found: list[str] = []
    for path in sorted((REPO / "store").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            found += [f"{path.name}:{node.lineno} {n}" for n in names if n.split(".")[0] in forbidden]
    assert found == []


# -- the headless commands -------------------------------------------------------------------

HEADLESS_COMMANDS = ("poll", "history", "outages", "report", "snmp", "db", "doctor", "events", "status",
                     "notify", "maintenance", "ack")
SCREEN_LIBRARIES = {"textual", "rich"}
PROJECT = {"poller", "store", "wardtui"}


def _source(module: str) -> Path | None:
    base = REPO.joinpath(*module.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _imports(module: str, in_functions: bool) -> list[tuple[str, bool]]:
    """What ``module`` imports, each with whether its functions may then run (False for a
    package that ``from package import submodule`` only loads): at module level, and with
    ``in_functions`` also inside its functions; never under ``if TYPE_CHECKING:``."""
    path = _source(module)
    if path is None:
        return []
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for statement in node.orelse:
                visit(statement)
            return
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not in_functions:
            return
        if isinstance(node, ast.Import):
            found.extend((alias.name, True) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join([*parts[:len(parts) - node.level + 1], base]).strip(".")
            submodules = [f"{base}.{a.name}" for a in node.names if _source(f"{base}.{a.name}") is not None]
            found.append((base, len(submodules) < len(node.names)))
            found.extend((name, True) for name in submodules)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return found


def screen_library_chain(start: str) -> list[str] | None:
    """The chain of imports by which running ``start`` may load textual or rich, else None.

    Follows imports inside functions too (the CLI's lazy imports), but of a package only
    loaded (a module's parent, ``from package import submodule``) just what its
    ``__init__`` runs on import."""
    came_from: dict[str, str | None] = {start: None}
    full: set[str] = set()
    queue: list[tuple[str, bool]] = [(start, True)]
    while queue:
        module, whole = queue.pop()
        if module.split(".")[0] in SCREEN_LIBRARIES:
            chain = [module]
            while (parent := came_from[chain[-1]]) is not None:
                chain.append(parent)
            return chain[::-1]
        if module.split(".")[0] not in PROJECT or (whole and module in full):
            continue
        if whole:
            full.add(module)
        parts = module.split(".")
        nexts = [(".".join(parts[:n]), False) for n in range(1, len(parts))]
        nexts += _imports(module, in_functions=whole)
        for name, name_whole in nexts:
            if name not in came_from or (name_whole and name not in full):
                came_from.setdefault(name, module)
                queue.append((name, name_whole))
    return None


def test_headless_commands_never_reach_a_screen_library() -> None:
    """Every module a headless command may import, lazily too: `wardtui history` loaded rich
    for format_duration, and `wardtui --help` rich for the report's renderers."""
    assert all(_source(f"wardtui.cli.{command}") is not None for command in HEADLESS_COMMANDS)
    reached = {command: screen_library_chain(f"wardtui.cli.{command}") for command in HEADLESS_COMMANDS}
    reached["report formats"] = screen_library_chain("wardtui.report_formats")
    assert reached == dict.fromkeys(reached), reached


def test_the_chain_finder_sees_a_screen_library() -> None:
    chain = screen_library_chain("wardtui.screens.export")
    assert chain is not None and chain[0] == "wardtui.screens.export", chain
    assert screen_library_chain("wardtui.cli.dashboard") is not None  # the dashboard, lazily


RUN_COMMANDS = """
import json, sys
from wardtui.cli import main

db = "sqlite:///" + sys.argv[1] + "/history.db"
runs = [["db", "upgrade", "--db", db], ["db", "current", "--db", db], ["outages", "--db", db],
        ["history", "north-b001-rtr", "--db", db],
        ["report", "--from", "24h", "--format", "html", "--db", db],
        ["snmp", "north-b001-rtr", "--db", db], ["doctor", "--db", db], ["--help"],
        # Redis that cannot answer (a socket path that is not there): they load what they run.
        ["events", "--jsonl", "--redis", "unix://" + sys.argv[1] + "/none.sock"],
        ["status", "--redis", "unix://" + sys.argv[1] + "/none.sock"],
        # A notify file that is not there: it loads the notify config (receivers load on a test).
        ["notify", "check", sys.argv[1] + "/notify.yaml"]]
loaded = {}
for argv in runs:
    try:
        main(argv)
    except SystemExit:
        pass
    loaded[" ".join(argv[:1])] = sorted({m.split(".")[0] for m in sys.modules} & {"textual", "rich"})
print(json.dumps(loaded))
"""


def test_headless_commands_run_without_a_screen_library(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", RUN_COMMANDS, str(tmp_path)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(loaded) == {"db", "outages", "history", "report", "snmp", "doctor", "--help", "events",
                           "status", "notify"}, proc.stderr
    assert "cannot read Redis unix://" in proc.stderr  # events and status got as far as Redis
    assert all(found == [] for found in loaded.values()), loaded
