"""Attached to a cluster (``serve --cluster``): a line per member in the engine panel, from
poller/cluster_feed.py's :class:`~poller.cluster_feed.NodesChanged`: its devices, lag p99,
checks skipped, shards, lease age, takeovers and refused writes. A member's id and host are data
(a hostname is whatever that host says): cleaned, never markup."""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget

from poller.cluster_feed import NodeLine, poller_label
from poller.text import clean

MAX_NODES = 4  # more members than this: the rest are counted on a last line
LINES = 2  # each member's: its name, devices and shards; then its figures (the panel is narrow)


def node_line(node: NodeLine, warn: str) -> Text:
    """One member's two lines: its label (cleaned), devices and shards; then lag p99, checks
    skipped, lease age, takeovers and refused writes. A member not followed (lost) or whose
    writes were refused lights up."""
    line = Text(no_wrap=True, overflow="ellipsis")
    line.append("● " if node.live else "○ ", style="" if node.live else warn)
    line.append(clean(poller_label(node.poller)))
    if not node.live:
        line.append(" lost", style=warn)
    line.append(f" · {node.devices} dev · {node.shards} shards", style="dim")
    figures = Text(no_wrap=True, overflow="ellipsis")
    parts = []
    if node.lag_p99_ms is not None:
        parts.append(("lag99", f"{node.lag_p99_ms:.0f}ms", False))
    if node.skipped is not None:
        parts.append(("skip", f"{node.skipped}", node.skipped > 0))
    if node.lease_age_s is not None:
        parts.append(("lease", f"{node.lease_age_s:.1f}s", False))
    if node.takeovers is not None:
        parts.append(("took", f"{node.takeovers:.0f}", False))
    if node.refused_writes is not None:
        parts.append(("refused", f"{node.refused_writes:.0f}", node.refused_writes > 0))
    for label, value, bad in parts:
        figures.append(f"  {label} ", style="dim")
        figures.append(value, style=warn if bad else "")
    return Text("\n").join((line, figures))


class NodeLines(Widget):
    """The members' lines; hidden until the first :meth:`show` (a service alone has none)."""

    DEFAULT_CSS = """
    NodeLines { height: auto; display: none; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.nodes: tuple[NodeLine, ...] = ()
        self.warn_style = "bold yellow"
        self._height = 0

    def show(self, nodes: tuple[NodeLine, ...]) -> None:
        self.nodes = nodes
        shown = min(len(nodes), MAX_NODES)
        height = shown * LINES + (len(nodes) > shown)
        if height != self._height:  # a layout only when the member count changes
            self._height = height
            self.styles.height = height
            self.display = height > 0
        self.refresh()

    @property
    def lines(self) -> int:
        return self._height

    def render(self) -> Text:
        nodes = self.nodes
        width = self.content_size.width or 52
        lines: list[Text] = []
        for node in nodes[:MAX_NODES]:
            lines.extend(node_line(node, self.warn_style).split("\n"))
        if len(nodes) > MAX_NODES:
            more = Text(style="dim")
            more.append(f"… and {len(nodes) - MAX_NODES} more pollers (wardtui status)")  # literal-ok
            lines.append(more)
        for line in lines:  # cut, never wrapped: a line per line of the panel
            line.truncate(width, overflow="ellipsis")
        return Text("\n").join(lines)
