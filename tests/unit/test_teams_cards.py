"""Teams Adaptive Cards: the documented message shape, text from outside never read as Markdown, within 28 KB."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chalicelib.channels.teams import TEAMS_MAX_BYTES, teams_body
from chalicelib.domain.notifications import Notification
from tests.support import example_notifications as examples
from tests.support.teams_api import cards, markdown_in, teams_problems, text_blocks, text_runs

JSON = "application/json"
HOSTILE = "[click](https://evil.example) **boss** _x_ <at>everyone</at> {{DATE(2017-02-14T06:08:00Z, SHORT)}}"


def card_of(notification: Notification, page_url: str | None = None) -> dict[str, Any]:
    body = teams_body(notification, page_url=page_url)
    assert teams_problems(JSON, body) == []
    (card,) = cards(json.loads(body))
    return card


@pytest.mark.parametrize(
    ("build", "heading", "style"),
    [
        (examples.deleted, "Critical: State deleted", "attention"),
        (examples.mismatch, "Critical: Digest mismatch", "attention"),
        (examples.changed, "Warning: State written", "warning"),
    ],
)
def test_the_card_opens_with_its_severity(build: Any, heading: str, style: str) -> None:
    card = card_of(build())
    top = card["body"][0]
    assert top["type"] == "Container" and top["style"] == style
    assert top["items"][0]["text"] == heading and top["items"][0]["type"] == "TextBlock"


def test_a_deleted_state_card_says_who_held_the_lock_and_how_to_restore_it() -> None:
    card = card_of(examples.deleted(), page_url="https://guardian.example.com/")
    runs = text_runs(card)
    assert f"ci@runner-7 (apply, lock {examples.lock().id})" in runs
    assert any(run.startswith(f"tfguardian rollback {examples.KEY} --version-id 3HL4") for run in runs)
    assert any(run.startswith('POST /rollback {"key": ') for run in runs)
    assert card["actions"] == [{
        "type": "Action.OpenUrl", "title": "Open the state's page",
        "url": "https://guardian.example.com/#/state?key=platform%2Fnetwork%2Fterraform.tfstate",
    }]  # fmt: skip


def test_the_top_addresses_are_listed_with_exact_counts() -> None:
    runs = text_runs(card_of(examples.changed(removed=25)))
    assert "+1 ~1 -25" in runs and "- …and 15 more" in runs
    assert sum(run.startswith("module.subnets.aws_subnet.private") for run in runs) == 10


def test_text_from_outside_lands_only_in_text_runs_and_opens_no_function() -> None:
    card = card_of(examples.deleted(f"{HOSTILE}/terraform.tfstate", who=HOSTILE))
    blocks = text_blocks(card)
    assert blocks == ["Critical: State deleted", "What to do"]  # our own words: the only Markdown Teams reads
    assert all(markdown_in(text) == [] for text in blocks)
    runs = " ".join(text_runs(card))
    assert "[click](https://evil.example)" in runs  # shown as typed, in runs that are never Markdown
    assert "{{DATE" not in runs and "{\u200b{DATE" in runs


def test_control_characters_cannot_reorder_or_forge_lines() -> None:
    card = card_of(examples.deleted("evil\u202e/x\n- run this/terraform.tfstate"))
    runs = " ".join(text_runs(card))
    assert "\u202e" not in runs and "\\u202e" in runs and "\\x0a- run this" in runs


def test_a_huge_notification_fits_28_kb_with_exact_counts() -> None:
    data = examples.changed(removed=400).to_dict()
    data["details"]["resources"]["removed"] = [f'module.m.aws_s3_object.o["{"k" * 3000}{i}"]' for i in range(400)]
    body = teams_body(Notification.from_dict(data))  # ten such addresses are over 28 KB
    assert len(body) <= TEAMS_MAX_BYTES and teams_problems(JSON, body) == []
    runs = text_runs(cards(json.loads(body))[0])
    assert "+1 ~1 -400" in runs
    more = [run for run in runs if run.startswith("- …and ")]
    listed = sum(run.startswith('module.m.aws_s3_object.o["') for run in runs)
    assert more == [f"- …and {400 - listed} more"] and 0 < listed < 10
    assert "aws_nat_gateway.egress[0]" in runs and "aws_route_table.private" in runs  # fair: the others stay


def test_a_bad_message_is_refused_by_the_checker() -> None:
    """The shape the tests hold cards to is a real check: each broken one is caught."""
    good = json.loads(teams_body(examples.deleted()))
    card = good["attachments"][0]["content"]

    def with_card(**change: Any) -> bytes:
        return json.dumps({**good, "attachments": [{**good["attachments"][0], "content": {**card, **change}}]}).encode()

    bad = {
        "not a message": json.dumps({**good, "type": "note"}).encode(),
        "no attachments": json.dumps({**good, "attachments": []}).encode(),
        "a hero card": json.dumps({**good, "attachments": [{**good["attachments"][0], "contentType": "x"}]}).encode(),
        "Action.Submit": with_card(actions=[{"type": "Action.Submit", "title": "go"}]),
        "RichTextBlock in 1.0": with_card(version="1.0"),
        "an unknown element": with_card(body=[{"type": "Table"}]),
        "markdown runs": with_card(body=[{"type": "RichTextBlock", "inlines": [{"type": "TextBlock", "text": "x"}]}]),
        "too large": with_card(body=[{"type": "TextBlock", "text": "x" * TEAMS_MAX_BYTES}]),
    }
    for name, body in bad.items():
        assert teams_problems(JSON, body) != [], name
    assert teams_problems("text/plain", json.dumps(good).encode()) != []


def test_a_key_too_long_for_every_command_gives_fewer_commands_never_a_cut_one() -> None:
    """A thousand-character key is in the card a dozen times: the card drops commands before it cuts any."""
    shown = {}
    for length in (300, 1000):
        key = "鍵" * length + "/terraform.tfstate"
        body = teams_body(examples.deleted(key, who="w" * 256), page_url="https://guardian.example.com/")
        assert len(body) <= TEAMS_MAX_BYTES and teams_problems(JSON, body) == []
        (card,) = cards(json.loads(body))
        runs = text_runs(card)
        commands = [run for run in runs if run.startswith(("tfguardian ", "POST ", "aws "))]
        assert all(key in command for command in commands), length
        shown[length] = (len(commands), "actions" in card, any("too long to show here" in run for run in runs))
    assert shown == {300: (3, True, False), 1000: (0, False, True)}
