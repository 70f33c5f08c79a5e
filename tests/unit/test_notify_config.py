"""The notify file: routes and receivers read with their defaults, Alertmanager's first match and
continue, secrets from the credentials file only (never shown), and every problem of a file
reported at once with its exact ``file:line``."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from poller.credentials import load_credentials, load_secrets
from poller.notify.config import NotifyError, describe_route, load_notify, parse_matcher, routes_for
from poller.notify.model import Matcher
from poller.notify.receiver_config import (
    FACILITIES,
    SEVERITIES,
    CommandConfig,
    EmailConfig,
    SyslogConfig,
    WebhookConfig,
)

HMAC = "hmac-s3cret-value-1"
PASSWORD = "smtp-pa55word-value"
SLACK_URL = "https://127.0.0.1:8443/services/T000/B000/TOKEN-IN-PATH"
CREDENTIALS = f"""\
branch-v2:
  version: 2c
  community: s3cret-community
hook-hmac:
  kind: secret
  secret: {HMAC}
smtp-noc:
  kind: secret
  secret: {PASSWORD}
slack-url:
  kind: secret
  secret: {SLACK_URL}
"""

GOOD = """\
routes:
  - name: routers
    match: [type=router, 'branch=~"north-b0.*"', tag!=lab, region!~"test.*"]
    receivers: [hook, mail]
    group_by: [region, branch]
    group_wait: 10s
    group_interval: 1m30s
    repeat_interval: 2d
    continue: true
  - name: down-only
    match: state=down
    receivers: slack
  - name: rest
    receivers: [pager, siem]
    group_by: []
receivers:
  - name: hook
    kind: webhook
    url: http://127.0.0.1:9000/hook
    hmac_secret: hook-hmac
    timeout: 2500ms
  - name: slack
    kind: webhook
    preset: slack
    url_secret: slack-url
  - name: mail
    kind: email
    host: 127.0.0.1
    from: wardtui@noc.example
    to: noc@noc.example
    username: noc
    password_secret: smtp-noc
  - name: pager
    kind: command
    argv: [true, --flag, "a b"]
    env: {PAGER_TEAM: noc}
  - name: siem
    kind: syslog
    host: ::1
    transport: tcp
    facility: local3
    firing_severity: err
