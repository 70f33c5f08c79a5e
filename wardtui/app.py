"""The Textual app: wiring of a Runtime (engine + store) to the dashboard screen. Nothing else."""

from __future__ import annotations

import asyncio
import signal
import time
from contextlib import suppress
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from rich.color import Color, ColorSystem
from rich.text import Text
from textual import events, on, work
from textual.app import App
from textual.content import Content
from textual.notifications import SeverityLevel
from textual.theme import Theme
from textual.worker import Worker, WorkerCancelled, WorkerFailed, WorkerState

from poller.text import clean, clean_lines
from store.files import open_output
from wardtui.attached import AttachedRuntime
from wardtui.engine_thread import EngineThread
from wardtui.history_access import HistoryAccess
from wardtui.process import GUEST, IdleCollections, ProcessPolicy, resume_collection
from wardtui.runtime import Runtime, StartupError
from wardtui.screens.dashboard import DashboardScreen, EngineStarted
from wardtui.screens.quiet import QuietKeys

RAN_WITHOUT_HISTORY = 3
"""Exit status of a dashboard that polled but could not keep history (the store never started)."""
SHARED_VARIABLES: dict[str, str] = {
    "state-down": "$error",
    "state-up": "$success",
    "state-flapping": "$warning",
    "state-unreachable": "$primary",
    "state-maintenance": "$text-secondary",
    "state-acked": "$text-success",
    "panel-border": "$primary 50%",
    "panel-border-focus": "$accent",
    "panel-title": "$text-accent",
}
"""Variables of every screen's .tcss (Textual scopes a variable declared in a .tcss to that
file): theme variable defaults, so a theme may set its own. The ``$state-*`` colours also reach
the Rich text of table cells and log lines (:class:`~wardtui.widgets.states.StatePalette`), which
needs plain colours: :meth:`WardApp.get_css_variables` resolves the references."""


def resolve(value: str, variables: dict[str, str]) -> str:
    """``value`` with each ``$name`` word replaced by that variable's value (``$error 30%`` ->
    ``#ba3c5b 30%``); an unknown name is left as it is, for the stylesheet to report."""
    return " ".join(variables.get(word[1:], word) if word.startswith("$") else word for word in value.split())


def sixteen_colour_accent(theme: Theme) -> dict[str, str]:
    """In a 16-colour terminal, the variables of ``theme`` made with a yellow accent if its own
    is drawn red there: the default theme's orange (#ffa62b) becomes bright red, so every focused
    panel border and footer key looked like a device DOWN. Nothing for any other theme."""
    if not theme.accent or Color.parse(theme.accent).downgrade(ColorSystem.STANDARD).number not in (1, 9):
        return {}
    calm = replace(theme, accent="#ffd700" if theme.dark else "#b0b000")  # bright yellow, yellow
    return {**calm.to_color_system().generate(), **calm.variables}


