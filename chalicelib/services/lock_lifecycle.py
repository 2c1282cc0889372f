"""`LockLifecycleService`: lock items from the lock table's stream and `.tflock` objects become lock notifications."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from chalicelib.adapters.guardian_table import GuardianTable
from chalicelib.adapters.history_table import HistoryTable, LockChange
from chalicelib.adapters.s3_state_bucket import S3StateBucket
from chalicelib.domain import notifications
from chalicelib.domain.lock_table import ItemKind, LockTableBatch
from chalicelib.domain.locks import LockSighting, LockSource, split_path
from chalicelib.domain.notifications import Notification
from chalicelib.domain.s3_events import ObjectChange, ObjectEvent
from chalicelib.domain.state_keys import StateKey, state_key_of_lockfile
from chalicelib.errors import MalformedEventError, ObjectNotFoundError
from chalicelib.observability import count, logger
from chalicelib.services.notifier import Notifier


class LockLifecycleService:
    """Records every lock session and notifies `lock.acquired` and `lock.released` (quiet operations aside)."""

    def __init__(
        self,
        sessions: GuardianTable,
        bucket: S3StateBucket,
        notifier: Notifier,
        history: HistoryTable,
        *,
        workspace_key_prefixes: tuple[str, ...],
        quiet_operations: frozenset[str],
    ) -> None:
        self._sessions = sessions
        self._bucket = bucket
        self._notifier = notifier
        self._history = history
        self._workspace_key_prefixes = workspace_key_prefixes
        self._quiet_operations = quiet_operations

    def handle_stream(self, batch: LockTableBatch) -> None:
        """Handle a stream batch; a record it cannot use is skipped, never raised (it would block the shard).

        The whole batch is written and delivered together: a few requests rather than a few per record.
        """
        for reason in batch.rejected:
            _skip("lock table record skipped", reason=reason)
        sightings: list[LockSighting] = []
        for change in batch.changes:
            if change.kind is ItemKind.DIGEST:
                logger.debug("digest item changed", event_name=change.event_name, state_path=change.state_path)
                continue
            at = change.approximate_time or datetime.now(UTC)
            old, new = change.old_lock, change.new_lock
            if old is not None and (new is None or new.id != old.id):
                sightings.append(LockSighting(old, LockSource.DYNAMODB, at, released=True))
            if new is not None and (old is None or old.id != new.id):
                sightings.append(LockSighting(new, LockSource.DYNAMODB, at, released=False))
        self._record_and_notify(sightings)

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
            self._record_and_notify([LockSighting(lock, LockSource.LOCKFILE, event.event_time, released=False)])
            return
        holder = next((s for s in self._sessions.recent_lock_sessions(state_path) if s.released_at is None), None)
        if holder is None:
            logger.info("lockfile removed with no lock session on record", key=event.key)
            return
        self._record_and_notify([LockSighting(holder.lock, LockSource.LOCKFILE, event.event_time, released=True)])

    def _record_and_notify(self, sightings: list[LockSighting]) -> None:
        if not sightings:
            return
        self._sessions.record_lock_sessions(sightings)
        self._history.note_locks(self._bucket.name, self._lock_changes(sightings))
        loud = [s for s in sightings if s.lock.operation not in self._quiet_operations]
        self._notifier.notify_all([self._notification(sighting) for sighting in loud])

    def _lock_changes(self, sightings: list[LockSighting]) -> list[LockChange]:
        """Per state of this bucket (a lock table may serve several), the last lock seen taken and released."""
        changes: dict[str, LockChange] = {}
        for sighting in sightings:
            bucket, key = split_path(sighting.lock.path)
            if bucket != self._bucket.name:
                continue
            seen = changes.get(key) or LockChange(key, StateKey.parse(key, self._workspace_key_prefixes).workspace)
            if sighting.released:
                changes[key] = replace(seen, released_id=sighting.lock.id)
            else:
                changes[key] = replace(seen, taken=sighting.lock.to_dict(sighting.source))
        return list(changes.values())

    def _notification(self, sighting: LockSighting) -> Notification:
        lock = sighting.lock
        state_key = StateKey.parse(split_path(lock.path)[1], self._workspace_key_prefixes)
        if not sighting.released:
            return notifications.lock_acquired(
                lock=lock, source=sighting.source, state_key=state_key, occurred_at=sighting.at
            )
        held_for = (sighting.at - lock.created_at()).total_seconds()
        return notifications.lock_released(
            lock=lock,
            source=sighting.source,
            state_key=state_key,
            occurred_at=sighting.at,
            held_for_s=round(max(held_for, 0.0), 3),
        )


def _skip(message: str, **keys: object) -> None:
    logger.warning(message, extra=keys)
    count("RecordsSkipped")