"""


def write(tmp_path: Path, text: str, name: str = "notify.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def credentials(tmp_path: Path) -> Path:
    path = write(tmp_path, CREDENTIALS, "credentials.yaml")
    path.chmod(0o600)
    return path


def test_a_good_file_reads_with_its_values_and_defaults(tmp_path: Path, credentials: Path) -> None:
    config = load_notify(write(tmp_path, GOOD), credentials)
    routers, down, rest = config.routes
    assert (routers.name, routers.receivers, routers.group_by, routers.line) == \
        ("routers", ("hook", "mail"), ("region", "branch"), 2)
    assert (routers.group_wait, routers.group_interval, routers.repeat_interval, routers.continue_) == \
        (10.0, 90.0, 172800.0, True)
    assert [(m.key, m.op, m.value) for m in routers.matchers] == \
        [("type", "=", "router"), ("branch", "=~", "north-b0.*"), ("tag", "!=", "lab"),
         ("region", "!~", "test.*")]
    assert (down.group_by, down.group_wait, down.group_interval, down.repeat_interval, down.continue_) == \
        (("branch",), 30.0, 300.0, 14400.0, False)
    assert rest.matchers == () and rest.group_by == ()
    hook, slack, mail = config.receivers["hook"], config.receivers["slack"], config.receivers["mail"]
    assert isinstance(hook, WebhookConfig) and hook.hmac_secret == HMAC and hook.timeout == 2.5
    assert hook.preset == "json" and hook.url == "http://127.0.0.1:9000/hook"
    assert isinstance(slack, WebhookConfig) and slack.url == SLACK_URL and slack.preset == "slack"
    assert isinstance(mail, EmailConfig)
    assert (mail.port, mail.starttls, mail.implicit_tls, mail.to, mail.password, mail.timeout) == \
        (587, True, False, ("noc@noc.example",), PASSWORD, 30.0)
    pager = config.receivers["pager"]
    assert isinstance(pager, CommandConfig) and pager.argv[1:] == ("--flag", "a b")
    assert os.path.isabs(pager.argv[0]) and pager.env == (("PAGER_TEAM", "noc"),) and pager.timeout == 10.0
    siem = config.receivers["siem"]
    assert isinstance(siem, SyslogConfig)
    assert (siem.host, siem.port, siem.transport, siem.facility) == ("::1", 514, "tcp", FACILITIES["local3"])
    assert (siem.firing_severity, siem.resolved_severity) == (SEVERITIES["err"], SEVERITIES["notice"])
    shown = repr(config) + "".join(describe_route(r) for r in config.routes)
    assert HMAC not in shown and PASSWORD not in shown and "TOKEN-IN-PATH" not in shown


def test_first_match_and_continue_choose_routes(tmp_path: Path, credentials: Path) -> None:
    routes = load_notify(write(tmp_path, GOOD), credentials).routes
    router = {"device": "r1", "branch": "north-b001", "region": "north", "type": "router", "state": "down"}
    # routers matches and continues; down-only matches and stops: rest is not tried.
    assert [r.name for r in routes_for(routes, router, ("core",))] == ["routers", "down-only"]
    assert [r.name for r in routes_for(routes, router, ("lab",))] == ["down-only"]  # tag!=lab fails
    atm = {**router, "type": "atm", "state": "unreachable"}
    assert [r.name for r in routes_for(routes, atm, ())] == ["rest"]
    assert [r.name for r in routes_for(routes, {**router, "region": "test-1"}, ())] == ["down-only"]


def test_matchers_are_anchored_and_quotes_are_optional() -> None:
    m = parse_matcher('device=~"r[0-9]"')
    assert isinstance(m, Matcher)
    assert m.matches({"device": "r1"}, ()) and not m.matches({"device": "xr1"}, ())
    assert not m.matches({"device": "r12"}, ())
    tag = parse_matcher("tag=~atm|cam")
    assert isinstance(tag, Matcher) and tag.matches({}, ("x", "cam")) and not tag.matches({}, ("camera",))
    spaced = parse_matcher("  branch != north-b001 ")
    assert isinstance(spaced, Matcher) and (spaced.op, spaced.value) == ("!=", "north-b001")


BAD = """\
routes:
  - name: one
    match: [type=router, colour=red, 'device=~"(unclosed"', state=up, branch]
    receivers: [hook, ghost]
    group_by: [branch, tag, zone]
    group_wait: 0s
    group_interval: 5
    repeat_interval: -4h
    surprise: 1
  - name: one
    receivers: [hook]
  - name: "bad name"
    receivers: []
    continue: maybe
receivers:
  - name: hook
    kind: webhook
    url: ftp://127.0.0.1/x
    port: 80
    preset: discord
  - name: hook
    kind: command
    argv: [true]
  - name: mail
    kind: email
    host: 127.0.0.1
    from: wardtui@noc.example
    to: [not-an-address]
    starttls: false
    username: noc
    password_secret: smtp-noc
  - name: cmd
    kind: command
    argv: [./no-such-program]
    timeout: 10
  - name: log
    kind: syslog
    host: 127.0.0.1
    facility: local9
    transport: sctp
    hostname: "has space"
  - name: box
    kind: pigeon
