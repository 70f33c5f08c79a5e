"""The GETBULK seam: one request to one agent, as the interface walk (:mod:`poller.snmp_walk`)
asks it of each SNMP version, and the plain values its answers hold.

:class:`poller.snmp_v2c.V2cGetBulk` and :class:`poller.snmp_usm_client.UsmGetBulk` (v3, on the
same codec) decode straight into these values.
"""

from __future__ import annotations

from typing import Protocol

from poller.snmp_source import Agent, SnmpError

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
TOO_BIG = 1  # the error-status tooBig (RFC 3416)


class TooBig(Exception):
    """The agent answered tooBig: the walk asks again for fewer rows."""


def timeout_error(agent: Agent) -> SnmpError:
    return SnmpError("timeout", f"no answer within {agent.timeout:g} s ({agent.retries} retries)")


class GetBulk(Protocol):
    """What the walk needs of an SNMP version: GETBULKs to its agents, and figures for the gauges."""

    async def open(self, agent: Agent) -> None:
        """Get ready to ask ``agent`` (its credential is this version's); once, at its first poll."""
        ...

    async def getbulk(self, agent: Agent, non_repeaters: int, max_repetitions: int,
                      oids: list[Oid]) -> list[VarBind]:
        """One GetBulkRequest, resent after ``agent.timeout`` up to ``agent.retries`` times; its
        answer's var-binds. Raises :class:`TooBig`, or :class:`SnmpError` with the reason
        "timeout", "authentication" or "error" (which the walk counts)."""
        ...

    def counters(self) -> dict[str, int]:
        """This version's own figures (v2c: ``bad_replies``; v3: ``engines``, ``rediscoveries``)."""
        ...

    def forget(self, key: str) -> None:
        """Drop what :meth:`open` made for the agent ``key`` (nothing happens if it made nothing)."""
        ...

    def close(self) -> None: ...
