"""Read a YAML inventory into rows: one value per field, no aliases, every problem with its line."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import yaml

from poller.inventory import COLUMNS, REQUIRED, Problem, Row

# libyaml's loader when PyYAML has it.
_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_ALIAS = "aliases are not allowed in an inventory (write the value out)"


def yaml_rows(text: str, name: str) -> Iterator[Row]:
    # One loader composes the nodes (for line numbers) and constructs the values; a loader per
    # value took 23 s for 20,000 devices.
    loader = _LOADER(text)
    aliased: list[int] = []
    try:
        yield from _yaml_devices(loader, text, name, aliased)
    finally:
        loader.dispose()
    if aliased:
        yield from _alias_problems(text, name, aliased)


def _yaml_devices(loader: yaml.SafeLoader, text: str, name: str, aliased: list[int]) -> Iterator[Row]:
    try:
        root = loader.get_single_node()
    except yaml.YAMLError as exc:
        yield Problem(name, _error_line(exc, text), f"not valid YAML: {_one_line(exc)}")
        return
    cursor = 0
    if isinstance(root, yaml.MappingNode):
        lists = [(k, v) for k, v in root.value if k.value == "devices"]
        if len(lists) > 1:
            yield _twice("devices", lists[1][0], lists[0][0], name)
            return
        cursor = lists[0][0].end_mark.index if lists else 0
        root = lists[0][1] if lists else None
    if not isinstance(root, yaml.SequenceNode):
        yield Problem(name, 1, "expected a list of devices (or a mapping with a 'devices' list)")
        return
    for item in root.value:
        after = _after(item, cursor)
        if after < 0:  # never constructed: an alias bomb expands there
            aliased.append(item.start_mark.line + 1)
            cursor = max(cursor, item.end_mark.index)
            continue
        cursor = after
        yield from _yaml_device(loader, item, name)


def _yaml_device(loader: yaml.SafeLoader, item: yaml.Node, name: str) -> Iterator[Row]:
    line = item.start_mark.line + 1
    if not isinstance(item, yaml.MappingNode):
        yield Problem(name, line, "a device must be a mapping of field: value")
        return
    fields: dict[str, Any] = {}
    keys: dict[str, yaml.Node] = {}
    bad = False
    for key_node, value_node in item.value:
        if not isinstance(key_node, yaml.ScalarNode):
            yield Problem(name, key_node.start_mark.line + 1, f"{_kind(key_node)} where a field name belongs")
            bad = True
            continue
        key = str(key_node.value).strip().lower()
        if key in keys:  # YAML lets the last one win, silently
            yield _twice(key, key_node, keys[key], name)
            bad = True
            continue
        keys[key] = key_node
        if key not in COLUMNS:
            yield Problem(name, key_node.start_mark.line + 1, f"unknown column '{key}'")
            bad = True
            continue
        shape = _shape(key, value_node)
        if shape is not None:
            yield Problem(name, value_node.start_mark.line + 1, shape)
            bad = True
            continue
        try:
            fields[key] = loader.construct_object(value_node, deep=True)
        except yaml.YAMLError as exc:
            yield Problem(name, value_node.start_mark.line + 1, f"bad value for '{key}': {_one_line(exc)}")
            bad = True
    for col in REQUIRED:
        if col not in keys:
            yield Problem(name, line, f"missing column '{col}'")
            bad = True
    if not bad:
        yield line, fields


def _shape(key: str, node: yaml.Node) -> str | None:
    """Why ``node`` cannot be ``key``'s value, or None. ``type: [1, 2]`` was stored as the
    text "[1, 2]": every field is one value, but tags and parent, which may be lists of them."""
    if isinstance(node, yaml.ScalarNode):
        return _binary(key) if node.tag == _BINARY else None
    if key not in _LISTS:
        return f"'{key}' is {_kind(node)}: one value belongs here"
    if isinstance(node, yaml.SequenceNode) and all(isinstance(n, yaml.ScalarNode) for n in node.value):
        return _binary(key) if any(n.tag == _BINARY for n in node.value) else None
    return f"'{key}' is {_kind(node)}: {_LISTS[key]} belongs here"


_LISTS = {"tags": "a word or a list of words", "parent": "a name or a list of names"}
"""The fields that may be a list of values."""


# "!!binary AA==" is a NUL byte, and was kept as the text "b'\x00'".
_BINARY = "tag:yaml.org,2002:binary"


def _binary(key: str) -> str:
    return f"'{key}' is binary data (!!binary): text belongs here"


def _kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.SequenceNode):
        return "a list" if all(isinstance(n, yaml.ScalarNode) for n in node.value) else "a nested list"
    return "a mapping" if isinstance(node, yaml.MappingNode) else "a value"


def _twice(key: str, again: yaml.Node, first: yaml.Node, name: str) -> Problem:
    return Problem(name, again.start_mark.line + 1,
                   f"'{key}' given twice (first on line {first.start_mark.line + 1})")


def _after(node: yaml.Node, cursor: int) -> int:
    """Where ``node`` ends in the text, or -1 if an alias is in it: -1 when a node starts
    before ``cursor``, the end of what was walked so far in document order.

    For an alias the composer hands out the anchored node again, an object that starts
    earlier in the text. Nine lists of nine aliases of the one before compose in microseconds
    but construct 9**9 values (90 s and 2.85 GB under tags:, a MemoryError under branch:), so
    they are found here, on the nodes, before anything is constructed. A collection that holds
    itself (``&a [*a]``) shows no scalar in between: the ids of the collections walked catch it.
    """
    walked: set[int] = set()
    stack = [node]
    while stack:
        node = stack.pop()
        if node.start_mark.index < cursor:
            return -1
        if isinstance(node, yaml.ScalarNode):
            cursor = node.end_mark.index
            continue
        if id(node) in walked:
            return -1
        walked.add(id(node))
        if not node.value:
            cursor = node.end_mark.index
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(reversed(node.value))
        else:
            for key, value in reversed(node.value):
                stack += (value, key)
    return cursor


def _alias_problems(text: str, name: str, lines: list[int]) -> Iterator[Problem]:
    """Every alias with its own line: the parser's events say where each one is written."""
    found = False
    for event in yaml.parse(text, Loader=_LOADER):
        if isinstance(event, yaml.AliasEvent):
            found = True
            line = event.start_mark.line + 1 if event.start_mark else 0
            yield Problem(name, line, f"YAML alias '*{event.anchor}': {_ALIAS}")
    if not found:  # not expected: the nodes said there is one
        yield from (Problem(name, line, f"a YAML node repeated: {_ALIAS}") for line in lines)


def _error_line(exc: yaml.YAMLError, text: str) -> int:
    mark = getattr(exc, "problem_mark", None)
    if mark is not None:
        return int(mark.line) + 1
    position = getattr(exc, "position", None)  # a ReaderError (a NUL, say) has only an offset,
    if not isinstance(position, int):  # in bytes of UTF-8 from libyaml
        return 0
    if _LOADER is yaml.SafeLoader:  # PyYAML's own reader counts characters
        return text.count("\n", 0, position) + 1
    return text.encode("utf-8").count(b"\n", 0, position) + 1


def _one_line(exc: Exception) -> str:
    """PyYAML's multi-line messages as one line of a ``file:line: reason`` list."""
    return "; ".join(part.strip() for part in str(exc).splitlines() if part.strip())
