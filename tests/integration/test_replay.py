"""Every captured event replayed three times, and a corpus of poison events and objects, against the emulator.

Replays prove exactly-once: one notification per state version and per lock session, however often AWS
redelivers. Poison proves the other half of at-least-once: what the guardian cannot use is skipped with a
log line and a metric, never raised (Lambda would retry it, and a stream batch would block its shard).
"""

from __future__ import annotations

import hashlib
import json
import random
import uuid
from collections import Counter
from typing import Any
from urllib.parse import quote_plus, unquote_plus

import pytest

from chalicelib.domain.locks import LockInfo
from chalicelib.domain.s3_events import parse_s3_event
from tests.conftest import _SURFACES, RunningStack
from tests.support.events import EVENTS, load_event, state_bytes

CAPTURED_BUCKET = "tfstate-probe"  # the bucket of every capture and of the poison corpus
POISON = EVENTS / "poison"
STATE_FOR_VERSION = {"1.0.3": "state_tf1.0.3_serial2.json", "1.11.4": "state_tf1.11.4_second_apply_serial2.json"}
# Lambda delivers the lock table's stream in batches of this size (app.py).
STREAM_BATCH = 100


def adapted(event: Any, stack: RunningStack) -> Any:
    """A captured event as it would reach the local stack's handlers: its bucket and lock table."""
    text = json.dumps(event).replace(CAPTURED_BUCKET, stack.resources.state_bucket)
    table_arn = stack.resources.lock_table_stream_arn
    adapted_event = json.loads(text)
    for record in adapted_event.get("Records") or [] if isinstance(adapted_event, dict) else []:
        if isinstance(record, dict) and ":table/tf-locks/" in str(record.get("eventSourceARN", "")):
            record["eventSourceARN"] = table_arn
    return adapted_event


def said_metric(name: str) -> float:
    """The total of one metric flushed so far in this test (conftest collects every flush)."""
    total = 0.0
    for where, text in _SURFACES:
        if where != "metrics":
            continue
        values = json.loads(text).get(name, [])
        total += sum(values if isinstance(values, list) else [values])
    return total


def bucket_snapshot(aws, stack: RunningStack) -> list[tuple[str, str]]:
    listed = aws.client("s3").list_object_versions(Bucket=stack.resources.state_bucket)
    return sorted((v["Key"], v["VersionId"]) for v in listed.get("Versions", []) + listed.get("DeleteMarkers", []))


def lock_table_snapshot(aws, stack: RunningStack) -> list[Any]:
    items = aws.client("dynamodb").scan(TableName=stack.resources.lock_table)["Items"]
    return sorted(json.dumps(item, sort_keys=True) for item in items)


def state_snapshot(aws, stack: RunningStack) -> tuple[Any, Any]:
    return bucket_snapshot(aws, stack), lock_table_snapshot(aws, stack)


def assert_no_duplicates(notifications: list[dict[str, Any]]) -> None:
    ids = Counter(n["id"] for n in notifications)
    assert [i for i, count in ids.items() if count > 1] == []


# --- replay of every captured S3 event ------------------------------------------------------------------------


def body_for(record: dict[str, Any], stack: RunningStack, index: int) -> bytes:
    """Bytes for the object a captured record names: Terraform's own when its ETag is known, else a like state."""
    key = unquote_plus(record["s3"]["object"]["key"])
    if key.endswith(".tflock"):
        name = "tflock_body_tf1.11.4_lockfile_only.json"
        info = json.loads(state_bytes(name).replace(CAPTURED_BUCKET.encode(), stack.resources.state_bucket.encode()))
        info["Path"] = f"{stack.resources.state_bucket}/{key.removesuffix('.tflock')}"
        info["ID"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"replay-{index}"))  # each capture is another lock
        return json.dumps(info, separators=(",", ":")).encode()
    etag = record["s3"]["object"].get("eTag")
    for path in sorted((EVENTS / "states").glob("state_*.json")):
        body = path.read_bytes()
        if hashlib.md5(body).hexdigest() == etag:
            return body
    return state_bytes(STATE_FOR_VERSION["1.0.3" if "103" in key else "1.11.4"])


