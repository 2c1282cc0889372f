"""`StateLock`: the guardian takes a state's locks as Terraform does before it writes the state or its digest."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from chalicelib.adapters.dynamo_lock_table import DynamoLockTable
from chalicelib.adapters.s3_state_bucket import S3StateBucket
from chalicelib.domain.locks import LockInfo
from chalicelib.errors import LostRaceError, MalformedEventError, StateLockedError

GUARDIAN_VERSION = "tfstate-guardian 0.1.0"


class StateLock:
    """Both of Terraform's locks of one bucket's states, so that a `terraform` run with either configuration blocks."""

    def __init__(self, bucket: S3StateBucket, lock_table: DynamoLockTable) -> None:
        self._bucket = bucket
        self._lock_table = lock_table

    def refuse_if_held(self, key: str) -> None:
        """Raise `StateLockedError` with the holder when either lock of the state is held."""
        path = f"{self._bucket.name}/{key}"
        lockfile = self._bucket.current_lockfile(key)
        for held in (self._lock_table.current_lock(path), lockfile[0] if lockfile else None):
            if held is not None:
                raise StateLockedError("the state is locked; wait for its holder or unlock it", holder_of(held))

    @contextmanager
    def held(self, key: str, *, operation: str, caller: str, info: str, now: datetime) -> Iterator[None]:
        """Take the lock item (a conditional put) and the `.tflock` (`If-None-Match: *`), release exactly those."""
        self.refuse_if_held(key)
        path = f"{self._bucket.name}/{key}"
        lock_info = json.dumps(
            {"ID": str(uuid.uuid4()), "Operation": operation, "Info": info, "Who": f"{caller} via tfstate-guardian",
             "Version": GUARDIAN_VERSION, "Created": now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "Path": path},
            separators=(",", ":"),
        )  # fmt: skip
        if not self._lock_table.take_lock(path, lock_info):
            raise LostRaceError("someone took the lock first; try again")
        lockfile_version = None
        try:
            lockfile_version = self._bucket.create_lockfile(key, lock_info.encode())
            if lockfile_version is None:
                raise LostRaceError("someone took the lockfile first; try again")
            yield
        finally:
            # Conditional releases: only the very locks the guardian took; one failing never keeps the other.
            try:
                if lockfile_version:
                    self._bucket.delete_lockfile_version(key + ".tflock", lockfile_version)
            finally:
                self._lock_table.delete_lock_if_unchanged(path, lock_info)


def holder_of(raw: str) -> dict[str, str] | None:
    """Who holds a lock, for a refusal: never more of the LockInfo than a person needs."""
    try:
        lock = LockInfo.parse(raw)
    except MalformedEventError:
        return None
    return {"id": lock.id, "who": lock.who, "operation": lock.operation, "created": lock.created}
