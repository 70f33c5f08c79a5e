"""The SNMP client: one poll of one agent (system group + IF-MIB tables), walked by GETBULK.

A poll is a walk of the interface columns by GETBULK, all columns side by side; its first
request carries the system group as non-repeaters, so that sysUpTime and the first counters
come from the same response.

Each SNMP version is a :class:`poller.snmp_getbulk.GetBulk`, chosen per agent at its first
poll by its credential: v2c by :mod:`poller.snmp_v2c` (its own codec, one UDP socket per
family: ~0.25 ms of CPU per poll instead of ~5 ms through pyasn1), v3 by
:mod:`poller.snmp_usm_client` (the same codec's PDUs in USM's envelope, OpenSSL's cryptography).
This module imports no cryptography; a client loads it when it is made (as a run with SNMP
agents starts), unless it is given its v3 GETBULK.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from poller.credentials import V2c
from poller.snmp_getbulk import GetBulk, NoValue, Oid, OidValue, TooBig, Value, VarBind
from poller.snmp_mib import (
    IF_COLUMNS,
    IFX_COLUMNS,
    SYS_DESCR,
    SYS_NAME,
    SYS_OBJECT_ID,
    SYS_UPTIME,
    SYSTEM_OIDS,
)
from poller.snmp_source import NO_INTERFACES, NO_UPTIME, Agent, IfRow, RawPoll, SnmpError, SystemFacts
from poller.snmp_v2c import V2cGetBulk
from poller.text import REPLACEMENT, clean

Column = tuple[str, Oid]  # (IfRow field, column OID)
Walking = tuple[str, Oid, Oid]  # (IfRow field, column OID, last OID read)
Values = dict[str, int | str | float | None]  # one interface's fields read so far

ALL_COLUMNS: tuple[Column, ...] = tuple(
    (fieldname, tuple(int(x) for x in oid.split(".")))
    for fieldname, oid in (*IF_COLUMNS.items(), *IFX_COLUMNS.items()))
_TEXT_FIELDS = frozenset({"descr", "name", "alias"})
_IDENTITY = frozenset({"descr", "name", "alias", "speed", "high_speed"})
# A fast poll's columns: those that change, with the octet counters each interface has.
IDENTITY_COLUMNS = tuple(c for c in ALL_COLUMNS if c[0] in _IDENTITY)
FAST_BOTH = tuple(c for c in ALL_COLUMNS if c[0] not in _IDENTITY)
FAST_64 = tuple(c for c in FAST_BOTH if c[0] not in ("in_octets", "out_octets"))
FAST_32 = tuple(c for c in ALL_COLUMNS
                if c[0] not in _IDENTITY and c[0] not in ("hc_in_octets", "hc_out_octets"))
# An octet counter's field -> the key under which its answer's time is kept beside it.
_READ_AT = {"in_octets": "in_read", "out_octets": "out_read", "hc_in_octets": "hc_in_read",
            "hc_out_octets": "hc_out_read"}
MAX_REQUESTS_PER_WALK = 100  # 25 rows each: 2,500 interfaces; an agent that never ends a column stops here
_MAX_IFINDEX = 2**31 - 1  # RFC 2863: ifIndex is 1..2147483647
# GETNEXT of the OID just before each system scalar returns the scalar itself.
SYSTEM_PREV = tuple(tuple(int(x) for x in oid[: -len(".0")].split(".")) for oid in SYSTEM_OIDS)


class _AgentState:
    """What the client keeps per agent between polls: its version's GETBULK, and the
    interfaces' identity columns, which are re-read only every ``full_every`` polls."""

    __slots__ = ("fast", "full_due", "getbulk", "identity", "opers", "rows", "slowest", "uptime")

    def __init__(self, getbulk: GetBulk) -> None:
        self.getbulk = getbulk
        self.identity: dict[int, Values] = {}
        self.opers: dict[int, int | str | float | None] = {}
        self.rows = 8  # interfaces at the last poll: sizes the next GETBULK
        self.fast: tuple[Column, ...] | None = None  # the fast polls' columns; None until a full poll
        self.full_due = 0  # fast polls left before the next full one
        self.uptime = -1
        self.slowest = 0.0  # this poll's slowest request so far, seconds


