"""The plain values of a GETBULK answer, whichever SNMP version carried it.

The v2c codec (:mod:`poller.snmp_v2c`) decodes straight into these values; the v3 path
converts pysnmp's into them. Nothing here imports pysnmp.
"""

from __future__ import annotations

Oid = tuple[int, ...]


class OidValue(tuple[int, ...]):
    """A value of type OBJECT IDENTIFIER (sysObjectID), as opposed to a var-bind's name."""

    __slots__ = ()


class NoValue:
    """noSuchObject, noSuchInstance, endOfMibView or NULL: the agent has no value here."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


NO_SUCH_OBJECT = NoValue("noSuchObject")
NO_SUCH_INSTANCE = NoValue("noSuchInstance")
END_OF_MIB_VIEW = NoValue("endOfMibView")
NULL = NoValue("NULL")
Value = int | bytes | OidValue | NoValue
VarBind = tuple[Oid, Value]
