"""What a notification says: one title for a router and the 40 devices behind it, children listed
under their parent, recoveries likewise; text from outside stays text in every format (plain,
HTML, Slack, Teams, syslog)."""

from __future__ import annotations

import json
import re
from dataclasses import replace

from poller.notify.model import AlertItem
from poller.notify.receiver_config import SyslogConfig
from poller.notify.render import fold, plain_text
from poller.notify.smtp import build_message, html_body
from poller.notify.syslog_rfc5424 import format_message, sd_escape
from poller.notify.webhook import markdown_escape, payload, retry_after, slack_escape
from poller.text import REPLACEMENT
from tests.notify_samples import HOSTILE, T0, children, outage, recovery, router

CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f]")


def test_a_router_and_its_children_make_one_entry() -> None:
    items = [*children(40), router()]  # the children first, as the probes may find them
    (entry,) = fold(items)
    assert entry.item.device == "north-b002-rtr" and len(entry.behind) == 40


def test_a_chain_of_unreachable_devices_folds_under_the_down_one() -> None:
    switch = AlertItem("sw", "10.0.0.2", "unreachable", T0, parents=("north-b002-rtr",))
    camera = AlertItem("cam", "10.0.0.3", "unreachable", T0, parents=("sw",))
    (entry,) = fold([camera, switch, router()])
    assert [c.device for c in entry.behind] == ["cam", "sw"]


def test_plain_text_lists_children_under_their_parent() -> None:
    text = plain_text(outage(2))
    assert text.splitlines() == [
        "north-b002-rtr DOWN, 2 devices unreachable behind it",
        "",
        "Firing: 3 devices",
        "- north-b002-rtr  10.2.0.1  DOWN  since 2026-12-06 05:50:00 UTC  branch north-b002",
        "    2 devices unreachable behind it:",
        "    - north-b002-atm01  10.2.0.11  UNREACHABLE  since 2026-12-06 05:50:03 UTC  branch north-b002",
        "    - north-b002-atm02  10.2.0.12  UNREACHABLE  since 2026-12-06 05:50:03 UTC  branch north-b002",
        "",
        "site bank, route branches, group branch=north-b002, sent 2026-12-06 05:50:30 UTC",
    ]
    lines = plain_text(recovery(1)).splitlines()
    assert lines[3] == ("- north-b002-rtr  10.2.0.1  UP  was out from 2026-12-06 05:50:00 UTC for 12m05s  "
                        "branch north-b002")
    assert lines[4] == "    1 device behind it recovered too:"


def test_hostile_text_is_literal_in_plain_text_and_email() -> None:
    n = outage(1, hostile=True, title=f"{HOSTILE} DOWN")
    text = plain_text(n)
    assert not any(CONTROL.search(line) for line in text.split("\n"))
    visible = HOSTILE.replace("\x1b", REPLACEMENT).replace("\n", REPLACEMENT)
    assert visible in text and f"acknowledged by op: {visible}" in text
    page = html_body(n)
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "[bold]x[/]" in page and "*_~" in page and "\x1b" not in page
    message = build_message(n, "wardtui@noc.example", ("noc@noc.example",))
    assert message["Subject"] == visible + " DOWN"


def test_hostile_text_in_slack_is_escaped_and_never_formatted() -> None:
    body = json.loads(payload(outage(1, hostile=True), "slack"))
    assert set(body) == {"text", "mrkdwn"} and body["mrkdwn"] is False
    text = body["text"]
    assert "<" not in text and ">" not in text.replace("&gt;", "")
    assert "&lt;script&gt;" in text and "&lt;!channel&gt;" in text and "&amp;" in text
    assert "*_~" in text and "[bold]x[/]" in text and "\x1b" not in text
    assert slack_escape("a & <b>") == "a &amp; &lt;b&gt;"


