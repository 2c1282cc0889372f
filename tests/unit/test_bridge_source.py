"""The local EventBridge source: the documented `aws.s3` event for each change the local S3 source reports."""

import copy
import re
from datetime import UTC, datetime
from typing import Any

import pytest

from chalicelib.domain.s3_events import ObjectChange, parse_object_events, parse_s3_event
from local_stack.bridge_source import bridge_event
from local_stack.s3_source import VersionWatcher, _Version
from tests.support.events import load_event

REGION = "eu-west-1"
KEY = "env:/staging/my app+x/terraform.tfstate"  # encoded by the notification, as it is by EventBridge
WRITTEN = datetime(2026, 11, 30, 9, 15, 42, 618000, tzinfo=UTC)


def notification(*, delete_marker: bool = False, removed: bool = False, key: str = KEY) -> dict[str, Any]:
    """One Lambda S3 event exactly as the local S3 source builds it."""
    watcher = VersionWatcher(client=None, bucket="tfstate-prod", region=REGION, configuration_id="guardian")  # type: ignore[arg-type]
    version = _Version(
        key=key,
        version_id="3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY",
        last_modified=WRITTEN,
        delete_marker=delete_marker,
        is_latest=True,
        position=0,
        size=None if delete_marker else 959,
        etag=None if delete_marker else "0e8c4b6c0f4b2c1f5e1d2a3b4c5d6e7f",
    )
    return watcher._event(version, removed=removed)


def shape(value: Any) -> Any:
    """The field names of an event, nested; values left out."""
    return {name: shape(inner) for name, inner in value.items()} if isinstance(value, dict) else type(value).__name__


def test_a_write_gives_the_documented_object_created_event() -> None:
    source = notification()
    event = bridge_event(source, REGION)
    assert event is not None
    assert shape(event) == shape(load_event("eventbridge/object_created_put.json"))
    (record,) = source["Records"]
    assert event["detail"]["object"] == {
        "key": KEY,
        "size": 959,
        "etag": "0e8c4b6c0f4b2c1f5e1d2a3b4c5d6e7f",
        "version-id": "3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY",
        "sequencer": record["s3"]["object"]["sequencer"],
    }
    assert event["detail"]["reason"] == "PutObject"
    assert event["detail"]["request-id"] == record["responseElements"]["x-amz-request-id"]
    assert event["detail"]["source-ip-address"] == "127.0.0.1"
    assert (event["time"], event["region"], event["account"]) == ("2026-11-30T09:15:42Z", REGION, "123456789012")
    assert event["resources"] == ["arn:aws:s3:::tfstate-prod"]
    assert re.fullmatch(r"\d{12}", event["detail"]["requester"])
    assert re.fullmatch(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", event["id"])


def test_a_delete_marker_gives_the_documented_object_deleted_event() -> None:
    event = bridge_event(notification(delete_marker=True), REGION)
    assert event is not None
    assert shape(event) == shape(load_event("eventbridge/object_deleted_delete_marker.json"))
    assert (event["detail"]["reason"], event["detail"]["deletion-type"]) == ("DeleteObject", "Delete Marker Created")
    assert "size" not in event["detail"]["object"]


def test_a_version_deleted_for_good_gives_a_permanent_deletion() -> None:
    event = bridge_event(notification(removed=True), REGION)
    assert event is not None
    assert shape(event) == shape(load_event("eventbridge/object_deleted_permanently.json"))
    assert event["detail"]["deletion-type"] == "Permanently Deleted"


def test_a_lifecycle_expiration_is_requested_by_s3_from_no_address() -> None:
    source = notification(delete_marker=True)
    source["Records"][0]["eventName"] = "LifecycleExpiration:DeleteMarkerCreated"
    event = bridge_event(source, REGION)
    assert event is not None
    assert shape(event) == shape(load_event("eventbridge/object_deleted_lifecycle.json"))
    assert (event["detail"]["reason"], event["detail"]["requester"]) == ("Lifecycle Expiration", "s3.amazonaws.com")


@pytest.mark.parametrize(("delete_marker", "removed"), [(False, False), (True, False), (False, True)])
def test_both_shapes_read_as_the_same_change(delete_marker: bool, removed: bool) -> None:
    source = notification(delete_marker=delete_marker, removed=removed)
    (from_notification,) = parse_s3_event(source).events
    event = bridge_event(source, REGION)
    assert event is not None
    (from_bridge,) = parse_object_events(event).events
    same = ("bucket", "key", "change", "event_name", "version_id", "sequencer", "size", "dedupe_token")
    assert {name: getattr(from_bridge, name) for name in same} == {
        name: getattr(from_notification, name) for name in same
    }
    assert from_bridge.event_time == from_notification.event_time.replace(microsecond=0)
    assert from_bridge.principal == "123456789012"


def test_the_same_change_keeps_its_id_and_another_gets_another() -> None:
    source = notification()
    first, again = bridge_event(source, REGION), bridge_event(copy.deepcopy(source), REGION)
    other = bridge_event(notification(delete_marker=True), REGION)
    assert first is not None and again is not None and other is not None
    assert first == again and first["id"] != other["id"]


@pytest.mark.parametrize(
    "event_name",
    ["s3:TestEvent", "ObjectRestore:Completed", "ObjectTagging:Put", "LifecycleTransition", "ObjectAcl:Put"],
)
def test_what_no_object_created_or_deleted_rule_receives_gives_none(event_name: str) -> None:
    source = notification()
    source["Records"][0]["eventName"] = event_name
    assert bridge_event(source, REGION) is None


def test_an_event_without_one_record_gives_none() -> None:
    assert bridge_event(load_event("s3/sqs_message_s3_TestEvent.json")["Body"], REGION) is None
    two = notification()
    two["Records"] *= 2
    assert bridge_event(two, REGION) is None


def test_account_is_the_one_given() -> None:
    event = bridge_event(notification(), REGION, account="210987654321")
    assert event is not None
    assert (event["account"], event["detail"]["requester"]) == ("210987654321", "210987654321")


def test_no_change_is_lost_or_invented_across_kinds() -> None:
    kinds = {
        ObjectChange.CREATED: notification(),
        ObjectChange.DELETE_MARKER_CREATED: notification(delete_marker=True),
        ObjectChange.DELETED: notification(removed=True),
    }
    for change, source in kinds.items():
        event = bridge_event(source, REGION)
        assert event is not None
        assert [parsed.change for parsed in parse_object_events(event).events] == [change]
