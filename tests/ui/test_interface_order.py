"""The drill-down's interface table is in ifIndex order, numerically, whatever order the
interfaces came in and whenever they appeared; the cursor stays on its interface."""

from __future__ import annotations

from textual.app import App, ComposeResult

from poller.events import InterfaceStat
from wardtui.widgets.drilldown_tables import InterfaceTable


def port(ifindex: int, name: str) -> InterfaceStat:
    return InterfaceStat(ifindex, name, "", "up", "up", 1_000_000_000, 1e3, 2e3, 0, 0, 0, 0, True)


class TableApp(App[None]):
    def compose(self) -> ComposeResult:
        yield InterfaceTable(id="interfaces")


def order(table: InterfaceTable) -> list[str]:
    return [str(table.get_row_at(i)[0]) for i in range(table.row_count)]


async def test_rows_are_in_numeric_ifindex_order_and_the_cursor_keeps_its_interface() -> None:
    app = TableApp()
    async with app.run_test(size=(100, 30)) as pilot:
        table = app.query_one(InterfaceTable)
        # A poll listing them out of order (an attached feed, a store read): 2 before 10.
        table.show([port(10, "Gi0/10"), port(2, "Gi0/2"), port(100, "Po100")])
        await pilot.pause()
        assert order(table) == ["2", "10", "100"]
        table.move_cursor(row=1)
        assert table.cursor_interface() == 10
        # Interfaces that appear later go to their place, not to the end; one leaves.
        table.show([port(1, "Gi0/1"), port(2, "Gi0/2"), port(10, "Gi0/10"), port(3, "Gi0/3"),
                    port(20, "Gi0/20")])
        await pilot.pause()
        assert order(table) == ["1", "2", "3", "10", "20"]
        assert table.cursor_interface() == 10  # the same interface, on another row
        assert [str(c) for c in table.get_row(str(3))][:2] == ["3", "Gi0/3"]
        # A poll that changes only figures keeps everything where it is.
        table.show([port(1, "Gi0/1"), port(2, "Gi0/2"), port(3, "Gi0/3"), port(10, "Gi0/10b"),
                    port(20, "Gi0/20")])
        await pilot.pause()
        assert order(table) == ["1", "2", "3", "10", "20"] and table.cursor_interface() == 10
        assert str(table.get_row("10")[1]) == "Gi0/10b"
