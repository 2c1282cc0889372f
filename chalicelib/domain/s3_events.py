"""S3 event notification records, read into typed values (keys decoded, AWS or emulator shape)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any
from urllib.parse import unquote_plus

from chalicelib.errors import MalformedEventError

MAX_KEY_BYTES = 1024  # S3's own limit: a longer key names no object


class ObjectChange(Enum):
    """What happened to the object."""

    CREATED = "created"
    DELETE_MARKER_CREATED = "delete_marker_created"
    DELETED = "deleted"


@dataclass(frozen=True)
class ObjectEvent:
    """One S3 event record about one object version."""

    bucket: str
    key: str
    change: ObjectChange
    event_name: str
    event_time: datetime
    version_id: str | None
    sequencer: str | None
    size: int | None
    principal: str | None

    @property
    def dedupe_token(self) -> str:
        """What identifies this write: the version id, or the sequencer on an unversioned bucket."""
        return self.version_id or self.sequencer or self.event_time.isoformat()


@dataclass(frozen=True)
class S3EventBatch:
    """The records of one Lambda S3 event: those understood, and why each of the others was not."""

    events: list[ObjectEvent]
    rejected: list[str]


def parse_object_events(event: Mapping[str, Any]) -> S3EventBatch:
    """Read what invoked the S3 handler: a Lambda S3 notification, or an S3 event EventBridge forwarded."""
    from chalicelib.domain.s3_bridge_events import is_bridge_event, parse_bridge_event  # noqa: PLC0415 - cycle

    return parse_bridge_event(event) if is_bridge_event(event) else parse_s3_event(event)


def parse_s3_event(event: Mapping[str, Any]) -> S3EventBatch:
    """Read a Lambda S3 event; an `s3:TestEvent` or an event without records gives an empty batch."""
    records = event.get("Records")
    batch = S3EventBatch(events=[], rejected=[])
    if not isinstance(records, list):
        return batch
    for record in records:
        try:
            batch.events.append(parse_s3_record(record))
        except MalformedEventError as exc:
            batch.rejected.append(str(exc))
    return batch


def parse_s3_record(record: Any) -> ObjectEvent:
    """One record of an S3 event; raises `MalformedEventError` naming what is missing."""
    try:
        event_name = str(record["eventName"])
        s3 = record["s3"]
        obj = s3["object"]
        bucket, raw_key = s3["bucket"]["name"], obj["key"]
        if not isinstance(bucket, str) or not isinstance(raw_key, str):
            raise TypeError("bucket name or object key (not a string)")
        key = unquote_plus(raw_key)
        event_time = datetime.fromisoformat(str(record["eventTime"]).replace("Z", "+00:00"))
        identity = record.get("userIdentity")
        principal = identity.get("principalId") if isinstance(identity, dict) else None
        size, version_id, sequencer = obj.get("size"), obj.get("versionId"), obj.get("sequencer")
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise MalformedEventError(f"S3 event record is missing or has a bad {exc}") from None
    check_object_named(bucket, key, "S3 event record")
    return ObjectEvent(
        bucket=bucket,
        key=key,
        change=_change_of(event_name),
        event_name=event_name,
        event_time=event_time,
        version_id=str(version_id) if version_id and version_id != "null" else None,
        sequencer=str(sequencer) if sequencer else None,
        size=size if isinstance(size, int) else None,
        principal=str(principal) if principal else None,
    )


def check_object_named(bucket: str, key: str, what: str) -> None:
    """Refuse an event (`what` names its kind) whose bucket or key is empty, or whose key is longer than S3 allows."""
    if not key or not bucket:
        raise MalformedEventError(f"{what} has an empty bucket name or object key")
    if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise MalformedEventError(f"{what} has a key longer than S3 allows: {key[:80]!r}…")


def _change_of(event_name: str) -> ObjectChange:
    if event_name.startswith("ObjectCreated:"):
        return ObjectChange.CREATED
    if event_name == "ObjectRemoved:DeleteMarkerCreated":
        return ObjectChange.DELETE_MARKER_CREATED
    if event_name.startswith("ObjectRemoved:"):
        return ObjectChange.DELETED
    raise MalformedEventError(f"unexpected S3 event name {event_name!r}")
