"""The notify file (``--notify FILE``, YAML): routes and receivers, every problem with its line.

::

    routes:
      - name: north-routers
        match: [region=north, type=~"router|switch"]
        receivers: [noc-hook, noc-mail]
        group_by: [branch]          # default [branch]
        group_wait: 30s             # defaults 30s, 5m, 4h
        group_interval: 5m
        repeat_interval: 4h
        continue: false             # true: the routes after this one are tried too
    receivers:
      - name: noc-hook
        kind: webhook
        url: http://127.0.0.1:9000/hook
        hmac_secret: noc-hook-hmac  # a `kind: secret` entry of the credentials file

The receivers' own keys are read in receiver_config.py. Secrets are never in this file: a
receiver names them, and they are read from the credentials file (poller/credentials.py).
docs/NOTIFICATIONS.md is the reference; tests/unit/test_notify_config.py holds it to this code.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import yaml

from poller.credentials import CredentialsError, Secret, default_credentials_path, load_entries
from poller.notify.model import MATCH_KEYS, Matcher, Route
from poller.notify.receiver_config import (
    DEFAULT_PARALLEL,
    KIND_KEYS,
    MAX_PARALLEL,
    CommandConfig,
    EmailConfig,
    ReceiverConfig,
    SecretNeed,
    SyslogConfig,
    WebhookConfig,
    read_receiver,
    with_secrets,
)
from poller.notify.yaml_nodes import Field, NodeReader, SettingsError, format_duration
from poller.text import escaped

__all__ = ["CommandConfig", "EmailConfig", "NotifyConfig", "NotifyError", "ReceiverConfig", "SyslogConfig",
           "WebhookConfig", "describe_route", "load_notify", "routes_for"]

NotifyError = SettingsError
"""The notify file cannot be used: ``problems`` holds every ``file:line: message``."""

# A name goes into the idempotency key (site:route:receiver:uuid) and into syslog's structured
# data: no ':' and nothing a format must escape.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
NAME_RULE = "letters, digits, '_', '.', '-' (at most 64, a letter or digit first)"

RECEIVER_KEYS = ("name", "kind", *sorted({key for keys in KIND_KEYS.values() for key in keys}))
ROUTE_KEYS = ("name", "match", "receivers", "group_by", "group_wait", "group_interval", "repeat_interval",
              "continue")
# What a route may group by: one value per device (a device has several tags, so not tag).
GROUP_LABELS = ("device", "branch", "region", "type", "state")
STATES = ("down", "unreachable")
_MATCHER = re.compile(r"\s*([A-Za-z_]+)\s*(=~|!~|!=|=)\s*(.*?)\s*", re.DOTALL)
_DEFAULT = Route(name="-", receivers=())


@dataclass(frozen=True, slots=True)
class NotifyConfig:
    """A checked notify file: its routes in the file's order and its receivers by name."""

    path: str
    routes: tuple[Route, ...]
    receivers: Mapping[str, ReceiverConfig]

    def route(self, name: str) -> Route | None:
        return next((r for r in self.routes if r.name == name), None)


def routes_for(routes: Sequence[Route], labels: dict[str, str], tags: tuple[str, ...]) -> list[Route]:
    """The routes a problem goes to, as Alertmanager's: in order, the first route that matches
    takes it; a route with ``continue: true`` lets the routes after it be tried too."""
    chosen: list[Route] = []
    for route in routes:
        if route.matches(labels, tags):
            chosen.append(route)
            if not route.continue_:
                break
    return chosen


