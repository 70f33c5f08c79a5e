"""The SNMP objects wardtui reads, by numeric OID (SNMPv2-MIB system group, IF-MIB columns),
and the names of interface status values.

No MIB files are needed at run time (Debian ships none, and pysnmp compiles none in).
"""

from __future__ import annotations

# SNMPv2-MIB system group (scalars: the ".0" instance).
SYS_DESCR = "1.3.6.1.2.1.1.1.0"
SYS_OBJECT_ID = "1.3.6.1.2.1.1.2.0"
SYS_UPTIME = "1.3.6.1.2.1.1.3.0"  # TimeTicks, hundredths of a second since the agent (re)started
SYS_NAME = "1.3.6.1.2.1.1.5.0"
SYSTEM_OIDS = (SYS_DESCR, SYS_OBJECT_ID, SYS_UPTIME, SYS_NAME)

# IF-MIB ifTable (1.3.6.1.2.1.2.2.1.N) and ifXTable (1.3.6.1.2.1.31.1.1.1.N) columns, by IfRow field.
IF_TABLE = "1.3.6.1.2.1.2.2.1"
IFX_TABLE = "1.3.6.1.2.1.31.1.1.1"
IF_COLUMNS: dict[str, str] = {
    "descr": f"{IF_TABLE}.2",
    "speed": f"{IF_TABLE}.5",  # Gauge32 bit/s; 4294967295 when faster: read high_speed
    "admin": f"{IF_TABLE}.7",
    "oper": f"{IF_TABLE}.8",
    "in_octets": f"{IF_TABLE}.10",  # Counter32
    "in_discards": f"{IF_TABLE}.13",
    "in_errors": f"{IF_TABLE}.14",
    "out_octets": f"{IF_TABLE}.16",  # Counter32
    "out_discards": f"{IF_TABLE}.19",
    "out_errors": f"{IF_TABLE}.20",
}
IFX_COLUMNS: dict[str, str] = {
    "name": f"{IFX_TABLE}.1",
    "hc_in_octets": f"{IFX_TABLE}.6",  # Counter64
    "hc_out_octets": f"{IFX_TABLE}.10",  # Counter64
    "high_speed": f"{IFX_TABLE}.15",  # Gauge32, Mbit/s
    "alias": f"{IFX_TABLE}.18",
    "discontinuity": f"{IFX_TABLE}.19",  # ifCounterDiscontinuityTime, TimeTicks (sysUpTime at the reset)
}

# ifAdminStatus / ifOperStatus values (RFC 2863).
IF_STATUS = {1: "up", 2: "down", 3: "testing", 4: "unknown", 5: "dormant", 6: "notPresent",
             7: "lowerLayerDown"}


def status_name(value: int | None) -> str:
    """The RFC 2863 name of an ifAdminStatus/ifOperStatus value ("unknown" when absent)."""
    if value is None:
        return "unknown"
    return IF_STATUS.get(value, str(value))
