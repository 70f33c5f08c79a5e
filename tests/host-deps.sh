#!/bin/sh
# Debian packages the test suite needs beside Python ones: nft and ip for the network lab,
# tmux for the terminal end-to-end test, fping for the benchmarks' baseline, snmpd for the SNMP
# tests and net-snmp's tools (snmp) for their baseline.
# Installs what is missing when run as root; otherwise says what is missing and goes on
# (the tests that need them then skip with that reason, or fail under CI=true).
set -u
missing=""
command -v nft >/dev/null 2>&1 || missing="$missing nftables"
command -v ip >/dev/null 2>&1 || missing="$missing iproute2"
command -v tmux >/dev/null 2>&1 || missing="$missing tmux"
command -v fping >/dev/null 2>&1 || missing="$missing fping"
command -v snmpd >/dev/null 2>&1 || missing="$missing snmpd"
command -v snmpbulkwalk >/dev/null 2>&1 || missing="$missing snmp"
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian packages:$missing"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing) >/dev/null \
        || { echo "could not install:$missing" >&2; exit 1; }
else
    echo "not installed (tests that need them will skip):$missing" >&2
fi
exit 0
