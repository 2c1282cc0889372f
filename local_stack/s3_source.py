"""The local S3 event source: watches object versions and builds S3 events in the AWS shape.

The emulator's own notifications lack `versionId`, `sequencer` and `userIdentity`, send nothing for
delete markers, and encode `/` in keys. Watching the version listing gives every write, delete
marker and permanent version delete, from which this builds the records AWS would deliver.
"""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote_plus

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

LOCAL_PRINCIPAL = "AWS:LOCAL-EMULATOR"


@dataclass(frozen=True)
class _Version:
    key: str
    version_id: str
    last_modified: datetime
    delete_marker: bool
    is_latest: bool
    position: int  # in the listing of its kind, where each key's entries come newest first
    size: int | None
    etag: str | None

    def chronological(self) -> tuple[datetime, bool, bool, int]:
        # The emulator's timestamps are whole seconds: within one, the latest entry is the newest,
        # and the listing order (newest first) decides the rest.
        return (self.last_modified, self.is_latest, self.delete_marker, -self.position)


class VersionWatcher:
    """Turns changes in a bucket's version listing into AWS-shaped S3 event records."""

    def __init__(self, client: S3Client, bucket: str, region: str, configuration_id: str) -> None:
        self._client = client
        self._bucket = bucket
        self._region = region
        self._configuration_id = configuration_id
        self._known: dict[tuple[str, str], _Version] = {}
        self._sequence = itertools.count(1)

    def baseline(self) -> None:
        """Take what is there now as already seen, so that only later changes give events."""
        self._known = self._list()

    def poll(self) -> list[dict[str, Any]]:
        """One Lambda S3 event (one record each, as S3 sends them) per change since the last poll, oldest first."""
        current = self._list()
        created = [version for ident, version in current.items() if ident not in self._known]
        removed = [version for ident, version in self._known.items() if ident not in current]
        self._known = current
        created.sort(key=_Version.chronological)
        events = [self._event(version, removed=False) for version in created]
        events += [self._event(version, removed=True) for version in removed]
        return events

    def _list(self) -> dict[tuple[str, str], _Version]:
        versions: dict[tuple[str, str], _Version] = {}
        position = itertools.count()
        for page in self._client.get_paginator("list_object_versions").paginate(Bucket=self._bucket):
            for item in page.get("Versions", []):
                version = _Version(
                    key=item["Key"],
                    version_id=item["VersionId"],
                    last_modified=item["LastModified"],
                    delete_marker=False,
                    is_latest=item.get("IsLatest", False),
                    position=next(position),
                    size=item.get("Size"),
                    etag=item.get("ETag", "").strip('"') or None,
                )
                versions[(version.key, version.version_id)] = version
            for marker in page.get("DeleteMarkers", []):
                version = _Version(
                    key=marker["Key"],
                    version_id=marker["VersionId"],
                    last_modified=marker["LastModified"],
                    delete_marker=True,
                    is_latest=marker.get("IsLatest", False),
                    position=next(position),
                    size=None,
                    etag=None,
                )
                versions[(version.key, version.version_id)] = version
        return versions

    def _event(self, version: _Version, *, removed: bool) -> dict[str, Any]:
        obj: dict[str, Any] = {"key": quote_plus(version.key, safe="/"), "versionId": version.version_id}
        if removed:
            event_name = "ObjectRemoved:Delete"
            event_time = datetime.now(UTC)
        elif version.delete_marker:
            event_name = "ObjectRemoved:DeleteMarkerCreated"
            event_time = version.last_modified
        else:
            event_name = "ObjectCreated:Put"
            event_time = version.last_modified
            obj.update(size=version.size, eTag=version.etag)
        obj["sequencer"] = f"{next(self._sequence):016X}"
        record = {
            "eventVersion": "2.1",
            "eventSource": "aws:s3",
            "awsRegion": self._region,
            "eventTime": event_time.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "eventName": event_name,
            "userIdentity": {"principalId": LOCAL_PRINCIPAL},
            "requestParameters": {"sourceIPAddress": "127.0.0.1"},
            "responseElements": {"x-amz-request-id": uuid.uuid4().hex[:16].upper(), "x-amz-id-2": uuid.uuid4().hex},
            "s3": {
                "s3SchemaVersion": "1.0",
                "configurationId": self._configuration_id,
                "bucket": {
                    "name": self._bucket,
                    "ownerIdentity": {"principalId": LOCAL_PRINCIPAL},
                    "arn": f"arn:aws:s3:::{self._bucket}",
                },
                "object": obj,
            },
        }
        return {"Records": [record]}
