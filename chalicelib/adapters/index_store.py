"""`IndexStore`: each state version's index, kept in the guardian's own bucket (see `index_codec`)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING
from urllib.parse import quote

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.adapters.aws_errors import translate
from chalicelib.domain.index_codec import decode_index, encode_index
from chalicelib.domain.state_index import StateIndex
from chalicelib.errors import ObjectNotFoundError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

PREFIX = "indexes/"
CONTENT_TYPE = "application/octet-stream"
# A version id as S3 writes them (32 characters of these) is kept as it is; any other is replaced by its digest,
# marked with a `~` that no kept one holds, so that every object key stays short.
_PLAIN_VERSION_ID = re.compile(r"[A-Za-z0-9._=+-]{1,128}")
_METADATA_BYTES = 1800  # S3 allows 2 KB of user metadata: a state key too long to fit is left out


class IndexStore:
    """The guardian's index bucket: one object per state version, at `indexes/<state>/<version id>`, where
    `<state>` is the SHA-256 of `<state bucket>/<state key>`; the state's bucket and key are in its metadata."""

    def __init__(self, client: S3Client, bucket: str) -> None:
        self._client = client
        self.bucket = bucket

    @staticmethod
    def state_prefix(state_bucket: str, key: str) -> str:
        """Where the indexes of every version of one state are: what to delete to forget them."""
        state = hashlib.sha256(f"{state_bucket}/{key}".encode("utf-8", "surrogatepass")).hexdigest()
        return f"{PREFIX}{state}/"

    @classmethod
    def object_key(cls, state_bucket: str, key: str, version_id: str) -> str:
        if not _PLAIN_VERSION_ID.fullmatch(version_id):
            version_id = "~" + hashlib.sha256(version_id.encode("utf-8", "surrogatepass")).hexdigest()
        return cls.state_prefix(state_bucket, key) + version_id

    def put(self, state_bucket: str, key: str, version_id: str, index: StateIndex) -> int:
        """Keep one version's index (again, if it was kept before: the same bytes); the bytes it takes."""
        body = encode_index(index)
        metadata = {"state-bucket": quote(state_bucket, safe=""), "state-version-id": quote(version_id, safe="")}
        state_key = quote(key, safe="/")
        if len(state_key) + sum(map(len, metadata.values())) <= _METADATA_BYTES:
            metadata["state-key"] = state_key
        object_key = self.object_key(state_bucket, key, version_id)
        try:
            self._client.put_object(
                Bucket=self.bucket, Key=object_key, Body=body, ContentType=CONTENT_TYPE, Metadata=metadata
            )
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, f"write s3://{self.bucket}/{object_key}") from exc
        return len(body)

    def get(self, state_bucket: str, key: str, version_id: str) -> StateIndex | None:
        """One version's index; None when none was kept. `CorruptIndexError` if the object is not one."""
        object_key = self.object_key(state_bucket, key, version_id)
        action = f"read s3://{self.bucket}/{object_key}"
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=object_key)
            data = response["Body"].read()
        except ClientError as exc:
            error = translate(exc, action)
            # A missing bucket is a setting to fix, not an index never kept.
            if isinstance(error, ObjectNotFoundError) and exc.response.get("Error", {}).get("Code") != "NoSuchBucket":
                return None
            raise error from exc
        except BotoCoreError as exc:
            raise translate(exc, action) from exc
        return decode_index(data)

    def get_many(self, state_bucket: str, key: str, version_ids: Sequence[str]) -> list[StateIndex | None]:
        """Several versions' indexes (`get` of each), read side by side: what a diff of two versions waits for."""
        if len(version_ids) < 2:  # one needs no thread
            return [self.get(state_bucket, key, version_id) for version_id in version_ids]
        with ThreadPoolExecutor(max_workers=min(len(version_ids), 4), thread_name_prefix="index-store") as pool:
            return list(pool.map(lambda version_id: self.get(state_bucket, key, version_id), version_ids))
