"""Text that did not come from wardtui's own source: find and neutralise terminal control.

Device names, SNMP strings, database rows and what an operator types reach terminals (the
dashboard, error messages, ``wardtui report`` on stdout) and report files. A control character
in them is an instruction to whatever displays it: ``ESC ] 0 ;`` retitles the terminal,
``ESC [ 2 J`` blanks it, OSC 52 writes the clipboard, a bidi override reorders what is read.
So the inventory refuses them (:func:`first_unsafe`, with ``file:line``), and text from agents
or the database is cleaned where it is shown (:func:`clean`) or escaped in a message
(:func:`escaped`).

Unsafe: C0 controls except tab, DEL, C1 controls, the bidi embeddings, overrides and isolates
(U+202A-U+202E, U+2066-U+2069, U+061C) and the line and paragraph separators (U+2028,
U+2029), which break a one-line cell. Markup (``[b]``, ``<script>``) is not a control
character: it is made inert by the screen (``wardtui/literal.py``) and by each report format.
"""

from __future__ import annotations

import re
import unicodedata

_UNSAFE_CLASS = "\x00-\x08\x0a-\x1f\x7f-\x9f\u061c\u2028\u2029\u202a-\u202e\u2066-\u2069"
_UNSAFE = re.compile(f"[{_UNSAFE_CLASS}]")
_UNSAFE_OR_TAB = re.compile(f"[\t{_UNSAFE_CLASS}]")
REPLACEMENT = "\ufffd"

_C0_NAMES = ("NUL", "SOH", "STX", "ETX", "EOT", "ENQ", "ACK", "BEL", "BS", "HT", "LF", "VT", "FF", "CR",
             "SO", "SI", "DLE", "DC1", "DC2", "DC3", "DC4", "NAK", "SYN", "ETB", "CAN", "EM", "SUB",
             "ESC", "FS", "GS", "RS", "US")


def first_unsafe(text: str) -> str | None:
    """A description of the first unsafe character in ``text`` ("U+001B (ESC)"), or None."""
    match = _UNSAFE.search(text)
    return None if match is None else describe(match.group())


def describe(char: str) -> str:
    """``U+001B (ESC)``: a character named for a person reading an error message."""
    code = ord(char)
    if code < 0x20:
        name = _C0_NAMES[code]
    elif code == 0x7F:
        name = "DEL"
    else:
        name = unicodedata.name(char, "C1 control")
    return f"U+{code:04X} ({name})"


def clean(text: str, *, tab: str = " ") -> str:
    """``text`` with every unsafe character replaced by U+FFFD (one cell wide, visibly not
    the original), and tabs by ``tab``. Cheap when there is nothing to replace."""
    if _UNSAFE_OR_TAB.search(text) is None:
        return text
    return _UNSAFE_OR_TAB.sub(lambda m: tab if m.group() == "\t" else REPLACEMENT, text)


def clean_lines(text: str, *, tab: str = " ") -> str:
    """:func:`clean` line by line: newlines stay (a multi-line message), nothing else."""
    return "\n".join(clean(line, tab=tab) for line in text.split("\n"))


def escaped_lines(text: str) -> str:
    """:func:`escaped` line by line: newlines stay, every other control is written out."""
    return "\n".join(escaped(line) for line in text.split("\n"))


def escaped(text: str) -> str:
    """``text`` with unsafe characters written as escapes (``a\\x1b]0;b``), for messages that
    say what is there without obeying it."""
    if _UNSAFE.search(text) is None:
        return text
    return _UNSAFE.sub(lambda m: _escape(m.group()), text)


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
