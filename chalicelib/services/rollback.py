"""`RollbackService`: restores an earlier state version under Terraform's own lock, serial bumped, digest fixed."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from chalicelib.adapters.dynamo_lock_table import DynamoLockTable
from chalicelib.adapters.guardian_table import GuardianTable
from chalicelib.adapters.s3_state_bucket import CurrentVersion, ObjectVersion, S3StateBucket
from chalicelib.domain import notifications
from chalicelib.domain.access import ROLLBACK, Scope
from chalicelib.domain.digests import DigestIntent
from chalicelib.domain.locks import ROLLBACK_OPERATION
from chalicelib.domain.rollback import RollbackRequest, likely_serial_after, restored_with_digest
from chalicelib.domain.state import StateHeader
from chalicelib.domain.state_index import Comparison, StateDiff, chunks_of, compare_for_rollback
from chalicelib.domain.state_keys import StateKey
from chalicelib.errors import (
    ChannelDeliveryError,
    GuardianError,
    LineageChangeError,
    LostRaceError,
    NotAStateError,
    ObjectNotFoundError,
)
from chalicelib.observability import logger
from chalicelib.services.notifier import Notifier
from chalicelib.services.state_lock import StateLock
from chalicelib.services.version_history import VersionHistory


class RollbackService:
    """One rollback at a time per state, serialised by the very locks Terraform takes."""

    def __init__(
        self,
        bucket: S3StateBucket,
        lock_table: DynamoLockTable,
        table: GuardianTable,
        notifier: Notifier,
        versions: VersionHistory,
        *,
        workspace_key_prefixes: tuple[str, ...],
    ) -> None:
        self._bucket = bucket
        self._versions = versions
        self._lock_table = lock_table
        self._table = table
        self._notifier = notifier
        self._lock = StateLock(bucket, lock_table)
        self._workspace_key_prefixes = workspace_key_prefixes

    def rollback(self, request: RollbackRequest, *, scope: Scope, now: datetime) -> dict[str, Any]:
        key = scope.check(request.key, ROLLBACK)
        caller = scope.caller
        current = self._bucket.current_version(key)
        target_version_id, history = self._resolve(key, request, current)
        replaced = None if current is None or current.delete_marker else current.version_id
        stored = self._stored_comparison(key, target_version_id, replaced)
        if stored is not None:  # both versions recorded: the current one need not be read, nor the target parsed
            target_bytes, replaced_bytes = self._read_target(key, target_version_id), None
        else:
            target_bytes, replaced_bytes = self._read_both(key, target_version_id, replaced)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="rollback-digest") as hasher:
            # The restored bytes and their MD5 are begun from the two heads while the whole states are compared.
            guess = None if request.dry_run else _likely_serial_after(stored, target_bytes, replaced_bytes)
            early = hasher.submit(restored_with_digest, target_bytes, guess) if guess is not None else None
            try:
                comparison = stored or compare_for_rollback(
                    target_bytes, chunks_of(replaced_bytes) if replaced_bytes is not None else None
                )
            except NotAStateError as exc:
                raise NotAStateError(f"the target version is not a valid state: {exc}") from None
            target_header, current_header = comparison.target, comparison.current
            if replaced and current_header is None:  # restoring is how a team recovers from a bad write
                logger.warning("current version is not a readable state", key=key)
            if current_header is not None:
                base_serial = current_header.serial
            else:  # deleted or unreadable: go on from the newest readable version there was
                base_serial = self._newest_serial(key, history or self._bucket.history(key), target_header.serial)
            if current_header and target_header.lineage_differs(current_header) and not request.allow_lineage_change:
                raise LineageChangeError(
                    f"the target's lineage {target_header.lineage} is not the current {current_header.lineage}; "
                    "send allow_lineage_change: true if that is what you want"
                )
            # An encrypted OpenTofu state cannot be rewritten: it is restored byte for byte.
            serial_after = target_header.serial if target_header.encrypted else base_serial + 1
            result: dict[str, Any] = {
                "key": key,
                "dry_run": request.dry_run,
                "from_version_id": target_version_id,
                "target_serial": target_header.serial,  # the serial the restored version had when it was written
                "serial": {"before": current_header.serial if current_header else None, "after": serial_after},
                "diff": _diff_dict(comparison.diff),  # the serial aside, the restored state is the target
            }
            if request.dry_run:
                return result
            serial_written = None if target_header.encrypted else serial_after
            if early is None or guess != serial_written:
                early = hasher.submit(restored_with_digest, target_bytes, serial_written)
            restored, digest = early.result()
        intent = DigestIntent(f"{self._bucket.name}/{key}", digest, now)
        with self._lock.held(key, operation=ROLLBACK_OPERATION, caller=caller, info="rollback", now=now):
            if self._bucket.current_version(key) != current:
                raise LostRaceError("the state changed while the rollback was being prepared; look and try again")
            new_version_id = self._write(key, restored, intent)
            # Terraform's order: the state, then its digest.
            self._lock_table.put_digest(intent.state_path, intent.digest)
        try:
            self._table.clear_digest_intent(intent)
        except GuardianError as exc:  # the rollback is whole; the next digest check forgets the intent
            logger.warning("digest intent not cleared", key=key, error=str(exc))
        logger.warning("state rolled back", key=key, from_version_id=target_version_id, new_version_id=new_version_id)
        try:
            self._notify_restored(
                key=key, from_version_id=target_version_id, new_version_id=new_version_id,
                current_header=current_header, serial_after=serial_after, caller=caller, request=request, now=now,
            )  # fmt: skip
        except ChannelDeliveryError as exc:
            # The rollback is done: failing the request now would invite a second one. The notifier logged and
            # counted the failure; the answer says so too.
            logger.warning("rollback done but not notified", key=key, error=str(exc))
            return {**result, "new_version_id": new_version_id, "notified": False}
        return {**result, "new_version_id": new_version_id, "notified": True}

    def _notify_restored(
        self, *, key: str, from_version_id: str, new_version_id: str, current_header: StateHeader | None,
        serial_after: int, caller: str, request: RollbackRequest, now: datetime,
    ) -> None:  # fmt: skip
        self._notifier.notify(
            notifications.state_restored(
                bucket=self._bucket.name,
                state_key=StateKey.parse(key, self._workspace_key_prefixes),
                occurred_at=now,
                from_version_id=from_version_id,
                new_version_id=new_version_id,
                serial_before=current_header.serial if current_header else None,
                serial_after=serial_after,
                caller=caller,
                reason=request.reason,
            )
        )

    def _target(self, key: str, request: RollbackRequest, history: list[ObjectVersion]) -> ObjectVersion:
        versions = [entry for entry in history if not entry.delete_marker]
        if request.version_id is not None:
            found = next((entry for entry in versions if entry.version_id == request.version_id), None)
        elif request.as_of is not None:
            found = next((entry for entry in versions if entry.last_modified <= request.as_of), None)
        else:
            found = next((entry for entry in versions if self._serial_of(key, entry) == request.serial), None)
        if found is None:
            raise ObjectNotFoundError("no version of the state matches the target")
        return found

    def _resolve(
        self, key: str, request: RollbackRequest, current: CurrentVersion | None
    ) -> tuple[str, list[ObjectVersion] | None]:
        """The version id to restore, and the key's history if it took one to find it."""
        if request.version_id is not None and current is not None and not current.delete_marker:
            return request.version_id, None
        history = self._bucket.history(key)
        if not history:
            raise ObjectNotFoundError(f"there is no state at {key}")
        return self._target(key, request, history).version_id, history

    def _stored_comparison(self, key: str, target_version_id: str, replaced: str | None) -> Comparison | None:
        """The comparison from the two versions' stored indexes; None unless both are recorded (or the current one
        is a delete marker) and comparable. A stored index says its version was read as a state."""
        target = self._versions.stored_index(key, target_version_id)
        if target is None:
            return None
        current = self._versions.stored_index(key, replaced) if replaced is not None else None
        if (replaced is not None and current is None) or not target.comparable_with(current):
            return None
        return Comparison(
            current=current.header if current else None, target=target.header, diff=StateDiff.between(current, target)
        )

    def _read_target(self, key: str, target_version_id: str) -> bytes:
        try:
            return self._bucket.read_bytes(key, target_version_id)
        except ObjectNotFoundError:
            raise ObjectNotFoundError(f"{key} has no version {target_version_id} to restore") from None

    def _read_both(self, key: str, target_version_id: str, replaced: str | None) -> tuple[bytes, bytes | None]:
        """The target's bytes and those of the version it replaces, read side by side."""
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="rollback-read") as reader:
            replaced_read = reader.submit(self._bucket.read_bytes, key, replaced) if replaced else None
            target_bytes = self._read_target(key, target_version_id)
            return target_bytes, replaced_read.result() if replaced_read else None

    def _write(self, key: str, restored: bytes, intent: DigestIntent) -> str:
        """The state's new version id, written after its digest was recorded as intended: if the Lambda dies
        between the state and the digest, the next digest check writes the digest, rather than every Terraform
        client failing on the state."""
        self._table.put_digest_intent(intent)
        return self._bucket.put_state(key, restored)

    def _newest_serial(self, key: str, history: list[ObjectVersion], otherwise: int) -> int:
        for entry in history:
            if not entry.delete_marker and (serial := self._serial_of(key, entry)) is not None:
                return serial
        return otherwise

    def _serial_of(self, key: str, entry: ObjectVersion) -> int | None:
        try:
            return self._bucket.read_header(key, entry.version_id).serial
        except NotAStateError:
            return None


def _likely_serial_after(stored: Comparison | None, target: bytes, replaced: bytes | None) -> int | None:
    """The serial the restored state will get, as early as it can be known; None if not yet."""
    if stored is None:
        return likely_serial_after(target, replaced)
    if stored.target.encrypted or stored.current is None:
        return None
    return stored.current.serial + 1


def _diff_dict(diff: StateDiff) -> dict[str, Any]:
    return {
        "resources": {
            "added": diff.resources_added,
            "changed": diff.resources_changed,
            "removed": diff.resources_removed,
        },
        "outputs": {"added": diff.outputs_added, "changed": diff.outputs_changed, "removed": diff.outputs_removed},
    }
