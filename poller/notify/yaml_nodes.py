"""Reading a small YAML settings file node by node, so that every problem names its line.

The notify file is read as the inventory's YAML is (poller/inventory_yaml.py): composed into
nodes, which keep where each value was written, and every value taken from its node by hand:
each problem is collected as ``file:line: message`` and all of them are reported at once,
unknown keys and keys given twice included (YAML itself lets the last one win, silently).
Aliases are refused before anything is composed: a few lines of them expand to billions of
values, and a settings file has no need of them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection
from dataclasses import dataclass

import yaml

from poller.text import escaped, first_unsafe

_NULL = "tag:yaml.org,2002:null"
_BOOL = "tag:yaml.org,2002:bool"
_BINARY = "tag:yaml.org,2002:binary"

# "30s", "5m", "4h", "1h30m", "500ms", "2d": Alertmanager's durations (no bare numbers: a unit
# left out is a guess, and 30 as seconds or minutes both happen).
_DURATION = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


class SettingsError(Exception):
    """A settings file cannot be used; ``problems`` are its ``file:line: message`` lines, all
    of them, in the order of their lines."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def parse_duration(text: str) -> float | None:
    """Seconds of ``30s``, ``5m``, ``4h``, ``1h30m``, ``500ms``, ``2d``; None if it is not one."""
    text = text.strip()
    if not _DURATION.fullmatch(text):
        return None
    return sum(float(n) * _UNIT_SECONDS[unit] for n, unit in _DURATION_PART.findall(text))


def format_duration(seconds: float) -> str:
    """``30s``, ``5m``, ``4h``, ``1h30m``: the inverse of :func:`parse_duration` for messages."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    whole = int(seconds)
    if whole != seconds:
        return f"{seconds:g}s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, whole = divmod(whole, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


@dataclass(frozen=True, slots=True)
class Field:
    """One ``key: value`` of a mapping: the value's node and where the key was written."""

    key: str
    node: yaml.Node
    line: int


