"""The read-only routes and the two hand repairs, against the emulator."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from chalice.test import Client

from chalicelib.adapters.s3_state_bucket import S3StateBucket
from chalicelib.domain.rollback import with_serial
from tests.conftest import RunningStack
from tests.support.events import state_bytes
from tests.support.secrets import leaks

KEY = "team/app/terraform.tfstate"


def call(stack: RunningStack, method: str, path: str) -> tuple[int, dict[str, Any]]:
    with Client(stack.app.app) as client:
        response = getattr(client.http, method)(path)
    # No state value ever reaches an API answer.
    assert leaks(json.dumps(response.json_body)) == []
    return response.status_code, response.json_body


def put(aws, stack: RunningStack, key: str, body: bytes) -> str:
    return str(aws.client("s3").put_object(Bucket=stack.resources.state_bucket, Key=key, Body=body)["VersionId"])


def lock_info(stack: RunningStack, key: str, lock_id: str) -> str:
    return json.dumps(
        {"ID": lock_id, "Operation": "OperationTypeApply", "Info": "", "Who": "me@laptop", "Version": "1.11.4",
         "Created": "2026-11-26T11:00:00.000000001Z", "Path": f"{stack.resources.state_bucket}/{key}"},
        separators=(",", ":"),
    )  # fmt: skip


def test_states_and_versions_and_diff(aws, stack: RunningStack) -> None:
    first = put(aws, stack, KEY, state_bytes("state_tf1.11.4_first_apply_serial1.json"))
    second = put(aws, stack, KEY, with_serial(state_bytes("state_tf1.11.4_check_results_and_sensitive_output.json"), 2))
    put(aws, stack, "env:/staging/" + KEY, state_bytes("state_tf1.0.3_serial2.json"))
    put(aws, stack, "team/notes.txt", b"not a state")
    aws.client("dynamodb").put_item(
        TableName=stack.resources.lock_table,
        Item={"LockID": {"S": f"{stack.resources.state_bucket}/{KEY}"}, "Info": {"S": lock_info(stack, KEY, "L1")}},
    )
    stack.pump()  # the guardian records the writes and the lock as their events reach it

    status, body = call(stack, "get", "/states")
    assert status == 200
    by_key = {state["key"]: state for state in body["states"]}
    assert set(by_key) == {KEY, "env:/staging/" + KEY}
    assert by_key[KEY]["locked"] is True and by_key[KEY]["lock"]["who"] == "me@laptop"
    assert by_key["env:/staging/" + KEY]["workspace"] == "staging" and not by_key["env:/staging/" + KEY]["locked"]
    assert by_key["env:/staging/" + KEY]["serial"] == 2

    status, body = call(stack, "get", f"/states/versions?key={KEY}")
    assert [v["version_id"] for v in body["versions"]] == [second, first]
    assert [v["current"] for v in body["versions"]] == [True, False]
    assert body["versions"][1]["serial"] == 1 and body["versions"][1]["terraform_version"] == "1.11.4"

    status, body = call(stack, "get", f"/states/diff?key={KEY}&from={first}&to={second}")
    assert status == 200
    assert body["resources"]["removed"] == ["terraform_data.probe"]
    assert body["outputs"]["added"] == ["name", "secret"]  # names only: its sensitive value never shows


def lock_both(aws, stack: RunningStack, item_id: str, lockfile_id: str) -> str:
    """A lock item and a `.tflock` of KEY with these IDs; the lock item's LockID."""
    path = f"{stack.resources.state_bucket}/{KEY}"
    aws.client("dynamodb").put_item(
        TableName=stack.resources.lock_table,
        Item={"LockID": {"S": path}, "Info": {"S": lock_info(stack, KEY, item_id)}},
    )
    aws.client("s3").put_object(
        Bucket=stack.resources.state_bucket, Key=KEY + ".tflock", Body=lock_info(stack, KEY, lockfile_id).encode()
    )
    return path


