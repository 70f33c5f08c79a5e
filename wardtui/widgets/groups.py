"""The grouped view: region → branch → device, with device, down and unreachable counts kept up to
date by diff."""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping
from datetime import UTC, datetime
from typing import ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from poller.events import OUT, State
from poller.quiet import Quiet
from poller.state import TrackerView
from wardtui.widgets import quiet_marks
from wardtui.widgets.device_rows import SortKey, natural
from wardtui.widgets.states import StatePalette, state_text

# ("region", region) | ("branch", region, branch) | ("device", name)
NodeData = tuple[str, ...]
Group = tuple[str, ...]  # (region,) or (region, branch)


def name_order(name: str) -> tuple[SortKey, str]:
    """Devices in a branch: natural order (dev2 before dev10), the exact name breaking ties."""
    return natural(name), name


def _leaf_order(node: TreeNode[NodeData]) -> tuple[SortKey, str]:
    return name_order(node.data[1] if node.data is not None else "")


class GroupTree(Tree[NodeData]):
    """Regions are built once; a region's branches and a branch's devices when first expanded,
    and from then on kept complete and in name order as devices start or stop matching.

    Counts cover the devices that pass the filter; :meth:`refresh_devices` adjusts only the
    groups of devices that changed, so a tick costs what changed, not what exists.
    """

    DEFAULT_CSS = """
    GroupTree { height: 1fr; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("k", "cursor_up", "Up", show=False),  # vim's and less's keys; g is the view's
        Binding("j", "cursor_down", "Down", show=False),
    ]

    def __init__(self, trackers: Mapping[str, TrackerView],
                 matches: Callable[[str], bool] = lambda _: True, *, id: str | None = None,
                 shown: Callable[[], Collection[str] | None] | None = None) -> None:
        """``matches``: whether a device passes the filter; ``shown``, if given: the devices that
        do all at once (None: every one), for building the tree without a call per device."""
        super().__init__("all devices", data=("root",), id=id)
        self.show_root = False
        self._trackers = trackers
        self.matches = matches
        self._shown_names = shown
        self._group_of: dict[str, tuple[str, str]] | None = None  # each device's (region, branch)
        self.palette = StatePalette()
        self._members: set[str] = set()  # devices that pass the filter
        self._out: dict[str, State] = {}  # members that are down or unreachable, and which
        self._devices: defaultdict[Group, int] = defaultdict(int)
        self._down_counts: defaultdict[Group, int] = defaultdict(int)
        self._unreachable_counts: defaultdict[Group, int] = defaultdict(int)
        self._group_nodes: dict[Group, TreeNode[NodeData]] = {}
        self._leaves: dict[str, TreeNode[NodeData]] = {}
        self._loaded: set[Group] = set()  # regions and branches whose children exist (maybe none)
        self._branches: dict[str, list[str]] = {}  # each region's branches, in name order
        self._regions: list[str] = []  # every region, in name order
        self._shown_state: dict[str, str] = {}  # each leaf's state and ack/maint mark, as shown
        # The maintenance windows and acknowledgements (set_quiet), marked on the device leaves
        # as in the table, at the time they were last looked at.
        self.quiet = Quiet()
        self._quiet_at = datetime.now(UTC)
        # Built on first use, not at mount: ~0.3 s at 20,000 devices that the first frame and a
        # filter typed in the table must not wait for (the dashboard builds it when idle).
        self._stale = True

    def on_mount(self) -> None:
        if self.display:  # shown from the start; the dashboard mounts it hidden
            self.rebuild()

    # -- what the screen and the tests read ---------------------------------------------------
    def counts(self, region: str, branch: str | None = None) -> tuple[int, int]:
        """(devices, down) of a region or of one of its branches."""
        self.ensure_built()
        group = (region,) if branch is None else (region, branch)
        return self._devices[group], self._down_counts[group]

    def unreachable(self, region: str, branch: str | None = None) -> int:
        """Devices of a region or of one of its branches that are unreachable."""
        self.ensure_built()
        return self._unreachable_counts[(region,) if branch is None else (region, branch)]

    def label_of(self, region: str, branch: str | None = None) -> str:
        self.ensure_built()
        if branch is not None:
            self._load_region(region)
        group = (region,) if branch is None else (region, branch)
        return str(self._group_nodes[group].label)

    # -- building -----------------------------------------------------------------------------
    def reset_devices(self, trackers: Mapping[str, TrackerView]) -> None:
        """Show ``trackers``, another set of devices (attached: the service's inventory changed)."""
        self._trackers = trackers
        self._group_of = None
        self.invalidate()

    def invalidate(self) -> None:
        """What ``matches`` answers changed: rebuild now if shown, else when next used."""
        self._stale = True
        if self.display:
            self.rebuild()

    def ensure_built(self) -> None:
        if self._stale:
            self.rebuild()

    def rebuild(self) -> None:
        """From scratch: on first use and when the filter changes (a user's action)."""
        self._stale = False
        self.clear()
        for store in (self._members, self._out, self._devices, self._down_counts, self._unreachable_counts,
                      self._group_nodes, self._leaves, self._loaded, self._shown_state):
            store.clear()
        # In passes over every device, counted by Counter (a device at a time through _count was
        # ~0.4 s at 100,000 devices, the first g or the screen's warm-up step).
        trackers = self._trackers
        group_of = self._group_of
        if group_of is None:  # the devices' places never change: made once per inventory
            group_of = self._group_of = {name: (t.device.region, t.device.branch)
                                         for name, t in trackers.items()}
            tree: defaultdict[str, list[str]] = defaultdict(list)
            for region, branch in set(group_of.values()):
                tree[region].append(branch)
            self._branches = {region: sorted(branches, key=natural) for region, branches in tree.items()}
            self._regions = sorted(tree, key=natural)
        shown = None if self._shown_names is None else self._shown_names()
        if self._shown_names is not None and shown is None:
            members = list(trackers)  # no filter: every device
        elif shown is not None:
            members = [name for name in trackers if name in shown]
        else:
            members = [name for name in trackers if self.matches(name)]
        self._members.update(members)
        out = self._out
        for name in members:
            state = trackers[name].state
            if state in OUT:
                out[name] = state
        down = [name for name, state in out.items() if state is State.DOWN]
        unreachable = [name for name, state in out.items() if state is State.UNREACHABLE]
        for counts, names in ((self._devices, members), (self._down_counts, down),
                              (self._unreachable_counts, unreachable)):
            for (region, branch), count in Counter(map(group_of.__getitem__, names)).items():
                counts[(region, branch)] += count
                counts[(region,)] += count
        for region in self._regions:  # those with a device that passes the filter, in order
            if self._devices[(region,)]:
                self._group_nodes[(region,)] = self.root.add("", data=("region", region), allow_expand=True)
                self._relabel((region,))

    def _count(self, name: str, tracker: TrackerView, sign: int) -> None:
        device = tracker.device
        state: State | None
        if sign > 0:
            self._members.add(name)
            state = tracker.state
            if state in OUT:
                self._out[name] = state
        else:
            self._members.discard(name)
            state = self._out.pop(name, None)
        counts = (self._down_counts if state is State.DOWN
                  else self._unreachable_counts if state is State.UNREACHABLE else None)
        for group in ((device.region,), (device.region, device.branch)):
            self._devices[group] += sign
            if counts is not None:
                counts[group] += sign

    def _relabel(self, group: Group) -> None:
        """Show the group's counts; a group none of whose devices passes the filter is not shown
        (with a filter, ``g`` listed every region, most of them at zero), and comes back, in
        name order, when one does."""
        node = self._group_nodes.get(group)
        devices, down = self._devices[group], self._down_counts[group]
        if not devices:
            if node is not None:
                self._drop(group, node)
            return
        if node is None:
            node = self._place(group)
            if node is None:
                return  # a branch of a region not opened yet: added when it is
        label = Text(group[-1], style="bold" if len(group) == 1 else "")
        label.append(f"  {devices} device{'' if devices == 1 else 's'}", style="dim")
        label.append(" · ")
        label.append(f"{down} down", style=self.palette.down if down else "dim")
        unreachable = self._unreachable_counts[group]
        if unreachable:  # said only when there are some: most groups never have one
            label.append(" · ")
            label.append(f"{unreachable} unreachable", style=self.palette.unreachable)
        node.set_label(label)

    def _place(self, group: Group) -> TreeNode[NodeData] | None:
        """A new node for a group that has just got a matching device, before the next shown
        one in name order (a scan of its siblings: this happens one group at a time)."""
        if len(group) == 1:
            parent, siblings, data = self.root, [(r,) for r in self._regions], ("region", group[0])
        elif group[:1] in self._loaded:
            parent = self._group_nodes[group[:1]]
            siblings = [(group[0], b) for b in self._branches.get(group[0], [])]
            data = ("branch", *group)
        else:
            return None
        later = siblings[siblings.index(group) + 1:] if group in siblings else []
        before = next((self._group_nodes[g] for g in later if g in self._group_nodes), None)
        node = parent.add("", data=data, before=before, expand=False, allow_expand=True)
        self._group_nodes[group] = node
        return node

    def _drop(self, group: Group, node: TreeNode[NodeData]) -> None:
        node.remove()
        for inside in [g for g in self._group_nodes if g[:len(group)] == group]:
            del self._group_nodes[inside]
            self._loaded.discard(inside)
        for name in [n for n in self._leaves if group in self._groups(self._trackers[n])]:
            del self._leaves[name]

    def _branch_devices(self, region: str, branch: str) -> list[str]:
        names = [name for name in self._members
                 if (d := self._trackers[name].device).region == region and d.branch == branch]
        return sorted(names, key=name_order)

    def action_toggle_node(self) -> None:
        # Before the cursor first moves it is on line -1, which Textual's Tree reads as the
        # last line: Space would open the last region, not the one highlighted (none is).
        if self.cursor_line >= 0:
            super().action_toggle_node()

    def on_tree_node_expanded(self, event: Tree.NodeExpanded[NodeData]) -> None:
        data = event.node.data
        if data is not None and data[0] == "branch":
            self._load_branch(data[1], data[2])
        elif data is not None and data[0] == "region":
            self._load_region(data[1])

    def _load_region(self, region: str) -> TreeNode[NodeData]:
        """The region's node, its branch nodes added the first time (a 20,000-device network
        has ~3,000 branches: building them all took ~0.3 s on every filter change)."""
        node = self._group_nodes[(region,)]
        if (region,) not in self._loaded:
            self._loaded.add((region,))
            for branch in self._branches.get(region, []):
                if self._devices[(region, branch)]:  # in order: appended, not placed (_place)
                    self._group_nodes[(region, branch)] = node.add(
                        "", data=("branch", region, branch), allow_expand=True)
                    self._relabel((region, branch))
        return node

    def _load_branch(self, region: str, branch: str) -> TreeNode[NodeData]:
        """The branch's node, its device leaves added the first time."""
        group = (region, branch)
        self._load_region(region)
        node = self._group_nodes[group]
        if group not in self._loaded:
            self._loaded.add(group)
            for name in self._branch_devices(region, branch):
                self._leaves[name] = node.add_leaf(self._leaf_label(name), data=("device", name))
        return node

    def _leaf_label(self, name: str) -> Text:
        tracker = self._trackers[name]
        state = state_text(tracker.state, self.palette, tracker.flapping)
        mark, kind = self._mark(tracker)
        self._shown_state[name] = f"{state.plain} {mark}"
        if not mark:
            return Text.assemble(name, "  ", state)
        colour = self.palette.maintenance if kind == quiet_marks.MAINT else self.palette.acked
        return Text.assemble(name, "  ", state, "  ", (mark, colour))

    def _mark(self, tracker: TrackerView) -> tuple[str, str]:
        return quiet_marks.mark(self.quiet, tracker, self._quiet_at) if self.quiet else ("", "")

    def _shown(self, tracker: TrackerView) -> str:
        """What a leaf's label says beside the name (compared before relabelling)."""
        return f"{state_text(tracker.state, self.palette, tracker.flapping).plain} {self._mark(tracker)[0]}"

    def set_quiet(self, quiet: Quiet | None, now: datetime) -> None:
        """The windows and acknowledgements in force are ``quiet`` (None: the same, but a window
        starts or ends at ``now``): the device leaves built so far are marked again."""
        if quiet is not None:
            self.quiet = quiet
        self._quiet_at = now
        for name, leaf in self._leaves.items():
            tracker = self._trackers.get(name)
            if tracker is not None and self._shown(tracker) != self._shown_state.get(name):
                leaf.set_label(self._leaf_label(name))

    # -- live updates -------------------------------------------------------------------------
    def refresh_devices(self, names: Iterable[str]) -> None:
        """Adjust counts and labels of the groups of ``names`` only."""
        if self._stale:
            return  # the rebuild counts every device as it is then
        dirty: set[Group] = set()
        for name in names:
            tracker = self._trackers.get(name)
            if tracker is None:
                continue
            member, matches = name in self._members, self.matches(name)
            state = tracker.state
            if member and (not matches or self._out.get(name) is not (state if state in OUT else None)):
                self._count(name, tracker, -1)
                member = False
                dirty |= self._groups(tracker)
            if matches and not member:
                self._count(name, tracker, +1)
                dirty |= self._groups(tracker)
            self._refresh_leaf(name, tracker, matches)
        for group in dirty:
            self._relabel(group)

    def _groups(self, tracker: TrackerView) -> set[Group]:
        device = tracker.device
        return {(device.region,), (device.region, device.branch)}

    def _refresh_leaf(self, name: str, tracker: TrackerView, matches: bool) -> None:
        leaf = self._leaves.get(name)
        if leaf is not None and not matches:
            leaf.remove()
            del self._leaves[name]
        elif leaf is not None:
            if self._shown(tracker) != self._shown_state.get(name):
                leaf.set_label(self._leaf_label(name))
        elif matches:
            device = tracker.device
            group = (device.region, device.branch)
            if group in self._loaded:  # keep it complete, in the order it was built in
                branch = self._group_nodes[group]
                at = bisect_left(branch.children, name_order(name), key=_leaf_order)
                self._leaves[name] = branch.add_leaf(self._leaf_label(name), data=("device", name),
                                                     before=at)

    def select_device(self, name: str) -> bool:
        """Expand the device's groups and put the cursor on it; False if it is filtered out."""
        self.ensure_built()
        tracker = self._trackers.get(name)
        if tracker is None or name not in self._members:
            return False
        device = tracker.device
        self._group_nodes[(device.region,)].expand()
        branch = self._load_branch(device.region, device.branch)
        branch.expand()
        # The node has no line until the tree has laid out what was just expanded.
        self.call_after_refresh(self.move_cursor, self._leaves[name])
        return True

    def regions(self) -> list[str]:
        self.ensure_built()
        return [group[0] for group in self._group_nodes if len(group) == 1]
