"""`LockLifecycleService`: lock items from the lock table's stream and `.tflock` objects become lock notifications."""

from __future__ import annotations

from datetime import UTC, datetime

from aws_lambda_powertools.metrics import MetricUnit

from chalicelib.adapters.guardian_table import GuardianTable
from chalicelib.adapters.s3_state_bucket import S3StateBucket
from chalicelib.domain import notifications
from chalicelib.domain.lock_table import ItemKind, LockTableBatch, LockTableChange
from chalicelib.domain.locks import LockInfo, LockSource, split_path
from chalicelib.domain.s3_events import ObjectChange, ObjectEvent
from chalicelib.domain.state_keys import StateKey, state_key_of_lockfile
from chalicelib.errors import MalformedEventError, ObjectNotFoundError
from chalicelib.observability import logger, metrics
from chalicelib.services.notifier import Notifier


class LockLifecycleService:
    """Records every lock session and notifies `lock.acquired` and `lock.released` (quiet operations aside)."""

    def __init__(
        self,
        sessions: GuardianTable,
        bucket: S3StateBucket,
        notifier: Notifier,
        *,
        workspace_key_prefixes: tuple[str, ...],
        quiet_operations: frozenset[str],
    ) -> None:
        self._sessions = sessions
        self._bucket = bucket
        self._notifier = notifier
        self._workspace_key_prefixes = workspace_key_prefixes
        self._quiet_operations = quiet_operations

    def handle_stream(self, batch: LockTableBatch) -> None:
        """Handle a stream batch; a record it cannot use is skipped, never raised (it would block the shard)."""
        for reason in batch.rejected:
            _skip("lock table record skipped", reason=reason)
        for change in batch.changes:
            if change.kind is ItemKind.DIGEST:
                logger.debug("digest item changed", event_name=change.event_name, state_path=change.state_path)
            else:
                self._lock_item_changed(change)

    def _lock_item_changed(self, change: LockTableChange) -> None:
        at = change.approximate_time or datetime.now(UTC)
        old, new = change.old_lock, change.new_lock
        if old is not None and (new is None or new.id != old.id):
            self._released(old, LockSource.DYNAMODB, at)
        if new is not None and (old is None or old.id != new.id):
            self._acquired(new, LockSource.DYNAMODB, at)

    def handle_lockfile_event(self, event: ObjectEvent) -> None:
        """A `.tflock` object was written (a lock taken) or deleted (a lock released)."""
        state_path = f"{event.bucket}/{state_key_of_lockfile(event.key)}"
        if event.change is ObjectChange.CREATED:
            try:
                lock = self._bucket.read_lockfile(event.key, event.version_id)
            except MalformedEventError as exc:
                _skip("lockfile skipped", key=event.key, reason=str(exc))
                return
            except ObjectNotFoundError:
                # Released before it could be read; the release has an event of its own.
                logger.info("lockfile gone before it was read", key=event.key)
                return
            if lock.path != state_path:
                _skip("lockfile skipped", key=event.key, reason=f"Path {lock.path!r} is not {state_path!r}")
                return
            self._acquired(lock, LockSource.LOCKFILE, event.event_time)
            return
        holder = next((s for s in self._sessions.recent_lock_sessions(state_path) if s.released_at is None), None)
        if holder is None:
            logger.info("lockfile removed with no lock session on record", key=event.key)
            return
        self._released(holder.lock, LockSource.LOCKFILE, event.event_time)

    def _acquired(self, lock: LockInfo, source: str, at: datetime) -> None:
        self._sessions.record_lock_acquired(lock, source, at)
        if lock.operation in self._quiet_operations:
            logger.debug("quiet lock taken", lock_id=lock.id, operation=lock.operation)
            return
        self._notifier.notify(
            notifications.lock_acquired(lock=lock, source=source, state_key=self._state_key(lock), occurred_at=at)
        )

    def _released(self, lock: LockInfo, source: str, at: datetime) -> None:
        self._sessions.record_lock_released(lock, source, at)
        if lock.operation in self._quiet_operations:
            logger.debug("quiet lock released", lock_id=lock.id, operation=lock.operation)
            return
        held_for = (at - lock.created_at()).total_seconds()
        self._notifier.notify(
            notifications.lock_released(
                lock=lock,
                source=source,
                state_key=self._state_key(lock),
                occurred_at=at,
                held_for_s=round(max(held_for, 0.0), 3),
            )
        )

    def _state_key(self, lock: LockInfo) -> StateKey:
        return StateKey.parse(split_path(lock.path)[1], self._workspace_key_prefixes)


def _skip(message: str, **keys: object) -> None:
    logger.warning(message, extra=keys)
    metrics.add_metric(name="RecordsSkipped", unit=MetricUnit.Count, value=1)
