"""The guardian's settings, read once from the environment (the keys of `.chalice/config.json`)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from chalicelib.domain.backends import Backend, parse_backends, single_backend
from chalicelib.errors import SettingsError

if TYPE_CHECKING:
    from chalicelib.domain.access import CallerRule
    from chalicelib.domain.staleness import ReaperPolicy

DEFAULT_WORKSPACE_KEY_PREFIX = "env:"
DEFAULT_STATE_KEY_SUFFIX = ".tfstate"
# Plans take and release a lock on every run: quiet unless a team asks for them.
DEFAULT_QUIET_OPERATIONS = frozenset({"OperationTypePlan"})


def _reaper_policy(**settings: Any) -> ReaperPolicy:
    from chalicelib.domain.staleness import ReaperPolicy  # noqa: PLC0415 - the reaper's domain, on first use

    return ReaperPolicy(**settings)


@dataclass(frozen=True)
class LivenessChecks:
    """The liveness checks that need no endpoint of the team's own, each off unless set (a backend's, later)."""

    eni: bool = False  # GUARDIAN_LIVENESS_ENI: ask EC2 about hosts named for a private address
    eni_region: str | None = None  # where to ask; default the guardian's own region
    github_runners: str | None = None  # owner/repo, org:<name> or enterprise:<slug>
    github_token_secret: str | None = None  # ssm:<parameter> or secretsmanager:<secret>
    github_api_url: str | None = None  # default https://api.github.com


@dataclass(frozen=True)
class Settings:
    """Everything the guardian needs to know about its environment, for one backend."""

    backend: Backend  # the bucket, its lock table, where it is and how its events come
    guardian_table: str
    notify_topic_arn: str | None = None
    notify_event_bus: str | None = None
    slack_webhook_secret: str | None = None
    webhook_url: str | None = None
    webhook_secret: str | None = None
    teams_webhook_secret: str | None = None
    pagerduty_routing_key_secret: str | None = None
    pagerduty_events_url: str | None = None
    page_url: str | None = None
    routes: dict[str, frozenset[str]] = field(default_factory=dict)
    notify_file: str | None = None
    notify_console: bool = False
    workspace_key_prefixes: tuple[str, ...] = (DEFAULT_WORKSPACE_KEY_PREFIX,)
    state_key_suffixes: tuple[str, ...] = (DEFAULT_STATE_KEY_SUFFIX,)
    state_key_prefixes: tuple[str, ...] = ()
    removed_resources_warning: int = 5
    state_header_bytes: int = 4096
    max_state_bytes: int = 256 * 1024 * 1024
    channel_attempts: int = 3
    digest_grace_s: int = 30
    quiet_operations: frozenset[str] = DEFAULT_QUIET_OPERATIONS
    reaper: ReaperPolicy = field(default_factory=_reaper_policy)
    liveness_url: str | None = None
    liveness: LivenessChecks = field(default_factory=LivenessChecks)
    api_key_prefixes: tuple[str, ...] = ()
    api_callers: tuple[CallerRule, ...] = ()
    index_bucket: str | None = None
    history_days: int = 400
    fan_out_batch: int = 1

    @property
    def state_bucket(self) -> str:
        return self.backend.bucket

    @property
    def lock_table(self) -> str | None:
        """The backend's DynamoDB lock table; None for a backend of `.tflock` lockfiles only."""
        return self.backend.lock_table

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, backend: Backend | None = None) -> Settings:
        """Parse the settings of `backend` (default: the one `GUARDIAN_STATE_BUCKET` names), failing fast with the
        name of the first missing or invalid value."""
        env = os.environ if env is None else env
        backend = backend or single_backend(env, _required(env, "GUARDIAN_STATE_BUCKET"))
        return cls(
            backend=backend,
            guardian_table=_required(env, "GUARDIAN_TABLE"),
            notify_topic_arn=_optional(env, "GUARDIAN_NOTIFY_TOPIC_ARN"),
            notify_event_bus=_optional(env, "GUARDIAN_NOTIFY_EVENT_BUS"),
            slack_webhook_secret=_optional(env, "GUARDIAN_SLACK_WEBHOOK_SECRET"),
            webhook_url=_optional(env, "GUARDIAN_WEBHOOK_URL"),
            webhook_secret=_requires(env, "GUARDIAN_WEBHOOK_SECRET", "GUARDIAN_WEBHOOK_URL"),
            teams_webhook_secret=_optional(env, "GUARDIAN_TEAMS_WEBHOOK_SECRET"),
            pagerduty_routing_key_secret=_optional(env, "GUARDIAN_PAGERDUTY_ROUTING_KEY_SECRET"),
            pagerduty_events_url=_url(env, "GUARDIAN_PAGERDUTY_EVENTS_URL"),
            page_url=_url(env, "GUARDIAN_PAGE_URL"),
            routes=_routes(env, "GUARDIAN_ROUTES"),
            reaper=_reaper_policy(
                ttl=timedelta(seconds=_positive_int(env, "GUARDIAN_REAP_TTL_S", 7200, minimum=0)),
                ttl_by_operation=dict(_durations(env, "GUARDIAN_REAP_TTL_BY_OPERATION")),
                ttl_by_key=_durations(env, "GUARDIAN_REAP_TTL_BY_KEY"),
                never_release=_list(env, "GUARDIAN_REAP_NEVER", (), strip=" "),
                grace=timedelta(seconds=_positive_int(env, "GUARDIAN_REAP_GRACE_S", 900, minimum=0)),
                gone_grace=_seconds(env, "GUARDIAN_REAP_GONE_GRACE_S"),
                quiet_window=timedelta(seconds=_positive_int(env, "GUARDIAN_REAP_QUIET_WINDOW_S", 3600, minimum=0)),
                max_releases=_positive_int(env, "GUARDIAN_REAP_MAX_PER_RUN", 5, minimum=0),
                dry_run=_flag(env, "GUARDIAN_REAP_DRY_RUN"),
            ),
            liveness_url=_liveness_url(env),
            liveness=_liveness_checks(env),
            api_key_prefixes=_list(env, "GUARDIAN_API_KEY_PREFIXES", (), strip=" "),
            api_callers=_caller_rules(env, "GUARDIAN_API_CALLERS"),
            index_bucket=_optional(env, "GUARDIAN_INDEX_BUCKET"),
            history_days=_positive_int(env, "GUARDIAN_HISTORY_DAYS", 400),
            fan_out_batch=_positive_int(env, "GUARDIAN_FAN_OUT_BATCH", 1),
            notify_file=_optional(env, "GUARDIAN_NOTIFY_FILE"),
            notify_console=_flag(env, "GUARDIAN_NOTIFY_CONSOLE"),
            workspace_key_prefixes=_list(env, "GUARDIAN_WORKSPACE_KEY_PREFIXES", (DEFAULT_WORKSPACE_KEY_PREFIX,)),
            state_key_suffixes=_list(env, "GUARDIAN_STATE_KEY_SUFFIXES", (DEFAULT_STATE_KEY_SUFFIX,), strip="/ "),
            state_key_prefixes=_list(env, "GUARDIAN_STATE_KEY_PREFIXES", (), strip=" "),
            removed_resources_warning=_positive_int(env, "GUARDIAN_REMOVED_RESOURCES_WARNING", 5, minimum=0),
            state_header_bytes=_positive_int(env, "GUARDIAN_STATE_HEADER_BYTES", 4096),
            max_state_bytes=_positive_int(env, "GUARDIAN_MAX_STATE_BYTES", 256 * 1024 * 1024),
            channel_attempts=_positive_int(env, "GUARDIAN_CHANNEL_ATTEMPTS", 3),
            digest_grace_s=_positive_int(env, "GUARDIAN_DIGEST_GRACE_S", 30, minimum=0),
            quiet_operations=frozenset(
                _list(env, "GUARDIAN_QUIET_OPERATIONS", tuple(DEFAULT_QUIET_OPERATIONS), strip=" ", empty="none")
            ),
        )


