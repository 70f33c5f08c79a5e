"""What keeps the team quiet about a device: the maintenance windows and the acknowledgements in
force (issue 15 items 4-6), as one value every part of a site shares.

:class:`Quiet` is what the history database holds (store/quiet.py reads it) at one moment: the
windows not yet over (active or to come: whether one is active is a question of the clock,
answered here without reading again) and the acknowledgements whose outage is still open. The
poller that holds the database reads it at start, every 30 s and at once when told (an
operator's ``a`` or ``m``, ``wardtui ack``, ``wardtui maintenance``: the ``quiet`` command on the
live feed), and publishes :class:`QuietChanged` on its bus when it differs: the notifier, the
dashboard and the live feed (every attached viewer) take it from there.

Its JSON (:meth:`Quiet.to_json`, :func:`quiet_from_json`) travels through Redis, so reading it is
reading untrusted input: every field is checked, and the text fields are data (notes, matchers
and login names are shown literally wherever they are shown).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from poller.inventory import Device
from poller.notify.acks import Ack

if TYPE_CHECKING:
    from poller.notify.windows import ActiveCache, Window

MAX_ITEMS = 200_000
"""Windows plus acknowledgements a quiet state may hold when read from Redis (a forged one of a
million entries is refused, not decoded)."""

MAX_TEXT = 4096
"""Characters kept of one text field read from Redis."""


@dataclass(frozen=True, slots=True, eq=False)
class Quiet:
    """The maintenance windows not yet over and the acknowledgements in force, read at
    ``read_at`` (aware UTC; None: never read). Immutable: a change is a new value."""

    windows: tuple[Window, ...] = ()
    acks: tuple[Ack, ...] = ()
    read_at: datetime | None = None
    _by_device: dict[str, Ack] = field(default_factory=dict, repr=False)
    _cache: list[ActiveCache] = field(default_factory=list, repr=False)  # made when first asked

    def __post_init__(self) -> None:
        latest: dict[str, Ack] = {}
        for ack in sorted(self.acks, key=lambda a: (a.at, a.id)):
            if ack.open:
                latest[ack.device] = ack  # several of one device: the latest speaks
        self._by_device.update(latest)

    def __eq__(self, other: object) -> bool:
        """The same windows and acknowledgements (when they were read aside)."""
        if not isinstance(other, Quiet):
            return NotImplemented
        return self.windows == other.windows and self.acks == other.acks

    __hash__ = None  # type: ignore[assignment]

    def __bool__(self) -> bool:
        return bool(self.windows or self.acks)

    # -- acknowledgements --------------------------------------------------------------------
    def ack_of(self, device: str, down_since: datetime | None = None) -> Ack | None:
        """The acknowledgement in force for ``device``; given the device's ``down_since`` as
        shown now, only one of that outage (a device that recovered and failed again since the
        last read is not acknowledged: an acknowledgement takes one outage)."""
        ack = self._by_device.get(device)
        if ack is None:
            return None
        if down_since is not None and abs((ack.down_since - down_since).total_seconds()) > 0.001:
            return None
        return ack

    # -- maintenance windows -----------------------------------------------------------------
    def _active(self, index: int, at: datetime) -> bool:
        # Each answer is kept until the window's next change: a row painted costs a comparison.
        if not self._cache:
            from poller.notify.windows import ActiveCache

            self._cache.append(ActiveCache(self.windows))
        return self._cache[0].active(index, at)

    def windows_of(self, device: Device, at: datetime) -> list[Window]:
        """The windows active at ``at`` that match ``device``."""
        if not self.windows:
            return []
        from poller.notify.windows import matches

        return [w for i, w in enumerate(self.windows) if self._active(i, at) and matches(w, device)]

    def in_maintenance(self, device: Device, at: datetime) -> bool:
        """Whether an active window matches ``device`` at ``at``."""
        if not self.windows:
            return False
        from poller.notify.windows import matches

        return any(self._active(i, at) and matches(w, device) for i, w in enumerate(self.windows))

    def next_change(self, at: datetime) -> datetime | None:
        """When a window next starts or ends after ``at`` (None: never): the screens look again
        then."""
        if not self.windows:
            return None
        from poller.notify.windows import next_change

        return next_change(self.windows, at)

    # -- JSON (the live feed) ----------------------------------------------------------------
    def to_json(self) -> str:
        from poller.notify.windows import matcher_text

        def ts(at: datetime | None) -> float | None:
            return None if at is None else at.timestamp()

        windows = [{"id": w.id, "matchers": [matcher_text(m) for m in w.matchers],
                    "starts_at": ts(w.starts_at), "ends_at": ts(w.ends_at), "cron": w.cron,
                    "duration_s": w.duration_s, "tz": w.tz,
                    "note": w.note, "created_by": w.created_by, "created_at": ts(w.created_at),
                    "removed_at": ts(w.removed_at)} for w in self.windows]
        acks = [{"id": a.id, "device": a.device, "down_since": a.down_since.timestamp(), "note": a.note,
                 "who": a.who, "at": a.at.timestamp()} for a in self.acks if a.open]
        return json.dumps({"windows": windows, "acks": acks, "read_at": ts(self.read_at)},
                          separators=(",", ":"))


class QuietFormatError(ValueError):
    """A quiet state read from Redis that is not one (damaged, or written by hand)."""


def _text(doc: dict[str, Any], key: str, *, none: bool = False) -> Any:
    value = doc.get(key)
    if value is None and none:
        return None
    if not isinstance(value, str):
        raise QuietFormatError(f"{key}: not text")
    return value[:MAX_TEXT]


def _time(doc: dict[str, Any], key: str, *, none: bool = False) -> Any:
    value = doc.get(key)
    if value is None and none:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise QuietFormatError(f"{key}: not a time")
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        raise QuietFormatError(f"{key}: not a time") from None


def _int(doc: dict[str, Any], key: str) -> int:
    value = doc.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise QuietFormatError(f"{key}: not an integer")
    return value


def _list(doc: dict[str, Any], key: str) -> list[Any]:
    value = doc.get(key, [])
    if not isinstance(value, list):
        raise QuietFormatError(f"{key}: not a list")
    return value


def _window(doc: Any) -> Window:
    from poller.notify.windows import Window, parse_matcher

    if not isinstance(doc, dict):
        raise QuietFormatError("a window is not an object")
    matchers = []
    for text in _list(doc, "matchers"):
        if not isinstance(text, str):
            raise QuietFormatError("a window's matcher is not text")
        matchers.append(parse_matcher(text[:MAX_TEXT]))
    duration = doc.get("duration_s")
    if duration is not None and (not isinstance(duration, int | float) or isinstance(duration, bool)
                                 or not math.isfinite(duration)):
        raise QuietFormatError("duration_s: not a number")
    return Window(id=_int(doc, "id"), matchers=tuple(matchers), starts_at=_time(doc, "starts_at", none=True),
                  ends_at=_time(doc, "ends_at", none=True), cron=_text(doc, "cron", none=True),
                  duration_s=None if duration is None else float(duration), tz=_text(doc, "tz", none=True),
                  note=_text(doc, "note"), created_by=_text(doc, "created_by"),
                  created_at=_time(doc, "created_at", none=True),
                  removed_at=_time(doc, "removed_at", none=True))


def _ack(doc: Any) -> Ack:
    if not isinstance(doc, dict):
        raise QuietFormatError("an acknowledgement is not an object")
    return Ack(id=_int(doc, "id"), device=_text(doc, "device"), down_since=_time(doc, "down_since"),
               note=_text(doc, "note"), who=_text(doc, "who"), at=_time(doc, "at"))


def quiet_from_json(text: str | bytes | dict[str, Any]) -> Quiet:
    """The :class:`Quiet` that ``text`` holds; QuietFormatError naming what is wrong (a window
    that is not valid: a bad cron expression, a zone this machine does not know, is an error
    too: the service that wrote it read it as valid, so this is not its JSON)."""
    try:
        doc = text if isinstance(text, dict) else json.loads(text)
        if not isinstance(doc, dict):
            raise QuietFormatError("not an object")
        windows, acks = _list(doc, "windows"), _list(doc, "acks")
        if len(windows) + len(acks) > MAX_ITEMS:
            raise QuietFormatError(f"{len(windows) + len(acks)} entries: more than {MAX_ITEMS}")
        return Quiet(tuple(_window(w) for w in windows), tuple(_ack(a) for a in acks),
                     _time(doc, "read_at", none=True))
    except QuietFormatError:
        raise
    except (ValueError, TypeError, AttributeError, OverflowError, RecursionError) as exc:
        raise QuietFormatError(str(exc)[:200]) from None


def quiet_of(windows: Iterable[Window], acks: Sequence[Ack], read_at: datetime) -> Quiet:
    """The value of what was read at ``read_at``: the acknowledgements in force only."""
    return Quiet(tuple(windows), tuple(a for a in acks if a.open), read_at)


@dataclass(frozen=True, slots=True)
class QuietChanged:
    """The windows or acknowledgements in force changed (or a viewer loaded them): ``quiet`` is
    the whole new value. ``by``: who asked for the read that found it, when one did."""

    quiet: Quiet
    by: str = ""