def load_notify(path: Path | str, credentials_path: Path | None = None) -> NotifyConfig:
    """Read and check the notify file at ``path``; the secrets its receivers name come from
    ``credentials_path`` (default: the credentials file's default place), read only if one is
    named. Raises :class:`NotifyError` with every problem of both files."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else str(exc)
        raise NotifyError([f"{path}: cannot read the notify file: {reason}"]) from None
    reader = NodeReader(str(path))
    config, needs = _read(reader, reader.root(text), path.parent)
    secret_problems: list[str] = []
    if needs:  # checked even when the file has other problems: all of them are told at once
        config = _fill_secrets(reader, config, needs, credentials_path, secret_problems)
    if reader.failed or secret_problems or config is None:
        raise NotifyError(reader.lines() + secret_problems)
    return config


def _read(reader: NodeReader, root: yaml.Node | None,
          base: Path) -> tuple[NotifyConfig | None, list[SecretNeed]]:
    if root is None:
        if not reader.failed:
            reader.problem(1, "the notify file is empty: it needs 'routes' and 'receivers'")
        return None, []
    top = reader.fields(root, "the notify file", ("routes", "receivers"), ("routes", "receivers"))
    if top is None:
        return None, []
    receivers: dict[str, ReceiverConfig] = {}
    needs: list[SecretNeed] = []
    declared: dict[str, int] = {}
    if "receivers" in top:
        receivers, needs = _receivers(reader, top["receivers"], base, declared)
    routes = _routes(reader, top["routes"], declared) if "routes" in top else ()
    return NotifyConfig(reader.path, routes, receivers), needs


# -- receivers -------------------------------------------------------------------------------


def _receivers(reader: NodeReader, field: Field, base: Path,
               lines: dict[str, int]) -> tuple[dict[str, ReceiverConfig], list[SecretNeed]]:
    """The receivers that are right; ``lines`` gets every name defined (a route naming one
    that has problems of its own is not wrong too)."""
    found: dict[str, ReceiverConfig] = {}
    needs: list[SecretNeed] = []
    node = field.node
    if not isinstance(node, yaml.SequenceNode) or not node.value:
        reader.problem(node, "'receivers' must be a list of receivers (name, kind and its settings)")
        return found, needs
    for item in node.value:
        line = item.start_mark.line + 1
        what = _what("receiver", item, line)
        # Any key here: which are known depends on the kind (said below, with that kind's keys).
        keys = reader.fields(item, what, None, ("name", "kind"))
        if keys is None:
            continue
        name = _name(reader, keys.get("name"), what)
        if name and name in lines:
            reader.problem(item, f"{what} is defined twice (first on line {lines[name]})")
            continue
        if name:
            lines[name] = line
        kind = reader.choice(keys["kind"], what, tuple(KIND_KEYS)) if "kind" in keys else None
        if kind is None:
            for key, extra in keys.items():
                if key not in RECEIVER_KEYS:
                    known = ", ".join(RECEIVER_KEYS)
                    reader.problem(extra.line, f"{what}: unknown key '{key}' (known: {known})")
        if kind is None or not name:
            continue
        for key, extra in keys.items():
            if key not in ("name", "kind") and key not in KIND_KEYS[kind]:
                reader.problem(extra.line, f"{what}: '{key}' is not a setting of a {kind} receiver "
                                           f"(known: {', '.join(KIND_KEYS[kind])})")
        settings = {k: f for k, f in keys.items() if k in KIND_KEYS[kind] and k != "parallel"}
        parallel = (reader.integer(keys["parallel"], what, 1, MAX_PARALLEL) if "parallel" in keys
                    else DEFAULT_PARALLEL.get(kind, 1))
        built = read_receiver(reader, kind, name, line, settings, base, needs)
        if built is not None and parallel is not None:
            found[name] = replace(built, parallel=parallel)
    return found, needs


def _fill_secrets(reader: NodeReader, config: NotifyConfig | None, needs: list[SecretNeed],
                  credentials_path: Path | None, problems: list[str]) -> NotifyConfig | None:
    """``config`` with the secrets its receivers name, from the credentials file; a missing
    one is a problem on the line that names it. No message quotes a secret, nor the name given
    (someone may have pasted the secret itself where its name belongs)."""
    file = credentials_path or default_credentials_path()
    try:
        entries = load_entries(file)
    except CredentialsError as exc:
        problems.extend(str(exc).splitlines())
        hint = "" if credentials_path else "; give another file with --credentials FILE"
        problems.append(f"{reader.path}: its receivers name secrets (kind: secret) that are read from "
                        f"{file}{hint}")
        return None
    secrets: dict[tuple[str, str], str] = {}
    for need in needs:
        entry = entries.get(need.name)
        if isinstance(entry, Secret):
            secrets[(need.receiver, need.key)] = entry.value
        elif entry is None:
            reader.problem(need.line, f"receiver {need.receiver!r}: '{need.key}' names no entry of {file} "
                                      "(it takes the name of a `kind: secret` entry there, not the secret)")
        else:
            reader.problem(need.line, f"receiver {need.receiver!r}: '{need.key}' names an SNMP credential of "
                                      f"{file}; it needs a `kind: secret` entry")
    if config is None or reader.failed:
        return None
    receivers = {name: with_secrets(reader, r, secrets) for name, r in config.receivers.items()}
    return NotifyConfig(config.path, config.routes, receivers)


# -- routes ----------------------------------------------------------------------------------


def _routes(reader: NodeReader, field: Field, receivers: Mapping[str, int]) -> tuple[Route, ...]:
    node = field.node
    if not isinstance(node, yaml.SequenceNode) or not node.value:
        reader.problem(node, "'routes' must be a list of routes (name, match, receivers, ...)")
        return ()
    routes: list[Route] = []
    lines: dict[str, int] = {}
    for item in node.value:
        line = item.start_mark.line + 1
        name = peek_name(item)
        if name is not None and name in lines:
            reader.problem(item, f"route {name!r} is defined twice (first on line {lines[name]})")
            continue
        if name is not None:
            lines[name] = line
        route = _route(reader, item, line, receivers)
        if route is not None:
            routes.append(route)
    return tuple(routes)


def peek_name(node: yaml.Node) -> str | None:
    """The ``name`` a mapping gives itself, before it is checked (for what messages call it)."""
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if key.value == "name" and isinstance(value, yaml.ScalarNode):
                return str(value.value)
    return None


def _what(thing: str, node: yaml.Node, line: int) -> str:
    name = peek_name(node)
    return f"{thing} {escaped(name)!r}" if name and NAME.fullmatch(name) else f"{thing} at line {line}"


def _route(reader: NodeReader, node: yaml.Node, line: int, receivers: Mapping[str, int]) -> Route | None:
    what = _what("route", node, line)
    keys = reader.fields(node, what, ROUTE_KEYS, ("name", "receivers"))
    if keys is None:
        return None
    before = reader.count()
    name = _name(reader, keys.get("name"), what)
    matchers = _matchers(reader, keys["match"], what) if "match" in keys else ()
    targets = _targets(reader, keys["receivers"], what, receivers) if "receivers" in keys else ()
    group_by = _group_by(reader, keys["group_by"], what) if "group_by" in keys else _DEFAULT.group_by
    timing = {key: reader.duration(keys[key], what) if key in keys else getattr(_DEFAULT, key)
              for key in ("group_wait", "group_interval", "repeat_interval")}
    proceed = reader.boolean(keys["continue"], what) if "continue" in keys else False
    if reader.count() != before or not name or group_by is None or proceed is None \
            or any(v is None for v in timing.values()):
        return None
    return Route(name=name, receivers=targets, matchers=matchers, group_by=group_by,
                 group_wait=float(timing["group_wait"] or 0),
                 group_interval=float(timing["group_interval"] or 0),
                 repeat_interval=float(timing["repeat_interval"] or 0), line=line, continue_=proceed)


def _name(reader: NodeReader, field: Field | None, what: str) -> str | None:
    if field is None:
        return None
    name = reader.text(field, what)
    if name is not None and not NAME.fullmatch(name):
        reader.problem(field.node, f"{what}: name {name!r} must be {NAME_RULE}")
        return None
    return name


def _matchers(reader: NodeReader, field: Field, what: str) -> tuple[Matcher, ...]:
    items = reader.items(field, what)
    found: list[Matcher] = []
    for node, text in items or ():
        matcher = parse_matcher(text)
        if isinstance(matcher, str):
            reader.problem(node, f"{what}: matcher {text!r}: {matcher}")
        else:
            found.append(matcher)
    return tuple(found)


def parse_matcher(text: str) -> Matcher | str:
    """``key=value``, ``key!=value``, ``key=~regex``, ``key!~regex`` (a value may be written in
    double quotes); the matcher, or why ``text`` is not one."""
    match = _MATCHER.fullmatch(text)
    if match is None:
        return "expected key=value, key!=value, key=~regex or key!~regex"
    key, op, value = match.group(1), match.group(2), match.group(3)
    if key not in MATCH_KEYS:
        return f"unknown label {key!r} (one of {', '.join(MATCH_KEYS)})"
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    pattern = None
    if op in ("=~", "!~"):
        try:
            pattern = re.compile(value)
        except re.error as exc:
            return f"not a valid regular expression: {exc}"
    elif key == "state" and value not in STATES:
        return f"state is {' or '.join(STATES)} (a problem's state), not {value!r}"
    return Matcher(key, op, value, pattern)


def _targets(reader: NodeReader, field: Field, what: str, receivers: Mapping[str, int]) -> tuple[str, ...]:
    items = reader.items(field, what)
    if items is None:
        return ()
    if not items:
        reader.problem(field.node, f"{what}: 'receivers' is empty: a route sends to at least one receiver")
    names: list[str] = []
    for node, name in items:
        if name in names:
            reader.problem(node, f"{what}: receiver {name!r} is listed twice")
        elif name not in receivers:
            known = ", ".join(sorted(receivers)) or "none is defined"
            reader.problem(node, f"{what}: no receiver named {name!r} (receivers: {known})")
        else:
            names.append(name)
    return tuple(names)


def _group_by(reader: NodeReader, field: Field, what: str) -> tuple[str, ...] | None:
    node = field.node
    if isinstance(node, yaml.SequenceNode) and not node.value:
        return ()  # one group for everything the route takes
    items = reader.items(field, what)
    if items is None:
        return None
    labels: list[str] = []
    for item, label in items:
        if label == "tag":
            reader.problem(item, f"{what}: group_by 'tag': a device has several tags; group by one of "
                                 f"{', '.join(GROUP_LABELS)}")
        elif label not in GROUP_LABELS:
            reader.problem(item, f"{what}: group_by {label!r} is not a label (one of "
                                 f"{', '.join(GROUP_LABELS)})")
        elif label in labels:
            reader.problem(item, f"{what}: group_by {label!r} is listed twice")
        else:
            labels.append(label)
    return tuple(labels)


def describe_route(route: Route) -> str:
    """One line for ``wardtui notify check``."""
    match = ", ".join(f"{m.key}{m.op}{m.value}" for m in route.matchers) or "everything"
    group = ", ".join(route.group_by) or "(one group)"
    after = "; continue" if route.continue_ else ""
    return (f"{route.name}: match {match} -> {', '.join(route.receivers)}; group by {group}; "
            f"wait {format_duration(route.group_wait)}, interval {format_duration(route.group_interval)}, "
            f"repeat {format_duration(route.repeat_interval)}{after}")
