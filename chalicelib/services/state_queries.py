"""`StateQueries`: what the API tells about states and locks, without ever a value from a state."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from chalicelib.adapters.dynamo_lock_table import DynamoLockTable
from chalicelib.adapters.s3_state_bucket import S3StateBucket
from chalicelib.domain.access import READ, REAP, REPAIR, UNLOCK, Scope
from chalicelib.domain.locks import REPAIR_OPERATION, LockInfo, LockSource
from chalicelib.domain.notifications import rfc3339
from chalicelib.domain.rollback import valid_key
from chalicelib.domain.state import parse_state_header
from chalicelib.domain.state_index import StateDiff
from chalicelib.domain.state_keys import StateKey, StateKeyFilter, is_lockfile
from chalicelib.errors import (
    InvalidRequestError,
    LostRaceError,
    MalformedEventError,
    NotAStateError,
    ObjectNotFoundError,
    StateLockedError,
)
from chalicelib.observability import logger
from chalicelib.services.lock_reaper import LockReaper
from chalicelib.services.state_lock import StateLock, holder_of


class StateQueries:
    """Read-only answers, plus the two repairs a person asks for by hand: force-unlock and digest repair.

    Every method takes the caller's scope: a key outside it is refused, and a listing never mentions one.
    """

    def __init__(
        self,
        bucket: S3StateBucket,
        lock_table: DynamoLockTable,
        reaper: LockReaper,
        *,
        state_keys: StateKeyFilter,
        workspace_key_prefixes: tuple[str, ...],
    ) -> None:
        self._bucket = bucket
        self._lock_table = lock_table
        self._reaper = reaper
        self._lock = StateLock(bucket, lock_table)
        self._state_keys = state_keys
        self._workspace_key_prefixes = workspace_key_prefixes

    def states(self, prefix: str, scope: Scope) -> list[dict[str, Any]]:
        scope.require(READ)
        objects = self._bucket.list_keys(prefix)
        lockfiles = {key[: -len(".tflock")] for key, _, _ in objects if is_lockfile(key)}
        locked = {lock_id.partition("/")[2] for lock_id, _ in self._lock_table.held_locks()} | lockfiles
        answer = []
        for key, size, modified in objects:
            if not self._state_keys.matches(key) or not scope.admits(key):
                continue
            entry: dict[str, Any] = {
                "key": key,
                "workspace": StateKey.parse(key, self._workspace_key_prefixes).workspace,
                "size": size,
                "last_modified": rfc3339(modified),
                "locked": key in locked,
            }
            try:
                header = self._bucket.read_header(key, None)
                entry.update(serial=header.serial, lineage=header.lineage)
            except (NotAStateError, ObjectNotFoundError):
                entry.update(serial=None, lineage=None)
            answer.append(entry)
        return answer

    def versions(self, key: str, scope: Scope) -> list[dict[str, Any]]:
        history = self._bucket.history(_checked(key, scope, READ))
        if not history:
            raise ObjectNotFoundError(f"there is no state at {key}")
        answer = []
        for entry in history:
            item: dict[str, Any] = {
                "version_id": entry.version_id,
                "last_modified": rfc3339(entry.last_modified),
                "size": entry.size,
                "delete_marker": entry.delete_marker,
                "current": entry.is_latest,
                "serial": None,
                "lineage": None,
                "terraform_version": None,
            }
            if not entry.delete_marker:
                try:  # a ranged read of the head of the object: fast for any size
                    header = self._bucket.read_header(key, entry.version_id)
                    item.update(
                        serial=header.serial, lineage=header.lineage, terraform_version=header.terraform_version
                    )
                except NotAStateError:
                    pass
            answer.append(item)
        return answer

    def diff(self, key: str, from_version: str, to_version: str, scope: Scope) -> dict[str, Any]:
        _checked(key, scope, READ)
        if not from_version or not to_version:
            raise InvalidRequestError("give both from and to version ids")
        diff = StateDiff.between(*self._bucket.read_indexes(key, from_version, to_version))
        return {
            "key": key,
            "from": from_version,
            "to": to_version,
            "resources": {
                "added": diff.resources_added,
                "changed": diff.resources_changed,
                "removed": diff.resources_removed,
            },
            "outputs": {"added": diff.outputs_added, "changed": diff.outputs_changed, "removed": diff.outputs_removed},
        }

    def locks(self, now: datetime, scope: Scope) -> list[dict[str, Any]]:
        """Every held lock in the caller's scope with the reaper's verdict as of now; a dry run changes nothing."""
        scope.require(READ)
        answer = []
        for outcome in self._reaper.run(now, dry_run=True, scope=scope):
            item = outcome.to_dict()
            item["age_s"] = outcome.judgement.evidence.get("age_s")
            answer.append(item)
        return answer

    def reap(self, now: datetime, dry_run: bool, scope: Scope) -> dict[str, Any]:
        """Run the reaper on the caller's locks now; the operator's dry-run setting is a ceiling."""
        scope.require(REAP)
        ceiling = self._reaper.policy.dry_run
        outcomes = self._reaper.run(now, dry_run=dry_run, scope=scope)
        answer: dict[str, Any] = {"dry_run": dry_run or ceiling, "locks": [outcome.to_dict() for outcome in outcomes]}
        if ceiling and not dry_run:
            answer["dry_run_by"] = "GUARDIAN_REAP_DRY_RUN"
        return answer

    def force_unlock(self, key: str, lock_id: str, scope: Scope) -> dict[str, Any]:
        """`terraform force-unlock`, verified: both locks' IDs are checked before either is deleted, and each
        delete is conditional on exactly what was read."""
        _checked(key, scope, UNLOCK)
        if not lock_id:
            raise InvalidRequestError("lock_id must be the ID of the lock, as terraform prints it")
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
        return answer

    def repair_digest(self, key: str, scope: Scope, now: datetime) -> dict[str, Any]:
        """Set the digest to the MD5 of the current bytes once they are known to be a valid state: under the
        state's locks, so that no Terraform run writes meanwhile, and only over the digest read (409 while a
        lock is held, with its holder)."""
        _checked(key, scope, REPAIR)
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
        return {"key": key, "version_id": current.version_id, "digest": digest, "stored_before": stored}


def _checked(key: str, scope: Scope, action: str) -> str:
    if not valid_key(key):
        raise InvalidRequestError("key must be the state's object key, with no control characters")
    return scope.check(key, action)


def _lock_id(raw: str) -> str:
    try:
        return LockInfo.parse(raw).id
    except MalformedEventError:
        return "(unreadable)"