def test_force_unlock_needs_the_right_id(aws, stack: RunningStack) -> None:
    dynamodb = aws.client("dynamodb")
    path = lock_both(aws, stack, "L1", "L1")
    status, body = call(stack, "delete", f"/locks?key={KEY}&lock_id=WRONG")
    assert (status, body["error"]) == (409, "locked")
    status, body = call(stack, "delete", f"/locks?key={KEY}&lock_id=L1")
    assert status == 200 and body["released"] == ["dynamodb", "lockfile"]
    assert "Item" not in dynamodb.get_item(TableName=stack.resources.lock_table, Key={"LockID": {"S": path}})
    status, body = call(stack, "delete", f"/locks?key={KEY}&lock_id=L1")
    assert (status, body["error"]) == (404, "not_found")


def test_locks_listed_with_the_reapers_verdict(aws, stack: RunningStack) -> None:
    path = f"{stack.resources.state_bucket}/{KEY}"
    aws.client("dynamodb").put_item(
        TableName=stack.resources.lock_table, Item={"LockID": {"S": path}, "Info": {"S": lock_info(stack, KEY, "L1")}}
    )
    status, body = call(stack, "get", "/locks")
    assert status == 200
    (lock,) = body["locks"]
    assert lock["key"] == KEY and lock["lock"]["who"] == "me@laptop" and lock["verdict"] in {"fresh", "stale"}
    assert lock["action"] in {"none", "would-warn"}  # listing never acts


def test_digest_repair(aws, stack: RunningStack) -> None:
    body_bytes = state_bytes("state_tf1.11.4_first_apply_serial1.json")
    put(aws, stack, KEY, body_bytes)
    status, body = call(stack, "post", f"/states/digest?key={KEY}")
    assert status == 200 and body["digest"] == hashlib.md5(body_bytes).hexdigest()
    item = aws.client("dynamodb").get_item(
        TableName=stack.resources.lock_table, Key={"LockID": {"S": f"{stack.resources.state_bucket}/{KEY}-md5"}}
    )
    assert item["Item"]["Digest"]["S"] == body["digest"]
    put(aws, stack, KEY, b"garbage")
    status, body = call(stack, "post", f"/states/digest?key={KEY}")
    assert (status, body["error"]) == (422, "not_a_state")


def test_missing_parameters_are_400(stack: RunningStack) -> None:
    for method, path in (("get", "/states/versions"), ("get", "/states/diff?key=a"), ("delete", "/locks?key=a"),
                         ("post", "/states/digest")):  # fmt: skip
        status, body = call(stack, method, path)
        assert (status, body["error"]) == (400, "invalid_request"), path


def test_force_unlock_checks_both_ids_before_releasing_either(aws, stack: RunningStack) -> None:
    dynamodb = aws.client("dynamodb")
    path = lock_both(aws, stack, "L1", "L2")  # a lockfile of another run
    status, body = call(stack, "delete", f"/locks?key={KEY}&lock_id=L1")
    assert (status, body["error"]) == (409, "locked") and body["lock"]["id"] == "L2"
    # Nothing was released: both locks are as they were.
    assert "Item" in dynamodb.get_item(TableName=stack.resources.lock_table, Key={"LockID": {"S": path}})
    aws.client("s3").head_object(Bucket=stack.resources.state_bucket, Key=KEY + ".tflock")


def test_force_unlock_never_answers_409_after_releasing_one_lock(aws, stack: RunningStack, monkeypatch) -> None:
    lock_both(aws, stack, "L1", "L1")
    # The lockfile goes (its holder released it) between the check and its delete.
    monkeypatch.setattr(S3StateBucket, "delete_lockfile_version", lambda self, key, version: False)
    status, body = call(stack, "delete", f"/locks?key={KEY}&lock_id=L1")
    assert status == 200 and body["released"] == ["dynamodb"]
    assert body["left"] == [{"source": "lockfile", "reason": "it changed or went while the other was being released"}]
