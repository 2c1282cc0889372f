"""The composition root: builds settings, clients, adapters and services lazily, once per container."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from functools import cached_property, partial
from typing import TYPE_CHECKING, Any, TextIO

from chalicelib.domain.state_keys import StateKeyFilter
from chalicelib.errors import InvalidRequestError, SettingsError
from chalicelib.settings import Settings, load_settings

# Each part's module is imported where the part is first built: boto3 and the adapters take several times as
# long to import as the app's framework, and an invocation that needs none of them (GET /health, a malformed
# event) should not pay for them. bench/package_size.py measures it.
# ruff: noqa: PLC0415
if TYPE_CHECKING:
    import boto3
    from botocore.client import BaseClient
    from botocore.config import Config
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sns import SNSClient

    from chalicelib.adapters.audit_table import AuditTable
    from chalicelib.adapters.dynamo_lock_table import DynamoLockTable
    from chalicelib.adapters.guardian_table import GuardianTable
    from chalicelib.adapters.history_table import HistoryTable
    from chalicelib.adapters.index_store import IndexStore
    from chalicelib.adapters.s3_state_bucket import S3StateBucket
    from chalicelib.domain.access import AccessPolicy
    from chalicelib.services.backend_events import BackendEvents
    from chalicelib.services.backfill import Backfill
    from chalicelib.services.bucket_events import BucketEventRouter
    from chalicelib.services.digest_checks import DigestCheckService
    from chalicelib.services.fan_out import FanOut
    from chalicelib.services.hand_repairs import HandRepairs
    from chalicelib.services.lock_lifecycle import LockLifecycleService
    from chalicelib.services.lock_reaper import LivenessCheck, LockReaper
    from chalicelib.services.notifier import Notifier
    from chalicelib.services.rollback import RollbackService
    from chalicelib.services.state_changes import StateChangeService
    from chalicelib.services.state_queries import StateQueries
    from chalicelib.services.version_history import VersionHistory


class Container:
    """Everything one backend needs in one Lambda container (or one local stack), each part built on first use.

    The guardian's own resources (its table, its index bucket, the channels' clients) are the first backend's
    container's, shared by the others (`home`); the bucket and the lock table are reached with the backend's own
    session, in its region and, where it names a role, its account.
    """

    def __init__(self, settings: Settings, *, console: TextIO | None = None, home: Container | None = None) -> None:
        self.settings = settings
        self._console = console
        self._home = home

    @property
    def name(self) -> str:
        return self.settings.backend.name

    @cached_property
    def _session(self) -> boto3.session.Session:
        if self._home is not None:
            return self._home._session
        import boto3

        return boto3.session.Session()

    @cached_property
    def _backend_session(self) -> boto3.session.Session:
        """The session for the backend's bucket and lock table: the guardian's own unless a role or region differs."""
        from chalicelib.adapters.backend_session import backend_session

        backend = self.settings.backend
        return backend_session(self._session, role_arn=backend.role_arn, region=backend.region)

    @cached_property
    def _client_config(self) -> Config:
        if self._home is not None:
            return self._home._client_config
        from botocore.config import Config

        return Config(retries={"mode": "standard", "max_attempts": 4}, connect_timeout=5, read_timeout=20)

    @cached_property
    def s3(self) -> S3Client:
        if self._home is not None:
            return self._home.s3
        return self._session.client("s3", config=self._client_config)

    @cached_property
    def sns(self) -> SNSClient:
        if self._home is not None:
            return self._home.sns
        return self._session.client("sns", config=self._client_config)

    @cached_property
    def events(self) -> EventBridgeClient:
        if self._home is not None:
            return self._home.events
        return self._session.client("events", config=self._client_config)

    @cached_property
    def dynamodb(self) -> DynamoDBClient:
        if self._home is not None:
            return self._home.dynamodb
        return self._session.client("dynamodb", config=self._client_config)

    @cached_property
    def backend_s3(self) -> S3Client:
        if self._backend_session is self._session:
            return self.s3
        return self._backend_session.client("s3", config=self._client_config)

    @cached_property
    def backend_dynamodb(self) -> DynamoDBClient:
        if self._backend_session is self._session:
            return self.dynamodb
        return self._backend_session.client("dynamodb", config=self._client_config)

    @cached_property
    def ec2(self) -> BaseClient:
        """EC2 where the backend's writers run: its account, the check's region (default: the backend's)."""
        client: BaseClient = self._backend_session.client(
            "ec2", region_name=self.settings.liveness.eni_region, config=self._client_config
        )
        return client

    @cached_property
    def guardian_table(self) -> GuardianTable:
        if self._home is not None:
            return self._home.guardian_table
        from chalicelib.adapters.guardian_table import GuardianTable

        return GuardianTable(self.dynamodb, self.settings.guardian_table)

    @cached_property
    def history(self) -> HistoryTable:
        if self._home is not None:
            return self._home.history
        from chalicelib.adapters.history_table import HistoryTable

        return HistoryTable(self.dynamodb, self.settings.guardian_table, retention=self._retention)

    @cached_property
    def audit(self) -> AuditTable:
        if self._home is not None:
            return self._home.audit
        from chalicelib.adapters.audit_table import AuditTable

        return AuditTable(self.dynamodb, self.settings.guardian_table, retention=self._retention)

    @cached_property
    def index_store(self) -> IndexStore | None:
        if self._home is not None:
            return self._home.index_store
        if not self.settings.index_bucket:
            return None
        from chalicelib.adapters.index_store import IndexStore

        return IndexStore(self.s3, self.settings.index_bucket)

    @cached_property
    def versions(self) -> VersionHistory:
        from chalicelib.services.version_history import VersionHistory

        return VersionHistory(
            self.history,
            self.index_store,
            bucket=self.settings.state_bucket,
            workspace_key_prefixes=self.settings.workspace_key_prefixes,
        )

    @cached_property
    def backfill(self) -> Backfill:
        from chalicelib.services.backfill import Backfill

        return Backfill(
            self.state_bucket,
            self.versions,
            state_keys=StateKeyFilter(self.settings.state_key_suffixes, self.settings.state_key_prefixes),
        )

    @property
    def _retention(self) -> timedelta:
        return timedelta(days=self.settings.history_days)

    @cached_property
    def state_bucket(self) -> S3StateBucket:
        from chalicelib.adapters.s3_state_bucket import S3StateBucket

        return S3StateBucket(
            self.backend_s3,
            self.settings.state_bucket,
            header_bytes=self.settings.state_header_bytes,
            max_state_bytes=self.settings.max_state_bytes,
        )

    @cached_property
    def notifier(self) -> Notifier:
        from chalicelib.adapters.event_bus import EventBus
        from chalicelib.adapters.secrets import SecretValue
        from chalicelib.adapters.sns_topic import SnsTopic
        from chalicelib.channels.console import ConsoleChannel
        from chalicelib.channels.jsonl_file import JsonLinesFileChannel
        from chalicelib.channels.pagerduty import EVENTS_URL, PagerDutyChannel
        from chalicelib.channels.slack import SlackChannel
        from chalicelib.channels.teams import TeamsChannel
        from chalicelib.channels.webhook import WebhookChannel
        from chalicelib.services.notifier import Channel, Notifier

        channels: list[Channel] = []
        settings = self.settings
        page_url = settings.page_url
        if settings.notify_topic_arn:
            channels.append(SnsTopic(self.sns, settings.notify_topic_arn, page_url=page_url))
        if settings.notify_event_bus:
            channels.append(EventBus(self.events, settings.notify_event_bus))
        if settings.slack_webhook_secret:
            channels.append(SlackChannel(SecretValue(settings.slack_webhook_secret), page_url=page_url))
        if settings.teams_webhook_secret:
            channels.append(TeamsChannel(SecretValue(settings.teams_webhook_secret), page_url=page_url))
        if settings.pagerduty_routing_key_secret:
            channels.append(
                PagerDutyChannel(
                    SecretValue(settings.pagerduty_routing_key_secret),
                    events_url=settings.pagerduty_events_url or EVENTS_URL,
                    page_url=page_url,
                )
            )
        if settings.webhook_url and settings.webhook_secret:
            channels.append(WebhookChannel(settings.webhook_url, SecretValue(settings.webhook_secret)))
        if self.settings.notify_file:
            channels.append(JsonLinesFileChannel(self.settings.notify_file))
        if self.settings.notify_console:
            channels.append(ConsoleChannel(self._console or sys.stdout, page_url=settings.page_url))
        return Notifier(
            channels,
            self.guardian_table,
            attempts=settings.channel_attempts,
            routes=settings.routes,
            journal=self.audit,
            backend=settings.backend.name,
        )

    @cached_property
    def state_changes(self) -> StateChangeService:
        from chalicelib.services.state_changes import StateChangeService

        return StateChangeService(
            self.state_bucket,
            self.guardian_table,
            self.digests,
            self.notifier,
            self.versions,
            lock_table=self.settings.lock_table,
            workspace_key_prefixes=self.settings.workspace_key_prefixes,
            removed_resources_warning=self.settings.removed_resources_warning,
            backend=self.settings.backend.name,
        )

    @cached_property
    def lock_table(self) -> DynamoLockTable:
        """The backend's lock table; for a backend of `.tflock` lockfiles only, one that holds nothing."""
        if self.settings.lock_table is None:
            from chalicelib.adapters.no_lock_table import NoLockTable

            return NoLockTable()
        from chalicelib.adapters.dynamo_lock_table import DynamoLockTable

        return DynamoLockTable(self.backend_dynamodb, self.settings.lock_table)

    @cached_property
    def digests(self) -> DigestCheckService:
        from chalicelib.services.digest_checks import DigestCheckService

        return DigestCheckService(
            self.state_bucket,
            self.lock_table,
            self.guardian_table,
            self.notifier,
            grace=timedelta(seconds=self.settings.digest_grace_s),
            workspace_key_prefixes=self.settings.workspace_key_prefixes,
        )

    @cached_property
    def liveness_checks(self) -> list[LivenessCheck]:
        from chalicelib.adapters.http_liveness import HttpLivenessCheck

        settings = self.settings.liveness
        checks: list[LivenessCheck] = []
        if self.settings.liveness_url:
            checks.append(HttpLivenessCheck(self.settings.liveness_url))
        if settings.eni:
            from chalicelib.adapters.eni_liveness import NetworkInterfaceLivenessCheck

            checks.append(NetworkInterfaceLivenessCheck(self.ec2))
        if settings.github_runners and settings.github_token_secret:
            from chalicelib.adapters.github_runner_liveness import API_URL, GitHubRunnerLivenessCheck
            from chalicelib.adapters.secrets import SecretValue

            token = SecretValue(settings.github_token_secret)
            api_url = settings.github_api_url or API_URL
            checks.append(GitHubRunnerLivenessCheck(settings.github_runners, token, api_url=api_url))
        return checks

    @cached_property
    def reaper(self) -> LockReaper:
        from chalicelib.services.lock_reaper import LockReaper

        return LockReaper(
            self.lock_table,
            self.state_bucket,
            self.guardian_table,
            self.notifier,
            policy=self.settings.reaper,
            liveness_checks=self.liveness_checks,
            workspace_key_prefixes=self.settings.workspace_key_prefixes,
        )

    @cached_property
    def rollbacks(self) -> RollbackService:
        from chalicelib.services.rollback import RollbackService

        return RollbackService(
            self.state_bucket,
            self.lock_table,
            self.guardian_table,
            self.notifier,
            self.versions,
            workspace_key_prefixes=self.settings.workspace_key_prefixes,
        )

    @cached_property
    def queries(self) -> StateQueries:
        from chalicelib.services.state_queries import StateQueries

        return StateQueries(self.state_bucket, self.versions, self.audit, self.reaper, retention=self._retention)

    @cached_property
    def repairs(self) -> HandRepairs:
        from chalicelib.services.hand_repairs import HandRepairs

        return HandRepairs(
            self.state_bucket,
            self.lock_table,
            self.reaper,
            self.notifier,
            workspace_key_prefixes=self.settings.workspace_key_prefixes,
        )

    @cached_property
    def access(self) -> AccessPolicy:
        from chalicelib.domain.access import AccessPolicy

        return AccessPolicy(
            deployment_prefixes=self.settings.api_key_prefixes,
            rules=self.settings.api_callers,
            workspace_key_prefixes=self.settings.workspace_key_prefixes,
        )

    @cached_property
    def locks(self) -> LockLifecycleService:
        from chalicelib.services.lock_lifecycle import LockLifecycleService

        return LockLifecycleService(
            self.guardian_table,
            self.state_bucket,
            self.notifier,
            self.history,
            workspace_key_prefixes=self.settings.workspace_key_prefixes,
            quiet_operations=self.settings.quiet_operations,
        )

    @cached_property
    def bucket_events(self) -> BucketEventRouter:
        from chalicelib.services.bucket_events import BucketEventRouter

        return BucketEventRouter(
            self.settings.state_bucket,
            StateKeyFilter(self.settings.state_key_suffixes, self.settings.state_key_prefixes),
            self.state_changes,
            self.locks,
        )


class Guardian:
    """Every backend's container, by name and by bucket; the first backend's holds what they all share."""

    def __init__(self, backends: Sequence[Container]) -> None:
        if not backends:
            raise SettingsError("the guardian needs at least one backend")
        self.home = backends[0]
        self.backends: dict[str, Container] = {backend.name: backend for backend in backends}
        self._by_bucket = {backend.settings.state_bucket: backend for backend in backends}
        self.fan_out: FanOut | None = None  # built on first use; the local stack puts its own here

    @classmethod
    def of(cls, backends: Sequence[Settings], *, console: TextIO | None = None) -> Guardian:
        """A container per backend, the later ones sharing the first one's clients and the guardian's own tables."""
        home = Container(backends[0], console=console) if backends else None
        rest = [Container(settings, console=console, home=home) for settings in backends[1:]]
        return cls([home, *rest] if home else [])

    @property
    def settings(self) -> Settings:
        """The deployment-wide settings (the guardian's table, its index bucket), as every backend has them."""
        return self.home.settings

    @property
    def guardian_table(self) -> GuardianTable:
        return self.home.guardian_table

    def for_bucket(self, bucket: str) -> Container | None:
        """The backend that watches `bucket`, if one does."""
        return self._by_bucket.get(bucket)

    def named(self, name: str | None) -> Container:
        """The backend called `name`; None names the only one, and is refused when there are several."""
        if name is None:
            if len(self.backends) == 1:
                return self.home
            raise InvalidRequestError(f"name a backend with backend= (one of {', '.join(self.backends)})")
        backend = self.backends.get(name)
        if backend is None:
            raise InvalidRequestError(f"there is no backend {name!r} (backends: {', '.join(self.backends)})")
        return backend

    def selected(self, name: str | None) -> list[Container]:
        """The backend called `name`, or every backend when None."""
        return list(self.backends.values()) if name is None else [self.named(name)]

    @cached_property
    def events(self) -> BackendEvents:
        from chalicelib.services.backend_events import BackendEvents

        return BackendEvents(
            lambda bucket: backend.bucket_events if (backend := self.for_bucket(bucket)) else None,
            self._lock_service_of,
        )

    def _lock_service_of(self, bucket: str, table: str) -> LockLifecycleService | None:
        """The lock lifecycle of the backend of `bucket` if it uses `table` (empty: unknown); else of the only
        backend that uses `table`."""
        backend = self.for_bucket(bucket)
        if backend is not None and (not table or backend.settings.lock_table == table):
            return backend.locks
        tables = [b for b in self.backends.values() if b.settings.lock_table]
        users = [b for b in tables if b.settings.lock_table == table] if table else tables
        return users[0].locks if len(users) == 1 and backend is None else None

    def per_backend(
        self, job: str, event: Mapping[str, Any], work: Callable[[Container], object], *, function: str
    ) -> None:
        """Run a scheduled job: on the backends the invocation's share names, or, invoked by its schedule, on every
        backend here when they fit one batch, else one invocation of `function` per batch."""
        from chalicelib.services.fan_out import run_per_backend

        run_per_backend(
            job,
            event,
            {name: partial(work, backend) for name, backend in self.backends.items()},
            batch=self.settings.fan_out_batch,
            fan_out=lambda: self._fan_out(function),
        )

    def _fan_out(self, function: str) -> FanOut:
        if self.fan_out is None:
            from chalicelib.adapters.lambda_fan_out import LambdaFanOut

            self.fan_out = LambdaFanOut(self.home._session.client("lambda", config=self.home._client_config))
        self.fan_out.function = function
        return self.fan_out


_installed: Guardian | None = None


def container() -> Guardian:
    """The guardian of this process, built from the environment on first use."""
    global _installed
    if _installed is None:
        _installed = Guardian.of(load_settings())
    return _installed


def install(replacement: Guardian | Container | None) -> None:
    """Use `replacement` from now on (the local stack and tests; a lone container is a guardian of one backend);
    None rebuilds from the environment."""
    global _installed
    _installed = Guardian([replacement]) if isinstance(replacement, Container) else replacement