def backend_settings(env: Mapping[str, str] | None = None) -> tuple[Settings, ...]:
    """The settings of every backend the deployment watches, in the order listed: `GUARDIAN_BACKENDS` (a JSON list),
    or the file `GUARDIAN_BACKENDS_FILE` names (relative to the app's directory), or the one backend of
    `GUARDIAN_STATE_BUCKET`. Each backend's own `settings` override the shared ones."""
    env = os.environ if env is None else env
    raw, source = _optional(env, "GUARDIAN_BACKENDS"), "GUARDIAN_BACKENDS"
    path = _optional(env, "GUARDIAN_BACKENDS_FILE")
    if raw is not None and path is not None:
        raise SettingsError("set GUARDIAN_BACKENDS or GUARDIAN_BACKENDS_FILE, not both")
    if path is not None:
        raw, source = _backends_file(path), path
    if raw is None:
        return (Settings.from_env(env),)
    if _optional(env, "GUARDIAN_STATE_BUCKET"):
        raise SettingsError(f"GUARDIAN_STATE_BUCKET is set beside {source}: list that bucket as a backend instead")
    shared = {name: value for name, value in env.items() if name.startswith("GUARDIAN_")}
    return tuple(
        Settings.from_env(backend.environment(shared), backend=backend) for backend in parse_backends(raw, source)
    )


@lru_cache(maxsize=1)
def load_settings() -> tuple[Settings, ...]:
    """The settings of every backend of this process, parsed on first use."""
    return backend_settings()


def _backends_file(path: str) -> str:
    from pathlib import Path  # noqa: PLC0415 - only when one is set

    file = Path(path) if Path(path).is_absolute() else Path(__file__).resolve().parent.parent / path
    try:
        return file.read_text(encoding="utf-8")
    except OSError as exc:
        raise SettingsError(f"GUARDIAN_BACKENDS_FILE: cannot read {file}: {exc.strerror}") from None


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise SettingsError(f"{name} is required but not set (see .chalice/config.json)")
    return value