def test_each_captured_s3_event_replayed_three_times_notifies_once(aws, stack: RunningStack) -> None:
    """The emulator's shape as captured (no versionId, no sequencer): the guardian reads the current version."""
    names = sorted(p.name for p in (EVENTS / "s3").glob("sqs_message_*.json"))
    assert len(names) == 7
    for name in names:
        body = adapted(load_event(f"s3/{name}")["Body"], stack)
        if "Records" not in body:  # s3:TestEvent, which S3 sends to queues and topics, never to Lambda
            assert parse_s3_event(body).events == []
            continue
        said = len(stack.notifications())
        (record,) = body["Records"]
        key = unquote_plus(record["s3"]["object"]["key"])
        aws.client("s3").put_object(Bucket=stack.resources.state_bucket, Key=key, Body=body_for(record, stack, 0))
        for _ in range(3):
            stack.app.on_state_object_event(body, None)
        (notification,) = stack.notifications()[said:]
        assert notification["type"] == ("lock.acquired" if key.endswith(".tflock") else "state.changed"), name
        assert notification["key"] == key.removesuffix(".tflock")
    assert said_metric("EventsSkipped") == 0


def test_the_whole_capture_run_replayed_three_times_in_any_order_notifies_once_per_version(
    aws, stack: RunningStack
) -> None:
    """All 74 S3 events of the capture run, each object version written, then delivered in the AWS shape
    (versionId, sequencer) in order, in reverse and shuffled: one notification per state version and per lock."""
    s3 = aws.client("s3")
    bucket = stack.resources.state_bucket
    events: list[dict[str, Any]] = []
    state_versions, lock_ids = set(), set()
    for index, message in enumerate(load_event("run/all_sqs_messages_in_order.json")):
        for record in adapted(message["Body"], stack)["Records"]:
            key = unquote_plus(record["s3"]["object"]["key"])
            body = body_for(record, stack, index)
            version = s3.put_object(Bucket=bucket, Key=key, Body=body)["VersionId"]
            if key.endswith(".tflock"):
                lock_ids.add(json.loads(body)["ID"])
            else:
                state_versions.add(version)
            record["s3"]["object"].update(key=quote_plus(key, safe="/"), versionId=version, sequencer=f"{index:016X}")
            record["userIdentity"] = {"principalId": "AWS:AIDAEXAMPLE"}
            events.append({"Records": [record]})
    assert len(events) == 74
    shuffled = random.Random(8).sample(events, len(events))
    for event in [*events, *reversed(events), *shuffled]:
        stack.app.on_state_object_event(event, None)

    notifications = stack.notifications()
    assert_no_duplicates(notifications)
    changed = [n for n in notifications if n["type"] == "state.changed"]
    acquired = [n for n in notifications if n["type"] == "lock.acquired"]
    assert len(changed) + len(acquired) == len(notifications)
    assert sorted(n["details"]["version_id"] for n in changed) == sorted(state_versions)
    assert sorted(n["details"]["lock"]["id"] for n in acquired) == sorted(lock_ids)
    assert said_metric("EventsSkipped") == 0


# --- replay of every captured stream record ------------------------------------------------------------------


def stream_events(relative: str, stack: RunningStack) -> list[dict[str, Any]]:
    """A captured stream file as the Lambda events that carry it, in batches of `STREAM_BATCH`."""
    captured = load_event(relative)
    records = captured["Records"] if isinstance(captured, dict) else captured
    records = [{**record, "eventSourceARN": stack.resources.lock_table_stream_arn} for record in records]
    records = adapted({"Records": records}, stack)["Records"]
    return [{"Records": records[start : start + STREAM_BATCH]} for start in range(0, len(records), STREAM_BATCH)]


def lock_sessions(events: list[dict[str, Any]], quiet: frozenset[str]) -> set[tuple[str, str]]:
    """What each lock session should notify: taken once, released once (quiet operations aside)."""
    expected = set()
    for event in events:
        for record in event["Records"]:
            body = record["dynamodb"]
            if body["Keys"]["LockID"]["S"].endswith("-md5"):
                continue
            old = LockInfo.parse(body["OldImage"]["Info"]["S"]) if "OldImage" in body else None
            new = LockInfo.parse(body["NewImage"]["Info"]["S"]) if "NewImage" in body else None
            if old and (not new or new.id != old.id) and old.operation not in quiet:
                expected.add(("lock.released", old.id))
            if new and (not old or old.id != new.id) and new.operation not in quiet:
                expected.add(("lock.acquired", new.id))
    return expected


