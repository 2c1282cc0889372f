"""`S3StateBucket`: reads state objects and their version history from the state bucket."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.adapters.aws_errors import translate
from chalicelib.domain.locks import LockInfo
from chalicelib.domain.state import HeaderIncomplete, StateHeader, parse_state_header
from chalicelib.domain.state_index import DECODED, Lender, StateIndex, index_state, state_header
from chalicelib.domain.state_keys import LOCKFILE_SUFFIX
from chalicelib.errors import (
    GuardianError,
    MalformedEventError,
    NotAStateError,
    ObjectNotFoundError,
    StateTooLargeError,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

CHUNK_BYTES = 1 << 18
# A state is read in chunks of `CHUNK_BYTES` at first (its header, and all of a small state), then larger ones:
# a thread reads them ahead (see `state_index`), and fewer hand-overs between threads cost less.
LARGE_CHUNK_BYTES = 1 << 20
LOCKFILE_MAX_BYTES = 64 * 1024  # a LockInfo is a few hundred bytes: a larger `.tflock` is never read whole
_PLAIN_MD5 = re.compile(r'"?([0-9a-fA-F]{32})"?')  # an ETag of a multipart upload ends in "-" and its part count


@dataclass(frozen=True)
class ObjectVersion:
    """One entry of a key's history: a version or a delete marker."""

    version_id: str
    last_modified: datetime
    size: int
    is_latest: bool
    delete_marker: bool


@dataclass(frozen=True)
class NewestVersion:
    """The newest version of a key that holds data, and whether it is still the current one."""

    version_id: str
    is_current: bool
    last_modified: datetime


@dataclass(frozen=True)
class Neighbours:
    """Where a version stands in its key's history: when it was written, and the version with data before it."""

    written_at: datetime | None  # None when the version is no longer listed
    previous_version_id: str | None


@dataclass(frozen=True)
class CurrentVersion:
    """What a key's current version is: data, or a delete marker."""

    version_id: str
    delete_marker: bool


