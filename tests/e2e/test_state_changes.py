"""Real `terraform apply` runs against the local stack give exactly the expected `state.changed` notifications."""

from __future__ import annotations

import json

import boto3

from tests.conftest import RunningStack
from tests.support.terraform import TerraformDir


def state_serials(aws: boto3.session.Session, bucket: str, key: str) -> dict[str, int]:
    s3 = aws.client("s3")
    versions = s3.list_object_versions(Bucket=bucket, Prefix=key).get("Versions", [])
    return {
        v["VersionId"]: json.loads(s3.get_object(Bucket=bucket, Key=key, VersionId=v["VersionId"])["Body"].read())[
            "serial"
        ]
        for v in versions
        if v["Key"] == key
    }


def of_type(notifications: list[dict], kind: str) -> list[dict]:
    return [n for n in notifications if n["type"] == kind]


def test_two_applies_notify_twice_and_a_no_op_apply_not_at_all(aws, stack: RunningStack, tf: TerraformDir) -> None:
    tf.apply()
    stack.pump()
    tf.apply("-var", "v=two")
    stack.pump()
    tf.apply("-var", "v=two")  # nothing changes: Terraform writes no state
    stack.pump()
    stack.stack.run_scheduled()  # normal applies never leave a digest mismatch behind

    notifications = stack.notifications()
    assert stack.failures() == ""
    assert [n["type"] for n in notifications] == ["lock.acquired", "lock.released", "state.changed"] * 2 + [
        "lock.acquired",
        "lock.released",
    ]
    first, second = (n["details"] for n in of_type(notifications, "state.changed"))
    serials = state_serials(aws, stack.resources.state_bucket, "e2e/terraform.tfstate")
    assert len(serials) == 2
    assert first["serial"] == {"before": None, "after": serials[first["version_id"]]}
    assert second["serial"] == {"before": serials[first["version_id"]], "after": serials[second["version_id"]]}
    assert second["serial"]["after"] == second["serial"]["before"] + 1
    assert second["previous_version_id"] == first["version_id"]
    assert first["lineage"]["after"] == second["lineage"]["after"] and not second["lineage"]["changed"]
    assert first["terraform_version"] == second["terraform_version"] == tf.terraform.version
    assert all(n["key"] == "e2e/terraform.tfstate" and n["workspace"] == "default" for n in notifications)
    # The holder at write time is the apply that wrote it.
    acquired = of_type(notifications, "lock.acquired")
    assert [d["lock"]["id"] for d in (first, second)] == [a["details"]["lock"]["id"] for a in acquired[:2]]
    assert {d["lock"]["operation"] for d in (first, second)} == {"OperationTypeApply"}
    released = of_type(notifications, "lock.released")
    assert all(r["details"]["held_for_s"] >= 0 for r in released)


def test_a_new_workspace_is_notified_under_its_name(stack: RunningStack, tf: TerraformDir) -> None:
    tf.run("workspace", "new", "-no-color", "staging")
    tf.apply()
    stack.pump()
    notifications = of_type(stack.notifications(), "state.changed")
    assert stack.failures() == ""
    assert {n["key"] for n in notifications} == {"env:/staging/e2e/terraform.tfstate"}
    assert {n["workspace"] for n in notifications} == {"staging"}
    # `workspace new` writes an empty state; the apply writes the next serial.
    assert notifications[-1]["details"]["serial"]["after"] == notifications[0]["details"]["serial"]["after"] + 1


def test_a_lock_held_at_the_prompt_is_in_the_lock_table_until_answered(
    aws, stack: RunningStack, tf: TerraformDir
) -> None:
    dynamodb = aws.client("dynamodb")
    lock_id = f"{stack.resources.state_bucket}/e2e/terraform.tfstate"
    with tf.holding_lock("-var", "v=held"):
        item = dynamodb.get_item(
            TableName=stack.resources.lock_table, Key={"LockID": {"S": lock_id}}, ConsistentRead=True
        )
        info = json.loads(item["Item"]["Info"]["S"])
        assert info["Operation"] == "OperationTypeApply"
        assert info["Path"] == lock_id
        assert info["Version"] == tf.terraform.version
        stack.pump()
        (acquired,) = stack.notifications()  # holding a lock writes no state
        assert acquired["type"] == "lock.acquired" and acquired["details"]["lock"]["id"] == info["ID"]
    item = dynamodb.get_item(TableName=stack.resources.lock_table, Key={"LockID": {"S": lock_id}}, ConsistentRead=True)
    assert "Item" not in item
    stack.pump()
    assert [n["type"] for n in stack.notifications()] == ["lock.acquired", "lock.released", "state.changed"]
