import json
from pathlib import Path

import pytest

from chalicelib.errors import SettingsError
from chalicelib.settings import Settings, event_sources

REQUIRED = {
    "GUARDIAN_STATE_BUCKET": "tfstate",
    "GUARDIAN_LOCK_TABLE": "tf-locks",
    "GUARDIAN_LOCK_TABLE_STREAM_ARN": "arn:aws:dynamodb:us-east-1:1:table/tf-locks/stream/x",
    "GUARDIAN_TABLE": "tfstate-guardian",
}


def test_defaults() -> None:
    settings = Settings.from_env(REQUIRED)
    assert settings.workspace_key_prefixes == ("env:",)
    assert settings.notify_topic_arn is None and not settings.notify_console


@pytest.mark.parametrize("missing", sorted(REQUIRED))
def test_missing_required_setting_is_named(missing: str) -> None:
    env = {name: value for name, value in REQUIRED.items() if name != missing}
    with pytest.raises(SettingsError, match=missing):
        Settings.from_env(env)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("GUARDIAN_NOTIFY_CONSOLE", "maybe"),
        ("GUARDIAN_STATE_HEADER_BYTES", "-1"),
        ("GUARDIAN_MAX_STATE_BYTES", "lots"),
        ("GUARDIAN_WORKSPACE_KEY_PREFIXES", " , /"),
    ],
)
def test_invalid_values_are_refused_by_name(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({**REQUIRED, name: value})


def test_workspace_prefixes_are_trimmed() -> None:
    settings = Settings.from_env({**REQUIRED, "GUARDIAN_WORKSPACE_KEY_PREFIXES": "env:, /wsp/ "})
    assert settings.workspace_key_prefixes == ("env:", "wsp")


def test_every_setting_is_in_the_chalice_config() -> None:
    config = json.loads((Path(__file__).parents[2] / ".chalice" / "config.json").read_text())
    for stage in ("dev", "prod"):
        env = {**config["environment_variables"], **config["stages"][stage]["environment_variables"]}
        settings = Settings.from_env(env)
        assert settings.notify_topic_arn, stage


def test_the_app_loads_with_the_two_event_sources_alone() -> None:
    """The decorators need only these; everything else is read by the first handler that runs."""
    sources = event_sources({"GUARDIAN_STATE_BUCKET": "b", "GUARDIAN_LOCK_TABLE_STREAM_ARN": "arn:s"})
    assert (sources.state_bucket, sources.lock_table_stream_arn) == ("b", "arn:s")
    with pytest.raises(SettingsError, match="GUARDIAN_LOCK_TABLE_STREAM_ARN"):
        event_sources({"GUARDIAN_STATE_BUCKET": "b"})
