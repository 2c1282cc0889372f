import pytest

from chalicelib.domain.lock_table import ItemKind, parse_lock_table_batch
from chalicelib.domain.locks import LockInfo
from chalicelib.errors import MalformedEventError
from tests.support.events import captured_stream, load_event, state_bytes

TABLE_ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/tf-locks/stream/2026-11-26T11:05:00.486266"


def test_apply_gives_lock_insert_digest_modify_lock_remove() -> None:
    batch = parse_lock_table_batch(captured_stream("tf1.11.4_apply_changing_state.json", TABLE_ARN), "tf-locks")
    assert batch.rejected == []
    assert [(c.event_name, c.kind) for c in batch.changes] == [
        ("INSERT", ItemKind.LOCK),
        ("MODIFY", ItemKind.DIGEST),
        ("REMOVE", ItemKind.LOCK),
    ]
    insert, digest, remove = batch.changes
    assert insert.new_lock is not None and insert.new_lock.operation == "OperationTypeApply"
    assert insert.new_lock.who == "root@vm" and insert.state_path == "tfstate-probe/app/terraform.tfstate"
    assert remove.old_lock == insert.new_lock and remove.new_lock is None
    assert digest.state_path == "tfstate-probe/app/terraform.tfstate"


def test_workspace_delete_removes_the_digest_item_which_is_not_a_lock() -> None:
    batch = parse_lock_table_batch(captured_stream("tf1.11.4_workspace_delete.json"), "tf-locks")
    digests = [c for c in batch.changes if c.kind is ItemKind.DIGEST]
    assert [c.event_name for c in digests] == ["REMOVE"]
    assert all(c.old_lock is None and c.new_lock is None for c in digests)
    locks = [c for c in batch.changes if c.kind is ItemKind.LOCK]
    assert {c.new_lock.operation for c in locks if c.new_lock} == {"state-replace-provider"}


def test_derived_lambda_event_is_read_whole() -> None:
    event = load_event("stream/derived_lambda_event_tf1.11.4_apply_changing_state.json")
    assert len(parse_lock_table_batch(event, "tf-locks").changes) == 3


def test_poison_records_are_rejected_and_the_rest_kept() -> None:
    good = captured_stream("tf1.11.4_plan.json")["Records"]
    lock_item = good[0]
    bad_info = {
        **lock_item,
        "dynamodb": {**lock_item["dynamodb"], "NewImage": {"LockID": {"S": "b/k"}, "Info": {"S": "{"}}},
    }
    no_attributes = {**lock_item, "dynamodb": {**lock_item["dynamodb"], "NewImage": {"LockID": {"S": "b/k"}}}}
    other_table = {**lock_item, "eventSourceARN": "arn:aws:dynamodb:us-east-1:1:table/other/stream/x"}
    batch = parse_lock_table_batch(
        {"Records": [bad_info, no_attributes, other_table, {"eventName": "INSERT"}, None, *good]}, "tf-locks"
    )
    assert len(batch.changes) == len(good)
    assert len(batch.rejected) == 5


def test_lock_info_parses_captured_lockfile_body() -> None:
    info = LockInfo.parse(state_bytes("tflock_body_tf1.11.4_lockfile_only.json").decode())
    assert info.operation == "OperationTypeApply" and info.path.endswith("/terraform.tfstate")


@pytest.mark.parametrize("raw", ["", "[]", '{"ID": 1}', '{"ID":"a","Operation":"x","Who":"w","Version":"1"}'])
def test_lock_info_refuses_broken_json(raw: str) -> None:
    with pytest.raises(MalformedEventError):
        LockInfo.parse(raw)
