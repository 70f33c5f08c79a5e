"""The notifications an app was asked to show, recorded through its public ``App.notify``.

``watch(app)`` records one app from then on (call it before ``run_test`` for notices sent at
start); the ``notices_of_every_app`` fixture records every app a test makes, for tests whose
app is built by a harness, read afterwards with ``notices_of(app)``. Either way the
notification is still shown: the recorder wraps ``notify``, it does not replace it.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any
from weakref import WeakKeyDictionary

import pytest
from textual.app import App

_ORIGINAL_NOTIFY = App.notify
_NOTIFY = inspect.signature(App.notify)
_SENT: WeakKeyDictionary[App[Any], Notices] = WeakKeyDictionary()


@dataclass(frozen=True, slots=True)
class Notice:
    title: str
    message: str
    severity: str


class Notices(list[Notice]):
    """What one app was asked to notify, in order."""

    @property
    def messages(self) -> list[str]:
        return [n.message for n in self]

    def containing(self, text: str) -> list[Notice]:
        return [n for n in self if text in n.message]


def _record(app: App[Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    call = _NOTIFY.bind(app, *args, **kwargs)
    call.apply_defaults()
    sent = call.arguments
    notices_of(app).append(Notice(str(sent["title"]), str(sent["message"]), str(sent["severity"])))


def notices_of(app: App[Any]) -> Notices:
    """What ``app`` was asked to notify since it was watched (empty if it never was)."""
    return _SENT.setdefault(app, Notices())


def watch(app: App[Any]) -> Notices:
    """Record what ``app.notify`` is asked to show from now on; the same list as ``notices_of``."""
    if "notify" in vars(app) or App.notify is not _ORIGINAL_NOTIFY:
        return notices_of(app)  # watched already, or every app is
    show = app.notify

    def notify(*args: Any, **kwargs: Any) -> None:
        _record(app, args, kwargs)
        show(*args, **kwargs)

    app.notify = notify  # type: ignore[method-assign]
    return notices_of(app)


@pytest.fixture(autouse=True)
def notices_of_every_app(monkeypatch: pytest.MonkeyPatch) -> None:
    """Record the notices of every app made during the test (autouse in a module that
    imports it). Screens and widgets notify through ``app.notify``, so they are recorded too."""

    def notify(self: App[Any], *args: Any, **kwargs: Any) -> None:
        _record(self, args, kwargs)
        _ORIGINAL_NOTIFY(self, *args, **kwargs)

    monkeypatch.setattr(App, "notify", notify)
