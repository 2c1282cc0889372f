import json
from urllib.parse import unquote

import boto3
import pytest

from bench.generate_state import generate_state, state_bytes
from chalicelib.adapters.index_store import CONTENT_TYPE, IndexStore
from chalicelib.adapters.s3_state_bucket import S3StateBucket
from chalicelib.domain.index_codec import encode_index
from chalicelib.domain.state_index import StateDiff, index_state
from chalicelib.errors import CorruptIndexError, ObjectNotFoundError

STATES = "states"
INDEXES = "guardian-indexes"
KEY = "env:/prod/network/terraform.tfstate"


@pytest.fixture
def s3(aws: boto3.session.Session):
    client = aws.client("s3")
    for bucket in (STATES, INDEXES):
        client.create_bucket(Bucket=bucket)
    client.put_bucket_versioning(Bucket=STATES, VersioningConfiguration={"Status": "Enabled"})
    return client


def test_an_index_is_kept_and_read_back(s3) -> None:
    store = IndexStore(s3, INDEXES)
    index = index_state([state_bytes(generate_state(40, seed=3))])
    stored = store.put(STATES, KEY, "v1", index)
    assert stored == len(encode_index(index))
    read = store.get(STATES, KEY, "v1")
    assert read == index and read is not None and read.columns is not None
    assert store.put(STATES, KEY, "v1", index) == stored  # kept again: the same bytes


def test_an_index_never_kept_is_none(s3) -> None:
    store = IndexStore(s3, INDEXES)
    assert store.get(STATES, KEY, "v1") is None
    store.put(STATES, KEY, "v1", index_state([state_bytes(generate_state(5))]))
    assert store.get(STATES, KEY, "v2") is None
    assert store.get(STATES, "other/terraform.tfstate", "v1") is None
    assert store.get("other-bucket", KEY, "v1") is None


def test_where_an_index_is_kept(s3) -> None:
    store = IndexStore(s3, INDEXES)
    key = "team a/é/" + "x" * 900 + "/terraform.tfstate"
    store.put(STATES, KEY, "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY.MTRCxf_v", index_state([state_bytes(generate_state(5))]))
    store.put(STATES, key, "odd/version id " * 20, index_state([state_bytes(generate_state(5))]))
    objects = {item["Key"]: item for item in s3.list_objects_v2(Bucket=INDEXES)["Contents"]}
    first = store.object_key(STATES, KEY, "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY.MTRCxf_v")
    assert first == IndexStore.state_prefix(STATES, KEY) + "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY.MTRCxf_v"
    assert first.startswith("indexes/") and len(first) == len("indexes/") + 64 + 1 + 42
    second = store.object_key(STATES, key, "odd/version id " * 20)
    assert set(objects) == {first, second} and len(second) == len("indexes/") + 64 + 1 + 65  # bounded
    head = s3.head_object(Bucket=INDEXES, Key=first)
    assert head["ContentType"] == CONTENT_TYPE
    assert {name: unquote(value) for name, value in head["Metadata"].items()} == {
        "state-bucket": STATES, "state-key": KEY, "state-version-id": "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY.MTRCxf_v"
    }  # fmt: skip
    assert unquote(s3.head_object(Bucket=INDEXES, Key=second)["Metadata"]["state-key"]) == key


def test_an_object_that_is_not_an_index_is_refused(s3) -> None:
    store = IndexStore(s3, INDEXES)
    s3.put_object(Bucket=INDEXES, Key=store.object_key(STATES, KEY, "v1"), Body=json.dumps({"not": "an index"}))
    with pytest.raises(CorruptIndexError):
        store.get(STATES, KEY, "v1")


def test_a_missing_index_bucket_is_an_error_not_an_absent_index(aws: boto3.session.Session) -> None:
    store = IndexStore(aws.client("s3"), "no-such-bucket")
    with pytest.raises(ObjectNotFoundError):
        store.get(STATES, KEY, "v1")
    with pytest.raises(ObjectNotFoundError):
        store.put(STATES, KEY, "v1", index_state([state_bytes(generate_state(5))]))


def test_a_stored_index_stands_for_the_previous_version_of_a_write(s3) -> None:
    """What handling a write does: the previous version's stored index lends to the new version's and diffs with it,
    as reading the previous version's bytes would."""
    state = generate_state(200, seed=6)
    later = json.loads(json.dumps(state))
    later["serial"] += 1
    later["resources"][4]["instances"][0]["attributes"]["ami"] = "ami-new"
    later["resources"].pop(9)
    first = s3.put_object(Bucket=STATES, Key=KEY, Body=state_bytes(state))["VersionId"]
    second = s3.put_object(Bucket=STATES, Key=KEY, Body=state_bytes(later))["VersionId"]
    bucket = S3StateBucket(s3, STATES, header_bytes=4096, max_state_bytes=10_000_000)
    store = IndexStore(s3, INDEXES)
    store.put(STATES, KEY, first, bucket.read_index(KEY, first))
    before = store.get(STATES, KEY, first)
    after = bucket.read_index(KEY, second, like=before)
    store.put(STATES, KEY, second, after)
    today = StateDiff.between(*bucket.read_indexes(KEY, first, second))
    assert StateDiff.between(before, after) == today and today.resources_changed and today.resources_removed
    old, new = store.get_many(STATES, KEY, [first, second])
    assert new is not None and StateDiff.between(old, new) == today
    assert store.get_many(STATES, KEY, [first, "gone", second])[1] is None