# The per-scenario captures (`tf*.json`) are replayed three times by test_lock_table_events.py; here the others,
# and the whole capture run, whose 259 records hold 185 that are in no scenario file.
@pytest.mark.parametrize(
    "name",
    [f"stream/{p.name}" for p in sorted((EVENTS / "stream").glob("*.json")) if p.name[:2] != "tf"]
    + ["run/all_records_in_order.json"],
)
def test_each_captured_stream_replayed_three_times_notifies_once_per_lock_session(
    stack: RunningStack, name: str
) -> None:
    events = stream_events(name, stack)
    for _ in range(3):
        for event in events:
            stack.app.on_lock_table_change(event, None)
    notifications = stack.notifications()
    assert_no_duplicates(notifications)
    got = [(n["type"], n["details"]["lock"]["id"]) for n in notifications]
    assert len(got) == len(set(got))
    assert set(got) == lock_sessions(events, frozenset({"OperationTypePlan"}))
    assert said_metric("RecordsSkipped") == 0
    if name == "run/all_records_in_order.json":
        assert len(got) > 100  # the whole capture run: every lock Terraform took in it


# --- poison S3 events -----------------------------------------------------------------------------------------
# Each corpus is looped over in one test, on one stack (a stack per file would cost a second each); a file that
# misbehaves is named in the failure, with the others' results.

# The S3 handler is a plain function (`@app.lambda_function`): Chalice builds nothing from the event, so no poison
# file raises before the guardian's own parsing. Each is also delivered behind a first record that is fine.


def benign_record(stack: RunningStack) -> dict[str, Any]:
    """A record Chalice can read, about an object that is not a state: the guardian ignores it quietly."""
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "eventTime": "2026-11-26T11:05:21.798Z",
        "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": stack.resources.state_bucket}, "object": {"key": "README.md", "versionId": "v"}},
    }


def test_poison_s3_events_are_skipped_never_raised(aws, stack: RunningStack) -> None:
    s3 = aws.client("s3")
    # A real state where a `..` key would lead if anything resolved it: it must not be read for that key.
    s3.put_object(
        Bucket=stack.resources.state_bucket,
        Key="app/terraform.tfstate",
        Body=state_bytes("state_tf1.11.4_first_apply_serial1.json"),
    )
    before = state_snapshot(aws, stack)
    handler = stack.app.on_state_object_event
    problems: list[str] = []
    for path in sorted((POISON / "s3").glob("*.json")):
        event = adapted(json.loads(path.read_text()), stack)
        records = event.get("Records")
        skipped = said_metric("EventsSkipped")
        try:
            for _ in range(3):
                handler(event, None)
                if isinstance(records, list) and records:
                    handler({"Records": [benign_record(stack), *records]}, None)
                else:
                    assert parse_s3_event(event).events == []
        except Exception as exc:  # reported with the file's name below
            problems.append(f"{path.name}: raised {exc!r}"[:300])
            continue
        if isinstance(records, list) and records:
            got = said_metric("EventsSkipped") - skipped
            if got != 6 * len(records):
                problems.append(f"{path.name}: {got} records skipped, expected {6 * len(records)}")
    assert problems == []
    assert stack.notifications() == []
    assert state_snapshot(aws, stack) == before


# --- poison state objects -------------------------------------------------------------------------------------


def aws_event(bucket: str, key: str, version_id: str, name: str = "ObjectCreated:Put") -> dict[str, Any]:
    record = {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "eventTime": "2026-11-26T11:05:21.798Z",
        "eventName": name,
        "userIdentity": {"principalId": "AWS:AIDAEXAMPLE"},
        "s3": {
            "bucket": {"name": bucket},
            "object": {"key": quote_plus(key, safe="/"), "versionId": version_id, "sequencer": "01"},
        },
    }
    return {"Records": [record]}


def test_poison_state_objects_are_announced_once_and_the_next_write_notifies_once(aws, stack: RunningStack) -> None:
    """Each poison object at a state key: one `state.unreadable` however often delivered, nothing changed; then a
    good write, delivered twice, notifies once, comparing with nothing; deleting that reads the poison version as
    the last one, no crash."""
    s3 = aws.client("s3")
    bucket = stack.resources.state_bucket
    good = state_bytes("state_tf1.11.4_second_apply_serial2.json")
    handler = stack.app.on_state_object_event
    problems: list[str] = []
    names = sorted(p.name for p in (POISON / "objects").iterdir())
    for name in names:
        key = f"poison/{name.removesuffix('.tfstate')}/terraform.tfstate"
        poison = s3.put_object(Bucket=bucket, Key=key, Body=(POISON / "objects" / name).read_bytes())["VersionId"]
        before, said = state_snapshot(aws, stack), len(stack.notifications())
        try:
            for _ in range(3):
                handler(aws_event(bucket, key, poison), None)
            announced = stack.notifications()[said:]
            if [(n["type"], n["details"]["version_id"]) for n in announced] != [("state.unreadable", poison)]:
                problems.append(f"{name}: not announced exactly once as state.unreadable: {announced}"[:300])
            said += len(announced)
            if state_snapshot(aws, stack) != before:
                problems.append(f"{name}: something changed")
            after = s3.put_object(Bucket=bucket, Key=key, Body=good)["VersionId"]
            for _ in range(2):
                handler(aws_event(bucket, key, after), None)
            s3.delete_object(Bucket=bucket, Key=key, VersionId=after)
            handler(aws_event(bucket, key, after, "ObjectRemoved:Delete"), None)
        except Exception as exc:  # reported with the file's name below
            problems.append(f"{name}: raised {exc!r}"[:300])
            continue
        changed, deleted = stack.notifications()[said:]
        if changed["type"] != "state.changed" or changed["details"]["serial"] != {"before": None, "after": 2}:
            problems.append(f"{name}: the good write after it gave {changed['summary']}")
        if changed["details"]["previous_version_id"] != poison:
            problems.append(f"{name}: the good write was not compared with the poison version's place")
        if deleted["type"] != "state.deleted" or deleted["details"]["last_version_id"] != poison:
            problems.append(f"{name}: the delete gave {deleted['summary']}")
    assert problems == []
    assert len(stack.notifications()) == 3 * len(names)


