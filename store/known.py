"""The inventory the history database knows: its devices table, read without changing anything."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.engine import Connection

from poller.inventory import Device, split_parents
from store.models import devices_table
from store.schema import SchemaError, display_url, read_only, status_of


async def known_devices(url: str) -> list[Device]:
    """Every device the history at ``url`` has a row for, by first appearance, with what the
    table keeps (name, address, branch, region, type, parent); none when the database is empty.
    Neither creates nor migrates anything. Raises :class:`store.schema.SchemaError` when its
    schema is not this wardtui's."""
    label = display_url(url)

    def read(conn: Connection) -> list[Device]:
        status = status_of(conn)
        if status.state == "empty":
            return []
        if not status.at_head:
            raise SchemaError(f"the history database {label} is at schema {status.describe()}: "
                              "it cannot be compared; give --against OLD_FILE")
        d = devices_table.c
        rows = conn.execute(select(d.name, d.address, d.branch, d.region, d.type, d.parent).order_by(d.id))
        return [Device(name, address, branch or "", region or "", kind or "", host=address,
                       parents=split_parents(parent))
                for name, address, branch, region, kind, parent in rows]

    return await read_only(url, read)
