"""The ``wardtui`` command's entry (and ``python -m wardtui``'s): the CLI, with the collector
off while its modules load.

Loading them makes some 200,000 objects that live as long as the process; the collector's
passes over them while they load find nothing to free and cost ~15 % of the start. It is
turned on again once they are loaded, except for the dashboard, which leaves it off until its
first frame is painted (at 100,000 devices the attach and the table's start make as many
again: wardtui/app.py turns it on). Whatever happens, it is on again when the command returns.
"""

from __future__ import annotations

from wardtui.process import pause_collection, resume_collection


def main() -> int:
    pause_collection()
    try:
        from wardtui.cli import main as cli

        return cli(collection_paused=True)
    finally:
        resume_collection()
