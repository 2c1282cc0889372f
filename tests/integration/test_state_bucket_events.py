"""The S3 handler, fed by the local stack's AWS-shaped event source, against the emulator over HTTP."""

import json

import boto3

from tests.conftest import RunningStack
from tests.support.events import state_bytes


def put(aws: boto3.session.Session, stack: RunningStack, key: str, body: bytes) -> str:
    s3 = aws.client("s3")
    return s3.put_object(Bucket=stack.resources.state_bucket, Key=key, Body=body)["VersionId"]


def test_two_writes_give_two_state_changed_notifications(aws, stack: RunningStack) -> None:
    key = "prod/network/terraform.tfstate"
    first = put(aws, stack, key, state_bytes("state_tf1.11.4_first_apply_serial1.json"))
    stack.pump()
    second = put(aws, stack, key, state_bytes("state_tf1.11.4_second_apply_serial2.json"))
    stack.pump()

    created, changed = stack.notifications()
    assert stack.failures() == ""
    assert created["type"] == changed["type"] == "state.changed"
    assert created["details"]["serial"] == {"before": None, "after": 1}
    assert created["details"]["version_id"] == first
    assert changed["details"]["serial"] == {"before": 1, "after": 2}
    assert changed["details"]["version_id"] == second
    assert changed["details"]["previous_version_id"] == first
    assert changed["details"]["lineage"]["changed"] is False
    assert changed["summary"] == "prod/network: serial 1→2"
    assert changed["workspace"] == "default"


def aws_event(bucket: str, key: str, version_id: str) -> dict[str, object]:
    record = {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "eventTime": "2026-11-26T11:05:21.798Z",
        "eventName": "ObjectCreated:Put",
        "userIdentity": {"principalId": "AWS:AIDAEXAMPLE"},
        "s3": {"bucket": {"name": bucket}, "object": {"key": key, "versionId": version_id, "sequencer": "01"}},
    }
    return {"Records": [record]}


def test_predecessor_is_the_previous_version_whatever_order_events_arrive_in(aws, stack) -> None:
    key = "app/terraform.tfstate"
    first = put(aws, stack, key, state_bytes("state_tf1.11.4_first_apply_serial1.json"))
    second = put(aws, stack, key, state_bytes("state_tf1.11.4_second_apply_serial2.json"))
    handler = stack.stack.app.on_state_object_event
    handler(aws_event(stack.resources.state_bucket, key, second), None)
    handler(aws_event(stack.resources.state_bucket, key, first), None)
    later, earlier = stack.notifications()
    assert later["details"]["serial"] == {"before": 1, "after": 2}
    assert later["details"]["previous_version_id"] == first
    assert earlier["details"]["serial"] == {"before": None, "after": 1}


def test_workspace_state_in_a_key_with_special_characters(aws, stack) -> None:
    key = "env:/staging/my app+x/terraform.tfstate"
    put(aws, stack, key, state_bytes("state_tf1.0.3_workspace_new_empty_serial0.json"))
    stack.pump()
    (notification,) = stack.notifications()
    assert notification["key"] == key
    assert notification["workspace"] == "staging"
    assert notification["details"]["terraform_version"] == "1.0.3"


def test_lineage_change_is_critical(aws, stack) -> None:
    key = "app/terraform.tfstate"
    put(aws, stack, key, state_bytes("state_tf1.11.4_first_apply_serial1.json"))
    other = json.loads(state_bytes("push_input_tf1.11.4_other_lineage.json"))
    put(aws, stack, key, json.dumps(other).encode())
    stack.pump()
    last = stack.notifications()[-1]
    assert last["severity"] == "critical"
    assert last["details"]["lineage"]["changed"] is True


def test_what_is_not_a_state_write_sends_nothing(aws, stack) -> None:
    s3 = aws.client("s3")
    bucket = stack.resources.state_bucket
    put(aws, stack, "app/terraform.tfstate.tflock", state_bytes("tflock_body_tf1.11.4_lockfile_only.json"))
    put(aws, stack, "README.md", b"# not a state")
    put(aws, stack, "empty", b"")
    put(aws, stack, "app/terraform.tfstate", state_bytes("state_tf1.11.4_first_apply_serial1.json"))
    stack.pump()
    s3.delete_object(Bucket=bucket, Key="app/terraform.tfstate.tflock")  # a delete marker
    stack.pump()

    assert [n["key"] for n in stack.notifications()] == ["app/terraform.tfstate"]
    assert stack.failures() == ""


def test_sensitive_values_never_reach_a_notification(aws, stack) -> None:
    put(aws, stack, "checks/terraform.tfstate", state_bytes("state_tf1.11.4_check_results_and_sensitive_output.json"))
    stack.pump()
    (notification,) = stack.notifications()
    assert "s3cr3t" not in json.dumps(notification)
    assert "s3cr3t" not in stack.log_file.read_text()
