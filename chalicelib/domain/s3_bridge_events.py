"""S3 events as EventBridge delivers them (`aws.s3`, `Object Created` / `Object Deleted`), read into the same values."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from chalicelib.domain.s3_events import ObjectChange, ObjectEvent, S3EventBatch, check_object_named
from chalicelib.errors import MalformedEventError

SOURCE = "aws.s3"
CREATED, DELETED = "Object Created", "Object Deleted"
DETAIL_TYPES = (CREATED, DELETED)
LIFECYCLE = "Lifecycle Expiration"  # an `Object Deleted`'s `reason` when a lifecycle rule expired the object
# `reason` of an `Object Created`, as the S3 notification's event name says it (S3 guide, "Using EventBridge").
_CREATED_BY = {
    "PutObject": "ObjectCreated:Put",
    "POST Object": "ObjectCreated:Post",
    "CopyObject": "ObjectCreated:Copy",
    "CompleteMultipartUpload": "ObjectCreated:CompleteMultipartUpload",
}


def is_bridge_event(event: Mapping[str, Any]) -> bool:
    """An EventBridge event (it has a `detail-type`) rather than a Lambda S3 notification (`Records`)."""
    return "detail-type" in event and "Records" not in event


def parse_bridge_event(event: Mapping[str, Any]) -> S3EventBatch:
    """One EventBridge event of a bucket; any other detail type or source is rejected with its reason."""
    batch = S3EventBatch(events=[], rejected=[])
    try:
        batch.events.append(parse_bridge_detail(event))
    except MalformedEventError as exc:
        batch.rejected.append(str(exc))
    return batch


def parse_bridge_detail(event: Mapping[str, Any]) -> ObjectEvent:
    """The object event an EventBridge S3 event carries; raises `MalformedEventError` naming what is wrong."""
    detail_type, source = event.get("detail-type"), event.get("source")
    if source != SOURCE or detail_type not in DETAIL_TYPES:
        raise MalformedEventError(
            f"not an S3 object event: source {str(source)[:80]!r}, detail-type {str(detail_type)[:80]!r}"
        )
    try:
        detail = event["detail"]
        obj = detail["object"]
        bucket, key = detail["bucket"]["name"], obj["key"]
        if not isinstance(bucket, str) or not isinstance(key, str):
            raise TypeError("bucket name or object key (not a string)")
        # Unlike a notification's key, EventBridge's is the key itself, not URL-encoded, so it is taken as it is. The
        # S3 guide's examples (ev-events) do not say; evidence: a captured `CompleteMultipartUpload` event whose key
        # carries a bare ":" (a notification sends "%3A"), and AWS's own MediaLake guidance, whose fix
        # (aws-solutions-library-samples/guidance-for-medialake-on-aws#21, tested on AWS with keys such as
        # "%2B++ %20.mp3" and "test+b.png") decodes notification keys and uses EventBridge keys as delivered.
        event_time = datetime.fromisoformat(str(event["time"]).replace("Z", "+00:00"))
        if event_time.tzinfo is None:
            raise ValueError("time (no time zone)")
        size, version_id, sequencer = obj.get("size"), obj.get("version-id"), obj.get("sequencer")
        requester = detail.get("requester")
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise MalformedEventError(f"EventBridge S3 event is missing or has a bad {exc}") from None
    check_object_named(bucket, key, "EventBridge S3 event")
    change, event_name = _change_of(str(detail_type), detail)
    return ObjectEvent(
        bucket=bucket,
        key=key,
        change=change,
        event_name=event_name,
        event_time=event_time,
        version_id=str(version_id) if version_id and version_id != "null" else None,
        sequencer=str(sequencer) if sequencer else None,
        size=size if isinstance(size, int) and not isinstance(size, bool) else None,
        # EventBridge names the requester's account (or an AWS service), not the principal the notification names.
        principal=str(requester) if isinstance(requester, str) and requester else None,
    )


def _change_of(detail_type: str, detail: Mapping[str, Any]) -> tuple[ObjectChange, str]:
    """What happened, and the name an S3 notification gives it (a lifecycle expiration's `LifecycleExpiration:*`)."""
    if detail_type == CREATED:
        reason = detail.get("reason")
        return ObjectChange.CREATED, _CREATED_BY.get(str(reason), "ObjectCreated:Put")
    prefix = "LifecycleExpiration" if detail.get("reason") == LIFECYCLE else "ObjectRemoved"
    deletion = detail.get("deletion-type")
    if deletion == "Delete Marker Created":
        return ObjectChange.DELETE_MARKER_CREATED, f"{prefix}:DeleteMarkerCreated"
    if deletion == "Permanently Deleted":
        return ObjectChange.DELETED, f"{prefix}:Delete"
    raise MalformedEventError(f"EventBridge S3 event has an unexpected deletion-type {str(deletion)[:80]!r}")
