"""EventBridge's S3 events (tests/events/eventbridge, the S3 guide's examples) read into the notification's values."""

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from chalicelib.domain.s3_bridge_events import is_bridge_event, parse_bridge_event
from chalicelib.domain.s3_events import ObjectChange, ObjectEvent, parse_object_events
from tests.support.events import load_event


def bridge(name: str) -> dict[str, Any]:
    event: dict[str, Any] = load_event(f"eventbridge/{name}")
    return event


def only_event(event: dict[str, Any]) -> ObjectEvent:
    batch = parse_object_events(event)
    assert batch.rejected == []
    (parsed,) = batch.events
    return parsed


def rejection(event: dict[str, Any]) -> str:
    batch = parse_object_events(event)
    assert batch.events == []
    (reason,) = batch.rejected
    return reason


def test_documented_put_reads_like_a_notification() -> None:
    event = only_event(bridge("object_created_put.json"))
    assert event == ObjectEvent(
        bucket="amzn-s3-demo-bucket1",
        key="example-key",
        change=ObjectChange.CREATED,
        event_name="ObjectCreated:Put",
        event_time=datetime(2021, 11, 12, tzinfo=UTC),
        version_id="IYV3p45BT0ac8hjHg1houSdS1a.Mro8e",
        sequencer="617f08299329d189",
        size=5,
        principal="123456789012",
    )
    assert event.dedupe_token == "IYV3p45BT0ac8hjHg1houSdS1a.Mro8e"


def test_later_schema_version_with_bucket_tags_reads_the_same() -> None:
    assert only_event(bridge("object_created_put_event_version_1_1.json")) == only_event(
        bridge("object_created_put.json")
    )


@pytest.mark.parametrize(
    ("fixture", "event_name", "size"),
    [
        ("object_created_copy.json", "ObjectCreated:Copy", 5),
        ("object_created_multipart.json", "ObjectCreated:CompleteMultipartUpload", 198524144),
    ],
)
def test_each_creating_api_names_its_event(fixture: str, event_name: str, size: int) -> None:
    event = only_event(bridge(fixture))
    assert (event.change, event.event_name, event.size) == (ObjectChange.CREATED, event_name, size)


def test_key_is_taken_as_delivered_not_url_decoded() -> None:
    # The captured multipart upload's key has a bare ":" a notification would send as "%3A".
    assert only_event(bridge("object_created_multipart.json")).key == "raw/health-check/2023-08-08T14:03:40.532432.zip"
    event = bridge("object_created_put.json")
    event["detail"]["object"]["key"] = "env:/my app+b/a%2Bb/terraform.tfstate"
    assert only_event(event).key == "env:/my app+b/a%2Bb/terraform.tfstate"


@pytest.mark.parametrize(
    ("fixture", "change", "event_name", "principal"),
    [
        (
            "object_deleted_delete_marker.json",
            ObjectChange.DELETE_MARKER_CREATED,
            "ObjectRemoved:DeleteMarkerCreated",
            "123456789012",
        ),
        ("object_deleted_permanently.json", ObjectChange.DELETED, "ObjectRemoved:Delete", "123456789012"),
        (
            "object_deleted_lifecycle.json",
            ObjectChange.DELETE_MARKER_CREATED,
            "LifecycleExpiration:DeleteMarkerCreated",
            "s3.amazonaws.com",
        ),
    ],
)
def test_deletions(fixture: str, change: ObjectChange, event_name: str, principal: str) -> None:
    event = only_event(bridge(fixture))
    assert (event.change, event.event_name, event.principal, event.size) == (change, event_name, principal, None)
    assert event.version_id and event.sequencer


def test_lifecycle_permanent_expiration() -> None:
    event = bridge("object_deleted_lifecycle.json")
    event["detail"]["deletion-type"] = "Permanently Deleted"
    parsed = only_event(event)
    assert (parsed.change, parsed.event_name) == (ObjectChange.DELETED, "LifecycleExpiration:Delete")


