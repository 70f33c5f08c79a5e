"""``wardtui`` with no command: the dashboard. Textual is imported only here, when it runs."""

from __future__ import annotations

import argparse
import asyncio
from typing import TYPE_CHECKING

from poller.feed import shown_url
from wardtui.attached import AttachedRuntime, Site, attach_or_none, site_from
from wardtui.cli.common import engine_options
from wardtui.engine_thread import EngineThread
from wardtui.messages import error
from wardtui.process import DASHBOARD
from wardtui.runtime import Runtime, StartupError

if TYPE_CHECKING:
    from wardtui.app import WardApp


async def _before_the_screen(runtime: Runtime) -> None:
    if not await runtime.check_lease():
        return  # not reachable: asking for the schema would wait as long again
    try:
        await runtime.check_schema()
    except StartupError:
        await runtime.lease.release()
        raise


def run(args: argparse.Namespace, *, collection_paused: bool = False) -> int:
    """The dashboard. ``collection_paused``: the collector is off (wardtui/start.py); the app
    turns it on once its first frame is painted."""
    try:
        site = None if args.embedded else site_from(args.redis, args.site)
        info = attach_or_none(site)
        if site is not None and info is not None:
            # A member of a cluster (serve --cluster) answered: the viewer merges every member's feed.
            return _attached(site, args, collection_paused, cluster=info.poller is not None)
        if site is not None:
            error(f"no live wardtui serve publishes site {site.name!r} on {shown_url(site.url)}: "
                  "polling here (embedded)")
        runtime = Runtime(engine_options(args), process=DASHBOARD, kind="dashboard")
    except StartupError as exc:
        error(f"{exc}")
        return exc.code
    try:
        # Before the screen: another poller on this database (exit 2, naming it), then a
        # schema behind or ahead. The lease is then held until the app has flushed the history.
        asyncio.run(_before_the_screen(runtime))
    except StartupError as exc:
        runtime.prober.close()
        error(f"{exc}")
        return exc.code
    from wardtui.app import WardApp  # after the checks: an error line needs no Textual

    # The whole process is the dashboard's: the GIL switch interval now, the freezes, the
    # collector's thresholds, idle collections and the exit watchdog when the runtime and
    # the app say (wardtui/process.py).
    DASHBOARD.enter()
    app = WardApp(runtime, process=DASHBOARD, collect_after_first_frame=collection_paused)
    app.run()
    return app.return_code or 0


def attached_app(site: Site, args: argparse.Namespace, collection_paused: bool = False,
                 cluster: bool = False) -> WardApp:
    """The app of ``wardtui --redis`` attached to ``site``'s live service, ready to run (the
    bench's too). Raises StartupError when the attach fails.

    The attach (the site's inventory and snapshot read, inflated and decoded) runs on the
    engine's thread while this one loads Textual and makes the app: its waits on Redis, its
    inflating and hashing (zlib and hashlib let go of the interpreter) overlap the import."""
    runtime = AttachedRuntime(site, engine_options(args), process=DASHBOARD, cluster=cluster)
    # The whole process is the dashboard's (wardtui/process.py): before any thread starts.
    DASHBOARD.enter()
    engine_thread = EngineThread()
    attaching = engine_thread.submit(runtime.attach())
    try:
        from wardtui.app import WardApp

        app = WardApp(runtime, process=DASHBOARD, collect_after_first_frame=collection_paused,
                      engine_thread=engine_thread)
        attaching.result(timeout=30)
    except BaseException:
        engine_thread.close()
        raise
    return app


def _attached(site: Site, args: argparse.Namespace, collection_paused: bool, cluster: bool = False) -> int:
    """The dashboard of a live service: it loads the site's snapshot before the first frame."""
    try:
        app = attached_app(site, args, collection_paused, cluster)
    except StartupError as exc:
        error(f"{exc}")
        return exc.code
    app.run()
    return app.return_code or 0
