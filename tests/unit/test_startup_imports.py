"""What the dashboard loads before its first frame: not alembic (nor the mako and pygments it
brings), which only reading a database's schema needs (store/schema.py imports it then)."""

from __future__ import annotations

import subprocess
import sys


def test_the_dashboard_imports_no_alembic_until_a_schema_is_read() -> None:
    code = ("import sys, wardtui.cli, wardtui.cli.dashboard, wardtui.app, wardtui.attached; "
            "print(sorted(m for m in ('alembic', 'mako', 'pygments') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    code = ("import sys, store.schema; store.schema.head_revision(); print('alembic' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "True"
