"""The settings of the channels people read: each one configured builds its channel, a bad URL fails fast."""

from __future__ import annotations

import pytest

from chalicelib.composition import Container
from chalicelib.errors import SettingsError
from chalicelib.settings import Settings

REQUIRED = {
    "GUARDIAN_STATE_BUCKET": "tfstate",
    "GUARDIAN_LOCK_TABLE": "tf-locks",
    "GUARDIAN_LOCK_TABLE_STREAM_ARN": "arn:aws:dynamodb:us-east-1:1:table/tf-locks/stream/x",
    "GUARDIAN_TABLE": "tfstate-guardian",
}


@pytest.fixture(autouse=True)
def region(monkeypatch: pytest.MonkeyPatch) -> None:
    """The notifier's ledger is a client of a region: built here, never called."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


def test_each_configured_channel_is_built_with_the_page_url() -> None:
    settings = Settings.from_env({
        **REQUIRED,
        "GUARDIAN_SLACK_WEBHOOK_SECRET": "ssm:/g/slack",
        "GUARDIAN_TEAMS_WEBHOOK_SECRET": "secretsmanager:arn:aws:secretsmanager:us-east-1:1:secret:teams-AbCdEf",
        "GUARDIAN_PAGERDUTY_ROUTING_KEY_SECRET": "ssm:/g/pagerduty",
        "GUARDIAN_PAGERDUTY_EVENTS_URL": "https://events.eu.pagerduty.com/v2/enqueue",
        "GUARDIAN_PAGE_URL": "http://127.0.0.1:8056/",
    })  # fmt: skip
    channels = {channel.name: channel for channel in Container(settings).notifier.channels}
    assert set(channels) == {"slack", "teams", "pagerduty"}
    assert all(vars(channel)["_page_url"] == "http://127.0.0.1:8056/" for channel in channels.values())
    assert vars(channels["pagerduty"])["_events_url"] == "https://events.eu.pagerduty.com/v2/enqueue"


def test_pagerduty_posts_to_its_documented_url_by_default() -> None:
    settings = Settings.from_env({**REQUIRED, "GUARDIAN_PAGERDUTY_ROUTING_KEY_SECRET": "ssm:/g/pagerduty"})
    (channel,) = Container(settings).notifier.channels
    assert vars(channel)["_events_url"] == "https://events.pagerduty.com/v2/enqueue"


@pytest.mark.parametrize(
    "url",
    [
        "http://guardian.example.com/",  # plain HTTP off this machine
        "ftp://guardian.example.com/",
        "https://guardian.example.com/a|b",  # would end a Slack link
        "https://guardian.example.com/<x>",
        "https://guardian.example.com/a b",
    ],
)
@pytest.mark.parametrize("name", ["GUARDIAN_PAGE_URL", "GUARDIAN_PAGERDUTY_EVENTS_URL"])
def test_a_bad_url_is_refused_naming_its_setting(name: str, url: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({**REQUIRED, name: url})


def test_no_channel_secret_no_channel() -> None:
    assert Container(Settings.from_env(REQUIRED)).notifier.channels == []