def test_a_state_above_the_size_limit_is_announced_from_its_header_and_diffed_never(aws, stack_with) -> None:
    local = stack_with(extra_env={"GUARDIAN_MAX_STATE_BYTES": "1024"})
    bucket, key = local.resources.state_bucket, "big/terraform.tfstate"
    s3 = aws.client("s3")
    small = s3.put_object(Bucket=bucket, Key=key, Body=state_bytes("state_tf1.11.4_workspace_new_empty_serial1.json"))
    big = s3.put_object(
        Bucket=bucket, Key=key, Body=state_bytes("state_tf1.11.4_after_state_push_fake_aws_resources.json")
    )
    for _ in range(3):
        local.app.on_state_object_event(aws_event(bucket, key, big["VersionId"]), None)
    notify_file = local.options.notify_file
    (announced,) = [json.loads(line) for line in notify_file.read_text().splitlines()]
    assert announced["type"] == "state.changed" and announced["details"]["too_large"] is True
    assert announced["details"]["resources"] is None and announced["details"]["serial"]["before"] == 1
    assert "too large to diff" in announced["summary"]
    local.app.on_state_object_event(aws_event(bucket, key, small["VersionId"]), None)
    assert [json.loads(line)["type"] for line in notify_file.read_text().splitlines()] == ["state.changed"] * 2


# --- poison stream records ------------------------------------------------------------------------------------


def test_poison_stream_records_are_skipped_never_raised(aws, stack: RunningStack) -> None:
    """Each poison batch, three times: skipped record by record, never raised (a raise blocks the shard until the
    records expire); behind good records in one batch, the good ones still notify once."""
    captured = json.dumps(stream_events("stream/tf1.11.4_apply_changing_state.json", stack)[0]["Records"])
    lock_id = json.loads(captured)[0]["dynamodb"]["NewImage"]["Info"]["S"]
    lock_id = json.loads(lock_id)["ID"]
    before = state_snapshot(aws, stack)
    handler = stack.app.on_lock_table_change
    problems: list[str] = []
    for path in sorted((POISON / "stream").glob("*.json")):
        event = adapted(json.loads(path.read_text()), stack)
        records = event.get("Records")
        skipped, said = said_metric("RecordsSkipped"), len(stack.notifications())
        good = json.loads(captured.replace(lock_id, str(uuid.uuid5(uuid.NAMESPACE_URL, path.name))))
        try:
            for _ in range(3):
                handler(event, None)
            if path.name == "creation_time_out_of_range.json":
                # Not poison after all: a lock with a time that is none, timed by the handler's clock instead.
                if [n["type"] for n in stack.notifications()[said:]] != ["lock.acquired"]:
                    problems.append(f"{path.name}: the lock was not taken exactly once")
                continue
            expected_skips = 3 * (len(records) if isinstance(records, list) else 1)
            if said_metric("RecordsSkipped") - skipped != expected_skips or len(stack.notifications()) != said:
                problems.append(f"{path.name}: not skipped record by record on each delivery, or it notified")
            if isinstance(records, list):
                handler({"Records": [*good[:1], *records, *good[1:]]}, None)
                if [n["type"] for n in stack.notifications()[said:]] != ["lock.acquired", "lock.released"]:
                    problems.append(f"{path.name}: the good records behind it did not notify once")
        except Exception as exc:  # reported with the file's name below
            problems.append(f"{path.name}: raised {exc!r}"[:300])
    assert problems == []
    assert state_snapshot(aws, stack) == before
