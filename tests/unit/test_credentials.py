"""SNMP credentials file: v2c and v3 entries, mode 0600 enforced, every problem reported, no secret shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from poller.credentials import V3, CredentialsError, V2c, default_credentials_path, load_credentials

GOOD = """\
branch-v2:
  version: 2c
  community: s3cret-community
core-v3:
  version: 3
  user: noc
  auth_protocol: SHA256
  auth_key: auth-passphrase-1
  priv_protocol: aes
  priv_key: priv-passphrase-1
atm-v3:
  version: 3
  user: atm
  auth_protocol: sha
  auth_key: auth-passphrase-2
"""
SECRETS = ("s3cret-community", "auth-passphrase-1", "priv-passphrase-1", "auth-passphrase-2",
           "tiny", "typo-secret")


def write(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "credentials.yaml"
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


def test_v2c_and_v3_entries_load(tmp_path: Path) -> None:
    found = load_credentials(write(tmp_path, GOOD))
    assert found["branch-v2"] == V2c("branch-v2", "s3cret-community")
    assert found["core-v3"] == V3("core-v3", "noc", "sha256", "auth-passphrase-1", "aes", "priv-passphrase-1")
    assert found["core-v3"].level == "authPriv" and found["atm-v3"].level == "authNoPriv"
    assert {c.version for c in found.values()} == {"2c", "3"}
    shown = repr(found)
    assert not any(secret in shown for secret in SECRETS)


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_a_file_others_can_read_is_refused_saying_how_to_fix_it(tmp_path: Path, mode: int) -> None:
    path = write(tmp_path, GOOD, mode)
    with pytest.raises(CredentialsError, match=f"mode {mode:04o}.*chmod 600") as info:
        load_credentials(path)
    assert not any(secret in str(info.value) for secret in SECRETS)


def test_every_problem_is_reported_with_its_line_and_no_secret(tmp_path: Path) -> None:
    text = """\
a:
  version: 2c
b:
  version: 3
  user: noc
  auth_protocol: sha999
  auth_key: tiny
  priv_protocol: aes
c:
  version: 1
  community: typo-secret
d:
  version: 2c
  comunity: typo-secret
"""
    with pytest.raises(CredentialsError) as info:
        load_credentials(write(tmp_path, text))
    message = str(info.value)
    assert "credentials.yaml:1: credential 'a': community is missing" in message
    assert "credentials.yaml:3: credential 'b': auth_protocol 'sha999' is not one of" in message
    assert "'b': priv_protocol and priv_key go together" in message
    assert "'b': auth_key is shorter than 8 characters" in message
    assert "credentials.yaml:9: credential 'c': version must be 2c or 3" in message
    assert "credentials.yaml:12: credential 'd': unknown field 'comunity'" in message
    assert not any(secret in message for secret in SECRETS)


def test_broken_yaml_names_the_line_but_never_quotes_it(tmp_path: Path) -> None:
    with pytest.raises(CredentialsError, match=r"credentials.yaml:\d+: not valid YAML$") as info:
        load_credentials(write(tmp_path, 'a:\n  community: "s3cret-community\n  version: 2c\n'))
    assert "s3cret" not in str(info.value)


def test_missing_file_and_directory_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(CredentialsError, match="cannot read the SNMP credentials file"):
        load_credentials(tmp_path / "nope.yaml")
    with pytest.raises(CredentialsError, match="not a regular file"):
        load_credentials(tmp_path)


def test_empty_file_has_no_credentials(tmp_path: Path) -> None:
    assert load_credentials(write(tmp_path, "")) == {}


def test_default_path_follows_xdg_config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert default_credentials_path() == tmp_path / "wardtui" / "credentials.yaml"
    monkeypatch.setenv("XDG_CONFIG_HOME", "relative/dir")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_credentials_path() == tmp_path / ".config" / "wardtui" / "credentials.yaml"