class WardApp(App[int]):
    """Starts the store and the engine, shows the dashboard, and flushes the store on quit."""

    CSS_PATH = "app.tcss"
    TITLE = "wardtui"
    _drawing = False  # on_mount sets it: the driver runs (a class default: Textual's __init__ asks first)

    def __init__(self, runtime: Runtime | AttachedRuntime, process: ProcessPolicy = GUEST, *,
                 collect_after_first_frame: bool = False, engine_thread: EngineThread | None = None) -> None:
        """``collect_after_first_frame``: the collector is off (the command's start, see
        wardtui/start.py) and is turned on when the dashboard has painted its first frame.
        ``engine_thread``: the engine's thread, if it runs already (attached: the attach runs on
        it while the app is made); the app closes it as its own."""
        super().__init__()
        self.collect_after_first_frame = collect_after_first_frame
        self.runtime = runtime
        # What the command sets on the process (wardtui/process.py); the app only says when.
        self.process = process
        # The pollers and the store writer run on their own loop, so a repaint never delays a probe.
        self.engine_thread = engine_thread or EngineThread()
        # The screens read the history through this: each read hops onto the engine's loop.
        # runtime.store when first read: an attached dashboard makes its store after this frame.
        history = HistoryAccess(lambda: runtime.store, self.engine_thread, runtime.retention)
        quiet = QuietKeys(now=runtime.quiet_now, acknowledge=self.acknowledge,
                          add_maintenance=self.add_maintenance)
        self.dashboard = DashboardScreen(runtime.engine, history, probe=self.probe_now, quiet=quiet)
        self.engine_worker: Worker[None] | None = None
        self._quitting = False
        self.last_input = 0.0  # time.monotonic() of the last key or click (full GCs wait for a pause)
        self.idle_collections: IdleCollections | None = None  # driven after the first round

    def get_theme_variable_defaults(self) -> dict[str, str]:
        """wardtui's own variables (:data:`SHARED_VARIABLES`), where a theme sets none."""
        return dict(SHARED_VARIABLES)

    def get_css_variables(self) -> dict[str, str]:
        """Theme variables, with wardtui's resolved against them (and the 16-colour accent)."""
        variables = super().get_css_variables()
        if self.sixteen_colours:
            variables = {**variables, **sixteen_colour_accent(self.current_theme)}
        for name in SHARED_VARIABLES:
            variables[name] = resolve(variables[name], variables)
        self.theme_variables = variables
        return variables

    @property
    def sixteen_colours(self) -> bool:
        """Drawing on a 16-colour terminal. Known once the driver runs (see on_mount); never
        headless (tests, snapshots), whose look must not depend on the TERM they run under."""
        return self._drawing and not self.is_headless and self.console.color_system == "standard"

    def notify(self, message: str, *, title: str = "", severity: SeverityLevel = "information",
               timeout: float | None = None, markup: bool = False) -> None:
        """Every notice of every screen comes here (Widget.notify calls the app's): messages
        quote device names, database errors and what the operator typed, so none is markup
        and none carries terminal control (wardtui/literal.py). ``markup`` is ignored."""
        super().notify(clean_lines(message), title=clean(title), severity=severity, timeout=timeout,
                       markup=False)

    def deliver_screenshot(self, filename: str | None = None, path: str | None = None,
                           time_format: str | None = None) -> str | None:
        """The palette's screenshot: an SVG of the screen in the current directory (``path``), mode
        0600 like every file wardtui writes, as it shows device names and addresses (Textual's
        own delivery wrote it under the umask, in a Downloads directory a server may not have).
        Returns the path written, or None after saying why not."""
        stamp = datetime.now(UTC).strftime(time_format or "%Y%m%dT%H%M%SZ")
        target = Path(path or ".") / (filename or f"wardtui-screen-{stamp}.svg")
        try:
            with open_output(target) as out:
                out.write(self.export_screenshot())
        except OSError as exc:
            self.notify(f"{target}: {exc.strerror or exc}", title="Screenshot not saved", severity="error")
            return None
        self.notify(f"Saved to {target.resolve()}", title="Screenshot")
        return str(target)

    def format_title(self, title: str, sub_title: str) -> Content:
        """The header: screens put device names in their sub-title."""
        return super().format_title(clean(title), clean(sub_title))

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.Key | events.MouseDown):
            self.last_input = time.monotonic()
        await super().on_event(event)

    async def on_mount(self) -> None:
        self._drawing = True
        if self.sixteen_colours:
            self.refresh_css(animate=False)  # the variables were made before the driver ran
        # SIGTERM (service stop) and SIGHUP (the operator's SSH session dropped) save history
        # the same way q does, instead of dying with samples and transitions unwritten.
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGHUP):
            # call_later runs the action as a message of the app, in its context.
            loop.add_signal_handler(sig, self.call_later, self.action_quit)
        self.sub_title = self._describe()
        await self.push_screen(self.dashboard)

    def on_ready(self, _: events.Ready) -> None:
        """The first frame is laid out; it is written once the screen's queued refresh has run
        (Textual holds every repaint while the app mounts, so a callback "after refresh" asked
        for from on_mount ran before the first frame was shown): what waits for it runs then."""
        self.dashboard.call_after_refresh(self.after_first_frame)

    def after_first_frame(self) -> None:
        """The dashboard's first frame is shown: the rest of the table's order (the first frame
        painted the first screenful only), then the engine (the store's open, then polling or
        the feed): on the engine's thread it would share the one interpreter with the first
        frame."""
        self.dashboard.after_first_frame()
        self.start_engine()

    def start_engine(self) -> None:
        """The dashboard has painted: the collector on again (if the start had turned it off),
        then the engine."""
        if self.collect_after_first_frame:
            self.collect_after_first_frame = False
            resume_collection()
        if self.engine_worker is None and not self._quitting:
            self.engine_worker = self.run_engine()

    @work(group="engine", exit_on_error=False)
    async def run_engine(self) -> None:
        # Opening the store happens here, not in on_mount, so a database error becomes a
        # notice on a live screen (via the handler below) instead of a traceback.
        try:
            await self.engine_thread.run(self.runtime.start())
        except StartupError as exc:
            # A database problem costs history, never monitoring.
            then = ("The live view goes on; history, outages and reports are not shown."
                    if self.runtime.attached
                    else "Polling goes on WITHOUT history until wardtui is restarted.")
            self.notify(f"{exc}\n{then}", title="history store", severity="error", timeout=24 * 3600)
        self.dashboard.post_message(EngineStarted())
        # Every device's state lives as long as the app: once the first round has filled it in,
        # the process policy may keep full collections from rescanning it, and from running
        # while the operator types. Capped: with hour-long intervals the bulk exists within a minute.
        engine = self.runtime.engine
        first_round = min(60.0, max((s.interval for s in engine.slots), default=0.0)) + 2.0
        self.set_timer(first_round, self.settle_memory)
        await self.engine_thread.run(self.runtime.engine.run())

    def settle_memory(self) -> None:
        """The first round is done: tell the process policy, and if it hands back idle
        collections (the dashboard's: full collections off the keyboard's path), ask them every
        ``EVERY`` seconds with the time of the last key or click."""
        self.idle_collections = self.process.first_round_done()
        if self.idle_collections is not None:
            self.set_interval(self.idle_collections.EVERY, self.collect_when_idle)

    def collect_when_idle(self) -> bool:
        """One full collection if the operator has paused (see
        :meth:`~wardtui.process.IdleCollections.collect_if_idle`); return whether it ran."""
        return self.idle_collections is not None and self.idle_collections.collect_if_idle(self.last_input)

    @on(Worker.StateChanged)
    def _worker_changed(self, event: Worker.StateChanged) -> None:
        if event.state is WorkerState.ERROR:
            error = event.worker.error
            self.notify(f"{type(error).__name__}: {error}", title=f"{event.worker.group} stopped",
                        severity="error", timeout=3600)

    async def action_quit(self) -> None:
        """Stop the engine, wait for it, flush the store, then leave (q and ctrl+q)."""
        if self._quitting:
            return
        self._quitting = True
        self.engine_thread.call(self.runtime.engine.stop)
        if self.engine_worker is not None:
            with suppress(WorkerFailed, WorkerCancelled):  # already shown as a notice
                await self.engine_worker.wait()
        try:
            lost = await self.engine_thread.run(self.runtime.close())
        except Exception as exc:  # the operator must hear that history was not saved
            self._exit_for_sure(1, f"wardtui: could not flush the history store: {exc}")
            return
        finally:
            self.engine_thread.close()
        if lost:
            self._exit_for_sure(1, f"wardtui: {lost} history rows could not be written "
                                   "(database unavailable)")
            return
        if self.runtime.history_off is not None and not self.runtime.attached:
            first_line = self.runtime.history_off.splitlines()[0]
            self._exit_for_sure(RAN_WITHOUT_HISTORY, f"wardtui: ran without history: {first_line}")
            return
        self._exit_for_sure(0)

    def _exit_for_sure(self, code: int, message: str | None = None) -> None:
        """Leave; the process policy may end the process if Textual's own shutdown has not done
        so a while later (the dashboard's exit watchdog, wardtui/process.py; never under a test
        harness's App.run_test). The history is flushed by then."""
        self.process.leaving(code)
        # Printed by Rich after the screen is gone: a Text, so an error that quotes the database
        # ("[parameters: ...]") is not read as markup.
        self.exit(return_code=code, message=Text(clean_lines(message)) if message else None)

    def on_unmount(self) -> None:
        # After q, SIGTERM or SIGHUP this was done already. After a crash in the UI, stop
        # polling and flush what is buffered here, before the engine's loop goes away.
        if not self._quitting:
            self._quitting = True
            self.engine_thread.call(self.runtime.engine.stop)
            with suppress(Exception):
                self.engine_thread.submit(self.runtime.close()).result(timeout=15)
        self.engine_thread.close()

    async def probe_now(self, name: str) -> dict[str, object]:
        """Check ``name`` now (the drill-down's key, ``:probe``): here, or by the service this
        dashboard is attached to. The answer: ``{"ok": True, "result": ...}`` or an error."""
        reply: dict[str, object] = await self.engine_thread.run(self.runtime.probe_now(name))
        return reply

    async def acknowledge(self, device: str, note: str) -> dict[str, object]:
        """Acknowledge ``device``'s outage (the ``a`` key), as :meth:`probe_now` checks: here, or
        by the service. Its answer."""
        reply: dict[str, object] = await self.engine_thread.run(self.runtime.acknowledge(device, note))
        return reply

    async def add_maintenance(self, matchers: list[str], duration_s: float, note: str) -> dict[str, object]:
        """A maintenance window from now (the ``m`` key), here or by the service. Its answer."""
        reply: dict[str, object] = await self.engine_thread.run(
            self.runtime.add_maintenance(matchers, duration_s, note))
        return reply

    def _describe(self) -> str:
        return self.runtime.describe()

    def describe_run(self, lost_since: str | None = None) -> None:
        """The title bar's line again (attached: after the live feed was lost or came back)."""
        line = self._describe()
        self.sub_title = f"LIVE FEED LOST since {lost_since} UTC · {line}" if lost_since else line