def _optional(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def _url(env: Mapping[str, str], name: str) -> str | None:
    """An https:// URL (http:// to this machine only), with nothing that could end a link in a message."""
    url = _optional(env, name)
    if url is None:
        return None
    from chalicelib.channels.http import check_url  # noqa: PLC0415 - only when one is set

    check_url(url, name)
    if any(char.isspace() or char in '<>|"' for char in url):
        raise SettingsError(f'{name} must be a URL without spaces or any of < > | "')
    return url


def _liveness_url(env: Mapping[str, str]) -> str | None:
    template = _optional(env, "GUARDIAN_LIVENESS_URL")
    if template is None:
        return None
    from chalicelib.adapters.http_liveness import check_liveness_url  # noqa: PLC0415 - only when one is set

    return check_liveness_url(template)


def _liveness_checks(env: Mapping[str, str]) -> LivenessChecks:
    eni, region = _flag(env, "GUARDIAN_LIVENESS_ENI"), _optional(env, "GUARDIAN_LIVENESS_ENI_REGION")
    if region is not None and (not eni or not re.fullmatch(r"[a-z]{2}(?:-[a-z]+)+-[1-9][0-9]?", region)):
        raise SettingsError("GUARDIAN_LIVENESS_ENI_REGION must be a region, e.g. eu-west-1, with GUARDIAN_LIVENESS_ENI")
    github, api_url = _optional(env, "GUARDIAN_LIVENESS_GITHUB"), _optional(env, "GUARDIAN_LIVENESS_GITHUB_API_URL")
    token = _requires(env, "GUARDIAN_LIVENESS_GITHUB_TOKEN_SECRET", "GUARDIAN_LIVENESS_GITHUB")
    if github is not None or api_url is not None:
        from chalicelib.adapters import github_runner_liveness as runners  # noqa: PLC0415 - only when one is set

        if github is None:
            raise SettingsError("GUARDIAN_LIVENESS_GITHUB_API_URL is set but GUARDIAN_LIVENESS_GITHUB is not")
        runners.runners_path(github)
        api_url = None if api_url is None else runners.check_api_url(api_url)
    return LivenessChecks(eni, region, github, token, api_url)


def _seconds(env: Mapping[str, str], name: str) -> timedelta | None:
    """A number of seconds (0 or more) if the setting is set, else None."""
    return None if _optional(env, name) is None else timedelta(seconds=_positive_int(env, name, 0, minimum=0))


def _flag(env: Mapping[str, str], name: str) -> bool:
    value = env.get(name, "").strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise SettingsError(f"{name} must be true or false, not {value!r}")


def _positive_int(env: Mapping[str, str], name: str, default: int, minimum: int = 1) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, not {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, not {value}")
    return value


def _list(
    env: Mapping[str, str], name: str, default: tuple[str, ...], strip: str = " /", empty: str | None = None
) -> tuple[str, ...]:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    if empty is not None and raw.strip() == empty:
        return ()
    values = tuple(part.strip(strip) for part in raw.split(",") if part.strip(strip))
    if not values:
        raise SettingsError(f"{name} must list at least one value, separated by commas")
    return values


def _requires(env: Mapping[str, str], name: str, companion: str) -> str | None:
    value = _optional(env, name)
    if _optional(env, companion) and not value:
        raise SettingsError(f"{name} is required when {companion} is set")
    return value


def _routes(env: Mapping[str, str], name: str) -> dict[str, frozenset[str]]:
    """`channel=type,type;channel=*`: which notification types each named channel receives."""
    routes: dict[str, frozenset[str]] = {}
    for part in env.get(name, "").split(";"):
        if not part.strip():
            continue
        channel, sep, types = part.partition("=")
        kinds = frozenset(kind.strip() for kind in types.split(",") if kind.strip())
        if not sep or not channel.strip() or not kinds:
            raise SettingsError(f"{name} must look like slack=state.changed,state.deleted;sns=*")
        routes[channel.strip()] = kinds
    return routes


def _caller_rules(env: Mapping[str, str], name: str) -> tuple[CallerRule, ...]:
    from chalicelib.domain.access import parse_caller_rules  # noqa: PLC0415 - the API's concern, on first use

    raw = env.get(name, "").strip()
    return parse_caller_rules(raw, name) if raw else ()


def _durations(env: Mapping[str, str], name: str) -> tuple[tuple[str, timedelta], ...]:
    """`what=seconds,what=seconds`, in order: per Operation, or per key pattern (the first match wins)."""
    pairs = []
    for part in _list(env, name, (), strip=" "):
        what, sep, seconds = part.rpartition("=")
        if not sep or not what.strip() or not seconds.strip().isdigit():
            raise SettingsError(f"{name} must look like OperationTypePlan=1800,prod/*=14400")
        pairs.append((what.strip(), timedelta(seconds=int(seconds))))
    return tuple(pairs)