class S3StateBucket:
    """One versioned S3 bucket that holds Terraform states."""

    def __init__(self, client: S3Client, bucket: str, *, header_bytes: int, max_state_bytes: int) -> None:
        self._client = client
        self.name = bucket
        self._header_bytes = header_bytes
        self._max_state_bytes = max_state_bytes

    def read_header(self, key: str, version_id: str | None, *, any_size: bool = False) -> StateHeader:
        """The header of one state version, from a ranged read of its first bytes when that suffices.

        `any_size` reads the header of a state larger than the maximum too: it never holds more than a chunk.
        """
        try:
            response = self._client.get_object(
                **_address(self.name, key, version_id), Range=f"bytes=0-{self._header_bytes - 1}"
            )
            head = response["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "InvalidRange":
                raise NotAStateError("the object is empty") from None
            raise translate(exc, f"read s3://{self.name}/{key}") from exc
        except BotoCoreError as exc:
            raise translate(exc, f"read s3://{self.name}/{key}") from exc
        total = _total_size(response.get("ContentRange"), len(head))
        if total > self._max_state_bytes and not any_size:
            raise StateTooLargeError(f"{total} bytes is more than the maximum of {self._max_state_bytes}")
        if total <= len(head):
            return parse_state_header(head, complete=True)
        try:
            return parse_state_header(head, complete=False)
        except HeaderIncomplete:  # rare: a streaming read of it all, never the whole state in memory
            return state_header(lambda: self._chunks(key, version_id, any_size=any_size))

    def read_index(
        self,
        key: str,
        version_id: str | None,
        *,
        like: Lender = None,
        digest: Callable[[], str | None] | None = None,
        begun: Callable[[], object] | None = None,
    ) -> StateIndex:
        """Index one state version in a streaming read, never holding the whole object.

        With `like`, the index's resource digests are of the same kind as that one's, so the two compare, and
        each resource written exactly as in `like` takes its entries from there instead of being read again.
        `like` may be a function that gives it, called once the first bytes have come (see `index_state`): its
        digests are then taken to be in Terraform's layout.

        With `digest`, a function that gives Terraform's digest of the state (its `-md5` item, or None where there
        is none), asked once the object's headers have come, the index carries the MD5 of the bytes to compare
        with it. S3 gives the MD5 of an object written in one request, unencrypted or with SSE-S3, as its ETag:
        when the ETag equals the digest, that is the MD5, and the bytes are not digested again. Otherwise (an
        object written in parts, or encrypted with KMS or a customer's key, whose ETag is not its MD5; or a
        digest that does not match) the MD5 is computed as the bytes stream. Without a digest there is nothing
        to compare, and no MD5.

        `begun` is called as the object's GetObject is about to be sent.
        """
        decoded = isinstance(like, StateIndex) and like.resource_digests == DECODED
        etags: list[str] = []  # of each opening of the object: a state not in Terraform's layout is read twice

        def terraforms() -> str | None:
            """The digest to compare with, or None: none to compare with, or one that could not be read (its
            reader meets the error itself, where it is not mistaken for one of this read)."""
            try:
                return digest() if digest is not None else None
            except GuardianError:
                return None

        def proven(expected: str | None) -> str | None:
            """The MD5 the ETag of the last opening gives, if it is the expected digest."""
            given = _md5_of_etag(etags[-1]) if etags else None
            return given if expected is not None and given == expected.lower() else None

        def md5_wanted() -> bool:
            expected = terraforms()
            return expected is not None and proven(expected) is None

        index = index_state(
            lambda: self._chunks(key, version_id, etags=etags, begun=begun), decoded=decoded, like=like, md5=md5_wanted
        )
        known = None if index.md5 else proven(terraforms())
        return replace(index, md5=known) if known else index

    def read_indexes(self, key: str, first: str, second: str) -> tuple[StateIndex, StateIndex]:
        """Index two versions of a state so that they compare; the second reuses what the first has in common."""
        first_index = self.read_index(key, first)
        second_index = self.read_index(key, second, like=first_index)
        if not first_index.comparable_with(second_index):
            first_index = self.read_index(key, first, like=second_index)
        return first_index, second_index

    def md5_of(self, key: str, version_id: str | None) -> str:
        """The hex MD5 of one object version's bytes, as Terraform's digest item holds it."""
        digest = hashlib.md5(usedforsecurity=False)
        for chunk in self._chunks(key, version_id):
            digest.update(chunk)
        return digest.hexdigest()

    def _chunks(
        self,
        key: str,
        version_id: str | None,
        *,
        any_size: bool = False,
        etags: list[str] | None = None,
        begun: Callable[[], object] | None = None,
    ) -> Iterator[bytes]:
        """One object version's bytes, streamed in chunks; refuses one larger than the maximum state size. Its ETag
        is added to `etags` before the first chunk; `begun` is called before the GetObject."""
        action = f"read s3://{self.name}/{key}"
        if begun is not None:
            begun()
        try:
            response = self._client.get_object(**_address(self.name, key, version_id))
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, action) from exc
        if etags is not None:
            etags.append(response.get("ETag", ""))
        if response["ContentLength"] > self._max_state_bytes and not any_size:
            response["Body"].close()
            raise StateTooLargeError(
                f"{response['ContentLength']} bytes is more than the maximum of {self._max_state_bytes}"
            )
        try:
            body, size = response["Body"], CHUNK_BYTES
            while chunk := body.read(size):
                yield chunk
                size = LARGE_CHUNK_BYTES
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, action) from exc
        finally:
            response["Body"].close()

    def read_lockfile(self, key: str, version_id: str | None) -> LockInfo:
        """The LockInfo in one `.tflock` object version; raises `MalformedEventError` if it is not one."""
        try:
            response = self._client.get_object(**_address(self.name, key, version_id))
            body = _lockfile_body(response)
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, f"read s3://{self.name}/{key}") from exc
        if body is None:
            raise MalformedEventError(f"{key} is more than {LOCKFILE_MAX_BYTES} bytes, too large for a lockfile")
        return LockInfo.parse(body)

    def list_keys(self, prefix: str) -> list[tuple[str, int, datetime]]:
        """Every current object under `prefix` as `(key, size, last modified)`."""
        found: list[tuple[str, int, datetime]] = []
        try:
            for page in self._client.get_paginator("list_objects_v2").paginate(Bucket=self.name, Prefix=prefix):
                found.extend(
                    (item["Key"], item.get("Size", 0), item["LastModified"]) for item in page.get("Contents", [])
                )
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, f"list s3://{self.name}/{prefix}") from exc
        return found

    def read_bytes(self, key: str, version_id: str | None) -> bytes:
        """The whole of one object version, refusing one larger than the maximum state size."""
        return b"".join(self._chunks(key, version_id))

    def current_version(self, key: str) -> CurrentVersion | None:
        """The current version of `key` in one HeadObject call; None when the key has never been written."""
        try:
            response = self._client.head_object(Bucket=self.name, Key=key)
        except ClientError as exc:
            error = translate(exc, f"read s3://{self.name}/{key}")
            headers = exc.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
            if isinstance(error, ObjectNotFoundError):
                if headers.get("x-amz-delete-marker") == "true":
                    return CurrentVersion(headers.get("x-amz-version-id", ""), delete_marker=True)
                return None
            raise error from exc
        except BotoCoreError as exc:
            raise translate(exc, f"read s3://{self.name}/{key}") from exc
        return CurrentVersion(str(response.get("VersionId") or ""), delete_marker=False)

    def history(self, key: str) -> list[ObjectVersion]:
        """Every version and delete marker of exactly `key`, newest first."""
        entries: list[ObjectVersion] = []
        try:
            for page in self._client.get_paginator("list_object_versions").paginate(Bucket=self.name, Prefix=key):
                for version in page.get("Versions", []):
                    if version.get("Key") == key:
                        entries.append(
                            ObjectVersion(
                                version["VersionId"], version["LastModified"], version.get("Size", 0),
                                bool(version.get("IsLatest")), delete_marker=False,
                            )
                        )  # fmt: skip
                for marker in page.get("DeleteMarkers", []):
                    if marker.get("Key") == key:
                        entries.append(
                            ObjectVersion(
                                marker["VersionId"], marker["LastModified"], 0, bool(marker.get("IsLatest")),
                                delete_marker=True,
                            )
                        )  # fmt: skip
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, f"list versions of s3://{self.name}/{key}") from exc
        # The latest first; the rest by time, newest first.
        return sorted(entries, key=lambda entry: (entry.is_latest, entry.last_modified), reverse=True)

    def versions_page(
        self, key: str, *, key_marker: str | None, version_marker: str | None, limit: int
    ) -> tuple[list[ObjectVersion], tuple[str, str] | None]:
        """Up to `limit` versions and delete markers of exactly `key`, newest first, from where the markers say;
        the markers of the next page, if any."""
        listed, following = self._versions_page(key, key_marker, version_marker, limit)
        entries = sorted((entry for name, entry in listed if name == key), key=lambda e: e.last_modified, reverse=True)
        beyond = any(name > key for name, _ in listed)  # the next key with this prefix: this one is done
        return entries, None if beyond else following

    def all_versions_page(
        self, *, key_marker: str | None, version_marker: str | None, limit: int
    ) -> tuple[list[tuple[str, ObjectVersion]], tuple[str, str] | None]:
        """Up to `limit` versions and delete markers of the whole bucket after the markers: keys in order, each
        key's versions newest first, then its delete markers; the markers of the next page, if any."""
        listed, following = self._versions_page("", key_marker, version_marker, limit)
        return sorted(listed, key=lambda entry: entry[0]), following  # stable: S3's order within each key

    def _versions_page(
        self, prefix: str, key_marker: str | None, version_marker: str | None, limit: int
    ) -> tuple[list[tuple[str, ObjectVersion]], tuple[str, str] | None]:
        """One ListObjectVersions page: each key with its version (versions first, then delete markers)."""
        request: dict[str, Any] = {"Bucket": self.name, "Prefix": prefix, "MaxKeys": limit}
        if key_marker:
            request.update(KeyMarker=key_marker, VersionIdMarker=version_marker or "")
        try:
            response = self._client.list_object_versions(**request)
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, f"list versions of s3://{self.name}/{prefix}") from exc
        listed = [
            (
                v["Key"],
                ObjectVersion(v["VersionId"], v["LastModified"], v.get("Size", 0), bool(v.get("IsLatest")), False),
            )
            for v in response.get("Versions", [])
        ] + [
            (m["Key"], ObjectVersion(m["VersionId"], m["LastModified"], 0, bool(m.get("IsLatest")), True))
            for m in response.get("DeleteMarkers", [])
        ]
        if not response.get("IsTruncated"):
            return listed, None
        return listed, (str(response.get("NextKeyMarker", "")), str(response.get("NextVersionIdMarker", "")))

    def put_state(self, key: str, body: bytes) -> str:
        """Write a new current version of a state; its version id."""
        try:
            response = self._client.put_object(Bucket=self.name, Key=key, Body=body, ContentType="application/json")
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, f"write s3://{self.name}/{key}") from exc
        return str(response.get("VersionId") or "")

    def create_lockfile(self, state_key: str, body: bytes) -> str | None:
        """Take a lock the way Terraform does (`If-None-Match: *`); its version id, or None if one is held."""
        try:
            response = self._client.put_object(
                Bucket=self.name, Key=state_key + LOCKFILE_SUFFIX, Body=body, IfNoneMatch="*",
                ContentType="application/json",
            )  # fmt: skip
        except ClientError as exc:
            if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") in (409, 412):
                return None
            raise translate(exc, f"lock s3://{self.name}/{state_key}") from exc
        except BotoCoreError as exc:
            raise translate(exc, f"lock s3://{self.name}/{state_key}") from exc
        return str(response.get("VersionId") or "")

    def current_lockfile(self, state_key: str) -> tuple[str, str] | None:
        """The body and version id of the `.tflock` of a state, if one is held.

        The body is empty when the object is too large to be a LockInfo: the lock is held all the same.
        """
        try:
            response = self._client.get_object(Bucket=self.name, Key=state_key + LOCKFILE_SUFFIX)
            body = _lockfile_body(response)
            return (body or b"").decode("utf-8", errors="replace"), str(response.get("VersionId") or "")
        except ClientError as exc:
            error = translate(exc, f"read s3://{self.name}/{state_key}{LOCKFILE_SUFFIX}")
            if isinstance(error, ObjectNotFoundError):
                return None
            raise error from exc
        except BotoCoreError as exc:
            raise translate(exc, f"read s3://{self.name}/{state_key}{LOCKFILE_SUFFIX}") from exc

    def lockfiles(self) -> list[tuple[str, str, str]]:
        """Every current `.tflock` object as `(key, version id, exact body)`."""
        found: list[tuple[str, str, str]] = []
        try:
            for page in self._client.get_paginator("list_objects_v2").paginate(Bucket=self.name):
                for item in page.get("Contents", []):
                    key = item["Key"]
                    if not key.endswith(LOCKFILE_SUFFIX) or item.get("Size", 0) > LOCKFILE_MAX_BYTES:
                        continue
                    try:
                        response = self._client.get_object(Bucket=self.name, Key=key)
                    except ClientError as exc:
                        if isinstance(translate(exc, key), ObjectNotFoundError):
                            continue  # released while listing
                        raise
                    body = _lockfile_body(response)
                    if body is None:
                        continue  # grew past what a lock can be since it was listed: not a lock
                    found.append((key, response.get("VersionId") or "", body.decode("utf-8", errors="replace")))
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, f"list lockfiles in s3://{self.name}") from exc
        return found

    def delete_lockfile_version(self, key: str, version_id: str) -> bool:
        """Permanently delete the exact `.tflock` version that was verified; a newer lock is never touched."""
        if not key.endswith(LOCKFILE_SUFFIX) or not version_id:
            raise ValueError("only a verified lockfile version may be deleted")
        try:
            self._client.delete_object(Bucket=self.name, Key=key, VersionId=version_id)
        except ClientError as exc:
            error = translate(exc, f"delete s3://{self.name}/{key}")
            if isinstance(error, ObjectNotFoundError):
                return False
            raise error from exc
        except BotoCoreError as exc:
            raise translate(exc, f"delete s3://{self.name}/{key}") from exc
        return True

    def newest_version(self, key: str) -> NewestVersion | None:
        """The newest version of `key` that is not a delete marker; None when there is none."""
        try:
            pages = self._client.get_paginator("list_object_versions").paginate(Bucket=self.name, Prefix=key)
            for page in pages:
                for version in page.get("Versions", []):
                    if version.get("Key") == key:
                        return NewestVersion(
                            version["VersionId"],
                            is_current=bool(version.get("IsLatest")),
                            last_modified=version["LastModified"],
                        )
                if any(v.get("Key", "") > key for v in page.get("Versions", [])):
                    return None
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, f"list versions of s3://{self.name}/{key}") from exc
        return None

    def previous_version(self, key: str, version_id: str) -> str | None:
        """The id of the newest version of `key` older than `version_id`, skipping delete markers.

        None when `version_id` is the first version of the key, or is no longer listed.
        """
        return self.neighbours(key, version_id).previous_version_id

    def neighbours(self, key: str, version_id: str) -> Neighbours:
        """When a version (or delete marker) of `key` was written, and the newest version with data before it."""
        written_at: datetime | None = None
        try:
            pages = self._client.get_paginator("list_object_versions").paginate(Bucket=self.name, Prefix=key)
            for page in pages:
                markers = [m for m in page.get("DeleteMarkers", []) if m.get("Key") == key]
                marker = next((m for m in markers if m.get("VersionId") == version_id), None)
                if marker is not None:
                    written_at = marker["LastModified"]
                # S3 lists the versions of one key newest first; delete markers are listed apart.
                for version in page.get("Versions", []):
                    if version.get("Key") != key:
                        continue
                    if (
                        written_at is not None
                        and version["LastModified"] <= written_at
                        and (marker is not None or version.get("VersionId") != version_id)
                    ):
                        return Neighbours(written_at, version.get("VersionId"))
                    if version.get("VersionId") == version_id:
                        written_at = version["LastModified"]
                if any(v.get("Key", "") > key for v in page.get("Versions", [])):
                    break
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, f"list versions of s3://{self.name}/{key}") from exc
        return Neighbours(written_at, None)


