"""SNMP credentials file: v2c and v3 entries, mode 0600 enforced, every problem reported, no secret shown."""

from __future__ import annotations

import os
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


def need_root() -> None:
    """Giving a file to another user takes root; CI runs as root, so there this must run."""
    if os.geteuid() != 0:
        reason = "needs root to chown a file to another user"
        if os.environ.get("CI") == "true":
            pytest.fail(reason + " (CI=true: this test must run)", pytrace=False)
        pytest.skip(reason)


OTHER_UID = 64123  # no user of this machine: the file belongs to someone who is not us


def test_a_file_owned_by_another_user_is_refused_like_ssh_refuses_a_key(tmp_path: Path) -> None:
    need_root()
    path = write(tmp_path, GOOD)
    os.chown(path, OTHER_UID, -1)
    with pytest.raises(CredentialsError) as info:
        load_credentials(path)
    message = str(info.value)
    assert message.startswith(f"{path}: holds secrets but is owned by uid {OTHER_UID}, not by the user")
    assert "refusing to use it" in message and "\n" not in message
    assert not any(secret in message for secret in SECRETS)


def test_a_symlink_to_a_file_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    need_root()
    target = write(tmp_path, GOOD)
    os.chown(target, OTHER_UID, -1)
    link = tmp_path / "link.yaml"
    link.symlink_to(target)
    with pytest.raises(CredentialsError, match=f"owned by uid {OTHER_UID}"):
        load_credentials(link)


def test_a_symlink_to_a_file_of_our_own_is_used(tmp_path: Path) -> None:
    link = tmp_path / "link.yaml"
    link.symlink_to(write(tmp_path, GOOD))
    assert set(load_credentials(link)) == {"branch-v2", "core-v3", "atm-v3"}


def test_a_fifo_in_its_place_is_refused_without_waiting(tmp_path: Path) -> None:
    fifo = tmp_path / "credentials.yaml"
    os.mkfifo(fifo, 0o600)
    with pytest.raises(CredentialsError, match="not a regular file"):
        load_credentials(fifo)


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
    with pytest.raises(CredentialsError, match="cannot read the credentials file"):
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


def test_trap_engine_ids_are_read_as_a_list_or_a_line_and_bad_ones_named(tmp_path: Path) -> None:
    text = GOOD.replace("  priv_key: priv-passphrase-1\n", "  priv_key: priv-passphrase-1\n"
                        "  trap_engine_ids: [0x8000000001a1b2c3d4, '80:00:1f:88:80:aa:bb']\n")
    text += "edge-v3:\n  version: 3\n  user: e\n  auth_protocol: md5\n  auth_key: auth-passphrase-3\n" \
            "  trap_engine_ids: 8000000001a1b2c3d4, 8000000001a1b2c3d4\n"
    found = load_credentials(write(tmp_path, text))
    core, edge = found["core-v3"], found["edge-v3"]
    assert isinstance(core, V3) and isinstance(edge, V3)
    assert core.trap_engine_ids == (bytes.fromhex("8000000001a1b2c3d4"), bytes.fromhex("80001f8880aabb"))
    assert edge.trap_engine_ids == (bytes.fromhex("8000000001a1b2c3d4"),)  # once
    assert found["atm-v3"].trap_engine_ids == ()  # type: ignore[union-attr]
    bad = GOOD + "  trap_engine_ids: 0x8000, zz12345678\n"
    with pytest.raises(CredentialsError) as caught:
        load_credentials(write(tmp_path, bad))
    message = str(caught.value)
    assert "'0x8000' is 2 bytes, not 5 to 32" in message and "'zz12345678' is not hexadecimal" in message
    assert ":11:" in message  # the entry's line


def test_a_no_auth_user_is_no_auth_no_priv_and_takes_no_keys(tmp_path: Path) -> None:
    text = "open:\n  version: 3\n  user: public-ro\n  auth_protocol: none\n"
    found = load_credentials(write(tmp_path, text))
    assert found["open"] == V3("open", "public-ro", "none", "")
    assert found["open"].level == "noAuthNoPriv"  # type: ignore[union-attr]
    with pytest.raises(CredentialsError, match="none \\(noAuthNoPriv\\) takes no auth_key"):
        load_credentials(write(tmp_path, text + "  auth_key: some-passphrase\n"))
    with pytest.raises(CredentialsError, match="auth_key is missing"):  # a typo is not noAuthNoPriv
        load_credentials(write(tmp_path, text.replace("none", "sha")))
