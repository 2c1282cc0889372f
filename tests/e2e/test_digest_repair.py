"""Repairs cannot clobber Terraform: `POST /states/digest` refuses while a real Terraform run holds the lock, and
writes the digest only over the one it read, under the state's locks."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from chalice.test import Client

from chalicelib.adapters.dynamo_lock_table import DynamoLockTable
from tests.conftest import RunningStack
from tests.support.terraform import TerraformDir

KEY = "e2e/terraform.tfstate"


def repair(stack: RunningStack) -> tuple[int, dict[str, Any]]:
    with Client(stack.app.app) as client:
        response = client.http.post(f"/states/digest?key={KEY}")
    return response.status_code, response.json_body


def digest(aws, stack: RunningStack) -> str | None:
    item = aws.client("dynamodb").get_item(
        TableName=stack.resources.lock_table,
        Key={"LockID": {"S": f"{stack.resources.state_bucket}/{KEY}-md5"}},
        ConsistentRead=True,
    )
    value = item.get("Item", {}).get("Digest", {}).get("S")
    return str(value) if value is not None else None


def set_digest(aws, stack: RunningStack, value: str) -> None:
    aws.client("dynamodb").put_item(
        TableName=stack.resources.lock_table,
        Item={"LockID": {"S": f"{stack.resources.state_bucket}/{KEY}-md5"}, "Digest": {"S": value}},
    )


def current_md5(aws, stack: RunningStack) -> str:
    body = aws.client("s3").get_object(Bucket=stack.resources.state_bucket, Key=KEY)["Body"].read()
    return hashlib.md5(body).hexdigest()


def test_a_repair_while_terraform_holds_the_lock_is_refused_with_the_holder(
    aws, stack: RunningStack, tf: TerraformDir
) -> None:
    tf.apply()
    with tf.holding_lock("-var", "v=held", answer="no"):
        set_digest(aws, stack, "0" * 32)  # a broken digest: every client fails until it is repaired
        status, body = repair(stack)
        assert (status, body["error"]) == (409, "locked")
        assert body["lock"]["operation"] == "OperationTypeApply" and body["lock"]["who"]
        assert digest(aws, stack) == "0" * 32  # untouched while Terraform holds it
    status, body = repair(stack)
    assert status == 200 and body["stored_before"] == "0" * 32
    assert digest(aws, stack) == current_md5(aws, stack) == body["digest"]
    plan = tf.run("plan", "-no-color", "-input=false", "-detailed-exitcode", check=False)
    assert plan.returncode == 0, plan.stdout + plan.stderr
    # The repair took and released both of Terraform's locks: the next apply takes them at once.
    tf.apply("-var", "v=after")


def test_a_digest_written_while_the_repair_works_is_never_overwritten(
    aws, stack: RunningStack, tf: TerraformDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    tf.apply()
    set_digest(aws, stack, "0" * 32)
    read = DynamoLockTable.digest_of

    def read_then_someone_writes(self: DynamoLockTable, state_path: str) -> str | None:
        found = read(self, state_path)
        set_digest(aws, stack, "f" * 32)  # another writer's digest lands between the read and the repair's write
        return found

    monkeypatch.setattr(DynamoLockTable, "digest_of", read_then_someone_writes)
    status, body = repair(stack)
    assert (status, body["error"]) == (409, "lost_race")
    assert digest(aws, stack) == "f" * 32
