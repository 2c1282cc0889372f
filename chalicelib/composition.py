"""The composition root: builds settings, clients, adapters and services lazily, once per container."""

from __future__ import annotations

import sys
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, TextIO

from chalicelib.domain.state_keys import StateKeyFilter
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
    from chalicelib.services.backfill import Backfill
    from chalicelib.services.bucket_events import BucketEventRouter
    from chalicelib.services.digest_checks import DigestCheckService
    from chalicelib.services.hand_repairs import HandRepairs
    from chalicelib.services.lock_lifecycle import LockLifecycleService
    from chalicelib.services.lock_reaper import LivenessCheck, LockReaper
    from chalicelib.services.notifier import Notifier
    from chalicelib.services.rollback import RollbackService
    from chalicelib.services.state_changes import StateChangeService
    from chalicelib.services.state_queries import StateQueries
    from chalicelib.services.version_history import VersionHistory


class Container:
    """Everything one Lambda container (or one local stack) needs, each part built on first use."""

    def __init__(self, settings: Settings, *, console: TextIO | None = None) -> None:
        self.settings = settings
        self._console = console

    @cached_property
    def _session(self) -> boto3.session.Session:
        import boto3

        return boto3.session.Session()

    @cached_property
    def _client_config(self) -> Config:
        from botocore.config import Config

        return Config(retries={"mode": "standard", "max_attempts": 4}, connect_timeout=5, read_timeout=20)

    @cached_property
    def s3(self) -> S3Client:
        return self._session.client("s3", config=self._client_config)

    @cached_property
    def sns(self) -> SNSClient:
        return self._session.client("sns", config=self._client_config)

    @cached_property
    def events(self) -> EventBridgeClient:
        return self._session.client("events", config=self._client_config)

    @cached_property
    def dynamodb(self) -> DynamoDBClient:
        return self._session.client("dynamodb", config=self._client_config)

    @cached_property
    def ec2(self) -> BaseClient:
        client: BaseClient = self._session.client(
            "ec2", region_name=self.settings.liveness.eni_region, config=self._client_config
        )
        return client

    @cached_property
    def guardian_table(self) -> GuardianTable:
        from chalicelib.adapters.guardian_table import GuardianTable

        return GuardianTable(self.dynamodb, self.settings.guardian_table)

    @cached_property
    def history(self) -> HistoryTable:
        from chalicelib.adapters.history_table import HistoryTable

        return HistoryTable(self.dynamodb, self.settings.guardian_table, retention=self._retention)

    @cached_property
    def audit(self) -> AuditTable:
        from chalicelib.adapters.audit_table import AuditTable

        return AuditTable(self.dynamodb, self.settings.guardian_table, retention=self._retention)

    @cached_property
    def index_store(self) -> IndexStore | None:
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
            self.s3,
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
        )

    @cached_property
    def lock_table(self) -> DynamoLockTable:
        from chalicelib.adapters.dynamo_lock_table import DynamoLockTable

        return DynamoLockTable(self.dynamodb, self.settings.lock_table)

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


_installed: Container | None = None


def container() -> Container:
    """The container of this process, built from the environment on first use."""
    global _installed
    if _installed is None:
        _installed = Container(load_settings())
    return _installed


def install(replacement: Container | None) -> None:
    """Use `replacement` from now on (the local stack and tests); None rebuilds from the environment."""
    global _installed
    _installed = replacement