def _value(value: Value, text: bool) -> int | str | None:
    """A plain value for an IfRow or SystemFacts field; None where the agent has none."""
    if isinstance(value, NoValue):
        return None
    if isinstance(value, bytes):
        # Agent text reaches terminals (the dashboard, `wardtui snmp`): no control characters,
        # which could be escape sequences (poller/text.py). Trailing NULs are C strings' padding.
        return clean(value.decode("utf-8", "replace").rstrip("\x00"), tab=REPLACEMENT) if text \
            else value.hex()
    if isinstance(value, OidValue):
        return ".".join(map(str, value))
    return value


class SnmpClient:
    """Polls agents; safe to call concurrently for different agents from one event loop.

    A *full* poll walks every interface column; a *fast* one only those that change (status,
    octets, errors, discards, discontinuity time) and takes names, aliases and speeds from
    the last full poll: fewer values to decode, which is where the client's CPU goes. A full poll comes every
    ``full_every`` polls, on the first, after an interface changed status (its speed may have
    changed) or after the agent restarted, and at once when a fast poll finds interfaces it
    does not know.

    ``v2c`` and ``v3`` are the versions' GETBULKs (tests give fakes); by default the real ones.
    """

    def __init__(self, *, rcvbuf: int = 4 * 1024 * 1024,
                 max_repetitions: int = 25, full_every: int = 10, v2c: GetBulk | None = None,
                 v3: GetBulk | None = None) -> None:
        self.max_repetitions = max_repetitions
        self.full_every = full_every
        self.v2c: GetBulk = V2cGetBulk(rcvbuf) if v2c is None else v2c
        if v3 is None:
            from poller.snmp_usm_client import UsmGetBulk  # cryptography: only for runs that poll SNMP

            v3 = UsmGetBulk(rcvbuf)
        self.v3: GetBulk = v3
        self._agents: dict[str, _AgentState] = {}
        self.requests = 0
        self.timeouts = 0
        self.auth_failures = 0
        self.errors = 0

    def counters(self) -> dict[str, int]:
        return {"requests": self.requests, "timeouts": self.timeouts,
                "auth_failures": self.auth_failures, "errors": self.errors,
                **self.v3.counters(), **self.v2c.counters()}

    def engine_id(self, key: str) -> bytes | None:
        """The SNMPv3 engine ID agent ``key``'s polls found, if any (poller/snmp_traps.py)."""
        found = getattr(self.v3, "engine_id", None)  # test fakes of GetBulk have none
        return None if found is None else found(key)

    def forget(self, key: str) -> None:
        """The agent ``key`` changed (address, port, credential) or left: its next poll opens it
        again, as at its first."""
        state = self._agents.pop(key, None)
        if state is not None:
            state.getbulk.forget(key)

    def fast_plan(self, agent: Agent) -> tuple[tuple[Column, ...], int]:
        """What a fast poll of ``agent``, polled before, asks for now: its columns and its first
        request's max-repetitions (bench/snmp.py has net-snmp send the same PDU)."""
        state = self._agents[agent.key]
        return state.fast or FAST_64, self._repetitions(state)

    async def _state(self, agent: Agent) -> _AgentState:
        known = self._agents.get(agent.key)
        if known is not None:
            return known
        # The version is chosen once per agent, here; its requests then go straight to it.
        getbulk = self.v2c if isinstance(agent.credential, V2c) else self.v3
        await getbulk.open(agent)
        state = self._agents[agent.key] = _AgentState(getbulk)
        return state

    async def poll(self, agent: Agent) -> RawPoll:
        """Read the system group and the interface tables of ``agent``; raises :class:`SnmpError`."""
        state = await self._state(agent)
        at = datetime.now(UTC)
        state.slowest = 0.0
        columns = ALL_COLUMNS if state.full_due <= 0 or state.fast is None else state.fast
        full = columns is ALL_COLUMNS
        system, rows, mono = await self._walk(agent, state, columns, with_system=True)
        facts, missing = _facts(system)
        restarted = facts.uptime_ticks is not None and facts.uptime_ticks < state.uptime
        if facts.uptime_ticks is not None:
            state.uptime = facts.uptime_ticks
        if not rows:
            missing.append(NO_INTERFACES)
        if full:
            state.identity = {i: {k: v for k, v in r.items() if k in _IDENTITY} for i, r in rows.items()}
            # Fast polls read the octet counters each interface has: 64-bit where all have them,
            # 32-bit where none has, both on an agent that has 64-bit ones on some ports only.
            wide = [r.get("hc_in_octets") is not None for r in rows.values()]
            state.fast = FAST_64 if all(wide) else FAST_32 if not any(wide) else FAST_BOTH
        elif rows.keys() != state.identity.keys() or restarted:
            # New or renumbered interfaces: their names and speeds are needed now, not in ten polls
            # (and whether they have 64-bit counters, at the next poll, a full one).
            _, names, _ = await self._walk(agent, state, IDENTITY_COLUMNS, with_system=False)
            state.identity = names
            restarted = True
        if not full:
            for index, values in rows.items():
                values.update(state.identity.get(index, {}))
        state.rows = len(rows)
        opers = {i: r.get("oper") for i, r in rows.items()}
        changed = any(state.opers.get(i, v) != v for i, v in opers.items())
        state.opers = opers
        state.full_due = 0 if restarted or changed else (self.full_every if full else state.full_due) - 1
        interfaces = tuple(_if_row(i, values) for i, values in sorted(rows.items()))
        return RawPoll(at=at, system=facts, interfaces=interfaces, counters_mono=mono,
                       latency_s=state.slowest, missing=tuple(missing))

    async def _walk(self, agent: Agent, state: _AgentState, columns: tuple[Column, ...],
                    with_system: bool) -> tuple[list[int | str | None], dict[int, Values], float]:
        """Walk ``columns`` side by side by GETBULK; the first request also reads the system group.
        Also returns when the first answer came (the system group's read time)."""
        reps = self._repetitions(state)
        todo = [(name, prefix, prefix) for name, prefix in columns]  # (field, column, last OID seen)
        rows: dict[int, Values] = {}
        system: list[int | str | None] = []
        first = with_system
        first_at: float | None = None
        for _ in range(MAX_REQUESTS_PER_WALK):
            if not todo:
                return system, rows, time.monotonic() if first_at is None else first_at
            oids = [last for _, _, last in todo]
            if first:
                oids = [*SYSTEM_PREV, *oids]
            try:
                answer = await self._request(agent, state, len(SYSTEM_PREV) if first else 0, reps, oids)
            except TooBig:
                if reps == 1:
                    raise SnmpError("error", "the agent's answers are too big even for one row") from None
                reps = max(1, reps // 2)  # RFC 3416 lets an agent say tooBig instead of truncating
                continue
            # When this answer came, not when the poll began: the counters in it were read then
            # (give or take half a round trip), after any resend of this request or an earlier one.
            answered = time.monotonic()
            if first_at is None:
                first_at = answered
            if first:
                system = _system(answer[: len(SYSTEM_PREV)])
                answer = answer[len(SYSTEM_PREV):]
                first = False
            if not answer:
                # Only the system group came back (a response size limit on the agent): an empty
                # table here would be a lie, and would delete the device's interfaces downstream.
                raise SnmpError("error", "the answer held none of the interface columns asked for")
            todo = _collect(todo, answer, rows, answered)
        raise SnmpError("error", f"the interface walk did not end within {MAX_REQUESTS_PER_WALK} requests")

    async def _request(self, agent: Agent, state: _AgentState, non_repeaters: int, reps: int,
                       oids: list[Oid]) -> list[VarBind]:
        self.requests += 1
        sent = time.monotonic()
        try:
            answer = await state.getbulk.getbulk(agent, non_repeaters, reps, oids)
        except SnmpError as exc:
            if exc.reason == "timeout":
                self.timeouts += 1
            elif exc.reason == "authentication":
                self.auth_failures += 1
            else:
                self.errors += 1
            raise
        # Sent -> answer processed: on a busy loop this is mostly our own queueing, not the agent.
        state.slowest = max(state.slowest, time.monotonic() - sent)
        return answer

    def _repetitions(self, state: _AgentState) -> int:
        return max(2, min(self.max_repetitions, state.rows + 1))

    def close(self) -> None:
        self.v3.close()
        self._agents.clear()
        self.v2c.close()


def _facts(system: list[int | str | None]) -> tuple[SystemFacts, list[str]]:
    """The system facts, and the scalars the agent does not have (an Eaton UPS card answers
    sysObjectID and nothing else of the group): what it has is kept, what it lacks is said."""
    name, descr, object_id, uptime = system
    ticks = uptime if isinstance(uptime, int) and uptime >= 0 else None
    missing = [label for label, value in ((NO_UPTIME, ticks), ("sysDescr", descr),
                                          ("sysObjectID", object_id), ("sysName", name)) if value is None]
    # Without sysUpTime a reboot cannot be told from a reset: no reboot is ever inferred
    # (poller/snmp_rates.py), and rates rely on the counters' own checks.
    return SystemFacts(name=str(name or ""), descr=str(descr or ""), object_id=str(object_id or ""),
                       uptime_ticks=ticks), missing


def _system(varbinds: list[VarBind]) -> list[int | str | None]:
    """sysName, sysDescr, sysObjectID, sysUpTime from the non-repeaters' answers (None if absent)."""
    got: dict[str, int | str | None] = {}
    for (oid, value), wanted in zip(varbinds, SYSTEM_OIDS, strict=False):
        if ".".join(map(str, oid)) == wanted:
            got[wanted] = _value(value, text=True)
    return [got.get(SYS_NAME), got.get(SYS_DESCR), got.get(SYS_OBJECT_ID), got.get(SYS_UPTIME)]


def _if_row(index: int, values: Values) -> IfRow:
    """The interface's row, with the read times of the octet counters its rates come from."""
    read = {key: values.pop(key) for key in _READ_AT.values() if key in values}
    # The counters snmp_rates takes (IfRow.counters_64): 64-bit where both directions have them.
    wide = values.get("hc_in_octets") is not None and values.get("hc_out_octets") is not None
    in_read, out_read = (read.get("hc_in_read"), read.get("hc_out_read")) if wide else \
        (read.get("in_read"), read.get("out_read"))
    return IfRow(index, **values,  # type: ignore[arg-type]
                 in_read=in_read if isinstance(in_read, float) else None,
                 out_read=out_read if isinstance(out_read, float) else None)


def _collect(columns: list[Walking], varbinds: list[VarBind], rows: dict[int, Values],
             answered: float) -> list[Walking]:
    """File a GETBULK answer's values into ``rows``, the octet counters with ``answered`` (when
    the answer came); return the columns still to walk."""
    width = len(columns)
    last = [c[2] for c in columns]
    done = [False] * width
    for n, (oid, value) in enumerate(varbinds):
        j = n % width
        if done[j]:
            continue
        fieldname, prefix, _ = columns[j]
        plen = len(prefix)
        if oid[:plen] != prefix or len(oid) != plen + 1 or isinstance(value, NoValue) \
                or oid <= last[j]:
            done[j] = True  # left the column (or the agent went backwards: stop, never loop)
            continue
        last[j] = oid
        if 0 < oid[plen] <= _MAX_IFINDEX:  # out of RFC 2863's range: skipped, the walk goes on
            row = rows.setdefault(oid[plen], {})
            row[fieldname] = _value(value, fieldname in _TEXT_FIELDS)
            read_at = _READ_AT.get(fieldname)
            if read_at is not None:
                row[read_at] = answered
    if not varbinds:
        return []
    return [(c[0], c[1], last[j]) for j, c in enumerate(columns) if not done[j]]
