"""The command's start: the dashboard loads no alembic (nor the mako and pygments it brings)
before its first frame, which only reading a database's schema needs (store/schema.py imports
it then); the collector, off while the modules load (wardtui/start.py), is on again for every
command but the dashboard (which turns it on after its first frame: tests/ui/test_attached.py)."""

from __future__ import annotations

import gc
import subprocess
import sys
from pathlib import Path

from wardtui.cli import main


def test_the_dashboard_imports_no_alembic_until_a_schema_is_read() -> None:
    code = ("import sys, wardtui.cli, wardtui.cli.dashboard, wardtui.app, wardtui.attached; "
            "print(sorted(m for m in ('alembic', 'mako', 'pygments') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    code = ("import sys, store.schema; store.schema.head_revision(); print('alembic' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "True"


def test_a_command_runs_with_the_collector_on_and_the_entry_leaves_it_on(tmp_path: Path) -> None:
    seen: list[bool] = []
    gc.disable()
    try:
        import wardtui.cli.generate as generate

        real = generate.run

        def run(args: object) -> int:
            seen.append(gc.isenabled())
            return real(args)  # type: ignore[arg-type]

        generate.run = run  # type: ignore[assignment]
        try:
            parser_run = main(["generate", "--devices", "3", "-o", str(tmp_path / "inv.csv")],
                              collection_paused=True)
        finally:
            generate.run = real  # type: ignore[assignment]
    finally:
        was_on = gc.isenabled()
        gc.enable()
    assert parser_run == 0 and seen == [True] and was_on
    assert (tmp_path / "inv.csv").exists()
    code = ("import sys; sys.argv = ['wardtui', '--version']\n"
            "import gc, wardtui.start\n"
            "try:\n    wardtui.start.main()\nexcept SystemExit:\n    pass\n"
            "print(gc.isenabled())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("True")


HEAVY = ("sqlalchemy", "sqlmodel", "pydantic", "alembic", "asyncpg", "aiosqlite", "pysnmp", "icmplib",
         "prometheus_client")


def test_the_attached_dashboard_imports_no_store_driver_or_prober_before_its_first_frame() -> None:
    """What ``wardtui --redis URL`` imports before its first frame (the command line, the dashboard
    command, the app, its screens and the attached runtime, as wardtui/cli/dashboard.py loads them)
    holds none of the history store's libraries nor the pollers': they load where first used
    (the history store opens after the first frame). An attached runtime made (its --db, a
    sqlite:/// URL, checked) and described still imports none of them."""
    code = ("import sys, wardtui.cli, wardtui.cli.dashboard, wardtui.app, wardtui.attached, "
            "wardtui.screens.dashboard, wardtui.screens.device, wardtui.screens.export, store\n"
            "from poller.live import Keys\n"
            "from wardtui.attached import AttachedRuntime, Site\n"
            "from wardtui.runtime import Options\n"
            "runtime = AttachedRuntime(Site('redis://127.0.0.1:1', Keys('s')), Options(db='sqlite:////tmp/x.db?timeout=5'))\n"
            "runtime.describe(); runtime.retention\n"
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    # The store and the history's readers still find them when used.
    code = ("import sys\nfrom store import HistoryStore, schema\n"
            "from wardtui.history_access import STORE_ERRORS, store_errors\n"
            "from sqlalchemy.exc import SQLAlchemyError\n"
            "assert SQLAlchemyError in STORE_ERRORS and store_errors() == STORE_ERRORS\n"
            "print(HistoryStore.__module__, 'sqlalchemy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "store.history True"


def test_the_drill_down_and_yaml_are_not_loaded_before_the_first_frame() -> None:
    """The drill-down screen (its charts, facts and tables) is no part of the dashboard's first
    frame: it loads when first used, or when the dashboard is idle after its start. Nor is YAML
    (the credentials file's and a YAML inventory's reader: the SNMP poller's module imports the
    credentials' module)."""
    code = ("import sys, wardtui.cli, wardtui.cli.dashboard, wardtui.app, wardtui.attached\n"
            "print(sorted(m for m in ('wardtui.screens.device', 'wardtui.widgets.charts', 'yaml')"
            " if m in sys.modules))\n"
            "from wardtui.screens.dashboard import drill_down\n"
            "print(drill_down().__module__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["[]", "wardtui.screens.device"]
