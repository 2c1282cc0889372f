"""A stage's settings as Chalice deploys them: `.chalice/config.json`'s environment variables, stage over top level."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chalicelib.errors import SettingsError
from chalicelib.settings import Settings, backend_settings
from deploy.errors import StageConfigError

DEFAULT_CONFIG = Path(".chalice") / "config.json"


@dataclass(frozen=True)
class StageConfig:
    """One stage: its name, the app's name, and the settings of every backend its functions will watch.

    `settings` is the first backend's: what the whole deployment shares (its table, index bucket, fan-out batch) is
    read there; `backends` holds every backend's, in the order the config lists them (the first is `settings`).
    """

    path: Path
    app_name: str
    stage: str
    backends: tuple[Settings, ...]

    @property
    def settings(self) -> Settings:
        return self.backends[0]

    @property
    def prefix(self) -> str:
        """What every resource Chalice or `harden` names for this stage starts with: `<app_name>-<stage>`."""
        return f"{self.app_name}-{self.stage}"

    def function_name(self, handler: str) -> str:
        """The Lambda function Chalice deploys for `handler`: `<app_name>-<stage>-<handler>`."""
        return f"{self.prefix}-{handler}"


def load_stage(path: Path, stage: str) -> StageConfig:
    """Read `stage` from the Chalice config at `path`, with the guardian's own validation of its settings."""
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise StageConfigError(f"cannot read {path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise StageConfigError(f"{path} is not valid JSON: {exc}") from exc
    stages = _mapping(config.get("stages"))
    if stage not in stages:
        known = ", ".join(sorted(stages)) or "none"
        raise StageConfigError(f"{path} has no stage {stage!r} (stages: {known})")
    env = {
        **_strings(config.get("environment_variables"), path),
        **_strings(_mapping(stages[stage]).get("environment_variables"), path),
    }
    try:
        backends = backend_settings(env)
    except SettingsError as exc:
        raise StageConfigError(f"stage {stage!r} of {path}: {exc}") from exc
    app_name = config.get("app_name")
    if not isinstance(app_name, str) or not app_name:
        raise StageConfigError(f"{path} has no app_name")
    return StageConfig(path=path, app_name=app_name, stage=stage, backends=backends)


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _strings(value: Any, path: Path) -> dict[str, str]:
    variables = _mapping(value)
    if not all(isinstance(item, str) for item in variables.values()):
        raise StageConfigError(f"{path}: environment variables must be strings, as Lambda takes them")
    return dict(variables)
