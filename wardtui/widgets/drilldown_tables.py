"""The drill-down's two tables: a device's outages, and its SNMP interfaces kept up to date by
difference. The screen decides when they appear and what they show; these draw it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from wardtui.widgets.device_facts import InterfaceLike, interface_row
from wardtui.widgets.vim_keys import VimDataTable

OUTAGE_COLUMNS = ("start (UTC)", "end", "duration")
IF_COLUMNS = (("if", "if"), ("name", "name"), ("alias", "alias"), ("admin/oper", "status"),
              ("speed", "speed"), ("in bit/s", "in"), ("out bit/s", "out"))


class OutageTable(VimDataTable):
    """(start, end or "ongoing", duration) rows, newest first; hidden when there are none."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self.add_columns(*OUTAGE_COLUMNS)

    def show(self, rows: Sequence[tuple[str, ...]]) -> None:
        """Show ``rows``; redrawn only when they differ (a few rows, and most ticks change none)."""
        self.display = bool(rows)
        if [tuple(str(c) for c in self.get_row_at(i)) for i in range(self.row_count)] == list(rows):
            return
        with self.app.batch_update():
            self.clear()
            for row in rows:
                self.add_row(*row)


class InterfaceTable(VimDataTable):
    """A device's interfaces, one row each, keyed by ifindex, in ifindex order (numeric: 2
    before 10), whatever order they came in and when they appeared."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        for label, key in IF_COLUMNS:
            self.add_column(label, key=key)

    def show(self, interfaces: Sequence[InterfaceLike]) -> int:
        """By difference: the cursor stays on its interface while polls update the rates.
        Returns how many interfaces are shown."""
        rows = {str(i.ifindex): interface_row(i) for i in interfaces}
        with self.app.batch_update():
            for gone in [key for key in self.rows if key.value not in rows]:
                self.remove_row(gone)
            added = False
            for key, row in rows.items():
                if key not in self.rows:
                    self.add_row(*row, key=key)
                    added = True
                    continue
                for (_, column), before, after in zip(IF_COLUMNS, self.get_row(key), row, strict=True):
                    if str(before) != after:  # cells are Text (LiteralTable), rows str
                        self.update_cell(key, column, after)
            if added:
                self._keep_order()
        return len(rows)

    def _keep_order(self) -> None:
        """Rows added at the end (an interface that appeared, or a poll listing them in another
        order) move to their ifindex's place; the cursor stays on the interface it was on."""
        indexes = [int(str(row.key.value)) for row in self.ordered_rows]
        if indexes == sorted(indexes):
            return
        under = self.cursor_interface()
        self.sort(key=lambda cells: int(str(cells[0])))  # the "if" column: the ifindex
        if under is not None:
            self.move_cursor(row=self.get_row_index(str(under)), scroll=False)

    def cursor_interface(self) -> int | None:
        """The ifindex of the row under the cursor (None: no rows)."""
        if not self.row_count:
            return None
        key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        return None if key.value is None else int(key.value)
