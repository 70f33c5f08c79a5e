"""wardtui's polling engine: inventory, probes, scheduler, device state, gauges and events.

This package knows no screen and no database: it never imports textual, rich,
``store`` or ``wardtui``.
"""
