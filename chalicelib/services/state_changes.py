"""`StateChangeService`: turns S3 events on state keys into `state.changed` and `state.deleted`."""

from __future__ import annotations

import json
import shlex

from aws_lambda_powertools.metrics import MetricUnit

from chalicelib.adapters.guardian_table import GuardianTable
from chalicelib.adapters.s3_state_bucket import S3StateBucket
from chalicelib.domain import notifications
from chalicelib.domain.locks import LockSession, holder_at
from chalicelib.domain.s3_events import ObjectChange, ObjectEvent
from chalicelib.domain.state_index import StateIndex
from chalicelib.domain.state_keys import StateKey
from chalicelib.errors import NotAStateError, ObjectNotFoundError
from chalicelib.observability import logger, metrics
from chalicelib.services.digest_checks import DigestCheckService
from chalicelib.services.notifier import Notifier


class StateChangeService:
    """Reads each state version written or removed, compares it with its predecessor, and notifies."""

    def __init__(
        self,
        bucket: S3StateBucket,
        sessions: GuardianTable,
        digests: DigestCheckService,
        notifier: Notifier,
        *,
        lock_table: str,
        workspace_key_prefixes: tuple[str, ...],
        removed_resources_warning: int,
    ) -> None:
        self._bucket = bucket
        self._sessions = sessions
        self._digests = digests
        self._notifier = notifier
        self._lock_table = lock_table
        self._workspace_key_prefixes = workspace_key_prefixes
        self._removed_resources_warning = removed_resources_warning

    def handle_event(self, event: ObjectEvent) -> None:
        """One event about a state key: a write, a delete marker or a permanent delete."""
        if event.change is ObjectChange.CREATED:
            self._state_written(event)
        else:
            self._state_removed(event)

    def _state_written(self, event: ObjectEvent) -> None:
        try:
            after = self._bucket.read_index(event.key, event.version_id)
        except NotAStateError as exc:
            _skip("object is not a readable state", key=event.key, version_id=event.version_id, reason=str(exc))
            return
        except ObjectNotFoundError:
            # Deleted again before it could be read: its removal has an event of its own.
            _skip("state version no longer exists", key=event.key, version_id=event.version_id)
            return
        self._digests.check_write(event.key, event.version_id, after.md5, event.event_time)
        previous_version_id, before = self._predecessor(event, after)
        if not after.comparable_with(before):  # the predecessor is not in Terraform's layout
            after = self._bucket.read_index(event.key, event.version_id, like=before)
        self._notifier.notify(
            notifications.state_changed(
                event=event,
                state_key=StateKey.parse(event.key, self._workspace_key_prefixes),
                after=after,
                before=before,
                previous_version_id=previous_version_id,
                removed_resources_warning=self._removed_resources_warning,
                holder=self._holder_at(event),
            )
        )

    def _predecessor(self, event: ObjectEvent, after: StateIndex) -> tuple[str | None, StateIndex | None]:
        if event.version_id is None:
            return None, None
        previous_version_id = self._bucket.previous_version(event.key, event.version_id)
        if previous_version_id is None:
            return None, None
        try:
            return previous_version_id, self._bucket.read_index(event.key, previous_version_id, like=after)
        except (NotAStateError, ObjectNotFoundError) as exc:
            logger.warning("previous version is not a readable state", key=event.key, reason=str(exc))
            return previous_version_id, None

    def _state_removed(self, event: ObjectEvent) -> None:
        newest = self._bucket.newest_version(event.key)
        last_serial: int | None = None
        restore: str | None = None
        if newest is not None:
            try:
                last_serial = self._bucket.read_header(event.key, newest.version_id).serial
            except (NotAStateError, ObjectNotFoundError) as exc:
                logger.warning("last version is not a readable state", key=event.key, reason=str(exc))
            if event.change is ObjectChange.DELETE_MARKER_CREATED and event.version_id:
                restore = self._remove_delete_marker_command(event.key, event.version_id)
            else:
                restore = self._copy_back_command(event.key, newest.version_id)
        self._notifier.notify(
            notifications.state_deleted(
                event=event,
                state_key=StateKey.parse(event.key, self._workspace_key_prefixes),
                last_version_id=newest.version_id if newest else None,
                last_serial=last_serial,
                restore=restore,
                state_gone=newest is None or not newest.is_current,
                holder=self._holder_at(event),
            )
        )

    def _holder_at(self, event: ObjectEvent) -> LockSession | None:
        return holder_at(self._sessions.recent_lock_sessions(f"{event.bucket}/{event.key}"), event.event_time)

    def _remove_delete_marker_command(self, key: str, marker_version_id: str) -> str:
        # Removing the marker makes the last version current again, byte for byte: its digest still matches.
        return (
            f"aws s3api delete-object --bucket {shlex.quote(self._bucket.name)} --key {shlex.quote(key)}"
            f" --version-id {shlex.quote(marker_version_id)}"
        )

    def _copy_back_command(self, key: str, version_id: str) -> str:
        # A copied version needs the digest item set to its MD5, or every Terraform client fails.
        digest = self._bucket.md5_of(key, version_id)
        item = json.dumps({"LockID": {"S": f"{self._bucket.name}/{key}-md5"}, "Digest": {"S": digest}})
        return (
            f"aws s3api copy-object --bucket {shlex.quote(self._bucket.name)} --key {shlex.quote(key)}"
            f" --copy-source {shlex.quote(f'{self._bucket.name}/{key}?versionId={version_id}')}"
            f" && aws dynamodb put-item --table-name {shlex.quote(self._lock_table)} --item {shlex.quote(item)}"
        )


def _skip(message: str, **keys: object) -> None:
    logger.warning(message, extra=keys)
    metrics.add_metric(name="EventsSkipped", unit=MetricUnit.Count, value=1)
