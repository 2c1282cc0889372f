"""The backends one deployment watches: a state bucket each, its lock table if any, where it is, how its events come."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from chalicelib.errors import SettingsError

S3_NOTIFICATIONS = "s3"  # the bucket's own event notification invokes the guardian
EVENTBRIDGE = "eventbridge"  # the bucket sends its events to EventBridge; a rule forwards them to the guardian
EVENT_ROUTES = (S3_NOTIFICATIONS, EVENTBRIDGE)
DEFAULT_NAME = "default"
# The settings that name the deployment's own resources or the backend itself: never set per backend.
DEPLOYMENT_WIDE = frozenset(
    {
        "GUARDIAN_BACKENDS",
        "GUARDIAN_BACKENDS_FILE",
        "GUARDIAN_BACKEND_NAME",
        "GUARDIAN_STATE_BUCKET",
        "GUARDIAN_LOCK_TABLE",
        "GUARDIAN_S3_EVENTS",
        "GUARDIAN_TABLE",
        "GUARDIAN_INDEX_BUCKET",
        "GUARDIAN_FAN_OUT_BATCH",
    }
)
_NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?")
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_TABLE = re.compile(r"[A-Za-z0-9_.-]{3,255}")
_REGION = re.compile(r"[a-z]{2}(?:-[a-z]+)+-[1-9][0-9]?")
_ACCOUNT = re.compile(r"[0-9]{12}")
_ROLE_ARN = re.compile(r"arn:aws[a-z-]*:iam::([0-9]{12}):role/[\w+=,.@/-]{1,512}")
_FIELDS = frozenset({"name", "bucket", "lock_table", "region", "account", "role_arn", "events", "settings"})


@dataclass(frozen=True)
class Backend:
    """One S3 backend: a state bucket, the DynamoDB lock table its states use (None: `.tflock` lockfiles only)."""

    name: str
    bucket: str
    lock_table: str | None = None
    region: str | None = None  # None: the guardian's own region
    account: str | None = None  # None: the guardian's own account
    role_arn: str | None = None  # assumed for every call on the bucket and the lock table
    events: str = S3_NOTIFICATIONS
    overrides: Mapping[str, str] = field(default_factory=dict)  # GUARDIAN_* settings for this backend only

    def environment(self, shared: Mapping[str, str]) -> dict[str, str]:
        """The settings this backend runs with: the shared ones, its own over them, and its identity."""
        return {
            **shared,
            **self.overrides,
            "GUARDIAN_BACKEND_NAME": self.name,
            "GUARDIAN_STATE_BUCKET": self.bucket,
            "GUARDIAN_LOCK_TABLE": self.lock_table or "",
            "GUARDIAN_S3_EVENTS": self.events,
        }


def parse_backends(raw: str, source: str) -> tuple[Backend, ...]:
    """The JSON list of backends in `raw` (from `source`, named in every error), checked whole."""
    try:
        entries = json.loads(raw)
    except ValueError as exc:
        raise SettingsError(f"{source} is not valid JSON: {exc}") from None
    if not isinstance(entries, list) or not entries:
        raise SettingsError(f"{source} must be a JSON list of at least one backend")
    backends = tuple(_backend(entry, f"{source}[{index}]") for index, entry in enumerate(entries))
    _unique(backends, source)
    return backends


def single_backend(env: Mapping[str, str], bucket: str) -> Backend:
    """The one backend of a deployment configured without a list: `GUARDIAN_STATE_BUCKET` and its lock table."""
    name = env.get("GUARDIAN_BACKEND_NAME", "").strip() or DEFAULT_NAME
    if not _NAME.fullmatch(name):
        raise SettingsError(f"GUARDIAN_BACKEND_NAME must be lower-case letters, digits and dashes, not {name!r}")
    events = env.get("GUARDIAN_S3_EVENTS", "").strip() or S3_NOTIFICATIONS
    if events not in EVENT_ROUTES:
        raise SettingsError(f"GUARDIAN_S3_EVENTS must be one of {', '.join(EVENT_ROUTES)}, not {events!r}")
    return Backend(name=name, bucket=bucket, lock_table=env.get("GUARDIAN_LOCK_TABLE", "").strip() or None,
                   events=events)  # fmt: skip


def _backend(entry: Any, where: str) -> Backend:
    if not isinstance(entry, dict):
        raise SettingsError(f"{where} must be a JSON object")
    unknown = sorted(set(entry) - _FIELDS)
    if unknown:
        raise SettingsError(f"{where} has unknown fields: {', '.join(unknown)} (known: {', '.join(sorted(_FIELDS))})")
    name = str(_text(entry, "name", where, _NAME, "lower-case letters, digits and dashes, at most 40"))
    bucket = str(_text(entry, "bucket", where, _BUCKET, "an S3 bucket name"))
    lock_table = _text(entry, "lock_table", where, _TABLE, "a DynamoDB table name", required=False)
    region = _text(entry, "region", where, _REGION, "a region, e.g. eu-west-1", required=False)
    account = _text(entry, "account", where, _ACCOUNT, "a 12-digit account id", required=False)
    role_arn = _text(entry, "role_arn", where, _ROLE_ARN, "an IAM role ARN", required=False)
    events = entry.get("events", S3_NOTIFICATIONS)
    if events not in EVENT_ROUTES:
        raise SettingsError(f"{where}.events must be one of {', '.join(EVENT_ROUTES)}, not {events!r}")
    if role_arn is not None:
        role_account = _ROLE_ARN.fullmatch(role_arn).group(1)  # type: ignore[union-attr]
        if account is not None and account != role_account:
            raise SettingsError(f"{where}.role_arn is a role of account {role_account}, not of {account}")
        account = role_account
    overrides = _overrides(entry.get("settings", {}), where)
    return Backend(name=name, bucket=bucket, lock_table=lock_table, region=region, account=account,
                   role_arn=role_arn, events=events, overrides=overrides)  # fmt: skip


def _text(entry: dict[str, Any], name: str, where: str, pattern: re.Pattern[str], what: str, *,
          required: bool = True) -> str | None:  # fmt: skip
    value = entry.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise SettingsError(f"{where}.{name} must be {what}, not {value!r}")
    return value


def _overrides(settings: Any, where: str) -> dict[str, str]:
    if not isinstance(settings, dict):
        raise SettingsError(f"{where}.settings must be a JSON object of GUARDIAN_* settings")
    overrides: dict[str, str] = {}
    for name, value in settings.items():
        if not isinstance(name, str) or not name.startswith("GUARDIAN_"):
            raise SettingsError(f"{where}.settings may hold GUARDIAN_* settings only, not {name!r}")
        if name in DEPLOYMENT_WIDE:
            raise SettingsError(f"{where}.settings cannot set {name}: it is the deployment's, or the backend's own")
        if not isinstance(value, (str, int, bool)) or isinstance(value, float):
            raise SettingsError(f"{where}.settings.{name} must be a string, a number or true/false")
        overrides[name] = str(value).lower() if isinstance(value, bool) else str(value)
    return overrides


def _unique(backends: tuple[Backend, ...], source: str) -> None:
    for what in ("name", "bucket"):
        seen: set[str] = set()
        for backend in backends:
            value = getattr(backend, what)
            if value in seen:
                raise SettingsError(f"{source} names the {what} {value!r} twice: each backend has its own")
            seen.add(value)
