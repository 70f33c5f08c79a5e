"""The ``e`` export box: an availability report of the dashboard's current view, written to a file."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, Input, Label, RadioButton, RadioSet, Static

from poller.text import clean_lines
from store.files import open_output
from store.report import GROUP_BYS, GroupBy, Period, Report
from wardtui.cli.common import UsageError, parse_period
from wardtui.history_access import HistoryAccess, Scope, store_errors
from wardtui.literal import Literal, literal
from wardtui.report_formats import FORMATS, RENDERERS

# (id, label) of the periods offered; "custom" reads the from/to inputs.
PERIODS = (("24h", "last 24 h"), ("7d", "last 7 days"), ("30d", "last 30 days"),
           ("month", "this month"), ("custom", "custom from → to"))


def choose_period(choice: str, now: datetime, start: str = "", end: str = "") -> Period:
    """The period of a choice in :data:`PERIODS`; ``custom`` parses ``start``/``end`` as the
    ``report`` command's --from/--to do (raises :class:`UsageError` on bad input)."""
    if choice == "month":
        return Period(now.replace(day=1, hour=0, minute=0, second=0, microsecond=0), now)
    if choice == "custom":
        if not start.strip():
            raise UsageError("custom period: type a start in 'from' (2026-11-01, 7d, …)")
        return parse_period(start, end.strip() or "now", now)
    return parse_period(choice, "now", now)


def default_path(fmt: str, now: datetime, directory: Path | None = None) -> Path:
    """``wardtui-report-<UTC timestamp>.<ext>`` in ``directory`` (the current one by default)."""
    name = f"wardtui-report-{now.astimezone(UTC):%Y%m%dT%H%M%SZ}.{fmt}"
    return (directory or Path.cwd()) / name


def write_report(report: Report, fmt: str, path: Path) -> Path:
    """Render and write (in a thread: 20,000 rows take a while); return the absolute path."""
    text = RENDERERS[fmt](report)
    path = path.expanduser().resolve()
    with open_output(path) as out:  # 0600: the report names devices, addresses and outages
        out.write(text)
    return path


class ExportScreen(ModalScreen[Path | None]):
    """Pick period, grouping, format and file; Enter writes, Esc cancels. Dismisses with the path."""

    CSS_PATH = "export.tcss"
    BINDINGS = [
        # priority: Enter writes from any field (a radio list would otherwise take it).
        Binding("enter", "export", "Write", priority=True, tooltip="write the report"),
        Binding("escape", "cancel", "Cancel", tooltip="close without writing"),
    ]

    def __init__(self, scope: Scope, total: int | None = None, directory: Path | None = None,
                 history: HistoryAccess | None = None) -> None:
        """``scope``: what the report covers, of ``total`` devices; ``history``: where it is read
        (``None``: every Enter says there is no history store)."""
        super().__init__()
        self.scope = scope
        self.history = history
        self.total = total
        self.directory = directory
        self.fmt = "html"
        self._auto_path = str(default_path(self.fmt, datetime.now(UTC), directory))
        self.writing = False

    def compose(self) -> ComposeResult:
        with Vertical(id="export-box"):
            yield Literal(f"availability report of {self.scope.describe(self.total)}", id="export-scope")
            with Horizontal(id="export-choices"):
                yield _radios("period", [label for _, label in PERIODS], 0)
                yield _radios("group by", list(GROUP_BYS), 0)
                yield _radios("format", list(FORMATS), FORMATS.index(self.fmt))
            with Horizontal(id="export-custom"):
                yield Input(placeholder="from: 2026-11-01 or 7d", id="export-from", compact=True,
                            disabled=True)
                yield Input(placeholder="to: now", id="export-to", compact=True, disabled=True)
            yield Label("file")
            yield Input(self._auto_path, id="export-path", compact=True)
            yield Static("Tab moves · ↑↓ and Space choose · Enter writes · Esc cancels", id="export-hint")
        yield Footer(show_command_palette=False)  # this box's keys, not the dashboard's beneath

    def on_mount(self) -> None:
        self.query_one("#export-box").border_title = "export report (e)"
        self.query_one("#period", RadioSet).focus()

    # -- choices -----------------------------------------------------------------------------
    def _picked(self, radios_id: str) -> int:
        return max(self.query_one(f"#{radios_id}", RadioSet).pressed_index, 0)

    @property
    def period_choice(self) -> str:
        return PERIODS[self._picked("period")][0]

    @property
    def group_by(self) -> GroupBy:
        return GROUP_BYS[self._picked("group-by")]

    @on(RadioSet.Changed, "#period")
    def _period_changed(self) -> None:
        custom = self.period_choice == "custom"
        for field in self.query("#export-custom Input"):
            field.disabled = not custom

    @on(RadioSet.Changed, "#format")
    def _format_changed(self) -> None:
        self.fmt = FORMATS[self._picked("format")]
        path = self.query_one("#export-path", Input)
        if path.value == self._auto_path:  # follow the format unless the operator typed a name
            self._auto_path = str(Path(self._auto_path).with_suffix(f".{self.fmt}"))
            path.value = self._auto_path

    # -- keys --------------------------------------------------------------------------------
    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_export(self) -> None:
        if self.writing:
            return
        now = datetime.now(UTC)
        try:
            period = choose_period(self.period_choice, now, self.query_one("#export-from", Input).value,
                                   self.query_one("#export-to", Input).value)
        except (UsageError, ValueError) as exc:
            self.notify(str(exc), title="export", severity="error")
            return
        path = self.query_one("#export-path", Input).value.strip()
        if not path:
            self.notify("type a file name", title="export", severity="error")
            return
        # A name that says its format (report.csv) is what the operator means, whatever the
        # format list still shows: never HTML inside a .csv.
        suffix = Path(path).suffix.lstrip(".").lower()
        fmt = suffix if suffix in FORMATS else self.fmt
        self.writing = True
        self.export(period, self.group_by, fmt, Path(path), now)

    @work(group="export", exclusive=True, exit_on_error=False)
    async def export(self, period: Period, group_by: GroupBy, fmt: str, path: Path, now: datetime) -> None:
        """Read, render and write; every way it can fail ends in a notice and a usable box."""
        try:
            if self.history is None:
                raise RuntimeError("no history store")
            # The store belongs to the engine's loop; rendering and writing go to a thread.
            report = await self.history.availability(period, self.scope, group_by=group_by, now=now)
            written = await asyncio.to_thread(write_report, report, fmt, path)
        except store_errors() as exc:
            what = f"cannot write {path}" if isinstance(exc, OSError) else "cannot read the history"
            self._failed(f"{what}: {getattr(exc, 'strerror', None) or exc}")
            return
        except Exception as exc:  # a bug, or what the operator typed (a NUL in the name): said, not swallowed
            self._failed(f"export failed: {type(exc).__name__}: {exc}")
            return
        finally:
            self.writing = False  # also when cancelled (the box closed): nothing is being written
        self.app.notify(f"{len(report.rows)} rows, {len(report.outages)} outages → {written}",
                        title="report written", timeout=10)
        self.dismiss(written)

    def _failed(self, message: str) -> None:
        """Say why nothing was written; the box stays, and Enter tries again. The message quotes
        the path and database errors: literal text, never markup (wardtui/literal.py)."""
        self.notify(clean_lines(message), title="export", severity="error", markup=False)


def _radios(title: str, labels: list[str], pressed: int) -> RadioSet:
    radios = RadioSet(*(RadioButton(label, value=i == pressed) for i, label in enumerate(labels)),
                      id=title.replace(" ", "-"))
    radios.border_title = literal(title)
    return radios

