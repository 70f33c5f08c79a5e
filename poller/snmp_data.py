"""Until wardtui/widgets/device_facts.py imports ``missing_text`` from :mod:`poller.snmp_source`
(the widgets are being changed on another branch), this old name keeps that import working;
nothing else uses it. Delete it with that import's change."""

from __future__ import annotations

from poller.snmp_source import missing_text

__all__ = ["missing_text"]