extra: true
"""


def test_every_problem_is_reported_at_once_with_its_line(tmp_path: Path, credentials: Path) -> None:
    path = write(tmp_path, BAD)
    with pytest.raises(NotifyError) as info:
        load_notify(path, credentials)
    p = str(path)
    assert info.value.problems == [
        f"{p}:3: route 'one': matcher 'colour=red': unknown label 'colour' (one of device, branch, region, "
        "type, tag, state)",
        f"{p}:3: route 'one': matcher 'device=~\"(unclosed\"': not a valid regular expression: missing ), "
        "unterminated subpattern at position 0",
        f"{p}:3: route 'one': matcher 'state=up': state is down or unreachable (a problem's state), not 'up'",
        f"{p}:3: route 'one': matcher 'branch': expected key=value, key!=value, key=~regex or key!~regex",
        f"{p}:4: route 'one': no receiver named 'ghost' (receivers: box, cmd, hook, log, mail)",
        f"{p}:5: route 'one': group_by 'tag': a device has several tags; group by one of device, branch, "
        "region, type, state",
        f"{p}:5: route 'one': group_by 'zone' is not a label (one of device, branch, region, type, state)",
        f"{p}:6: route 'one': 'group_wait' must be longer than 0",
        f"{p}:7: route 'one': 'group_interval' must be a duration with its unit, like 30s, 5m, 4h or 1h30m "
        "(ms, s, m, h, d)",
        f"{p}:8: route 'one': 'repeat_interval' must be a duration with its unit, like 30s, 5m, 4h or 1h30m "
        "(ms, s, m, h, d)",
        f"{p}:9: route 'one': unknown key 'surprise' (known: name, match, receivers, group_by, group_wait, "
        "group_interval, repeat_interval, continue)",
        f"{p}:10: route 'one' is defined twice (first on line 2)",
        f"{p}:12: route at line 12: name 'bad name' must be letters, digits, '_', '.', '-' (at most 64, a "
        "letter or digit first)",
        f"{p}:13: route at line 12: 'receivers' is empty: a route sends to at least one receiver",
        f"{p}:14: route at line 12: 'continue' must be true or false",
        f"{p}:18: receiver 'hook': url 'ftp://127.0.0.1/x' must be an http:// or https:// URL",
        f"{p}:19: receiver 'hook': 'port' is not a setting of a webhook receiver (known: url, url_secret, "
        "preset, hmac_secret, timeout, ca_file, parallel)",
        f"{p}:20: receiver 'hook': 'preset' must be one of json, slack, teams",
        f"{p}:21: receiver 'hook' is defined twice (first on line 16)",
        f"{p}:28: receiver 'mail': to 'not-an-address' is not an e-mail address",
        f"{p}:31: receiver 'mail': a password with starttls: false and no implicit_tls would cross the "
        "network in clear",
        f"{p}:34: receiver 'cmd': program './no-such-program' is not an executable file",
        f"{p}:35: receiver 'cmd': 'timeout' must be a duration with its unit, like 30s, 5m, 4h or 1h30m "
        "(ms, s, m, h, d)",
        f"{p}:39: receiver 'log': 'facility' must be one of kern, user, mail, daemon, auth, syslog, lpr, "
        "news, uucp, cron, authpriv, ftp, ntp, security, console, solaris-cron, local0, local1, local2, "
        "local3, local4, local5, local6, local7",
        f"{p}:40: receiver 'log': 'transport' must be one of udp, tcp",
        f"{p}:41: receiver 'log': hostname must be 1 to 255 printable ASCII characters without spaces "
        "(RFC 5424)",
        f"{p}:43: receiver 'box': 'kind' must be one of webhook, email, command, syslog",
        f"{p}:44: the notify file: unknown key 'extra' (known: routes, receivers)",
    ]


def test_broken_yaml_and_aliases_name_their_line(tmp_path: Path) -> None:
    broken = write(tmp_path, "routes:\n  - name: a\n    receivers: [x\nreceivers: []\n", "broken.yaml")
    with pytest.raises(NotifyError) as info:
        load_notify(broken)
    assert len(info.value.problems) == 1 and info.value.problems[0].startswith(f"{broken}:4: not valid YAML")
    aliased = write(tmp_path, "routes:\n  - name: a\n    receivers: &r [x]\n  - name: b\n    receivers: *r\n"
                              "receivers: []\n", "alias.yaml")
    with pytest.raises(NotifyError) as info:
        load_notify(aliased)
    assert info.value.problems == [f"{aliased}:5: YAML alias '*r': aliases are not allowed here (write the "
                                   "value out)"]


def test_a_duplicate_key_and_a_control_character_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path, 'routes:\n  - name: a\n    receivers: [h]\n    group_wait: 1s\n'
                           '    group_wait: 2s\nreceivers:\n  - name: h\n    kind: syslog\n'
                           '    host: "127.0.0.1\\x1b[31m"\n')
    with pytest.raises(NotifyError) as info:
        load_notify(path)
    assert info.value.problems == [
        f"{path}:5: route 'a': 'group_wait' given twice (first on line 4)",
        f"{path}:9: receiver 'h': 'host' holds the control character U+001B (ESC)",
    ]


def test_secrets_come_from_the_credentials_file_and_are_never_shown(tmp_path: Path,
                                                                    credentials: Path) -> None:
    text = ("routes:\n  - name: a\n    receivers: [h, m]\nreceivers:\n  - name: h\n    kind: webhook\n"
            f"    url: http://127.0.0.1:1/x\n    hmac_secret: {HMAC}\n"  # the secret pasted as its name
            "  - name: m\n    kind: email\n    host: 127.0.0.1\n    from: a@b.example\n    to: c@d.example\n"
            "    username: u\n    password_secret: branch-v2\n")
    path = write(tmp_path, text)
    with pytest.raises(NotifyError) as info:
        load_notify(path, credentials)
    assert info.value.problems == [
        f"{path}:8: receiver 'h': 'hmac_secret' names no entry of {credentials} (it takes the name of a "
        "`kind: secret` entry there, not the secret)",
        f"{path}:15: receiver 'm': 'password_secret' names an SNMP credential of {credentials}; it needs a "
        "`kind: secret` entry",
    ]
    assert HMAC not in str(info.value)


def test_a_credentials_file_others_can_read_is_refused(tmp_path: Path, credentials: Path) -> None:
    credentials.chmod(0o640)
    with pytest.raises(NotifyError) as info:
        load_notify(write(tmp_path, GOOD), credentials)
    message = str(info.value)
    assert f"{credentials}: holds secrets but is mode 0640" in message and "chmod 600" in message
    assert HMAC not in message and PASSWORD not in message
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o640


def test_a_file_without_secrets_never_reads_the_credentials_file(tmp_path: Path) -> None:
    text = ("routes:\n  - name: a\n    receivers: [s]\nreceivers:\n  - name: s\n    kind: syslog\n"
            "    host: 127.0.0.1\n")
    config = load_notify(write(tmp_path, text), tmp_path / "not-there.yaml")
    assert list(config.receivers) == ["s"]


def test_secret_entries_stay_out_of_the_snmp_credentials(credentials: Path) -> None:
    assert sorted(load_credentials(credentials)) == ["branch-v2"]
    secrets = load_secrets(credentials)
    assert sorted(secrets) == ["hook-hmac", "slack-url", "smtp-noc"] and secrets["hook-hmac"].value == HMAC
    assert HMAC not in repr(secrets)


def test_a_secret_entry_with_problems_is_reported_without_its_value(tmp_path: Path) -> None:
    from poller.credentials import CredentialsError

    path = write(tmp_path, f"a:\n  kind: secret\n  secrets: {HMAC}\nb:\n  kind: password\n", "c.yaml")
    path.chmod(0o600)
    with pytest.raises(CredentialsError) as info:
        load_secrets(path)
    assert str(info.value).splitlines() == [
        f"{path}:1: credential 'a': secret is missing",
        f"{path}:1: credential 'a': unknown field 'secrets' (a secret has kind and secret)",
        f"{path}:4: credential 'b': kind must be secret (or snmp, the default)",
    ]


def test_the_example_file_is_valid(tmp_path: Path) -> None:
    credentials = write(tmp_path, "noc-hook-hmac:\n  kind: secret\n  secret: x\n", "c.yaml")
    credentials.chmod(0o600)
    example = Path(__file__).resolve().parents[2] / "examples" / "notify.yaml"
    config = load_notify(example, credentials)
    assert [r.name for r in config.routes] == ["branch-routers", "north-down", "everything-else"]
    assert {r.kind for r in config.receivers.values()} == {"webhook", "email", "command", "syslog"}


def test_the_reference_documents_every_key_of_the_code() -> None:
    """docs/NOTIFICATIONS.md's tables list exactly the keys the code reads, kind by kind."""
    from poller.notify.config import ROUTE_KEYS
    from poller.notify.receiver_config import KIND_KEYS

    doc = (Path(__file__).resolve().parents[2] / "docs" / "NOTIFICATIONS.md").read_text(encoding="utf-8")

    def table_keys(heading: str) -> list[str]:
        section = doc.split(f"\n{heading}\n", 1)[1].split("\n#", 1)[0]
        rows = [line for line in section.splitlines() if line.startswith("| `")]
        return [row.split("`")[1] for row in rows]

    assert table_keys("## Routes") == list(ROUTE_KEYS)
    for kind, keys in KIND_KEYS.items():
        assert sorted(table_keys(f"### {kind}")) == sorted(keys), kind


