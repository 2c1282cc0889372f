"""The S3 handler, fed by the local stack's AWS-shaped event source, against the emulator over HTTP."""

import hashlib
import json

import boto3
import pytest

from chalicelib import composition
from chalicelib.errors import ChannelDeliveryError
from tests.conftest import RunningStack
from tests.support.events import EVENTS, state_bytes
from tests.support.secrets import CORPUS, leaks


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
    assert changed["summary"] == "prod/network: serial 1→2: +0 ~1 -0"
    assert changed["details"]["resources"]["changed"] == ["terraform_data.probe"]
    assert changed["details"]["outputs"]["changed"] == ["v"]
    assert changed["workspace"] == "default"


@pytest.mark.parametrize("hand_made", ["first", "second"])
def test_a_hand_made_version_compares_with_terraforms_own(aws, stack, hand_made: str) -> None:
    """A state pushed as compact JSON (`aws s3 cp` of an edited file) next to one Terraform wrote."""
    key = "app/terraform.tfstate"
    first = json.loads(state_bytes("state_tf1.11.4_after_state_push_fake_aws_resources.json"))
    second = json.loads(json.dumps(first))
    second["serial"] += 1
    second["resources"][0]["instances"][0]["attributes"]["instance_type"] = "t3.large"
    for state, name in ((first, "first"), (second, "second")):
        if name == hand_made:
            body = json.dumps(state, separators=(",", ":")).encode()
        else:
            body = (json.dumps(state, indent=2) + "\n").encode()  # Terraform's layout
        put(aws, stack, key, body)
        stack.pump()
    changed = stack.notifications()[1]
    assert stack.failures() == ""
    assert changed["details"]["resources"]["changed"] == ["aws_instance.web[0]"]
    assert changed["summary"] == "app: serial 5→6: +0 ~1 -0"


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
    handler = stack.app.on_state_object_event
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


def test_what_is_not_a_state_write_sends_nothing_and_a_broken_write_at_a_state_key_is_announced(aws, stack) -> None:
    s3 = aws.client("s3")
    bucket = stack.resources.state_bucket
    put(aws, stack, "app/terraform.tfstate.tflock", state_bytes("tflock_body_tf1.11.4_lockfile_only.json"))
    put(aws, stack, "README.md", b"# not a state")
    put(aws, stack, "empty.tfstate", b"")
    put(aws, stack, "binary.tfstate", bytes(range(256)))
    put(aws, stack, "app/terraform.tfstate", state_bytes("state_tf1.11.4_first_apply_serial1.json"))
    stack.pump()
    s3.delete_object(Bucket=bucket, Key="app/terraform.tfstate.tflock")  # a delete marker
    stack.pump()

    said = [(n["key"], n["type"]) for n in stack.notifications()]
    assert said == [
        ("empty.tfstate", "state.unreadable"),
        ("binary.tfstate", "state.unreadable"),
        ("app/terraform.tfstate", "state.changed"),
    ]
    assert stack.failures() == ""


def test_sensitive_values_never_reach_a_notification(aws, stack) -> None:
    put(aws, stack, "checks/terraform.tfstate", state_bytes("state_tf1.11.4_check_results_and_sensitive_output.json"))
    stack.pump()
    (notification,) = stack.notifications()
    assert "s3cr3t" not in json.dumps(notification)
    assert "s3cr3t" not in stack.log_file.read_text()


def test_delete_marker_notifies_with_the_exact_restore(aws, stack) -> None:
    s3 = aws.client("s3")
    bucket, key = stack.resources.state_bucket, "prod/app/terraform.tfstate"
    last = put(aws, stack, key, state_bytes("state_tf1.11.4_second_apply_serial2.json"))
    marker = s3.delete_object(Bucket=bucket, Key=key)["VersionId"]
    stack.pump()
    deleted = stack.notifications()[-1]
    assert deleted["type"] == "state.deleted" and deleted["severity"] == "critical"
    assert deleted["details"]["last_version_id"] == last and deleted["details"]["last_serial"] == 2
    restore = deleted["details"]["restore"]
    assert restore == f"aws s3api delete-object --bucket {bucket} --key {key} --version-id {marker}"
    # The command does what it says: the last version is current again, byte for byte.
    s3.delete_object(Bucket=bucket, Key=key, VersionId=marker)
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    assert body == state_bytes("state_tf1.11.4_second_apply_serial2.json")


def test_permanent_delete_of_the_current_version_gives_copy_and_digest_commands(aws, stack) -> None:
    s3 = aws.client("s3")
    bucket, key = stack.resources.state_bucket, "prod/app/terraform.tfstate"
    first = put(aws, stack, key, state_bytes("state_tf1.11.4_first_apply_serial1.json"))
    second = put(aws, stack, key, state_bytes("state_tf1.11.4_second_apply_serial2.json"))
    stack.pump()
    s3.delete_object(Bucket=bucket, Key=key, VersionId=second)
    stack.pump()
    deleted = stack.notifications()[-1]
    assert deleted["type"] == "state.deleted"
    assert deleted["details"]["version_id"] == second and deleted["details"]["last_version_id"] == first
    restore = deleted["details"]["restore"]
    digest = hashlib.md5(state_bytes("state_tf1.11.4_first_apply_serial1.json")).hexdigest()
    assert f"--copy-source '{bucket}/{key}?versionId={first}'" in restore
    assert digest in restore and stack.resources.lock_table in restore


def test_replayed_events_notify_once(aws, stack) -> None:
    key = "app/terraform.tfstate"
    version = put(aws, stack, key, state_bytes("state_tf1.11.4_first_apply_serial1.json"))
    handler = stack.app.on_state_object_event
    for _ in range(3):
        handler(aws_event(stack.resources.state_bucket, key, version), None)
    stack.pump()  # the local event source delivers the same write a fourth time
    assert len(stack.notifications()) == 1


