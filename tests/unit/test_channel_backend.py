"""Every channel people read names the notification's backend where they look for "which backend", escaped there."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from typing import Any

import pytest

from chalicelib.channels.console import ConsoleChannel
from chalicelib.channels.pagerduty import pagerduty_events
from chalicelib.channels.slack import slack_message
from chalicelib.channels.teams import teams_body
from chalicelib.domain.briefs import Fact, brief
from chalicelib.domain.email_message import email_body
from chalicelib.domain.notifications import Notification
from tests.support import example_notifications as examples

# Backend names are checked when configured (lower-case letters, digits, dashes); these are the channels' own guard.
HOSTILE = "<!channel>*prod*_`x`\u202e\x1b[31m{{DATE(x)}}\nFake: line"


def named(notification: Notification, backend: str | None = "prod") -> Notification:
    return replace(notification, backend=backend)


BUILDS = [examples.deleted, examples.changed, examples.mismatch, examples.unreadable, examples.restored]


@pytest.mark.parametrize("build", BUILDS)
def test_the_backend_is_the_first_fact_and_absent_without_one(build: Any) -> None:
    about = brief(named(build()).to_dict())
    assert about.facts[0] == Fact("Backend", "prod", code=True)
    assert about.facts[1].label == "State"
    assert brief(build().to_dict()).facts[0].label == "State"
    assert "Backend" not in [fact.label for fact in brief(named(build(), "").to_dict()).facts]


def slack_fields(notification: Notification) -> list[str]:
    (facts,) = [b for b in slack_message(notification)["blocks"] if b.get("block_id") == "facts"]
    return [field["text"] for field in facts["fields"]]


def test_slack_shows_the_backend_first_among_the_facts() -> None:
    assert slack_fields(named(examples.deleted()))[0] == "*Backend*\n`prod`"
    assert not any(text.startswith("*Backend*") for text in slack_fields(examples.deleted()))


def test_slack_escapes_a_backend_name() -> None:
    text = slack_fields(named(examples.deleted(), HOSTILE))[0]
    # One inline code span on one line, as every name from outside: no mention, no formatting, no line of its own.
    assert text.startswith("*Backend*\n`") and text.endswith("`") and text.count("`") == 2
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text
    assert "\n" not in text.removeprefix("*Backend*\n")


def teams_facts(notification: Notification) -> list[list[dict[str, Any]]]:
    card = json.loads(teams_body(notification))["attachments"][0]["content"]
    return [block["inlines"] for block in card["body"] if block.get("type") == "RichTextBlock"]


def test_teams_shows_the_backend_first_among_the_facts() -> None:
    lines = teams_facts(named(examples.mismatch()))
    label, value = lines[0]  # the first line after the heading and summary
    assert (label["text"], label["weight"], value["text"], value["fontType"]) == (
        "Backend: ",
        "Bolder",
        "prod",
        "Monospace",
    )
    assert lines[1][0]["text"] == "State: "
    assert not any(line[0]["text"] == "Backend: " for line in teams_facts(examples.mismatch()))


def test_teams_takes_a_backend_name_as_text_only() -> None:
    (_, value) = teams_facts(named(examples.mismatch(), HOSTILE))[0]
    assert "{{" not in value["text"] and "\n" not in value["text"] and "\x1b" not in value["text"]
    assert "\u202e" not in value["text"]


def test_email_lists_the_backend_above_the_state() -> None:
    lines = email_body(named(examples.changed()).to_dict()).splitlines()
    backend = next(i for i, line in enumerate(lines) if line.startswith("Backend"))
    assert lines[backend].split() == ["Backend", "prod"]
    assert lines[backend + 1].startswith("State ")
    assert not any(line.startswith("Backend") for line in email_body(examples.changed().to_dict()).splitlines())


def test_email_cannot_be_given_a_line_by_a_backend_name() -> None:
    body = email_body(named(examples.changed(), HOSTILE).to_dict())
    assert not any(line.startswith("Fake: line") for line in body.splitlines())
    assert "\x1b" not in body and "\u202e" not in body


def test_pagerduty_names_the_backend_in_the_details_and_the_notification() -> None:
    (trigger,) = pagerduty_events(named(examples.deleted()), examples.ROUTING_KEY)
    details = trigger["payload"]["custom_details"]
    assert next(iter(details.items())) == ("Backend", "prod")
    assert details["notification"]["backend"] == "prod"
    (without,) = pagerduty_events(examples.deleted(), examples.ROUTING_KEY)
    assert "Backend" not in without["payload"]["custom_details"]


def test_pagerduty_details_take_a_backend_name_as_plain_text() -> None:
    (trigger,) = pagerduty_events(named(examples.deleted(), HOSTILE), examples.ROUTING_KEY)
    shown = trigger["payload"]["custom_details"]["Backend"]
    assert "\n" not in shown and "\x1b" not in shown and "\u202e" not in shown


def console_lines(notification: Notification) -> list[str]:
    stream = io.StringIO()
    ConsoleChannel(stream).send(notification)
    return stream.getvalue().splitlines()


def test_console_names_the_backend_before_the_location() -> None:
    assert (
        console_lines(named(examples.deleted()))[1].strip().startswith(f"[prod] s3://{examples.BUCKET}/{examples.KEY}")
    )
    assert console_lines(examples.deleted())[1].strip().startswith(f"s3://{examples.BUCKET}/{examples.KEY}")


def test_console_cannot_be_steered_by_a_backend_name() -> None:
    lines = console_lines(named(examples.deleted(), HOSTILE))
    assert len(lines) == 2
    assert "\x1b" not in lines[1] and "\u202e" not in lines[1]