@pytest.mark.parametrize("value, problem", [
    ("8", None), ("1", None), ("32", None),
    ("0", "'parallel' must be"), ("33", "'parallel' must be"), ("many", "'parallel' must be"),
])
def test_parallel_is_a_setting_of_every_receiver(tmp_path: Path, value: str, problem: str | None) -> None:
    path = write(tmp_path, f"""\
routes:
  - name: all
    receivers: [hook, log]
receivers:
  - name: hook
    kind: webhook
    url: http://127.0.0.1:9/x
    parallel: {value}
  - name: log
    kind: syslog
    host: 127.0.0.1
""")
    if problem is None:
        config = load_notify(path, None)
        assert (config.receivers["hook"].parallel, config.receivers["log"].parallel) == (int(value), 1)
        return
    with pytest.raises(NotifyError) as info:
        load_notify(path, None)
    [line] = info.value.problems
    assert line.startswith(f"{path}:8: receiver 'hook': ") and problem in line, line


def test_parallel_defaults_to_4_for_a_webhook_and_1_for_the_others(tmp_path: Path) -> None:
    path = write(tmp_path, """\
routes:
  - name: all
    receivers: [hook, log, mail, run]
receivers:
  - name: hook
    kind: webhook
    url: http://127.0.0.1:9/x
  - name: log
    kind: syslog
    host: 127.0.0.1
  - name: mail
    kind: email
    host: 127.0.0.1
    from: wardtui@noc.example
    to: [noc@noc.example]
  - name: run
    kind: command
    argv: [/bin/true]
""")
    config = load_notify(path, None)
    parallel = {name: r.parallel for name, r in config.receivers.items()}
    assert parallel == {"hook": 4, "log": 1, "mail": 1, "run": 1}


def test_the_delivery_takes_each_receivers_parallel() -> None:
    from poller.notify.delivery import Delivery
    from poller.notify.outbox import MemoryOutbox

    class Quiet:
        def __init__(self, name: str) -> None:
            self.name, self.kind = name, "command"

        async def send(self, notification: object) -> None: ...

        async def aclose(self) -> None: ...

    receivers = {"hook": Quiet("hook"), "pager": Quiet("pager")}
    by_name = Delivery(MemoryOutbox(), receivers, parallel={"hook": 8})  # type: ignore[arg-type]
    assert (by_name.parallel("hook"), by_name.parallel("pager")) == (8, 1)
    for_all = Delivery(MemoryOutbox(), receivers, parallel=3)  # type: ignore[arg-type]
    assert (for_all.parallel("hook"), for_all.parallel("pager")) == (3, 3)
