import json

import boto3
import pytest

from chalicelib.adapters.s3_state_bucket import S3StateBucket
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
