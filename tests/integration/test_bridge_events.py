"""One change delivered both ways (S3 notification, EventBridge event), each more than once: announced once."""

from typing import Any

import boto3
import pytest

from local_stack.bridge_source import bridge_event
from local_stack.lambda_runtime import LocalLambdaContext
from local_stack.s3_source import VersionWatcher
from local_stack.stack import REGION
from tests.conftest import RunningStack
from tests.support.events import state_bytes

KEY = "env:/staging/my app+x/terraform.tfstate"  # URL-encoded in one shape, as it is in the other


def both_shapes(watcher: VersionWatcher) -> tuple[dict[str, Any], dict[str, Any]]:
    """The one change since the last look, as its S3 notification and as the EventBridge event built from it."""
    (notification,) = watcher.poll()
    bridged = bridge_event(notification, REGION)
    assert bridged is not None
    return notification, bridged


def deliver(stack: RunningStack, *events: dict[str, Any]) -> None:
    for event in events:
        stack.app.on_state_object_event(event, LocalLambdaContext(function_name="on_state_object_event"))


@pytest.mark.parametrize("bridge_first", [False, True])
def test_a_write_and_its_delete_marker_are_each_announced_once(
    aws: boto3.session.Session, stack: RunningStack, bridge_first: bool
) -> None:
    s3, bucket = aws.client("s3"), stack.resources.state_bucket
    # A watcher of the test's own, so that the stack's never delivers these changes: only the test does.
    watcher = VersionWatcher(s3, bucket, REGION, "test")
    watcher.baseline()
    version = s3.put_object(Bucket=bucket, Key=KEY, Body=state_bytes("state_tf1.11.4_first_apply_serial1.json"))
    notification, bridged = both_shapes(watcher)
    assert bridged["detail"]["object"]["key"] == KEY and notification["Records"][0]["s3"]["object"]["key"] != KEY
    first, second = (bridged, notification) if bridge_first else (notification, bridged)
    deliver(stack, first, second, first, second)

    (changed,) = stack.notifications()
    assert (changed["type"], changed["key"], changed["workspace"]) == ("state.changed", KEY, "staging")
    assert changed["details"]["version_id"] == version["VersionId"]
    assert changed["backend"]

    s3.delete_object(Bucket=bucket, Key=KEY)
    notification, bridged = both_shapes(watcher)
    assert bridged["detail"]["deletion-type"] == "Delete Marker Created"
    first, second = (bridged, notification) if bridge_first else (notification, bridged)
    deliver(stack, first, second, second, first)

    assert [n["type"] for n in stack.notifications()] == ["state.changed", "state.deleted"]
    assert stack.notifications()[-1]["key"] == KEY
    assert stack.failures() == ""


def test_an_event_of_a_bucket_no_backend_watches_is_skipped(aws: boto3.session.Session, stack: RunningStack) -> None:
    s3, bucket = aws.client("s3"), stack.resources.state_bucket
    watcher = VersionWatcher(s3, bucket, REGION, "test")
    watcher.baseline()
    s3.put_object(Bucket=bucket, Key=KEY, Body=state_bytes("state_tf1.11.4_first_apply_serial1.json"))
    _, bridged = both_shapes(watcher)
    bridged["detail"]["bucket"]["name"] = "someone-elses-bucket"
    deliver(stack, bridged)
    assert stack.notifications() == []
