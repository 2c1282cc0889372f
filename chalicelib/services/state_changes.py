"""`StateChangeService`: turns S3 events on state keys into `state.changed`, `state.unreadable`, `state.deleted`."""

from __future__ import annotations

import json
import shlex
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import TypeVar

from chalicelib.adapters.guardian_table import GuardianTable
from chalicelib.adapters.s3_state_bucket import Neighbours, S3StateBucket
from chalicelib.domain import notifications
from chalicelib.domain.history import VersionKind
from chalicelib.domain.locks import LockSession, holder_at
from chalicelib.domain.s3_events import ObjectChange, ObjectEvent
from chalicelib.domain.state_index import StateDiff, StateIndex
from chalicelib.domain.state_keys import StateKey
from chalicelib.errors import GuardianError, NotAStateError, ObjectNotFoundError, StateTooLargeError
from chalicelib.observability import count, logger
from chalicelib.services.digest_checks import DigestCheckService
from chalicelib.services.notifier import Notifier
from chalicelib.services.version_history import TOO_LARGE_TO_INDEX, VersionHistory, writer_of

_T = TypeVar("_T")

# How many older versions an unreadable write looks through for the last readable one (each a ranged read).
LOOK_BACK_VERSIONS = 20


class StateChangeService:
    """Reads each state version written or removed, compares it with its predecessor, records it, and notifies.

    The predecessor is compared through its stored index when it has one: its bytes are read only when it does not.
    """

    def __init__(
        self,
        bucket: S3StateBucket,
        sessions: GuardianTable,
        digests: DigestCheckService,
        notifier: Notifier,
        versions: VersionHistory,
        *,
        lock_table: str | None,
        workspace_key_prefixes: tuple[str, ...],
        removed_resources_warning: int,
        backend: str | None = None,
    ) -> None:
        self._bucket = bucket
        self._sessions = sessions
        self._digests = digests
        self._notifier = notifier
        self._versions = versions
        self._lock_table = lock_table
        self._workspace_key_prefixes = workspace_key_prefixes
        self._removed_resources_warning = removed_resources_warning
        self._backend = backend  # named in the restore command: a guardian of several backends needs it

    def handle_event(self, event: ObjectEvent) -> None:
        """One event about a state key: a write, a delete marker or a permanent delete."""
        if event.change is ObjectChange.CREATED:
            self._state_written(event)
        else:
            self._state_removed(event)

    def _state_written(self, event: ObjectEvent) -> None:
        # Asked beside the read, once the state's GetObject is on its way (the largest answer is asked for first):
        # where the version stands and its predecessor's stored index, lent to the read; the digest Terraform
        # stored; and the lock sessions that say who held the lock.
        read_begun = threading.Event()
        with ThreadPoolExecutor(max_workers=3, thread_name_prefix="state-write") as beside:
            placing = beside.submit(_once_set, read_begun, self._placed, event)
            stored_digest = beside.submit(_once_set, read_begun, self._digests.stored_digest, event.key)
            sessions = beside.submit(
                _once_set, read_begun, self._sessions.recent_lock_sessions, f"{event.bucket}/{event.key}"
            )
            try:
                after = self._bucket.read_index(
                    event.key,
                    event.version_id,
                    like=lambda: placing.result()[1],
                    digest=stored_digest.result,
                    begun=read_begun.set,
                )
            except (StateTooLargeError, NotAStateError, ObjectNotFoundError) as exc:
                failed: GuardianError | None = exc
            else:
                failed = None
            finally:
                read_begun.set()
            (place, stored_before), stored, holder = (
                placing.result(),
                stored_digest.result(),
                holder_at(sessions.result(), event.event_time),
            )
        if failed is not None:
            self._not_indexed(event, place, failed)
            return
        previous_version_id = _previous(place)
        self._digests.check_write(event.key, event.version_id, after.md5, event.event_time, stored=stored)
        before = stored_before or self._read_predecessor(event.key, previous_version_id, after)
        if not after.comparable_with(before):  # the predecessor is not in Terraform's layout
            after = self._bucket.read_index(event.key, event.version_id, like=before)
        if before is not None and not before.comparable_with(after):  # a stored index of the other kind
            before = self._read_predecessor(event.key, previous_version_id, after)
        if event.version_id is None:  # an unversioned bucket has no history to keep
            self._notifier.notify(self._announced(event, after, before, previous_version_id, holder)[1])
            return
        # The version's index is kept (from the moment it is known), its record written and the change announced
        # side by side: a failure of any fails the handling, and the retry writes the same index and items again
        # and announces nothing twice.
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="state-record") as beside:
            storing = beside.submit(self._versions.store_index, event.key, event.version_id, after)
            diff, changed = self._announced(event, after, before, previous_version_id, holder)
            recording = beside.submit(
                self._versions.record_written,
                key=event.key,
                version_id=event.version_id,
                written_at=_written_at(place, event),
                index=after,
                before=before,
                diff=diff,
                previous_version_id=previous_version_id,
                writer=writer_of(holder, event.principal),
                notification=changed,
                history_complete=self._complete(previous_version_id, stored_before),
            )
            self._notifier.notify(changed)
            recording.result()
            storing.result()

    def _announced(
        self,
        event: ObjectEvent,
        after: StateIndex,
        before: StateIndex | None,
        previous_version_id: str | None,
        holder: LockSession | None,
    ) -> tuple[StateDiff | None, notifications.Notification]:
        """The diff of a written version from its predecessor, and the notification that announces it."""
        diff = StateDiff.between(before, after) if notifications.diffable(after, before) else None
        changed = notifications.state_changed(
            event=event,
            state_key=StateKey.parse(event.key, self._workspace_key_prefixes),
            after=after,
            before=before,
            previous_version_id=previous_version_id,
            removed_resources_warning=self._removed_resources_warning,
            holder=holder,
            diff=diff,
        )
        return diff, changed

    def _placed(self, event: ObjectEvent) -> tuple[Neighbours | None, StateIndex | None]:
        """Where the version stands among the state's versions, and its predecessor's stored index if there is one."""
        place = self._bucket.neighbours(event.key, event.version_id) if event.version_id else None
        return place, self._versions.stored_index(event.key, _previous(place))

    def _not_indexed(self, event: ObjectEvent, place: Neighbours | None, failed: GuardianError) -> None:
        """A write the guardian could not index: too large, not a state, or gone already."""
        if isinstance(failed, StateTooLargeError):
            self._too_large_written(event, place)
        elif isinstance(failed, NotAStateError):
            # The write that breaks every Terraform client of this state: announced, never only logged.
            logger.warning("object at a state key is not a readable state", key=event.key, reason=str(failed))
            unreadable = self._unreadable(event, str(failed))
            self._record_other(event, place, VersionKind.UNREADABLE, unreadable, size=event.size, reason=str(failed))
            self._notifier.notify(unreadable)
        else:  # deleted again before it could be read: its removal has an event of its own
            _skip("state version no longer exists", key=event.key, version_id=event.version_id)

    def _read_predecessor(self, key: str, version_id: str | None, like: StateIndex) -> StateIndex | None:
        """The predecessor read from S3, when its index is not stored (written before the guardian watched)."""
        if version_id is None:
            return None
        try:
            return self._bucket.read_index(key, version_id, like=like)
        except (NotAStateError, ObjectNotFoundError) as exc:
            logger.warning("previous version is not a readable state", key=key, reason=str(exc))
            return None

    def _complete(self, previous_version_id: str | None, stored_before: StateIndex | None) -> bool | None:
        """Whether every older version of the state is recorded, as far as this write tells."""
        if previous_version_id is None:
            return True
        if not self._versions.keeps_indexes:
            return None
        return stored_before is not None

    def _record_other(
        self,
        event: ObjectEvent,
        place: Neighbours | None,
        kind: VersionKind,
        notification: notifications.Notification,
        *,
        size: int | None = None,
        reason: str | None = None,
    ) -> None:
        if event.version_id is None:
            return
        self._versions.record_other(
            key=event.key,
            version_id=event.version_id,
            kind=kind,
            written_at=_written_at(place, event),
            writer=writer_of(self._holder_at(event), event.principal),
            notification=notification,
            size=size,
            reason=reason,
            previous_version_id=place.previous_version_id if place else None,
        )

    def _too_large_written(self, event: ObjectEvent, place: Neighbours | None) -> None:
        """A state larger than the guardian reads whole: announced from the headers alone, never diffed."""
        try:
            header = self._bucket.read_header(event.key, event.version_id, any_size=True)
        except NotAStateError as exc:
            self._notifier.notify(self._unreadable(event, str(exc)))
            return
        except ObjectNotFoundError:
            _skip("state version no longer exists", key=event.key, version_id=event.version_id)
            return
        previous_version_id = place.previous_version_id if place else None
        before = None
        if previous_version_id is not None:
            try:
                before = self._bucket.read_header(event.key, previous_version_id, any_size=True)
            except (NotAStateError, ObjectNotFoundError) as exc:
                logger.warning("previous version is not a readable state", key=event.key, reason=str(exc))
        logger.warning("state too large to diff", key=event.key, size=event.size)
        holder = self._holder_at(event)
        changed = notifications.state_changed(
            event=event,
            state_key=StateKey.parse(event.key, self._workspace_key_prefixes),
            after=StateIndex(header=header, size=event.size or 0, md5="", resources={}, outputs={}),
            before=StateIndex(header=before, size=0, md5="", resources={}, outputs={}) if before else None,
            previous_version_id=previous_version_id,
            removed_resources_warning=self._removed_resources_warning,
            holder=holder,
            too_large=True,
        )
        if event.version_id is not None:
            self._versions.record_other(
                key=event.key,
                version_id=event.version_id,
                kind=VersionKind.WRITTEN,
                written_at=_written_at(place, event),
                writer=writer_of(holder, event.principal),
                notification=changed,
                size=event.size,
                reason=TOO_LARGE_TO_INDEX,
                previous_version_id=previous_version_id,
                header=header,
            )
        self._notifier.notify(changed)

    def _unreadable(self, event: ObjectEvent, reason: str) -> notifications.Notification:
        last_readable = self._last_readable_before(event)
        restore = restore_by_hand = None
        if last_readable is not None:
            restore = (
                f"tfguardian rollback {shlex.quote(event.key)} --version-id {shlex.quote(last_readable)}"
                " --reason 'restore the last readable state'"
            ) + (f" --backend {shlex.quote(self._backend)}" if self._backend else "")
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
        deleted = notifications.state_deleted(
            event=event,
            state_key=StateKey.parse(event.key, self._workspace_key_prefixes),
            last_version_id=newest.version_id if newest else None,
            last_serial=last_serial,
            restore=restore,
            state_gone=newest is None or not newest.is_current,
            holder=self._holder_at(event),
        )
        marker = event.change is ObjectChange.DELETE_MARKER_CREATED
        place = self._bucket.neighbours(event.key, event.version_id) if marker and event.version_id else None
        self._record_other(event, place, VersionKind.DELETE_MARKER if marker else VersionKind.DELETED, deleted)
        self._notifier.notify(deleted)

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
        copy = (
            f"aws s3api copy-object --bucket {shlex.quote(self._bucket.name)} --key {shlex.quote(key)}"
            f" --copy-source {shlex.quote(f'{self._bucket.name}/{key}?versionId={version_id}')}"
        )
        if self._lock_table is None:  # lockfiles only: Terraform keeps no digest to match
            return copy
        digest = self._bucket.md5_of(key, version_id)
        item = json.dumps({"LockID": {"S": f"{self._bucket.name}/{key}-md5"}, "Digest": {"S": digest}})
        return (
            f"{copy} && aws dynamodb put-item --table-name {shlex.quote(self._lock_table)} --item {shlex.quote(item)}"
        )


def _once_set(begun: threading.Event, task: Callable[..., _T], *args: object) -> _T:
    """`task(*args)`, once `begun` is set."""
    begun.wait()
    return task(*args)


def _previous(place: Neighbours | None) -> str | None:
    return place.previous_version_id if place else None


def _written_at(place: Neighbours | None, event: ObjectEvent) -> datetime:
    """When S3 says the version was written (as its listing gives it, so a backfill agrees), else the event's time."""
    return place.written_at if place is not None and place.written_at is not None else event.event_time


def _skip(message: str, **keys: object) -> None:
    logger.warning(message, extra=keys)
    count("EventsSkipped")
