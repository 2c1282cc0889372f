"""Text from outside: bounded in notifications, escaped for Slack mrkdwn, HTML and a terminal."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest

from chalicelib.channels.console import ConsoleChannel
from chalicelib.channels.slack import slack_message
from chalicelib.domain.locks import LockInfo
from chalicelib.domain.notifications import Notification, NotificationType, Severity, lock_acquired, state_restored
from chalicelib.domain.state_keys import StateKey
from chalicelib.domain.text import (
    FIELD_CHARS,
    KEY_CHARS,
    REASON_CHARS,
    SUMMARY_CHARS,
    bound,
    escape_html,
    escape_mrkdwn,
    mrkdwn_code,
    terminal_safe,
)
from guardian_cli.output import terminal_safe as cli_terminal_safe
from tests.support.receiver import slack_controls, slack_problems

HOSTILE = ["<!channel>", "<!here>", "<@U123>", "<#C42>", "<https://evil.example|click>", "a & b", "x > y < z"]
NOW = datetime(2026, 11, 26, 11, 5, 21, tzinfo=UTC)


def lock(who: str = "ci@runner-7", version: str = "1.11.4", lock_id: str = "8d4c0a6e") -> LockInfo:
    return LockInfo(
        id=lock_id,
        operation="OperationTypeApply",
        who=who,
        version=version,
        created="2026-11-26T11:00:00.123456789Z",
        path="tfstate/prod/network/terraform.tfstate",
    )


def state_key(key: str = "prod/network/terraform.tfstate") -> StateKey:
    return StateKey.parse(key, ("env:",))


def test_bound_cuts_with_a_visible_ellipsis() -> None:
    assert bound("short", 10) == "short"
    assert bound("x" * 11, 10) == "x" * 9 + "…" and len(bound("x" * 11, 10)) == 10
    assert bound(bound("y" * 500, 100), 100) == bound("y" * 500, 100)  # idempotent


@pytest.mark.parametrize("text", HOSTILE)
def test_mrkdwn_escapes_what_slack_would_turn_into_a_mention_or_a_link(text: str) -> None:
    escaped = escape_mrkdwn(text)
    assert "<" not in escaped and ">" not in escaped
    assert escaped.replace("&amp;", "").replace("&lt;", "").replace("&gt;", "").count("&") == 0
    assert escape_mrkdwn("<!channel>") == "&lt;!channel&gt;"


def test_mrkdwn_cuts_never_split_an_entity() -> None:
    escaped = escape_mrkdwn("<" * 100, limit=10)
    assert escaped == "&lt;" * 2 + "…" and len(escaped) <= 10


def test_backticks_cannot_break_a_code_span() -> None:
    code = mrkdwn_code("env:/a`b`<!channel>\nc/terraform.tfstate")
    assert code.startswith("`") and code.endswith("`") and code.count("`") == 2
    assert "&lt;!channel&gt;" in code and "\n" not in code


def test_html_escaping() -> None:
    assert escape_html('<script>alert("x")</script> & \'') == (
        "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#x27;"
    )


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("env:/a\x1b[2J\x1b]0;owned\x07/terraform.tfstate", "env:/a\\x1b[2J\\x1b]0;owned\\x07/terraform.tfstate"),
        ("line\nbreak\rreturn\ttab", "line\\x0abreak\\x0dreturn\\x09tab"),
        ("del\x7f c1\x9b31m", "del\\x7f c1\\x9b31m"),
        ("bidi \u202eexe.txt \u2066x\u2069 \u2028", "bidi \\u202eexe.txt \\u2066x\\u2069 \\u2028"),
        ("prod/ünïcode → ok", "prod/ünïcode → ok"),
    ],
)
def test_terminal_text_cannot_steer_the_terminal(raw: str, shown: str) -> None:
    assert terminal_safe(raw) == shown
    assert cli_terminal_safe(raw) == shown  # the CLI's twin, installed without chalicelib, agrees


def test_the_cli_twin_agrees_on_every_code_point_below_0x3000() -> None:
    sample = "".join(chr(code) for code in range(0x3000) if not 0xD800 <= code <= 0xDFFF)
    assert cli_terminal_safe(sample) == terminal_safe(sample)


def test_free_text_is_bounded_in_every_notification() -> None:
    long = "w" * 5000
    acquired = lock_acquired(
        lock=lock(who=long, version=long, lock_id=long), source="dynamodb", state_key=state_key(), occurred_at=NOW
    )
    assert len(acquired.summary) == SUMMARY_CHARS and acquired.summary.endswith("…")
    assert all(len(value) <= FIELD_CHARS for value in acquired.details["lock"].values())
    assert acquired.details["lock"]["who"].endswith("…")
    restored = state_restored(
        bucket="tfstate", state_key=state_key("k" * 3000), occurred_at=NOW, from_version_id="v1",
        new_version_id="v2", serial_before=3, serial_after=4, caller=long, reason=long,
    )  # fmt: skip
    assert len(restored.key) == KEY_CHARS and len(restored.details["caller"]) == FIELD_CHARS
    assert len(restored.details["reason"]) == REASON_CHARS
    assert Notification.from_dict(restored.to_dict()) == restored  # bounding twice changes nothing


def test_a_who_that_would_ping_the_channel_is_escaped_for_slack() -> None:
    for who in HOSTILE:
        message = slack_message(
            lock_acquired(lock=lock(who=who), source="dynamodb", state_key=state_key("a`b`/x.tfstate"), occurred_at=NOW)
        )
        assert slack_controls(message) == [] and slack_problems(message) == []
    message = slack_message(lock_acquired(lock=lock(who="<!channel>"), source="dynamodb", state_key=state_key(),
                                          occurred_at=NOW))  # fmt: skip
    assert "locked by &lt;!channel&gt;" in message["text"]


def test_slack_lists_changes_within_its_limits() -> None:
    names = [f'module.new.aws_s3_object.this["{"k" * 300}{i}"]' for i in range(500)]
    notification = Notification(
        id="n", type=NotificationType.STATE_CHANGED, severity=Severity.INFO, occurred_at=NOW, bucket="b",
        key="prod/terraform.tfstate", workspace="default", summary="prod: serial 1→2: +2000 ~0 -2000",
        details={"resources": {"added": names, "changed": [], "removed": names, "truncated": True,
                               "counts": {"added": 2000, "changed": 0, "removed": 2000}}},
    )  # fmt: skip
    message = slack_message(notification)
    assert slack_problems(message) == []
    (changes,) = [block["text"]["text"] for block in message["blocks"] if block.get("block_id") == "changes"]
    assert changes.startswith("*Resources* +2,000 ~0 -2,000")
    assert "+ _…and " in changes and "- _…and " in changes


def test_console_lines_cannot_steer_the_terminal() -> None:
    stream = io.StringIO()
    hostile = lock(who="evil\x1b[31m\x1b]8;;https://x\x07")
    ConsoleChannel(stream).send(
        lock_acquired(
            lock=hostile, source="dynamodb", state_key=state_key("p\x1b[2J/terraform.tfstate"), occurred_at=NOW
        )
    )
    written = stream.getvalue()
    assert "\x1b" not in written and "\x07" not in written
    assert "evil\\x1b[31m" in written and "p\\x1b[2J" in written
    assert written.count("\n") == 2