def test_version_id_null_of_an_unversioned_bucket_is_no_version() -> None:
    event = bridge("object_created_put.json")
    event["detail"]["object"]["version-id"] = "null"
    parsed = only_event(event)
    assert parsed.version_id is None
    assert parsed.dedupe_token == "617f08299329d189"  # the sequencer then tells writes apart


def test_bridge_events_are_told_from_notifications() -> None:
    assert is_bridge_event(bridge("object_created_put.json"))
    assert not is_bridge_event(load_event("s3/sqs_message_state_put_tf1.11.4.json")["Body"])
    assert not is_bridge_event({"Records": [], "detail-type": "Object Created"})


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda e: e.update(source="aws.s3x"), "not an S3 object event"),
        (lambda e: e.update(source="custom.app"), "not an S3 object event"),
        (lambda e: e.update({"detail-type": "Object Restore Completed"}), "not an S3 object event"),
        (lambda e: e.update({"detail-type": "Object Tags Added"}), "not an S3 object event"),
        (lambda e: e.pop("detail"), "missing or has a bad 'detail'"),
        (lambda e: e.update(detail="nope"), "missing or has a bad"),
        (lambda e: e["detail"].pop("object"), "missing or has a bad 'object'"),
        (lambda e: e["detail"].pop("bucket"), "missing or has a bad 'bucket'"),
        (lambda e: e["detail"]["object"].pop("key"), "missing or has a bad 'key'"),
        (lambda e: e["detail"]["object"].update(key=["a"]), "not a string"),
        (lambda e: e["detail"]["bucket"].update(name=7), "not a string"),
        (lambda e: e["detail"]["object"].update(key=""), "empty bucket name or object key"),
        (lambda e: e["detail"]["bucket"].update(name=""), "empty bucket name or object key"),
        (lambda e: e.pop("time"), "missing or has a bad 'time'"),
        (lambda e: e.update(time="yesterday"), "missing or has a bad"),
        (lambda e: e.update(time="2021-11-12T00:00:00"), "no time zone"),
        (lambda e: e["detail"]["object"].update(key="k" * 1025), "longer than S3 allows"),
        (lambda e: e["detail"]["object"].update(key="é" * 513), "longer than S3 allows"),  # 1,026 bytes
    ],
)
def test_bad_created_events_are_rejected_with_their_reason(change: Any, expected: str) -> None:
    event = copy.deepcopy(bridge("object_created_put.json"))
    change(event)
    assert expected in rejection(event)


def test_longest_key_s3_allows_is_read() -> None:
    event = bridge("object_created_put.json")
    event["detail"]["object"]["key"] = "k" * 1024
    assert only_event(event).key == "k" * 1024


@pytest.mark.parametrize("deletion_type", [None, "Deleted", "delete marker created", 7])
def test_unexpected_deletion_type_is_rejected(deletion_type: object) -> None:
    event = bridge("object_deleted_delete_marker.json")
    if deletion_type is None:
        del event["detail"]["deletion-type"]
    else:
        event["detail"]["deletion-type"] = deletion_type
    assert "unexpected deletion-type" in rejection(event)


def test_overlong_rejection_reason_is_cut() -> None:
    event = bridge("object_created_put.json")
    event["detail-type"] = "x" * 5000
    assert len(rejection(event)) < 250


def test_documented_restore_event_is_not_an_object_change() -> None:
    assert "Object Restore Completed" in rejection(bridge("object_restore_completed.json"))


def test_one_event_gives_one_batch() -> None:
    batch = parse_bridge_event(bridge("object_deleted_permanently.json"))
    assert (len(batch.events), batch.rejected) == (1, [])


def test_the_poison_eventbridge_shape_without_time_is_skipped() -> None:
    assert "'time'" in rejection(load_event("poison/s3/no_records_eventbridge_shape.json"))
