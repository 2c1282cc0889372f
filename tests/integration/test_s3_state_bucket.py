import hashlib
import json

import boto3
import pytest

from chalicelib.adapters.s3_state_bucket import S3StateBucket
from chalicelib.domain import state_index
from chalicelib.errors import NotAStateError, ObjectNotFoundError, StateTooLargeError
from tests.support.events import state_bytes

BUCKET = "states"
KEY = "prod/network/terraform.tfstate"


@pytest.fixture
def s3(aws: boto3.session.Session):
    client = aws.client("s3")
    client.create_bucket(Bucket=BUCKET)
    client.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    return client


def put(s3, body: bytes, key: str = KEY) -> str:
    return str(s3.put_object(Bucket=BUCKET, Key=key, Body=body)["VersionId"])


def state(serial: int, lineage: str = "L1", padding: int = 0) -> bytes:
    document = {"version": 4, "terraform_version": "1.11.4", "serial": serial, "lineage": lineage, "outputs": {}}
    document["resources"] = [{"name": f"r{i}", "instances": []} for i in range(padding)]
    return json.dumps(document, indent=2).encode()


def bucket(s3, header_bytes: int = 4096, max_state_bytes: int = 10_000_000) -> S3StateBucket:
    return S3StateBucket(s3, BUCKET, header_bytes=header_bytes, max_state_bytes=max_state_bytes)


def test_header_of_a_large_state_comes_from_a_ranged_read(s3) -> None:
    # Everything after the first 4 KiB is broken: only a ranged read can still give the header.
    body = state(7, padding=2000)
    assert len(body) > 20_000
    version = put(s3, body[:10_000] + b"\x00 corrupt tail")
    header = bucket(s3).read_header(KEY, version)
    assert (header.serial, header.lineage) == (7, "L1")
    with pytest.raises(NotAStateError):
        bucket(s3, header_bytes=100_000).read_header(KEY, version)


def test_header_falls_back_to_the_whole_object_when_the_prefix_is_too_short(s3) -> None:
    version = put(s3, state_bytes("state_tf1.11.4_second_apply_serial2.json"))
    header = bucket(s3, header_bytes=16).read_header(KEY, version)
    assert header.serial == 2 and header.terraform_version == "1.11.4"


def test_small_state_is_read_whole_in_one_request(s3) -> None:
    version = put(s3, state_bytes("state_tf1.0.3_workspace_new_empty_serial0.json"))
    assert bucket(s3).read_header(KEY, version).serial == 0


def test_too_large_state_is_refused(s3) -> None:
    version = put(s3, state(1, padding=500))
    with pytest.raises(StateTooLargeError):
        bucket(s3, max_state_bytes=1000).read_header(KEY, version)


def test_empty_and_foreign_objects_are_not_states(s3) -> None:
    with pytest.raises(NotAStateError):
        bucket(s3).read_header(KEY, put(s3, b""))
    with pytest.raises(NotAStateError):
        bucket(s3).read_header(KEY, put(s3, b"<html>not a state</html>"))


def test_missing_version_is_not_found(s3) -> None:
    put(s3, state(1))
    with pytest.raises(ObjectNotFoundError):
        bucket(s3).read_header(KEY, "no-such-version")
    with pytest.raises(ObjectNotFoundError):
        bucket(s3).read_header("no/such/key", None)


def test_previous_version_skips_delete_markers_and_other_keys(s3) -> None:
    v1 = put(s3, state(1))
    put(s3, b"{}", key=KEY + ".tflock")
    put(s3, b"{}", key=KEY + ".backup")
    v2 = put(s3, state(2))
    s3.delete_object(Bucket=BUCKET, Key=KEY)  # a delete marker
    v3 = put(s3, state(3))
    states = bucket(s3)
    assert states.previous_version(KEY, v3) == v2
    assert states.previous_version(KEY, v2) == v1
    assert states.previous_version(KEY, v1) is None
    assert states.previous_version(KEY, "unknown") is None


def test_previous_version_pages_through_a_long_history(s3) -> None:
    # Sequential puts: the emulator loses track of versions written concurrently to one key.
    for serial in range(1002):
        put(s3, state(serial))
    listed = [
        version["VersionId"]
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=BUCKET, Prefix=KEY)
        for version in page.get("Versions", [])
    ]
    assert len(listed) == 1002
    # S3 lists 1,000 versions a page: the predecessor of the last on page one is the first on page two.
    assert bucket(s3).previous_version(KEY, listed[999]) == listed[1000]
    assert bucket(s3).previous_version(KEY, listed[1000]) == listed[1001]


@pytest.fixture
def md5_threads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many times a read started digesting the bytes with MD5."""
    started: list[int] = []

    class Counted(state_index._Md5Behind):
        def __init__(self) -> None:
            started.append(1)
            super().__init__()

    monkeypatch.setattr(state_index, "_Md5Behind", Counted)
    return started


def test_an_etag_that_is_terraforms_digest_spares_digesting_the_bytes(s3, md5_threads: list[int]) -> None:
    body = state_bytes("state_tf1.11.4_second_apply_serial2.json")
    version, md5 = put(s3, body), hashlib.md5(body).hexdigest()
    # S3's ETag of an object written in one request (unencrypted or SSE-S3) is its MD5; a digest item in capitals
    # matches it as Terraform's own comparison does.
    index = bucket(s3).read_index(KEY, version, digest=md5.upper)
    assert index.md5 == md5 and index.header.serial == 2 and md5_threads == []
    # No digest item (a lockfile-only backend): nothing to compare, and no MD5.
    assert bucket(s3).read_index(KEY, version, digest=lambda: None).md5 == "" and md5_threads == []
    assert bucket(s3).read_index(KEY, version).md5 == "" and md5_threads == []
    # A digest the ETag does not prove: the bytes' own MD5, computed, for the caller to find the mismatch.
    assert bucket(s3).read_index(KEY, version, digest=lambda: "0" * 32).md5 == md5 and md5_threads == [1]


def test_an_object_written_in_parts_has_its_md5_computed(s3, md5_threads: list[int]) -> None:
    body = state_bytes("state_tf1.11.4_second_apply_serial2.json")
    upload = s3.create_multipart_upload(Bucket=BUCKET, Key=KEY)["UploadId"]
    etag = s3.upload_part(Bucket=BUCKET, Key=KEY, UploadId=upload, PartNumber=1, Body=body)["ETag"]
    done = s3.complete_multipart_upload(
        Bucket=BUCKET, Key=KEY, UploadId=upload, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]}
    )
    assert done["ETag"].strip('"').endswith("-1")  # not an MD5: the MD5 of the parts' MD5s, and their count
    md5 = hashlib.md5(body).hexdigest()
    assert bucket(s3).read_index(KEY, done["VersionId"], digest=lambda: md5).md5 == md5 and md5_threads == [1]


def test_a_digest_that_cannot_be_read_fails_only_its_reader(s3, md5_threads: list[int]) -> None:
    # A missing lock table reads as "not found": were it raised here, the caller would take the state for gone.
    version = put(s3, state_bytes("state_tf1.11.4_second_apply_serial2.json"))

    def unreadable() -> str | None:
        raise ObjectNotFoundError("Requested resource not found")

    index = bucket(s3).read_index(KEY, version, digest=unreadable)
    assert index.header.serial == 2 and index.md5 == "" and md5_threads == []
