"""`S3StateBucket`: reads state objects and their version history from the state bucket."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.adapters.aws_errors import translate
from chalicelib.domain.state import HeaderIncomplete, StateHeader, parse_state_header
from chalicelib.errors import NotAStateError, StateTooLargeError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


class S3StateBucket:
    """One versioned S3 bucket that holds Terraform states."""

    def __init__(self, client: S3Client, bucket: str, *, header_bytes: int, max_state_bytes: int) -> None:
        self._client = client
        self.name = bucket
        self._header_bytes = header_bytes
        self._max_state_bytes = max_state_bytes

    def read_header(self, key: str, version_id: str | None) -> StateHeader:
        """The header of one state version, from a ranged read of its first bytes when that suffices."""
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
        if total > self._max_state_bytes:
            raise StateTooLargeError(f"{total} bytes is more than the maximum of {self._max_state_bytes}")
        if total <= len(head):
            return parse_state_header(head, complete=True)
        try:
            return parse_state_header(head, complete=False)
        except HeaderIncomplete:
            return parse_state_header(self.read_bytes(key, version_id), complete=True)

    def read_bytes(self, key: str, version_id: str | None) -> bytes:
        """The whole content of one object version."""
        try:
            response = self._client.get_object(**_address(self.name, key, version_id))
            if response["ContentLength"] > self._max_state_bytes:
                raise StateTooLargeError(
                    f"{response['ContentLength']} bytes is more than the maximum of {self._max_state_bytes}"
                )
            return response["Body"].read()
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, f"read s3://{self.name}/{key}") from exc

    def previous_version(self, key: str, version_id: str) -> str | None:
        """The id of the newest version of `key` older than `version_id`, skipping delete markers.

        None when `version_id` is the first version of the key, or is no longer listed.
        """
        found = False
        try:
            pages = self._client.get_paginator("list_object_versions").paginate(Bucket=self.name, Prefix=key)
            for page in pages:
                # S3 lists the versions of one key newest first; delete markers are listed apart.
                for version in page.get("Versions", []):
                    if version.get("Key") != key:
                        continue
                    if found:
                        return version.get("VersionId")
                    found = version.get("VersionId") == version_id
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, f"list versions of s3://{self.name}/{key}") from exc
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
