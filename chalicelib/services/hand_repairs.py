"""`HandRepairs`: what a person does to a state's locks and digest through the API, checked, conditional, announced."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from chalicelib.adapters.dynamo_lock_table import DynamoLockTable
from chalicelib.adapters.s3_state_bucket import S3StateBucket
from chalicelib.domain import notifications
from chalicelib.domain.access import REAP, REPAIR, UNLOCK, Scope
from chalicelib.domain.locks import REPAIR_OPERATION, LockInfo, LockSource
from chalicelib.domain.rollback import valid_key
from chalicelib.domain.state import parse_state_header
from chalicelib.domain.state_keys import StateKey
from chalicelib.errors import (
    ChannelDeliveryError,
    InvalidRequestError,
    LostRaceError,
    MalformedEventError,
    ObjectNotFoundError,
    StateLockedError,
)
from chalicelib.observability import logger
from chalicelib.services.lock_reaper import LockReaper
from chalicelib.services.notifier import Notifier
from chalicelib.services.state_lock import StateLock, holder_of

MAX_REASON = 500


class HandRepairs:
    """Force-unlock, digest repair and reaping on request; each one names its caller in its notification."""

    def __init__(
        self,
        bucket: S3StateBucket,
        lock_table: DynamoLockTable,
        reaper: LockReaper,
        notifier: Notifier,
        *,
        workspace_key_prefixes: tuple[str, ...],
    ) -> None:
        self._bucket = bucket
        self._lock_table = lock_table
        self._reaper = reaper
        self._notifier = notifier
        self._lock = StateLock(bucket, lock_table)
        self._workspace_key_prefixes = workspace_key_prefixes

    def reap(self, now: datetime, dry_run: bool, scope: Scope) -> dict[str, Any]:
        """Run the reaper on the caller's locks now; the operator's dry-run setting is a ceiling."""
        scope.require(REAP)
        ceiling = self._reaper.policy.dry_run
        outcomes = self._reaper.run(now, dry_run=dry_run, scope=scope)
        answer: dict[str, Any] = {"dry_run": dry_run or ceiling, "locks": [outcome.to_dict() for outcome in outcomes]}
        if ceiling and not dry_run:
            answer["dry_run_by"] = "GUARDIAN_REAP_DRY_RUN"
        return answer

    def force_unlock(self, key: str, lock_id: str, scope: Scope, *, reason: str, now: datetime) -> dict[str, Any]:
        """`terraform force-unlock`, verified: both locks' IDs are checked before either is deleted, and each
        delete is conditional on exactly what was read; `lock.force_released` names the caller."""
        checked(key, scope, UNLOCK)
        if not lock_id:
            raise InvalidRequestError("lock_id must be the ID of the lock, as terraform prints it")
        _check_reason(reason)
        path = f"{self._bucket.name}/{key}"
        lockfile = self._bucket.current_lockfile(key)
        found = [
            (source, raw, version)
            for source, raw, version in (
                (LockSource.DYNAMODB, self._lock_table.current_lock(path), None),
                (LockSource.LOCKFILE, lockfile[0] if lockfile else None, lockfile[1] if lockfile else None),
            )
            if raw is not None
        ]
        if not found:
            raise ObjectNotFoundError(f"{key} is not locked")
        for source, raw, _ in found:
            if (held := _lock_id(raw)) != lock_id:
                raise StateLockedError(f"the {source} lock of {key} has another ID: {held}", holder_of(raw))
        released: list[str] = []
        left: list[dict[str, str]] = []
        for source, raw, version in found:
            if version is None:
                done = self._lock_table.delete_lock_if_unchanged(path, raw)
            else:
                done = self._bucket.delete_lockfile_version(key + ".tflock", version)
            if done:
                released.append(source)
            elif not released:
                raise LostRaceError("the lock changed while it was being released; look again")
            else:  # the first is released: say what happened rather than refuse after acting
                left.append({"source": source, "reason": "it changed or went while the other was being released"})
        logger.warning("lock force-released", key=key, lock_id=lock_id, released=released, caller=scope.caller)
        answer: dict[str, Any] = {"key": key, "lock_id": lock_id, "released": released}
        if left:
            answer["left"] = left
        notified = self._notify(
            notifications.lock_force_released(
                lock=_parsed(found[0][1]),
                lock_id=lock_id,
                source=released,
                bucket=self._bucket.name,
                state_key=self._state_key(key),
                occurred_at=now,
                caller=scope.caller,
                reason=reason,
            )
        )
        return {**answer, "notified": notified}

    def repair_digest(self, key: str, scope: Scope, *, now: datetime) -> dict[str, Any]:
        """Set the digest to the MD5 of the current bytes once they are known to be a valid state: under the
        state's locks, so that no Terraform run writes meanwhile, and only over the digest read (409 while a
        lock is held, with its holder); `digest.repaired` names the caller."""
        checked(key, scope, REPAIR)
        path = f"{self._bucket.name}/{key}"
        self._lock.refuse_if_held(key)
        current = self._bucket.current_version(key)
        if current is None or current.delete_marker:
            raise ObjectNotFoundError(f"there is no current state at {key}")
        data = self._bucket.read_bytes(key, current.version_id)
        parse_state_header(data, complete=True)
        digest = hashlib.md5(data, usedforsecurity=False).hexdigest()
        del data
        with self._lock.held(key, operation=REPAIR_OPERATION, caller=scope.caller, info="digest repair", now=now):
            if self._bucket.current_version(key) != current:
                raise LostRaceError("the state changed while its digest was being computed; look again")
            stored = self._lock_table.digest_of(path)
            if not self._lock_table.put_digest_if(path, digest, expected=stored):
                raise LostRaceError("the digest changed while it was being repaired; look again")
        logger.warning("digest repaired", key=key, version_id=current.version_id, caller=scope.caller)
        notified = self._notify(
            notifications.digest_repaired(
                bucket=self._bucket.name,
                state_key=self._state_key(key),
                version_id=current.version_id,
                stored_before=stored,
                calculated=digest,
                occurred_at=now,
                caller=scope.caller,
            )
        )
        return {
            "key": key,
            "version_id": current.version_id,
            "digest": digest,
            "stored_before": stored,
            "notified": notified,
        }

    def _notify(self, notification: notifications.Notification) -> bool:
        try:
            self._notifier.notify(notification)
        except ChannelDeliveryError as exc:
            # Done already: failing the request now would invite doing it again. The notifier logged and counted.
            logger.warning("repair done but not notified", notification_id=notification.id, error=str(exc))
            return False
        return True

    def _state_key(self, key: str) -> StateKey:
        return StateKey.parse(key, self._workspace_key_prefixes)


def checked(key: str, scope: Scope, action: str) -> str:
    """`key`, a valid S3 key the caller may take `action` on."""
    if not valid_key(key):
        raise InvalidRequestError("key must be the state's object key, with no control characters")
    return scope.check(key, action)


def _check_reason(reason: str) -> None:
    if len(reason) > MAX_REASON or not reason.isprintable():
        raise InvalidRequestError(f"reason must be text of at most {MAX_REASON} characters")


def _lock_id(raw: str) -> str:
    parsed = _parsed(raw)
    return parsed.id if parsed else "(unreadable)"


def _parsed(raw: str) -> LockInfo | None:
    try:
        return LockInfo.parse(raw)
    except MalformedEventError:
        return None
