"""States in Terraform 0.11's format, and without a lineage, through the S3 event handler and `POST /rollback`."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from chalice.test import Client

from tests.conftest import RunningStack
from tests.support.events import state_bytes

KEY = "legacy/terraform.tfstate"
V3 = "handmade_v3_tf0.11.14_modules.json"


def put(aws, stack: RunningStack, body: bytes) -> str:
    return str(aws.client("s3").put_object(Bucket=stack.resources.state_bucket, Key=KEY, Body=body)["VersionId"])


def rollback(stack: RunningStack, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    with Client(stack.app.app) as client:
        response = client.http.post("/rollback", headers={"Content-Type": "application/json"}, body=json.dumps(body))
    return response.status_code, response.json_body


def current(aws, stack: RunningStack) -> bytes:
    return bytes(aws.client("s3").get_object(Bucket=stack.resources.state_bucket, Key=KEY)["Body"].read())


def test_a_format_3_state_is_announced_and_compared(aws, stack: RunningStack) -> None:
    put(aws, stack, state_bytes(V3))
    stack.pump()
    upgraded = json.loads(state_bytes("state_tf1.11.4_second_apply_serial2.json"))
    upgraded.update(serial=13, lineage=json.loads(state_bytes(V3))["lineage"])
    put(aws, stack, (json.dumps(upgraded, indent=2) + "\n").encode())
    stack.pump()
    first, second = stack.notifications()
    assert stack.failures() == ""
    assert first["type"] == "state.changed" and first["details"]["serial"] == {"before": None, "after": 12}
    assert "module.network.aws_vpc.main" in first["details"]["resources"]["added"]
    assert first["details"]["outputs"]["added"] == ["db_password", "subnet_ids", "web_ips"]
    assert second["details"]["serial"] == {"before": 12, "after": 13}
    assert second["details"]["lineage"]["changed"] is False
    assert "aws_instance.web[1]" in second["details"]["resources"]["removed"]


def test_a_format_3_version_is_restored_with_the_next_serial_and_its_digest(aws, stack: RunningStack) -> None:
    target = put(aws, stack, state_bytes(V3))
    modern = json.loads(state_bytes("state_tf1.11.4_second_apply_serial2.json"))
    modern.update(serial=20, lineage=json.loads(state_bytes(V3))["lineage"])
    put(aws, stack, (json.dumps(modern, indent=2) + "\n").encode())
    status, body = rollback(stack, {"key": KEY, "version_id": target, "dry_run": True})
    assert status == 200, body
    assert body["serial"] == {"before": 20, "after": 21}
    assert "module.network.aws_subnet.private[0]" in body["diff"]["resources"]["added"]
    status, body = rollback(stack, {"key": KEY, "version_id": target, "reason": "back to 0.11"})
    assert status == 200, body
    restored = current(aws, stack)
    assert restored == state_bytes(V3).replace(b'"serial": 12,', b'"serial": 21,')
    digest = aws.client("dynamodb").get_item(
        TableName=stack.resources.lock_table, Key={"LockID": {"S": f"{stack.resources.state_bucket}/{KEY}-md5"}}
    )["Item"]["Digest"]["S"]
    assert digest == hashlib.md5(restored).hexdigest()


def test_a_state_without_a_lineage_is_no_lineage_change_either_way(aws, stack: RunningStack) -> None:
    no_lineage = json.loads(state_bytes("handmade_v4_lineage_missing.json"))
    del no_lineage["serial"]  # Go reads it as 0
    without = put(aws, stack, (json.dumps(no_lineage, indent=2) + "\n").encode())
    with_lineage = put(aws, stack, state_bytes("state_tf1.11.4_second_apply_serial2.json"))
    stack.pump()
    assert [n["details"]["lineage"]["changed"] for n in stack.notifications()] == [False, False]
    assert stack.notifications()[0]["details"]["serial"]["after"] == 0
    status, body = rollback(stack, {"key": KEY, "version_id": without})
    assert status == 200, body
    assert json.loads(current(aws, stack)) == {"serial": 3, **no_lineage}
    status, body = rollback(stack, {"key": KEY, "version_id": with_lineage})
    assert status == 200 and body["serial"] == {"before": 3, "after": 4}
