"""`Backfill`: records the history a bucket already holds, newest first, checkpointed, safe to run twice.

The walk follows S3's listing of every version of the bucket: keys in order, each key's versions newest first. Each
readable version is indexed once (its index stored at once) and recorded when the next older version with data
is known, so that its diff is against its real predecessor; the oldest is recorded as created. A checkpoint (where
the listing's page starts, how much of it is done, and the version waiting for its predecessor) is kept after every
version, so a run stopped anywhere is taken up by the next; records made as versions were written are never
replaced.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from chalicelib.adapters.s3_state_bucket import ObjectVersion, S3StateBucket
from chalicelib.domain import notifications
from chalicelib.domain.history import VersionKind, Writer
from chalicelib.domain.state_index import StateDiff, StateIndex
from chalicelib.domain.state_keys import StateKeyFilter
from chalicelib.errors import NotAStateError, ObjectNotFoundError, StateTooLargeError
from chalicelib.observability import logger
from chalicelib.services.version_history import TOO_LARGE_TO_INDEX, VersionHistory

PAGE = 100
# Left of an invocation's time when the backfill stops for the next run (reading one large state takes seconds).
STOP_WITH_S = 10.0


@dataclass(frozen=True)
class BackfillProgress:
    """What one run did, and whether the bucket's history is complete."""

    recorded: int
    looked_at: int
    done: bool

    def to_dict(self) -> dict[str, Any]:
        return {"recorded": self.recorded, "looked_at": self.looked_at, "done": self.done}


