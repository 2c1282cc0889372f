"""The local EventBridge source: the `aws.s3` event EventBridge delivers for the change an S3 notification reports.

Built on the S3 User Guide's "EventBridge event message structure" (its examples are tests/events/eventbridge): the
same object, version id, sequencer, size and etag as the notification, the key as it is (EventBridge does not
URL-encode it), the time to the second, and the requester as an account id (or `s3.amazonaws.com` for a lifecycle
expiration), where the notification names a principal.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote_plus

from local_stack.acting import LOCAL_ACCOUNT

SOURCE = "aws.s3"
# The `reason` EventBridge gives each S3 notification event it also sends ("Using EventBridge" in the S3 guide).
_CREATED = {
    "ObjectCreated:Put": "PutObject",
    "ObjectCreated:Post": "POST Object",
    "ObjectCreated:Copy": "CopyObject",
    "ObjectCreated:CompleteMultipartUpload": "CompleteMultipartUpload",
}
_DELETED = {
    "ObjectRemoved:Delete": ("DeleteObject", "Permanently Deleted"),
    "ObjectRemoved:DeleteMarkerCreated": ("DeleteObject", "Delete Marker Created"),
    "LifecycleExpiration:Delete": ("Lifecycle Expiration", "Permanently Deleted"),
    "LifecycleExpiration:DeleteMarkerCreated": ("Lifecycle Expiration", "Delete Marker Created"),
}
LIFECYCLE_REQUESTER = "s3.amazonaws.com"
EMPTY_ETAG = "d41d8cd98f00b204e9800998ecf8427e"  # a delete marker's, as the guide's Object Deleted examples show
# Names this module's event ids: the same change always gets the same id, as one event redelivered keeps its own.
_IDS = uuid.UUID("6f1f7c2e-3b0a-4d55-9a57-2d0e8c1b4f10")


def bridge_event(event: dict[str, Any], region: str, account: str = LOCAL_ACCOUNT) -> dict[str, Any] | None:
    """The EventBridge event AWS sends for the one record of a Lambda S3 notification event, or None when it sends
    none an `Object Created` / `Object Deleted` rule would match (a test event, a restore, a tagging, a transition)."""
    records = event.get("Records")
    if not isinstance(records, list) or len(records) != 1:
        return None
    (record,) = records
    name = record.get("eventName")
    if name not in _CREATED and name not in _DELETED:
        return None
    s3, response = record["s3"], record.get("responseElements", {})
    obj, bucket = s3["object"], s3["bucket"]["name"]
    deletion = None
    if name in _CREATED:
        detail_type, reason, etag, size = "Object Created", _CREATED[name], obj.get("eTag"), obj.get("size")
    else:
        detail_type, size = "Object Deleted", None
        reason, deletion = _DELETED[name]
        etag = EMPTY_ETAG if deletion == "Delete Marker Created" else None
    fields = {"key": unquote_plus(obj["key"]), "size": size, "etag": etag}
    fields.update({"version-id": obj.get("versionId"), "sequencer": obj.get("sequencer")})
    lifecycle = reason == "Lifecycle Expiration"
    detail: dict[str, Any] = {
        "version": "0",
        "bucket": {"name": bucket},
        "object": {field: value for field, value in fields.items() if value is not None},
        "request-id": response.get("x-amz-request-id", ""),
        "requester": LIFECYCLE_REQUESTER if lifecycle else account,
    }
    source_ip = record.get("requestParameters", {}).get("sourceIPAddress")
    if source_ip and not lifecycle:  # only a request has one
        detail["source-ip-address"] = source_ip
    detail["reason"] = reason
    if deletion is not None:
        detail["deletion-type"] = deletion
    identity = f"{bucket}/{obj['key']}/{name}/{obj.get('versionId')}/{obj.get('sequencer')}"
    return {
        "version": "0",
        "id": str(uuid.uuid5(_IDS, identity)),
        "detail-type": detail_type,
        "source": SOURCE,
        "account": account,
        "time": _to_the_second(record["eventTime"]),
        "region": region,
        "resources": [f"arn:aws:s3:::{bucket}"],
        "detail": detail,
    }


def _to_the_second(event_time: str) -> str:
    """EventBridge's `time`: the notification's `eventTime` in whole seconds, UTC (`2021-11-12T00:00:00Z`)."""
    moment = datetime.fromisoformat(event_time.replace("Z", "+00:00")).astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
