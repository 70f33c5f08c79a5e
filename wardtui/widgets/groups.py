"""The grouped view: region → branch → device, with device and down counts kept up to date by diff."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping

from rich.text import Text
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from poller.events import State
from poller.state import DeviceTracker
from wardtui.widgets.device_rows import natural
from wardtui.widgets.states import StatePalette, state_text

# ("region", region) | ("branch", region, branch) | ("device", name)
NodeData = tuple[str, ...]
Group = tuple[str, ...]  # (region,) or (region, branch)


class GroupTree(Tree[NodeData]):
    """Regions and branches are built once; a branch's devices only when it is expanded.

    Counts cover the devices that pass the filter; :meth:`refresh_devices` adjusts only the
    groups of devices that changed, so a tick costs what changed, not what exists.
    """

    DEFAULT_CSS = """
    GroupTree { height: 1fr; }
    """

    def __init__(self, trackers: Mapping[str, DeviceTracker],
                 matches: Callable[[str], bool] = lambda _: True, *, id: str | None = None) -> None:
        super().__init__("all devices", data=("root",), id=id)
        self.show_root = False
        self._trackers = trackers
        self.matches = matches
        self.palette = StatePalette()
        self._members: set[str] = set()  # devices that pass the filter
        self._down: set[str] = set()  # members that are down
        self._devices: defaultdict[Group, int] = defaultdict(int)
        self._down_counts: defaultdict[Group, int] = defaultdict(int)
        self._group_nodes: dict[Group, TreeNode[NodeData]] = {}
        self._leaves: dict[str, TreeNode[NodeData]] = {}
        self._shown_state: dict[str, str] = {}

    def on_mount(self) -> None:
        self.rebuild()

    # -- what the screen and the tests read ---------------------------------------------------
    def counts(self, region: str, branch: str | None = None) -> tuple[int, int]:
        """(devices, down) of a region or of one of its branches."""
        group = (region,) if branch is None else (region, branch)
        return self._devices[group], self._down_counts[group]

    def label_of(self, region: str, branch: str | None = None) -> str:
        group = (region,) if branch is None else (region, branch)
        return str(self._group_nodes[group].label)

    # -- building -----------------------------------------------------------------------------
    def rebuild(self) -> None:
        """From scratch: at start and when the filter changes (a user's action)."""
        self.clear()
        for store in (self._members, self._down, self._devices, self._down_counts,
                      self._group_nodes, self._leaves, self._shown_state):
            store.clear()
        tree: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
        for name, tracker in self._trackers.items():
            device = tracker.device
            tree[device.region][device.branch].append(name)
            if self.matches(name):
                self._count(name, tracker, +1)
        for region in sorted(tree, key=natural):
            region_node = self.root.add("", data=("region", region), expand=False)
            self._group_nodes[(region,)] = region_node
            for branch in sorted(tree[region], key=natural):
                node = region_node.add("", data=("branch", region, branch), allow_expand=True)
                self._group_nodes[(region, branch)] = node
        for group in self._group_nodes:
            self._relabel(group)

    def _count(self, name: str, tracker: DeviceTracker, sign: int) -> None:
        device = tracker.device
        down = tracker.state is State.DOWN
        if sign > 0:
            self._members.add(name)
            if down:
                self._down.add(name)
        else:
            self._members.discard(name)
            down = name in self._down
            self._down.discard(name)
        for group in ((device.region,), (device.region, device.branch)):
            self._devices[group] += sign
            if down:
                self._down_counts[group] += sign

    def _relabel(self, group: Group) -> None:
        node = self._group_nodes.get(group)
        if node is None:
            return
        devices, down = self._devices[group], self._down_counts[group]
        label = Text(group[-1], style="bold" if len(group) == 1 else "")
        label.append(f"  {devices} devices", style="dim")
        label.append(" · ")
        label.append(f"{down} down", style=self.palette.down if down else "dim")
        node.set_label(label)

    def _branch_devices(self, region: str, branch: str) -> list[str]:
        names = [name for name in self._members
                 if (d := self._trackers[name].device).region == region and d.branch == branch]
        return sorted(names, key=natural)

    def on_tree_node_expanded(self, event: Tree.NodeExpanded[NodeData]) -> None:
        data = event.node.data
        if data is None or data[0] != "branch" or event.node.children:
            return
        for name in self._branch_devices(data[1], data[2]):
            self._leaves[name] = event.node.add_leaf(self._leaf_label(name), data=("device", name))

    def _leaf_label(self, name: str) -> Text:
        tracker = self._trackers[name]
        state = state_text(tracker.state, self.palette, tracker.flapping)
        self._shown_state[name] = state.plain
        return Text.assemble(name, "  ", state)

    # -- live updates -------------------------------------------------------------------------
    def refresh_devices(self, names: Iterable[str]) -> None:
        """Adjust counts and labels of the groups of ``names`` only."""
        dirty: set[Group] = set()
        for name in names:
            tracker = self._trackers.get(name)
            if tracker is None:
                continue
            member, matches = name in self._members, self.matches(name)
            down = tracker.state is State.DOWN
            if member and (not matches or down != (name in self._down)):
                self._count(name, tracker, -1)
                member = False
                dirty |= self._groups(tracker)
            if matches and not member:
                self._count(name, tracker, +1)
                dirty |= self._groups(tracker)
            self._refresh_leaf(name, tracker, matches)
        for group in dirty:
            self._relabel(group)

    def _groups(self, tracker: DeviceTracker) -> set[Group]:
        device = tracker.device
        return {(device.region,), (device.region, device.branch)}

    def _refresh_leaf(self, name: str, tracker: DeviceTracker, matches: bool) -> None:
        leaf = self._leaves.get(name)
        if leaf is not None and not matches:
            leaf.remove()
            del self._leaves[name]
        elif leaf is not None:
            if state_text(tracker.state, self.palette, tracker.flapping).plain != self._shown_state.get(name):
                leaf.set_label(self._leaf_label(name))
        elif matches:
            device = tracker.device
            branch = self._group_nodes.get((device.region, device.branch))
            if branch is not None and branch.children:  # loaded already: keep it complete
                self._leaves[name] = branch.add_leaf(self._leaf_label(name), data=("device", name))

    def select_device(self, name: str) -> bool:
        """Expand the device's groups and put the cursor on it; False if it is filtered out."""
        tracker = self._trackers.get(name)
        if tracker is None or name not in self._members:
            return False
        device = tracker.device
        self._group_nodes[(device.region,)].expand()
        branch = self._group_nodes[(device.region, device.branch)]
        if not branch.children:
            for member in self._branch_devices(device.region, device.branch):
                self._leaves[member] = branch.add_leaf(self._leaf_label(member), data=("device", member))
        branch.expand()
        # The node has no line until the tree has laid out what was just expanded.
        self.call_after_refresh(self.move_cursor, self._leaves[name])
        return True

    def regions(self) -> list[str]:
        return [group[0] for group in self._group_nodes if len(group) == 1]
