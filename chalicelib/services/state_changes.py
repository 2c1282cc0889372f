"""`StateChangeService`: turns S3 events on state keys into `state.changed`, `state.unreadable`, `state.deleted`."""

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
from chalicelib.errors import NotAStateError, ObjectNotFoundError, StateTooLargeError
from chalicelib.observability import logger, metrics
from chalicelib.services.digest_checks import DigestCheckService
from chalicelib.services.notifier import Notifier

# How many older versions an unreadable write looks through for the last readable one (each a ranged read).
LOOK_BACK_VERSIONS = 20


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
        except StateTooLargeError:
            self._too_large_written(event)
            return
        except NotAStateError as exc:
            # The write that breaks every Terraform client of this state: announced, never only logged.
            logger.warning("object at a state key is not a readable state", key=event.key, reason=str(exc))
            metrics.add_metric(name="StatesUnreadable", unit=MetricUnit.Count, value=1)
            self._notifier.notify(self._unreadable(event, str(exc)))
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

    def _too_large_written(self, event: ObjectEvent) -> None:
        """A state larger than the guardian reads whole: announced from the headers alone, never diffed."""
        try:
            header = self._bucket.read_header(event.key, event.version_id, any_size=True)
        except NotAStateError as exc:
            self._notifier.notify(self._unreadable(event, str(exc)))
            return
        except ObjectNotFoundError:
            _skip("state version no longer exists", key=event.key, version_id=event.version_id)
            return
        previous_version_id = (
            self._bucket.previous_version(event.key, event.version_id) if event.version_id is not None else None
        )
        before = None
        if previous_version_id is not None:
            try:
                before = self._bucket.read_header(event.key, previous_version_id, any_size=True)
            except (NotAStateError, ObjectNotFoundError) as exc:
                logger.warning("previous version is not a readable state", key=event.key, reason=str(exc))
        logger.warning("state too large to diff", key=event.key, size=event.size)
        self._notifier.notify(
            notifications.state_changed(
                event=event,
                state_key=StateKey.parse(event.key, self._workspace_key_prefixes),
                after=StateIndex(header=header, size=event.size or 0, md5="", resources={}, outputs={}),
                before=StateIndex(header=before, size=0, md5="", resources={}, outputs={}) if before else None,
                previous_version_id=previous_version_id,
                removed_resources_warning=self._removed_resources_warning,
                holder=self._holder_at(event),
                too_large=True,
            )
        )

    def _unreadable(self, event: ObjectEvent, reason: str) -> notifications.Notification:
        last_readable = self._last_readable_before(event)
        restore = restore_by_hand = None
        if last_readable is not None:
            restore = (
                f"tfguardian rollback {shlex.quote(event.key)} --version-id {shlex.quote(last_readable)}"
                " --reason 'restore the last readable state'"
            )
            restore_by_hand = self._copy_back_command(event.key, last_readable)
        return notifications.state_unreadable(
            event=event,
            state_key=StateKey.parse(event.key, self._workspace_key_prefixes),
            reason=reason,
            size=event.size,
            last_readable_version_id=last_readable,
            restore=restore,
            restore_by_hand=restore_by_hand,
            holder=self._holder_at(event),
        )

    def _last_readable_before(self, event: ObjectEvent) -> str | None:
        """The newest version older than the event's that reads as a state, looking back a bounded number."""
        looked = 0
        seen_written = event.version_id is None
        for entry in self._bucket.history(event.key):
            if not seen_written:
                seen_written = entry.version_id == event.version_id
                continue
            if entry.delete_marker:
                continue
            if looked >= LOOK_BACK_VERSIONS:
                break
            looked += 1
            try:
                self._bucket.read_header(event.key, entry.version_id)
            except (NotAStateError, ObjectNotFoundError):
                continue
            return entry.version_id
        return None

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
