"""Slack messages people act on: severity at a glance, what changed, who held the lock, the exact command."""

from __future__ import annotations

import re
from typing import Any

import pytest

from chalicelib.channels.slack import slack_message
from chalicelib.domain.notifications import Notification
from tests.support import example_notifications as examples
from tests.support.receiver import slack_controls, slack_problems

PAGE = "https://guardian.example.com/"
HOSTILE_WHO = "<!channel> <@U0123ABCD> <https://evil.example/login|click here> & `rm -rf`@ci"


def block(message: dict[str, Any], block_id: str) -> dict[str, Any]:
    (found,) = [b for b in message["blocks"] if b.get("block_id") == block_id]
    return dict(found)


def text_of(message: dict[str, Any], block_id: str) -> str:
    return str(block(message, block_id)["text"]["text"])


def code_blocks(text: str) -> list[str]:
    """The text of each ``` block, as Slack shows it (entities decoded)."""
    unescaped = [part.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&") for part in
                 re.findall(r"```(.*?)```", text, re.DOTALL)]  # fmt: skip
    return unescaped


@pytest.mark.parametrize(
    ("build", "heading"),
    [
        (examples.deleted, ":rotating_light: Critical: State deleted"),
        (examples.unreadable, ":rotating_light: Critical: Unreadable state written"),
        (examples.mismatch, ":rotating_light: Critical: Digest mismatch"),
        (examples.changed, ":warning: Warning: State written"),
        (examples.restored, ":warning: Warning: State rolled back"),
    ],
)
def test_the_severity_is_the_first_thing_read(build: Any, heading: str) -> None:
    message = slack_message(build())
    assert message["blocks"][0] == {
        "type": "header",
        "block_id": "heading",
        "text": {"type": "plain_text", "text": heading, "emoji": True},
    }
    assert slack_problems(message) == []


@pytest.mark.parametrize("build", [examples.deleted, examples.unreadable, examples.mismatch])
def test_deletions_unreadable_writes_and_mismatches_carry_the_exact_command(build: Any) -> None:
    notification: Notification = build()
    message = slack_message(notification)
    (command,) = code_blocks(text_of(message, "remedy"))
    assert command.startswith("tfguardian ") and f" {examples.KEY}" in command
    (api_call,) = code_blocks(text_of(message, "api"))
    assert api_call.startswith(("POST /rollback {", "POST /states/digest?key="))
    by_hand = notification.details.get("restore") or notification.details.get("repair")
    if by_hand:
        assert code_blocks(text_of(message, "by_hand")) == [by_hand]
    assert slack_problems(message) == []


def test_the_lock_holder_and_the_writer_are_facts() -> None:
    message = slack_message(examples.deleted())
    fields = [field["text"] for field in block(message, "facts")["fields"]]
    assert f"*Lock holder*\nci@runner-7 (apply, lock {examples.lock().id})" in fields
    assert f"*State*\n`s3://{examples.BUCKET}/{examples.KEY}`" in fields
    assert "*Last serial*\n41" in fields and "*Written by*\nAWS:AROAEXAMPLE:ci-deployer" in fields


def test_the_top_addresses_are_listed_with_exact_counts() -> None:
    message = slack_message(examples.changed(removed=25))
    changes = text_of(message, "changes")
    assert changes.startswith("*Resources* +1 ~1 -25")
    assert changes.count("\n- `module.subnets") == 10 and "- _…and 15 more_" in changes
    assert "*Outputs* +1 ~0 -0\n+ `nat_ip`" in changes


def test_a_page_url_links_the_states_page_and_none_links_nothing() -> None:
    linked = slack_message(examples.deleted(), page_url=PAGE)
    about = block(linked, "about")["elements"]
    assert about[0]["text"] == f"<{PAGE}#/state?key=platform%2Fnetwork%2Fterraform.tfstate|Open the state's page>"
    unlinked = slack_message(examples.deleted())
    assert "<http" not in str(unlinked)


def test_text_from_outside_pings_and_links_nobody_anywhere_in_the_message() -> None:
    key = "team`a`/<b>&c/<!here>/terraform.tfstate"
    for notification in (examples.deleted(key, who=HOSTILE_WHO), examples.mismatch(key), examples.stale(key)):
        message = slack_message(notification, page_url=PAGE)
        assert slack_problems(message) == []
        controls = slack_controls(message)
        assert controls == ["<https://guardian.example.com/#/state?key=team%60a%60%2F%3Cb%3E%26c%2F%3C%21here%3E%2F"
                            "terraform.tfstate|Open the state's page>"], controls  # fmt: skip
    deleted = slack_message(examples.deleted(key, who=HOSTILE_WHO))
    assert "&lt;!channel&gt; &lt;@U0123ABCD&gt;" in str(block(deleted, "facts"))
    # A key with a backtick cannot close the code block; the message says what the look-alike stands for.
    assert "ˋ" in text_of(deleted, "remedy") and "stands for a backtick" in text_of(deleted, "remedy")


def test_the_longest_keys_and_addresses_stay_within_every_block_kit_limit() -> None:
    key = ("&<>" * 340) + "/terraform.tfstate"  # 1,038 characters; escaped, over 4,000
    deleted = slack_message(examples.deleted(key, who="&" * 300), page_url=PAGE)
    assert slack_problems(deleted) == []
    assert "too long to show here whole" in text_of(deleted, "by_hand")  # never a command cut short
    assert all("_…" not in code for code in code_blocks(str(deleted)))
    addresses = examples.changed(removed=400).to_dict()
    long = [f'module.m.aws_s3_object.o["{"&" * 900}{i}"]' for i in range(400)]
    addresses["details"]["resources"] = {**addresses["details"]["resources"], "removed": long}
    message = slack_message(Notification.from_dict(addresses))
    assert slack_problems(message) == []
    changes = text_of(message, "changes")
    assert changes.startswith("*Resources* +1 ~1 -400") and "- _…and " in changes


def test_a_bad_message_is_refused_by_the_checker() -> None:
    """The limits the tests hold messages to are real checks: each broken one is caught."""
    good = slack_message(examples.deleted())
    header = {**good, "blocks": [{"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}]}
    mrkdwn_header = {**good, "blocks": [{"type": "header", "text": {"type": "mrkdwn", "text": "h"}}]}
    too_many = {**good, "blocks": [{"type": "divider"}] * 51}
    same_ids = {**good, "blocks": [{"type": "divider", "block_id": "a"}] * 2}
    long_field = {**good, "blocks": [{"type": "section", "fields": [{"type": "mrkdwn", "text": "f" * 2001}]}]}
    for bad in (header, mrkdwn_header, too_many, same_ids, long_field, {"blocks": good["blocks"]}):
        assert slack_problems(bad) != [], bad