def _lockfile_body(response: Any) -> bytes | None:
    """The body of a `.tflock` read, whatever its listing or headers said, never beyond `LOCKFILE_MAX_BYTES`; None
    when it is larger."""
    stream, body = response["Body"], b""
    while len(body) <= LOCKFILE_MAX_BYTES:
        part: bytes = stream.read(LOCKFILE_MAX_BYTES + 1 - len(body))
        if not part:  # the end: the connection goes back to the pool
            return body
        body += part
    stream.close()  # the rest is never read: the connection goes with it
    return None


def _address(bucket: str, key: str, version_id: str | None) -> dict[str, Any]:
    if version_id:
        return {"Bucket": bucket, "Key": key, "VersionId": version_id}
    return {"Bucket": bucket, "Key": key}


def _total_size(content_range: str | None, read: int) -> int:
    # "bytes 0-4095/12345": the total follows the slash.
    if content_range and "/" in content_range:
        total = content_range.rsplit("/", 1)[1]
        if total.isdigit():
            return int(total)
    return read


def _md5_of_etag(etag: str) -> str | None:
    """The ETag's hex digits when it has the form of an MD5 (which it is, for an object written in one request,
    unencrypted or with SSE-S3); None for any other form."""
    found = _PLAIN_MD5.fullmatch(etag)
    return found.group(1).lower() if found else None
