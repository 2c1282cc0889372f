"""The stream handler: captured Terraform records, records from the emulator's stream, and poison records."""

import json

import pytest

from chalicelib import composition
from chalicelib.domain.locks import LockInfo
from tests.conftest import RunningStack
from tests.support.events import EVENTS, captured_stream


def emitted_metrics(output: str) -> dict[str, float]:
    totals: dict[str, float] = {}
    for line in output.splitlines():
        if '"_aws"' not in line:
            continue
        blob = json.loads(line)
        for definition in blob["_aws"]["CloudWatchMetrics"]:
            for metric in definition["Metrics"]:
                values = blob[metric["Name"]]
                totals[metric["Name"]] = totals.get(metric["Name"], 0) + sum(
                    values if isinstance(values, list) else [values]
                )
    return totals


def expected_lock_notifications(records: list[dict]) -> list[tuple[str, str]]:
    expected = []
    for record in records:
        body = record["dynamodb"]
        if body["Keys"]["LockID"]["S"].endswith("-md5"):
            continue
        old = LockInfo.parse(body["OldImage"]["Info"]["S"]) if "OldImage" in body else None
        new = LockInfo.parse(body["NewImage"]["Info"]["S"]) if "NewImage" in body else None
        if old and (not new or new.id != old.id) and old.operation != "OperationTypePlan":
            expected.append(("lock.released", old.id))
        if new and (not old or old.id != new.id) and new.operation != "OperationTypePlan":
            expected.append(("lock.acquired", new.id))
    return expected


@pytest.mark.parametrize("name", sorted(p.name for p in (EVENTS / "stream").glob("tf*.json")))
def test_captured_scenarios_replayed_three_times_notify_once(stack: RunningStack, name: str, capsys) -> None:
    handler = stack.app.on_lock_table_change
    event = captured_stream(name, stack.resources.lock_table_stream_arn)
    for _ in range(3):
        handler(event, None)
    got = [(n["type"], n["details"]["lock"]["id"]) for n in stack.notifications()]
    assert got == expected_lock_notifications(event["Records"])
    assert "RecordsSkipped" not in emitted_metrics(capsys.readouterr().out)


def test_plans_notify_when_a_team_asks_for_them(stack: RunningStack, monkeypatch) -> None:
    monkeypatch.setattr(composition.container().home.locks, "_quiet_operations", frozenset())
    stack.app.on_lock_table_change(captured_stream("tf1.11.4_plan.json"), None)
    assert [n["type"] for n in stack.notifications()] == ["lock.acquired", "lock.released"]
    assert stack.notifications()[0]["summary"] == "app: locked by root@vm (plan, Terraform 1.11.4)"


def test_poison_records_are_skipped_and_the_batch_goes_on(stack: RunningStack, capsys) -> None:
    table_arn = stack.resources.lock_table_stream_arn
    good = captured_stream("tf1.11.4_apply_changing_state.json", table_arn)["Records"]
    lock_record = good[0]
    info = json.loads(lock_record["dynamodb"]["NewImage"]["Info"]["S"])

    def with_image(image: dict) -> dict:
        return {**lock_record, "dynamodb": {**lock_record["dynamodb"], "NewImage": image}}

    def with_info(**changes: object) -> dict:
        key = lock_record["dynamodb"]["Keys"]["LockID"]
        return with_image({"LockID": key, "Info": {"S": json.dumps({**info, **changes})}})

    poison = [
        with_image({"LockID": {"S": "b/k"}, "Info": {"S": "{"}}),
        with_info(ID=None),
        with_info(Who=7),
        with_info(Operation="OperationTypeSurprise"),
        with_info(Created="yesterday"),
        with_info(Path="elsewhere/terraform.tfstate"),
        with_image({"LockID": lock_record["dynamodb"]["Keys"]["LockID"]}),
        {**lock_record, "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/other/stream/x"},
        {"eventName": "INSERT"},
    ]  # fmt: skip
    stack.app.on_lock_table_change({"Records": [*poison, *good]}, None)
    metrics = emitted_metrics(capsys.readouterr().out)
    assert metrics["RecordsSkipped"] == len(poison)
    assert [n["type"] for n in stack.notifications()] == ["lock.acquired", "lock.released"]


def test_the_local_stream_source_delivers_lock_items(aws, stack: RunningStack) -> None:
    dynamodb = aws.client("dynamodb")
    table = stack.resources.lock_table
    path = f"{stack.resources.state_bucket}/app/terraform.tfstate"
    info = json.dumps(
        {
            "ID": "5a751819-e4fe-1612-b981-3bd2066a6bb1",
            "Operation": "OperationTypeApply",
            "Info": "",
            "Who": "ci@runner-7",
            "Version": "1.11.4",
            "Created": "2026-11-26T11:05:21.717552571Z",
            "Path": path,
        },
        separators=(",", ":"),
    )
    dynamodb.put_item(TableName=table, Item={"LockID": {"S": path}, "Info": {"S": info}})
    dynamodb.put_item(TableName=table, Item={"LockID": {"S": path + "-md5"}, "Digest": {"S": "0" * 32}})
    dynamodb.put_item(TableName=table, Item={"LockID": {"S": path + "-md5"}, "Digest": {"S": "0" * 32}})
    dynamodb.delete_item(TableName=table, Key={"LockID": {"S": path}})
    stack.pump()
    assert stack.failures() == ""
    acquired, released = stack.notifications()
    assert (
        acquired["type"] == "lock.acquired"
        and acquired["summary"] == "app: locked by ci@runner-7 (apply, Terraform 1.11.4)"
    )
    assert acquired["details"]["lock"] == {
        "id": "5a751819-e4fe-1612-b981-3bd2066a6bb1",
        "who": "ci@runner-7",
        "operation": "OperationTypeApply",
        "version": "1.11.4",
        "created": "2026-11-26T11:05:21.717552571Z",
        "source": "dynamodb",
    }
    assert released["type"] == "lock.released" and released["details"]["held_for_s"] >= 0
