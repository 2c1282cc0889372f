"""Events of several backends through one handler: each to the backend of its bucket, a lock table shared by two
buckets serving both, and what no backend watches skipped with a reason."""

from __future__ import annotations

import json
from typing import Any

import pytest

from local_stack.stack import LocalBackend, LocalStack
from tests.e2e.conftest import notifications_of
from tests.support.events import captured_stream

TABLE = "tfg-events-locks"
STREAM_ARN = f"arn:aws:dynamodb:us-east-1:123456789012:table/{TABLE}/stream/2026-11-30T00:00:00.000"
BACKENDS = (
    LocalBackend("alpha", "tfg-events-alpha", TABLE),
    LocalBackend("beta", "tfg-events-beta", TABLE),
    LocalBackend("solo", "tfg-events-solo", "tfg-events-solo-locks"),
)


@pytest.fixture
def three(stack_with: Any) -> LocalStack:
    return stack_with(backends=BACKENDS)  # type: ignore[no-any-return]


def records_of(bucket: str, table_arn: str = STREAM_ARN) -> list[dict[str, Any]]:
    """A captured apply's lock records (taken, digest, released), as if written for a state of `bucket`."""
    text = json.dumps(captured_stream("tf1.11.4_apply_changing_state.json")["Records"])
    return [{**record, "eventSourceARN": table_arn} for record in json.loads(text.replace("tfstate-probe", bucket))]


def skipped(caplog: pytest.LogCaptureFixture) -> list[tuple[str, Any]]:
    return [(r.getMessage(), getattr(r, "bucket", None)) for r in caplog.records if "no backend" in r.getMessage()]


def test_one_batch_of_a_shared_table_reaches_both_backends_and_skips_the_rest(three: LocalStack, caplog) -> None:
    assert three.app is not None
    batch = records_of("tfg-events-alpha") + records_of("tfg-events-beta") + records_of("tfg-events-nobody")
    # `solo` watches tfg-events-solo with another table: a record of its bucket from this table is not its lock.
    batch += records_of("tfg-events-solo")
    three.app.on_lock_table_change({"Records": batch}, None)
    told = [(n["type"], n["backend"], n["bucket"]) for n in notifications_of(three)]
    assert told == [
        ("lock.acquired", "alpha", "tfg-events-alpha"), ("lock.released", "alpha", "tfg-events-alpha"),
        ("lock.acquired", "beta", "tfg-events-beta"), ("lock.released", "beta", "tfg-events-beta"),
    ]  # fmt: skip
    assert skipped(caplog) == [
        ("lock of a bucket no backend of this table watches", "tfg-events-nobody"),
        ("lock of a bucket no backend of this table watches", "tfg-events-solo"),
    ]


def test_an_s3_event_of_a_bucket_no_backend_watches_is_skipped(three: LocalStack, caplog) -> None:
    assert three.app is not None
    record = {
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
        "eventTime": "2026-11-30T12:00:00.000Z", "eventName": "ObjectRemoved:DeleteMarkerCreated",
        "userIdentity": {"principalId": "AWS:AROAEXAMPLE:ci"},
        "s3": {"bucket": {"name": "tfg-events-elsewhere"},
               "object": {"key": "x/terraform.tfstate", "versionId": "v1", "sequencer": "01"}},
    }  # fmt: skip
    three.app.on_state_object_event({"Records": [record]}, None)
    assert notifications_of(three) == []
    assert skipped(caplog) == [("event of a bucket no backend watches", "tfg-events-elsewhere")]