class NodeReader:
    """Takes values out of one file's nodes, collecting each problem with its line."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._problems: list[tuple[int, str]] = []

    # -- problems ----------------------------------------------------------------------------

    def problem(self, where: yaml.Node | int, message: str) -> None:
        line = where if isinstance(where, int) else where.start_mark.line + 1
        self._problems.append((line, message))

    @property
    def failed(self) -> bool:
        return bool(self._problems)

    def count(self) -> int:
        return len(self._problems)

    def lines(self) -> list[str]:
        """Every problem as ``file:line: message``, by line; what they quote is escaped."""
        ordered = sorted(self._problems, key=lambda p: p[0])
        return [f"{escaped(self.path)}:{line}: {escaped(message)}" for line, message in ordered]

    # -- the file ----------------------------------------------------------------------------

    def root(self, text: str) -> yaml.Node | None:
        """The document's root node, or None (with the problem) for broken YAML or an alias."""
        try:
            aliases = [e for e in yaml.parse(text, Loader=yaml.SafeLoader) if isinstance(e, yaml.AliasEvent)]
            if not aliases:
                node: yaml.Node | None = yaml.compose(text, Loader=yaml.SafeLoader)
                return node
        except yaml.YAMLError as exc:
            self.problem(_error_line(exc, text), f"not valid YAML: {_one_line(exc)}")
            return None
        for event in aliases:
            line = event.start_mark.line + 1 if event.start_mark else 0
            self.problem(line, f"YAML alias '*{event.anchor}': aliases are not allowed here (write the "
                               "value out)")
        return None

    # -- mappings ----------------------------------------------------------------------------

    def fields(self, node: yaml.Node, what: str, allowed: Collection[str] | None,
               required: Collection[str] = ()) -> dict[str, Field] | None:
        """The keys of mapping ``node`` (``what`` names it in messages): each key once, each
        one of ``allowed`` (None: any), every one of ``required`` there. Unknown and repeated keys are
        problems and left out; None when ``node`` is not a mapping."""
        if not isinstance(node, yaml.MappingNode):
            self.problem(node, f"{what}: expected a mapping of key: value, found {kind(node)}")
            return None
        found: dict[str, Field] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode):
                self.problem(key_node, f"{what}: {kind(key_node)} where a key belongs")
                continue
            key = str(key_node.value)
            if key in found:
                self.problem(key_node, f"{what}: '{key}' given twice (first on line {found[key].line})")
            elif allowed is not None and key not in allowed:
                self.problem(key_node, f"{what}: unknown key '{key}' (known: {', '.join(allowed)})")
            else:
                found[key] = Field(key, value_node, line)
        for key in required:
            if key not in found:
                self.problem(node, f"{what}: '{key}' is missing")
        return found

    # -- values ------------------------------------------------------------------------------

    def text(self, field: Field, what: str) -> str | None:
        """One value as the text written (``yes`` stays "yes"): not empty, not a list, no
        control character."""
        node = field.node
        label = f"{what}: '{field.key}'"
        if not isinstance(node, yaml.ScalarNode):
            self.problem(node, f"{label} is {kind(node)}: one value belongs here")
            return None
        if node.tag == _BINARY:
            self.problem(node, f"{label} is binary data (!!binary): text belongs here")
            return None
        value = str(node.value)
        if node.tag == _NULL or not value.strip():
            self.problem(node, f"{label} is empty")
            return None
        unsafe = first_unsafe(value)
        if unsafe is not None:
            self.problem(node, f"{label} holds the control character {unsafe}")
            return None
        return value

    def texts(self, field: Field, what: str, *, one_allowed: bool = True) -> list[str] | None:
        """A list of values (or, ``one_allowed``, one value for a list of one)."""
        node = field.node
        if isinstance(node, yaml.ScalarNode) and one_allowed:
            value = self.text(field, what)
            return None if value is None else [value]
        if not isinstance(node, yaml.SequenceNode):
            self.problem(node, f"{what}: '{field.key}' is {kind(node)}: a list belongs here")
            return None
        values: list[str] = []
        ok = True
        for item in node.value:
            value = self.text(Field(field.key, item, item.start_mark.line + 1), what)
            ok = ok and value is not None
            values.append(value or "")
        return values if ok else None

    def items(self, field: Field, what: str) -> list[tuple[yaml.Node, str]] | None:
        """A list of values, each with its node (for a problem found later on one of them)."""
        node = field.node
        nodes = [node] if isinstance(node, yaml.ScalarNode) else None
        if isinstance(node, yaml.SequenceNode):
            nodes = node.value
        if nodes is None:
            self.problem(node, f"{what}: '{field.key}' is {kind(node)}: a list belongs here")
            return None
        found: list[tuple[yaml.Node, str]] = []
        for item in nodes:
            value = self.text(Field(field.key, item, item.start_mark.line + 1), what)
            if value is not None:
                found.append((item, value))
        return found if len(found) == len(nodes) else None

    def boolean(self, field: Field, what: str) -> bool | None:
        node = field.node
        value = str(node.value).lower() if isinstance(node, yaml.ScalarNode) else ""
        if node.tag != _BOOL or value not in ("true", "false"):
            self.problem(node, f"{what}: '{field.key}' must be true or false")
            return None
        return value == "true"

    def integer(self, field: Field, what: str, low: int, high: int) -> int | None:
        node = field.node
        value = str(node.value) if isinstance(node, yaml.ScalarNode) else ""
        if not value.isdigit() or not value.isascii() or not low <= int(value) <= high:
            self.problem(node, f"{what}: '{field.key}' must be a whole number from {low} to {high}")
            return None
        return int(value)

    def duration(self, field: Field, what: str) -> float | None:
        """A duration above zero: ``30s``, ``5m``, ``4h``, ``1h30m``."""
        node = field.node
        text = str(node.value) if isinstance(node, yaml.ScalarNode) else ""
        seconds = parse_duration(text)
        if seconds is None:
            self.problem(node, f"{what}: '{field.key}' must be a duration with its unit, like 30s, 5m, "
                               f"4h or 1h30m (ms, s, m, h, d)")
            return None
        if seconds <= 0 or not math.isfinite(seconds):
            self.problem(node, f"{what}: '{field.key}' must be longer than 0")
            return None
        return seconds

    def choice(self, field: Field, what: str, choices: Collection[str]) -> str | None:
        value = self.text(field, what)
        if value is not None and value not in choices:
            self.problem(field.node, f"{what}: '{field.key}' must be one of {', '.join(choices)}")
            return None
        return value


def kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return "a mapping" if isinstance(node, yaml.MappingNode) else "a value"


def _error_line(exc: yaml.YAMLError, text: str) -> int:
    mark = getattr(exc, "problem_mark", None)
    if mark is not None:
        return int(mark.line) + 1
    position = getattr(exc, "position", None)  # a ReaderError (a NUL, say): an offset in characters
    return text.count("\n", 0, position) + 1 if isinstance(position, int) else 1


def _one_line(exc: Exception) -> str:
    """PyYAML's multi-line messages as one line of a ``file:line: reason`` list."""
    return "; ".join(part.strip() for part in str(exc).splitlines() if part.strip())
