"""`VersionHistory`: records each version of a state the guardian handles, with its index, and the fleet's latest."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from chalicelib.adapters.history_table import HistoryTable
from chalicelib.domain.history import ChangeCounts, VersionKind, VersionRecord, Writer, recorded_changes
from chalicelib.domain.locks import LockSession
from chalicelib.domain.notifications import Notification
from chalicelib.domain.state import StateHeader
from chalicelib.domain.state_index import StateDiff, StateIndex
from chalicelib.domain.state_keys import StateKey
from chalicelib.errors import CorruptIndexError
from chalicelib.observability import logger

TOO_LARGE_TO_INDEX = "too large to index"  # the reason recorded for a state larger than GUARDIAN_MAX_STATE_BYTES


class IndexKeeper(Protocol):
    """Where each version's index is kept (`IndexStore`)."""

    def put(self, state_bucket: str, key: str, version_id: str, index: StateIndex) -> int: ...

    def get(self, state_bucket: str, key: str, version_id: str) -> StateIndex | None: ...

    def get_many(self, state_bucket: str, key: str, version_ids: Sequence[str]) -> list[StateIndex | None]: ...


class VersionHistory:
    """The history of one bucket's states: version records, the fleet's latest entries and the stored indexes."""

    def __init__(
        self,
        history: HistoryTable,
        indexes: IndexKeeper | None,
        *,
        bucket: str,
        workspace_key_prefixes: tuple[str, ...],
    ) -> None:
        self.table = history
        self._indexes = indexes
        self.bucket = bucket
        self._workspace_key_prefixes = workspace_key_prefixes

    @property
    def keeps_indexes(self) -> bool:
        return self._indexes is not None

    def stored_index(self, key: str, version_id: str | None) -> StateIndex | None:
        """A version's stored index; None when there is none (not recorded, or no index bucket configured)."""
        if self._indexes is None or not version_id:
            return None
        try:
            return self._indexes.get(self.bucket, key, version_id)
        except CorruptIndexError as exc:  # read the state instead, as if it had never been recorded
            logger.warning("stored index unreadable: the state is read instead", key=key, error=str(exc))
            return None

    def stored_indexes(self, key: str, version_ids: Sequence[str]) -> list[StateIndex | None]:
        """Several versions' stored indexes, read side by side; None for each that has none."""
        if self._indexes is None:
            return [None for _ in version_ids]
        try:
            return self._indexes.get_many(self.bucket, key, version_ids)
        except CorruptIndexError as exc:  # read the states instead
            logger.warning("stored index unreadable: the state is read instead", key=key, error=str(exc))
            return [None for _ in version_ids]

    def record_written(
        self,
        *,
        key: str,
        version_id: str,
        written_at: datetime,
        index: StateIndex,
        before: StateIndex | None,
        diff: StateDiff | None,
        previous_version_id: str | None,
        writer: Writer,
        notification: Notification | None,
        backfilled: bool = False,
        history_complete: bool | None = None,
    ) -> bool:
        """Keep a readable version's record, and the fleet's latest if it is the newest (its index is kept apart, by
        `store_index`); False when a backfill found it recorded already."""
        stored = self._indexes is not None
        counts = changed = None
        overflow = False
        if diff is not None and before is not None:
            counts = ChangeCounts(
                len(diff.resources_added), len(diff.resources_changed), len(diff.resources_removed),
                len(diff.outputs_added), len(diff.outputs_changed), len(diff.outputs_removed),
            )  # fmt: skip
            changed, overflow = recorded_changes(
                diff.resources_added, diff.resources_changed, diff.resources_removed,
                (diff.outputs_added, diff.outputs_changed, diff.outputs_removed),
            )  # fmt: skip
        elif diff is not None:  # a first version: everything in it was added
            changed, overflow = recorded_changes(diff.resources_added, [], [], (diff.outputs_added, [], []))
        header = index.header
        record = VersionRecord(
            bucket=self.bucket,
            key=key,
            workspace=self._workspace(key),
            version_id=version_id,
            kind=VersionKind.WRITTEN,
            written_at=written_at,
            serial=header.serial,
            lineage=header.lineage,
            terraform_version=header.terraform_version,
            size=index.size,
            writer=writer,
            resource_count=None if header.encrypted else len(index.resources),
            output_count=None if header.encrypted else len(index.outputs),
            changes=counts,
            previous_version_id=previous_version_id,
            severity=notification.severity.value if notification else None,
            notification_id=notification.id if notification else None,
            index_stored=stored,
            backfilled=backfilled,
            changed_addresses=changed or frozenset(),
            changed_addresses_overflow=overflow,
        )
        return self._put(record, history_complete)

    def store_index(self, key: str, version_id: str, index: StateIndex) -> None:
        """Keep a version's index (where an index bucket is configured)."""
        if self._indexes is not None:
            self._indexes.put(self.bucket, key, version_id, index)

    def record_other(
        self,
        *,
        key: str,
        version_id: str,
        kind: VersionKind,
        written_at: datetime,
        writer: Writer,
        notification: Notification | None,
        size: int | None = None,
        reason: str | None = None,
        previous_version_id: str | None = None,
        header: StateHeader | None = None,
        backfilled: bool = False,
        history_complete: bool | None = None,
    ) -> bool:
        """Keep a version without an index: an unreadable write, a delete marker, a permanent delete, or a state
        too large to index (known by its `header` alone)."""
        record = VersionRecord(
            bucket=self.bucket,
            key=key,
            workspace=self._workspace(key),
            version_id=version_id,
            kind=kind,
            written_at=written_at,
            size=size,
            serial=header.serial if header else None,
            lineage=header.lineage if header else None,
            terraform_version=header.terraform_version if header else None,
            writer=writer,
            previous_version_id=previous_version_id,
            severity=notification.severity.value if notification else None,
            notification_id=notification.id if notification else None,
            reason=reason,
            backfilled=backfilled,
        )
        return self._put(record, history_complete)

    def _put(self, record: VersionRecord, history_complete: bool | None) -> bool:
        # A backfill never replaces a record made as it happened, which knows who wrote the version.
        return self.table.record(record, history_complete=history_complete, only_if_new=record.backfilled)

    def _workspace(self, key: str) -> str:
        return StateKey.parse(key, self._workspace_key_prefixes).workspace


def writer_of(holder: LockSession | None, principal: str | None) -> Writer:
    """The writer of a version: the lock holder at write time, and the S3 principal of the write."""
    if holder is None:
        return Writer(principal=principal)
    return Writer(who=holder.lock.who, operation=holder.lock.operation, lock_id=holder.lock.id, principal=principal)
