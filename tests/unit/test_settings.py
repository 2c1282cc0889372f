import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from chalicelib.errors import SettingsError
from chalicelib.settings import Settings, backend_settings

REQUIRED = {
    "GUARDIAN_STATE_BUCKET": "tfstate",
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


def test_every_stage_of_the_chalice_config_reads() -> None:
    config = json.loads((Path(__file__).parents[2] / ".chalice" / "config.json").read_text())
    for stage in ("dev", "prod"):
        env = {**config["environment_variables"], **config["stages"][stage]["environment_variables"]}
        backends = backend_settings(env)
        assert all(settings.notify_topic_arn for settings in backends), stage
    assert (
        len(backend_settings({**config["environment_variables"], **config["stages"]["prod"]["environment_variables"]}))
        == 3
    )


def test_the_app_loads_without_any_setting() -> None:
    """Chalice imports app.py to deploy it: no decorator needs a setting, the first handler that runs reads them."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("GUARDIAN_")}
    root = Path(__file__).parents[2]
    done = subprocess.run([sys.executable, "-c", "import app; print(len(app.app.pure_lambda_functions))"],
                          cwd=root, env=env, capture_output=True, text=True, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "2"
