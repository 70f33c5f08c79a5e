"""Which devices get an SNMP agent, and the start-up errors for missing or bad credentials."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from poller.credentials import V3
from tests.fakes import make_devices
from wardtui.runtime import Options, StartupError, load_agents

SECRETS = ("c0mmunity-secret", "auth-secret-1", "priv-secret-1")


def credentials_file(tmp_path: Path, mode: int = 0o600) -> Path:
    path = tmp_path / "credentials.yaml"
    path.write_text("lab:\n  version: 2c\n  community: c0mmunity-secret\n"
                    "core:\n  version: 3\n  user: noc\n  auth_protocol: sha\n  auth_key: auth-secret-1\n"
                    "  priv_protocol: aes\n  priv_key: priv-secret-1\n")
    path.chmod(mode)
    return path


def test_only_devices_naming_a_credential_get_an_agent(tmp_path: Path) -> None:
    devices = make_devices(4)
    devices[1] = dataclasses.replace(devices[1], snmp_credential="lab", snmp_port=16100)
    devices[3] = dataclasses.replace(devices[3], snmp_credential="core")
    agents = load_agents(devices, Options(credentials=credentials_file(tmp_path), snmp_timeout=0.5,
                                          snmp_retries=3))
    assert [(a.key, a.address, a.port, a.timeout, a.retries) for a in agents] == [
        ("dev1", devices[1].address, 16100, 0.5, 3), ("dev3", devices[3].address, 161, 0.5, 3)]
    assert isinstance(agents[1].credential, V3)
    assert not any(s in repr(agents) for s in SECRETS)


def test_no_snmp_device_reads_no_credentials_file(tmp_path: Path) -> None:
    # The default file does not exist here: it must not even be looked at.
    assert load_agents(make_devices(3), Options()) == []


def test_an_unknown_credential_name_stops_the_start_naming_it_and_its_devices(tmp_path: Path) -> None:
    devices = [dataclasses.replace(d, snmp_credential="nope") for d in make_devices(5)]
    with pytest.raises(StartupError) as info:
        load_agents(devices, Options(credentials=credentials_file(tmp_path)))
    assert info.value.code == 2
    assert "'nope' (used by dev0, dev1, dev2 and 2 more)" in str(info.value)
    assert not any(s in str(info.value) for s in SECRETS)


def test_a_credentials_file_others_can_read_is_refused(tmp_path: Path) -> None:
    devices = [dataclasses.replace(d, snmp_credential="lab") for d in make_devices(1)]
    with pytest.raises(StartupError) as info:
        load_agents(devices, Options(credentials=credentials_file(tmp_path, mode=0o644)))
    assert info.value.code == 2 and "mode 0644" in str(info.value) and "chmod 600" in str(info.value)
    assert not any(s in str(info.value) for s in SECRETS)


def test_a_missing_default_file_says_how_to_name_another(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    devices = [dataclasses.replace(d, snmp_credential="lab") for d in make_devices(1)]
    with pytest.raises(StartupError) as info:
        load_agents(devices, Options())
    assert str(tmp_path / "wardtui" / "credentials.yaml") in str(info.value)
    assert "--credentials FILE" in str(info.value)
