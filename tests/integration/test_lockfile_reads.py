"""Every `.tflock` read stops at `LOCKFILE_MAX_BYTES` (plus one), whatever the listing or the headers said."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from chalicelib.adapters.s3_state_bucket import LOCKFILE_MAX_BYTES, S3StateBucket
from chalicelib.errors import MalformedEventError
from tests.support.events import state_bytes

BUCKET = "states"
KEY = "prod/terraform.tfstate"
LOCK = state_bytes("tflock_body_tf1.11.4_lockfile_only.json")
HUGE = b'{"ID": "' + b"x" * (8 * LOCKFILE_MAX_BYTES) + b'"}'


@pytest.fixture
def s3(aws: boto3.session.Session) -> Any:
    client = aws.client("s3")
    client.create_bucket(Bucket=BUCKET)
    client.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    return client


@pytest.fixture
def reads(s3: Any, monkeypatch: pytest.MonkeyPatch) -> list[int | None]:
    """How much each read of a GetObject body asked for."""
    asked: list[int | None] = []
    get_object = s3.get_object

    def recorded(**kwargs: Any) -> Any:
        response = get_object(**kwargs)
        body = response["Body"]
        read = body.read

        def read_at_most(amt: int | None = None) -> bytes:
            asked.append(amt)
            return bytes(read(amt))

        body.read = read_at_most
        return response

    monkeypatch.setattr(s3, "get_object", recorded)
    return asked


def bucket(s3: Any) -> S3StateBucket:
    return S3StateBucket(s3, BUCKET, header_bytes=4096, max_state_bytes=10_000_000)


def test_a_held_lockfile_is_read_whole_and_an_oversized_one_never(s3: Any, reads: list[int | None]) -> None:
    version = s3.put_object(Bucket=BUCKET, Key=KEY + ".tflock", Body=LOCK)["VersionId"]
    assert bucket(s3).current_lockfile(KEY) == (LOCK.decode(), version)
    assert bucket(s3).read_lockfile(KEY + ".tflock", version).id
    huge = s3.put_object(Bucket=BUCKET, Key=KEY + ".tflock", Body=HUGE)["VersionId"]
    assert bucket(s3).current_lockfile(KEY) == ("", huge)  # held all the same: its holder is unknown
    with pytest.raises(MalformedEventError):
        bucket(s3).read_lockfile(KEY + ".tflock", huge)
    assert reads and all(amount is not None and amount <= LOCKFILE_MAX_BYTES + 1 for amount in reads)


def test_a_lockfile_that_grew_after_it_was_listed_is_skipped(
    s3: Any, reads: list[int | None], monkeypatch: pytest.MonkeyPatch
) -> None:
    s3.put_object(Bucket=BUCKET, Key="small/terraform.tfstate.tflock", Body=LOCK)
    s3.put_object(Bucket=BUCKET, Key=KEY + ".tflock", Body=HUGE)
    paginator = s3.get_paginator("list_objects_v2")

    class Understated:
        """The listing as it was a moment before the big lockfile was written: every object small."""

        def paginate(self, **kwargs: Any) -> Any:
            for page in paginator.paginate(**kwargs):
                yield {**page, "Contents": [{**item, "Size": len(LOCK)} for item in page.get("Contents", [])]}

    monkeypatch.setattr(s3, "get_paginator", lambda name: Understated())
    assert [key for key, _, _ in bucket(s3).lockfiles()] == ["small/terraform.tfstate.tflock"]
    assert reads and all(amount is not None and amount <= LOCKFILE_MAX_BYTES + 1 for amount in reads)
