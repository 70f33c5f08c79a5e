"""``wardtui`` with no command: the dashboard. Textual is imported only here, when it runs."""

from __future__ import annotations

import argparse
import asyncio

from wardtui.cli.common import engine_options
from wardtui.messages import error
from wardtui.process import DASHBOARD
from wardtui.runtime import Runtime, StartupError


def run(args: argparse.Namespace) -> int:
    try:
        runtime = Runtime(engine_options(args), process=DASHBOARD)
    except StartupError as exc:
        error(f"{exc}")
        return exc.code
    try:
        asyncio.run(runtime.check_schema())  # refuse a behind or ahead database before the screen
    except StartupError as exc:
        runtime.prober.close()
        error(f"{exc}")
        return exc.code
    from wardtui.app import WardApp  # after the checks: an error line needs no Textual

    # The whole process is the dashboard's: the GIL switch interval now, the freezes, the
    # collector's thresholds, idle collections and the exit watchdog when the runtime and
    # the app say (wardtui/process.py).
    DASHBOARD.enter()
    app = WardApp(runtime, process=DASHBOARD)
    app.run()
    return app.return_code or 0