def test_a_failing_channel_is_retried_without_duplicating_the_others(aws, stack, monkeypatch) -> None:
    notifier = composition.container().home.notifier
    topic = next(channel for channel in notifier.channels if channel.name == "sns")
    real_send = topic.send
    failures = {"left": 4}  # more than one invocation's attempts

    def flaky(notification):
        if failures["left"]:
            failures["left"] -= 1
            raise ChannelDeliveryError("SNS is down")
        real_send(notification)

    monkeypatch.setattr(topic, "send", flaky)
    monkeypatch.setattr(notifier, "_sleep", lambda seconds: None)
    key = "app/terraform.tfstate"
    version = put(aws, stack, key, state_bytes("state_tf1.11.4_first_apply_serial1.json"))
    event = aws_event(stack.resources.state_bucket, key, version)
    handler = stack.app.on_state_object_event
    with pytest.raises(ChannelDeliveryError):
        handler(event, None)  # three attempts fail: Lambda would retry the event
    handler(event, None)  # the retry reaches SNS on its second attempt
    handler(event, None)  # a late duplicate delivers nothing
    assert len(stack.notifications()) == 1  # the file channel got it once, on the first invocation
    assert failures["left"] == 0


def test_keys_that_are_not_states_are_ignored_by_suffix(aws, stack) -> None:
    put(aws, stack, "app/terraform.tfstate.backup", state_bytes("state_tf1.11.4_first_apply_serial1.json"))
    put(aws, stack, "app/plan.json", state_bytes("state_tf1.11.4_first_apply_serial1.json"))
    stack.pump()
    assert stack.notifications() == []
    assert stack.failures() == ""


def put_digest(aws, stack, key: str, body: bytes) -> None:
    aws.client("dynamodb").put_item(
        TableName=stack.resources.lock_table,
        Item={
            "LockID": {"S": f"{stack.resources.state_bucket}/{key}-md5"},
            "Digest": {"S": hashlib.md5(body).hexdigest()},
        },
    )


def test_a_digest_written_just_after_the_state_never_alarms(aws, stack) -> None:
    key = "app/terraform.tfstate"
    first = state_bytes("state_tf1.11.4_first_apply_serial1.json")
    second = state_bytes("state_tf1.11.4_second_apply_serial2.json")
    put(aws, stack, key, first)
    put_digest(aws, stack, key, first)
    put(aws, stack, key, second)
    stack.pump()  # the event of the second write is seen before its digest is written: a suspect
    put_digest(aws, stack, key, second)
    stack.stack.run_scheduled()
    assert [n["type"] for n in stack.notifications()] == ["state.changed", "state.changed"]


def test_a_digest_left_behind_alarms_once_with_both_digests(aws, stack) -> None:
    key = "app/terraform.tfstate"
    first = state_bytes("state_tf1.11.4_first_apply_serial1.json")
    second = state_bytes("state_tf1.11.4_second_apply_serial2.json")
    put(aws, stack, key, first)
    put_digest(aws, stack, key, first)
    put(aws, stack, key, second)  # Terraform crashed before writing the digest
    stack.pump()
    stack.stack.run_scheduled()
    stack.stack.run_scheduled()
    mismatches = [n for n in stack.notifications() if n["type"] == "digest.mismatch"]
    assert len(mismatches) == 1
    assert mismatches[0]["details"]["calculated"] == hashlib.md5(second).hexdigest()
    assert mismatches[0]["details"]["stored"] == hashlib.md5(first).hexdigest()


def test_no_digest_item_means_no_check(aws, stack) -> None:
    put(aws, stack, "lockfile-only/terraform.tfstate", state_bytes("state_tf1.11.4_first_apply_serial1.json"))
    stack.pump()
    stack.stack.run_scheduled()
    assert [n["type"] for n in stack.notifications()] == ["state.changed"]


@pytest.mark.parametrize("path", sorted(CORPUS.glob("*.tfstate")), ids=lambda p: p.name)
def test_the_secret_corpus_through_every_notification_type(aws, stack, path) -> None:
    """The autouse check in conftest fails this test if a planted secret is said anywhere."""
    s3 = aws.client("s3")
    key = f"corpus/{path.stem}/terraform.tfstate"
    body = path.read_bytes()
    put(aws, stack, key, body)
    put_digest(aws, stack, key, b"other bytes")  # a mismatch too
    changed = json.loads(body)
    changed["serial"] += 1
    for resource in changed["resources"]:
        for instance in resource["instances"]:
            instance["attributes"]["id"] = "changed"
    put(aws, stack, key, json.dumps(changed).encode())
    stack.pump()
    stack.stack.run_scheduled()
    s3.delete_object(Bucket=stack.resources.state_bucket, Key=key)
    stack.pump()
    kinds = [n["type"] for n in stack.notifications()]
    assert kinds == ["state.changed", "state.changed", "digest.mismatch", "state.deleted"]
    text = stack.notify_file.read_text() + stack.log_file.read_text()
    assert leaks(text) == []


@pytest.mark.parametrize("path", sorted((EVENTS / "s3").glob("*.json")), ids=lambda p: p.name)
def test_captured_s3_events_replayed_three_times_never_raise(stack, path) -> None:
    body = json.loads(path.read_text())["Body"]
    if "Records" not in body:
        pytest.skip("s3:TestEvent goes to SQS and SNS destinations only; S3 never sends it to a Lambda function")
    # Aimed at this stack's bucket, where none of their objects exist: each is a clear skip.
    for record in body.get("Records", []):
        record["s3"]["bucket"]["name"] = stack.resources.state_bucket
    for _ in range(3):
        stack.app.on_state_object_event(body, None)
    assert stack.notifications() == []
