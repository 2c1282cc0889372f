"""`StateQueries`: what the API tells about states and locks, without ever a value from a state."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from chalicelib.adapters.dynamo_lock_table import DynamoLockTable
from chalicelib.adapters.s3_state_bucket import S3StateBucket
from chalicelib.domain.locks import LockInfo, LockSource
from chalicelib.domain.notifications import rfc3339
from chalicelib.domain.rollback import allowed_key
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
from chalicelib.services.lock_reaper import LockReaper


class StateQueries:
    """Read-only answers, plus the two repairs a person asks for by hand: force-unlock and digest repair."""

    def __init__(
        self,
        bucket: S3StateBucket,
        lock_table: DynamoLockTable,
        reaper: LockReaper,
        *,
        state_keys: StateKeyFilter,
        allowed_prefixes: tuple[str, ...],
        workspace_key_prefixes: tuple[str, ...],
    ) -> None:
        self._bucket = bucket
        self._lock_table = lock_table
        self._reaper = reaper
        self._state_keys = state_keys
        self._allowed_prefixes = allowed_prefixes
        self._workspace_key_prefixes = workspace_key_prefixes

    def allowed(self, key: str) -> str:
        return allowed_key(key, self._allowed_prefixes)

    def states(self, prefix: str) -> list[dict[str, Any]]:
        objects = self._bucket.list_keys(prefix)
        lockfiles = {key[: -len(".tflock")] for key, _, _ in objects if is_lockfile(key)}
        locked = {lock_id.partition("/")[2] for lock_id, _ in self._lock_table.held_locks()} | lockfiles
        answer = []
        for key, size, modified in objects:
            if not self._state_keys.matches(key) or (
                self._allowed_prefixes and not key.startswith(self._allowed_prefixes)
            ):
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

    def versions(self, key: str) -> list[dict[str, Any]]:
        history = self._bucket.history(self.allowed(key))
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

    def diff(self, key: str, from_version: str, to_version: str) -> dict[str, Any]:
        self.allowed(key)
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

    def locks(self, now: datetime) -> list[dict[str, Any]]:
        """Every held lock with the reaper's verdict as of now; judging in a dry run changes nothing."""
        answer = []
        for outcome in self._reaper.run(now, dry_run=True):
            item = outcome.to_dict()
            if self._allowed_prefixes and not item["key"].startswith(self._allowed_prefixes):
                continue
            item["age_s"] = outcome.judgement.evidence.get("age_s")
            answer.append(item)
        return answer

    def force_unlock(self, key: str, lock_id: str) -> dict[str, Any]:
        """`terraform force-unlock`, verified: the ID must match, and each delete is conditional on what was read."""
        self.allowed(key)
        if not lock_id:
            raise InvalidRequestError("lock_id must be the ID of the lock, as terraform prints it")
        path = f"{self._bucket.name}/{key}"
        released = []
        lockfile = self._bucket.current_lockfile(key)
        for source, raw, version in (
            (LockSource.DYNAMODB, self._lock_table.current_lock(path), None),
            (LockSource.LOCKFILE, lockfile[0] if lockfile else None, lockfile[1] if lockfile else None),
        ):
            if raw is None:
                continue
            held = _lock_id(raw)
            if held != lock_id:
                raise StateLockedError(f"the {source} lock of {key} has another ID: {held}")
            if version is None:
                done = self._lock_table.delete_lock_if_unchanged(path, raw)
            else:
                done = self._bucket.delete_lockfile_version(key + ".tflock", version)
            if not done:
                raise LostRaceError("the lock changed while it was being released; look again")
            released.append(source)
        if not released:
            raise ObjectNotFoundError(f"{key} is not locked")
        return {"key": key, "lock_id": lock_id, "released": released}

    def repair_digest(self, key: str) -> dict[str, Any]:
        """Set the digest to the MD5 of the current bytes, once they are known to be a valid state."""
        history = self._bucket.history(self.allowed(key))
        if not history or history[0].delete_marker:
            raise ObjectNotFoundError(f"there is no current state at {key}")
        data = self._bucket.read_bytes(key, history[0].version_id)
        parse_state_header(data, complete=True)
        digest = hashlib.md5(data, usedforsecurity=False).hexdigest()
        self._lock_table.put_digest(f"{self._bucket.name}/{key}", digest)
        return {"key": key, "version_id": history[0].version_id, "digest": digest}


def _lock_id(raw: str) -> str:
    try:
        return LockInfo.parse(raw).id
    except MalformedEventError:
        return "(unreadable)"
