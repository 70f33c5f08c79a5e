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
