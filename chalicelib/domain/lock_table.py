"""Records of the lock table's stream, told apart: lock items, digest (`-md5`) items, and anything else."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from chalicelib.domain.locks import LockInfo
from chalicelib.errors import MalformedEventError

DIGEST_SUFFIX = "-md5"
_EVENT_NAMES = frozenset({"INSERT", "MODIFY", "REMOVE"})


class ItemKind(Enum):
    """What a lock table item is, by its `LockID` and attributes."""

    LOCK = "lock"
    DIGEST = "digest"


@dataclass(frozen=True)
class LockTableChange:
    """One stream record of the lock table: which item changed, and its old and new values."""

    event_name: str
    kind: ItemKind
    state_path: str
    approximate_time: datetime | None
    old_lock: LockInfo | None = None
    new_lock: LockInfo | None = None


@dataclass(frozen=True)
class LockTableBatch:
    """The records of one stream batch: those understood, and why each of the others was not."""

    changes: list[LockTableChange]
    rejected: list[str]


def parse_lock_table_batch(event: Mapping[str, Any], table_name: str | None) -> LockTableBatch:
    """Read a Lambda DynamoDB stream event of the lock table named `table_name` (None: records that name none)."""
    batch = LockTableBatch(changes=[], rejected=[])
    records = event.get("Records")
    if not isinstance(records, list):
        batch.rejected.append("stream event has no Records list")
        return batch
    for record in records:
        try:
            batch.changes.append(parse_lock_table_record(record, table_name))
        except MalformedEventError as exc:
            batch.rejected.append(str(exc))
    return batch


def parse_lock_table_record(record: Any, table_name: str | None) -> LockTableChange:
    """One stream record; raises `MalformedEventError` for a record this guardian cannot use."""
    try:
        event_name = str(record["eventName"])
        body = record["dynamodb"]
        lock_id = body["Keys"]["LockID"]["S"]
        source_arn = record.get("eventSourceARN")
        created_epoch = body.get("ApproximateCreationDateTime")
        old_image, new_image = body.get("OldImage"), body.get("NewImage")
    except (KeyError, TypeError, AttributeError) as exc:
        raise MalformedEventError(f"stream record is missing or has a bad {exc}") from None
    if source_arn is not None and table_of(str(source_arn)) != table_name:
        raise MalformedEventError(f"stream record of another table ({source_arn})")
    if event_name not in _EVENT_NAMES:
        raise MalformedEventError(f"unexpected stream event name {event_name!r}")
    if not isinstance(lock_id, str) or not lock_id:
        raise MalformedEventError("stream record has an empty LockID")
    approximate_time = _time_of(created_epoch)
    if lock_id.endswith(DIGEST_SUFFIX):
        return LockTableChange(
            event_name=event_name,
            kind=ItemKind.DIGEST,
            state_path=lock_id[: -len(DIGEST_SUFFIX)],
            approximate_time=approximate_time,
        )
    old_info, new_info = _string_attribute(old_image, "Info"), _string_attribute(new_image, "Info")
    if old_info is None and new_info is None:
        raise MalformedEventError(f"item {lock_id!r} has neither Info nor Digest")
    old_lock = LockInfo.parse(old_info) if old_info is not None else None
    new_lock = LockInfo.parse(new_info) if new_info is not None else None
    for lock in (old_lock, new_lock):
        if lock is not None and lock.path != lock_id:
            raise MalformedEventError(f"LockInfo Path {lock.path!r} disagrees with LockID {lock_id!r}")
    return LockTableChange(
        event_name=event_name,
        kind=ItemKind.LOCK,
        state_path=lock_id,
        approximate_time=approximate_time,
        old_lock=old_lock,
        new_lock=new_lock,
    )


def _time_of(epoch: Any) -> datetime | None:
    """`ApproximateCreationDateTime`, or None when it is not a time at all (then the handler uses its own clock)."""
    if not isinstance(epoch, (int, float)) or isinstance(epoch, bool):
        return None
    try:
        return datetime.fromtimestamp(epoch, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _string_attribute(image: Any, name: str) -> str | None:
    if not isinstance(image, dict):
        return None
    value = image.get(name)
    if isinstance(value, dict) and isinstance(value.get("S"), str):
        return str(value["S"])
    return None


def table_of(stream_arn: str) -> str:
    """The table of a stream ARN; empty when the ARN names none."""
    # arn:aws:dynamodb:<region>:<account>:table/<name>/stream/<label>
    resource = stream_arn.split(":", 5)[-1]
    parts = resource.split("/")
    return parts[1] if len(parts) > 1 and parts[0] == "table" else ""
