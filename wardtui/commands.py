"""The command palette's dashboard commands (ctrl+p): the views, and every device by name."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from functools import partial
from typing import Protocol, runtime_checkable

from textual.command import DiscoveryHit, Hit, Hits, Matcher, Provider
from textual.content import Content

from wardtui.literal import literal
from wardtui.widgets.command_line import COMMANDS

VIEW_COMMANDS = [(name, help_text) for name, argument, help_text in COMMANDS if not argument]
MAX_DEVICE_HITS = 100
BATCH = 500  # devices matched between yields to the event loop: typing stays responsive


def highlight(matcher: Matcher, candidate: str) -> Content:
    """``Matcher.highlight`` reads the candidate as markup: a device named ``[/]`` would stop
    the palette. The same highlighting on the literal name (wardtui/literal.py)."""
    content = literal(candidate)
    score, offsets = matcher.fuzzy_search.match(matcher.query, candidate)
    if not score:
        return content
    for offset in offsets:
        if not candidate[offset].isspace():
            content = content.stylize(matcher.match_style, offset, offset + 1)
    return content


@runtime_checkable
class CommandTarget(Protocol):
    """The screen the palette's commands run on (the dashboard): what this module needs of it, so
    that it need not import the screen that imports it."""

    def run_command(self, line: str) -> None:
        """Run one ``:`` command line."""

    def device_names(self) -> Iterable[str]:
        """Every device, in inventory order."""


class DashboardCommands(Provider):
    """Views and commands first, then devices, yielded as they match (20,000 names stay quick)."""

    def _dashboard(self) -> CommandTarget | None:
        screen = self.screen
        return screen if isinstance(screen, CommandTarget) else None

    async def discover(self) -> Hits:
        dashboard = self._dashboard()
        if dashboard is None:
            return
        for name, help_text in VIEW_COMMANDS:
            yield DiscoveryHit(literal(f":{name}"), partial(dashboard.run_command, name), help=help_text)

    async def search(self, query: str) -> AsyncIterator[Hit]:
        dashboard = self._dashboard()
        if dashboard is None:
            return
        matcher = self.matcher(query)
        for name, help_text in VIEW_COMMANDS:
            score = matcher.match(f":{name}")
            if score > 0:
                yield Hit(score, highlight(matcher, f":{name}"), partial(dashboard.run_command, name),
                          help=help_text)
        folded, found = query.lower().lstrip(":"), 0
        for index, device in enumerate(dashboard.device_names()):
            if index % BATCH == 0:
                await asyncio.sleep(0)
            # A substring test first: the fuzzy matcher is far slower than `in`.
            if folded and folded in device.lower():
                yield Hit(matcher.match(device) or 0.5, highlight(matcher, device),
                          partial(dashboard.run_command, f"device {device}"), help="open its drill-down")
                found += 1
                if found >= MAX_DEVICE_HITS:  # nobody reads further; type more of the name
                    return