def test_hostile_text_in_teams_is_markdown_escaped() -> None:
    body = json.loads(payload(outage(1, hostile=True), "teams"))
    assert body["type"] == "message"
    (attachment,) = body["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert (card["type"], card["version"]) == ("AdaptiveCard", "1.4")
    texts = [block["text"] for block in card["body"]]
    assert all(block["type"] == "TextBlock" and block["wrap"] is True for block in card["body"])
    hostile = next(t for t in texts if "script" in t and "acknowledged" in t)
    assert r"\[bold\]x\[/\]" in hostile and r"\<script\>alert\(1\)\</script\>" in hostile
    assert r"\*\_\~" in hostile and r"\`c\`" in hostile and "\x1b" not in hostile
    # Nothing Markdown gives a meaning is left unescaped in any block.
    assert not any(re.search(r"(?<!\\)[*_~`\[\]<>]", t) for t in texts)
    assert markdown_escape("- a") == r"\- a" and markdown_escape("1. b") == r"1\. b"


def test_syslog_escapes_structured_data_and_control_characters() -> None:
    assert sd_escape('a"b\\c]d') == 'a\\"b\\\\c\\]d'
    config = SyslogConfig("siem", 1, "127.0.0.1")
    message = format_message(outage(1, hostile=True), config, "noc host\x1b", 4242)
    text = message.decode("utf-8")
    assert text.startswith("<132>1 2026-12-06T05:50:30.000000Z nochost wardtui 4242 firing [wardtui@32473 ")
    assert ' branch="[bold\\]x[/\\] <script>alert(1)</script> *_~ `c` \\\\x1b[31mred\\\\x0anext & \\"q\\" ' \
           '\\\\ \\] <!channel>"' in text
    assert "\x1b" not in text and "\n" not in text
    msg = message.split(b"\xef\xbb\xbf", 1)[1].decode("utf-8")
    assert msg.startswith("north-b002-rtr DOWN, 2 devices unreachable behind it: "
                          "firing north-b002-rtr 10.2.0.1 DOWN, north-b002-atm01 10.2.0.11 UNREACHABLE, ")
    assert "[bold]x[/] <script>alert(1)</script> *_~ `c` \\x1b[31mred\\x0anext" in msg


def test_a_long_syslog_message_is_cut_on_a_character_boundary() -> None:
    many = outage(40)
    wide = replace(many, firing=tuple(replace(i, device=i.device + "-é日本") for i in many.firing))
    config = SyslogConfig("siem", 1, "127.0.0.1", max_length=480)
    message = format_message(wide, config, "h", 1)
    assert len(message) <= 480 and message.endswith(b" [cut]")
    message.decode("utf-8")  # whole characters only
    resolved = format_message(recovery(), config, "h", 1)
    assert resolved.startswith(b"<133>1 ") and b" resolved [wardtui@32473 " in resolved


def test_retry_after_reads_seconds_and_dates() -> None:
    assert retry_after("120") == 120.0
    assert retry_after("Sun, 06 Dec 2026 06:00:30 GMT", now=T0.replace(minute=59, hour=5)) == 90.0
    assert retry_after("soon") is None and retry_after(None) is None


def test_past_the_limit_devices_are_counted_not_listed() -> None:
    lines = plain_text(outage(40), limit=10).splitlines()
    assert lines[3:6] == ["- north-b002-rtr  10.2.0.1  DOWN  since 2026-12-06 05:50:00 UTC  "
                          "branch north-b002",
                          "    40 devices unreachable behind it:",
                          "    - north-b002-atm01  10.2.0.11  UNREACHABLE  since 2026-12-06 05:50:03 UTC  "
                          "branch north-b002"]
    assert lines[13] == "    - north-b002-atm09  10.2.0.19  UNREACHABLE  since 2026-12-06 05:50:03 UTC  " \
                        "branch north-b002"
    assert lines[14] == "    ... and 31 devices more, not listed here"
    others = [router(f"r{i}") for i in range(5)]
    many = replace(outage(0), firing=tuple(others))
    text = plain_text(many, limit=2).splitlines()
    assert [line for line in text if line.startswith("- ")] == [
        "- r0  10.2.0.1  DOWN  since 2026-12-06 05:50:00 UTC  branch north-b002",
        "- r1  10.2.0.1  DOWN  since 2026-12-06 05:50:00 UTC  branch north-b002"]
    assert "... and 3 devices more, not listed here" in text


def test_chat_messages_stay_under_their_services_sizes() -> None:
    huge = outage(3000)
    slack = json.loads(payload(huge, "slack"))["text"]
    assert len(slack) < 40_000 and "... and 2851 devices more, not listed here" in slack
    teams = payload(huge, "teams")
    assert len(teams) < 28_000
    assert b"... and 2901 devices more, not listed here" in teams
    assert len(json.loads(payload(huge, "json"))["firing"]) == 3001  # the JSON body has every one