class Backfill:
    """Walks one bucket's versions and records those the history lacks."""

    def __init__(
        self,
        bucket: S3StateBucket,
        versions: VersionHistory,
        *,
        state_keys: StateKeyFilter,
    ) -> None:
        self._bucket = bucket
        self._versions = versions
        self._state_keys = state_keys

    def run(self, *, time_left: Callable[[], float] | None = None, restart: bool = False) -> BackfillProgress:
        """Go on from the checkpoint until the bucket is done or `time_left()` runs short; `restart` walks it all
        again (recording nothing twice)."""
        table = self._versions.table
        position = None if restart else table.checkpoint(self._bucket.name)
        if position is not None and position.get("finished"):
            return BackfillProgress(recorded=0, looked_at=0, done=True)
        # Where the page being walked starts, how many of its entries are done, and the version waiting.
        position = position or {"key": None, "version": None, "skip": 0, "waiting": None}
        waiting = _Waiting.of(position.get("waiting"))
        recorded = looked_at = 0

        def out_of_time() -> bool:
            return time_left is not None and time_left() <= STOP_WITH_S

        while not out_of_time():
            entries, following = self._bucket.all_versions_page(
                key_marker=position["key"], version_marker=position["version"], limit=PAGE
            )
            for number, (key, entry) in enumerate(entries):
                if number < position["skip"]:
                    continue  # done by an earlier run; a page listed again starts the same
                if out_of_time():
                    logger.info("backfill paused", recorded=recorded, looked_at=looked_at, key=key)
                    return BackfillProgress(recorded=recorded, looked_at=looked_at, done=False)
                looked_at += 1
                if self._state_keys.matches(key):
                    if waiting is not None and waiting.key != key:
                        recorded += self._finish(waiting, None, None)
                        waiting = None
                    if entry.delete_marker:
                        recorded += self._record_marker(key, entry)
                    else:
                        index, reason = self._index(key, entry)
                        if waiting is not None:
                            recorded += self._finish(waiting, index, entry.version_id)
                        waiting = _Waiting(key, entry.version_id, entry.last_modified, entry.size, reason)
                position = {**position, "skip": number + 1, "waiting": waiting and waiting.to_dict()}
                table.put_checkpoint(self._bucket.name, position)
            if following is None:
                if waiting is not None:
                    recorded += self._finish(waiting, None, None)
                table.put_checkpoint(self._bucket.name, {"finished": True})
                logger.info("backfill done", recorded=recorded, looked_at=looked_at)
                return BackfillProgress(recorded=recorded, looked_at=looked_at, done=True)
            position = {"key": following[0], "version": following[1], "skip": 0, "waiting": position["waiting"]}
            table.put_checkpoint(self._bucket.name, position)
            logger.info("backfill progress", recorded=recorded, looked_at=looked_at, key=following[0])
        logger.info("backfill paused", recorded=recorded, looked_at=looked_at, key=position.get("key"))
        return BackfillProgress(recorded=recorded, looked_at=looked_at, done=False)

    def _index(self, key: str, entry: ObjectVersion) -> tuple[StateIndex | None, str | None]:
        """A version's index, stored; or why it has none."""
        stored = self._versions.stored_index(key, entry.version_id)
        if stored is not None:
            return stored, None
        try:
            index = self._bucket.read_index(key, entry.version_id)
        except StateTooLargeError:
            return None, TOO_LARGE_TO_INDEX
        except NotAStateError as exc:
            return None, str(exc)
        except ObjectNotFoundError:
            return None, "deleted while the backfill read it"
        self._versions.store_index(key, entry.version_id, index)
        return index, None

    def _finish(self, waiting: _Waiting, before: StateIndex | None, previous_version_id: str | None) -> int:
        """Record the version waiting for its predecessor, now that the predecessor is known (None: it was the
        oldest of its key, whose history is then complete)."""
        oldest = previous_version_id is None
        if waiting.reason == TOO_LARGE_TO_INDEX:  # a state, known by its header: recorded as the live handler does
            new = self._versions.record_other(
                key=waiting.key, version_id=waiting.version_id, kind=VersionKind.WRITTEN,
                written_at=waiting.written_at, writer=Writer(), notification=None, size=waiting.size,
                reason=waiting.reason, previous_version_id=previous_version_id, backfilled=True,
                header=self._bucket.read_header(waiting.key, waiting.version_id, any_size=True),
            )  # fmt: skip
        elif waiting.reason is not None:
            new = self._versions.record_other(
                key=waiting.key, version_id=waiting.version_id, kind=VersionKind.UNREADABLE,
                written_at=waiting.written_at, writer=Writer(), notification=None, size=waiting.size,
                reason=waiting.reason, previous_version_id=previous_version_id, backfilled=True,
            )  # fmt: skip
        else:
            new = self._record_written(waiting, before, previous_version_id)
        if oldest:
            self._versions.table.mark_history_complete(self._bucket.name, waiting.key, True)
        return int(new)

    def _record_written(self, waiting: _Waiting, before: StateIndex | None, previous_version_id: str | None) -> bool:
        index = self._versions.stored_index(waiting.key, waiting.version_id)
        if index is None:  # its index went (retention) between two runs: read it again
            index, _ = self._index(waiting.key, ObjectVersion(waiting.version_id, waiting.written_at, 0, False, False))
        if index is None:
            return False
        if before is not None and not index.comparable_with(before):
            before = None  # written in two layouts: counted as created rather than compared wrongly
        diff = StateDiff.between(before, index) if notifications.diffable(index, before) else None
        return self._versions.record_written(
            key=waiting.key,
            version_id=waiting.version_id,
            written_at=waiting.written_at,
            index=index,
            before=before,
            diff=diff,
            previous_version_id=previous_version_id,
            writer=Writer(),
            notification=None,
            backfilled=True,
            history_complete=True,
        )

    def _record_marker(self, key: str, entry: ObjectVersion) -> int:
        return int(
            self._versions.record_other(
                key=key,
                version_id=entry.version_id,
                kind=VersionKind.DELETE_MARKER,
                written_at=entry.last_modified,
                writer=Writer(),
                notification=None,
                backfilled=True,
            )
        )


@dataclass(frozen=True)
class _Waiting:
    """A version indexed and waiting for its predecessor to be recorded."""

    key: str
    version_id: str
    written_at: datetime
    size: int
    reason: str | None  # why it is not a readable state, if it is not

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "version_id": self.version_id,
            "written_at": self.written_at.isoformat(),
            "size": self.size,
            "reason": self.reason,
        }

    @classmethod
    def of(cls, data: dict[str, Any] | None) -> _Waiting | None:
        if not data:
            return None
        return cls(
            key=data["key"],
            version_id=data["version_id"],
            written_at=datetime.fromisoformat(data["written_at"]),
            size=int(data.get("size") or 0),
            reason=data.get("reason"),
        )
