from datetime import UTC, datetime

from chalicelib.domain.s3_events import ObjectChange, parse_s3_event
from tests.support.events import load_event


def aws_record(**object_fields: object) -> dict[str, object]:
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": "eu-west-1",
        "eventTime": "2026-11-26T11:05:21.798Z",
        "eventName": "ObjectCreated:Put",
        "userIdentity": {"principalId": "AWS:AIDAEXAMPLE:ci-runner"},
        "s3": {
            "bucket": {"name": "tfstate"},
            "object": {"key": "env%3A/staging/my+app/terraform.tfstate", **object_fields},
        },
    }


def test_captured_emulator_event_decodes_its_key() -> None:
    body = load_event("s3/sqs_message_state_put_workspace_env_prefix.json")["Body"]
    (event,) = parse_s3_event(body).events
    assert event.key == "env:/staging/app/terraform.tfstate"
    assert event.change is ObjectChange.CREATED
    assert event.version_id is None and event.principal is None


def test_aws_shaped_record_keeps_version_sequencer_and_principal() -> None:
    batch = parse_s3_event({"Records": [aws_record(versionId="v2", sequencer="0055AED6DCD90281E5", size=959)]})
    (event,) = batch.events
    assert event.key == "env:/staging/my app/terraform.tfstate"
    assert (event.version_id, event.sequencer, event.size) == ("v2", "0055AED6DCD90281E5", 959)
    assert event.principal == "AWS:AIDAEXAMPLE:ci-runner"
    assert event.event_time == datetime(2026, 11, 26, 11, 5, 21, 798000, tzinfo=UTC)
    assert event.dedupe_token == "v2"


def test_removal_kinds() -> None:
    marker = {**aws_record(versionId="m1"), "eventName": "ObjectRemoved:DeleteMarkerCreated"}
    deleted = {**aws_record(versionId="v1"), "eventName": "ObjectRemoved:Delete"}
    changes = [event.change for event in parse_s3_event({"Records": [marker, deleted]}).events]
    assert changes == [ObjectChange.DELETE_MARKER_CREATED, ObjectChange.DELETED]


def test_test_event_gives_nothing() -> None:
    batch = parse_s3_event(load_event("s3/sqs_message_s3_TestEvent.json")["Body"])
    assert batch.events == [] and batch.rejected == []


def test_malformed_records_are_rejected_one_by_one() -> None:
    good = aws_record(versionId="v1")
    batch = parse_s3_event(
        {
            "Records": [
                {"eventName": "ObjectCreated:Put"},
                {**good, "eventTime": "yesterday"},
                {**good, "eventName": "ObjectRestore:Post"},
                {**good, "s3": {"bucket": {"name": "tfstate"}, "object": "nope"}},
                "not a record",
                good,
            ]
        }
    )
    assert len(batch.events) == 1
    assert len(batch.rejected) == 5
