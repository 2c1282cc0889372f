"""The stream handler: captured Terraform records, records from the emulator's stream, and poison records."""

import json

import pytest

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


@pytest.mark.parametrize("name", sorted(p.name for p in (EVENTS / "stream").glob("tf*.json")))
def test_captured_scenarios_replayed_three_times_never_raise(stack: RunningStack, name: str, capsys) -> None:
    assert stack.stack.app is not None
    handler = stack.stack.app.on_lock_table_change
    table_arn = stack.resources.lock_table_stream_arn
    event = captured_stream(name, table_arn)
    for _ in range(3):
        handler(event, None)
    metrics = emitted_metrics(capsys.readouterr().out)
    locks = sum(1 for r in event["Records"] if not r["dynamodb"]["Keys"]["LockID"]["S"].endswith("-md5"))
    assert metrics.get("LockItemChanges", 0) == 3 * locks
    assert metrics.get("DigestItemChanges", 0) == 3 * (len(event["Records"]) - locks)
    assert "StreamRecordsSkipped" not in metrics


def test_poison_records_are_skipped_and_the_batch_goes_on(stack: RunningStack, capsys) -> None:
    assert stack.stack.app is not None
    table_arn = stack.resources.lock_table_stream_arn
    good = captured_stream("tf1.11.4_plan.json", table_arn)["Records"]
    poison = [
        {**good[0], "dynamodb": {**good[0]["dynamodb"], "NewImage": {"LockID": {"S": "b/k"}, "Info": {"S": "no"}}}},
        {**good[0], "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/other/stream/x"},
        {"eventName": "INSERT"},
    ]
    stack.stack.app.on_lock_table_change({"Records": [*poison, *good]}, None)
    metrics = emitted_metrics(capsys.readouterr().out)
    assert metrics["StreamRecordsSkipped"] == 3
    assert metrics["LockItemChanges"] == 2


def test_the_local_stream_source_delivers_lock_and_digest_items(aws, stack: RunningStack, capsys) -> None:
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
    capsys.readouterr()
    stack.pump()
    metrics = emitted_metrics(capsys.readouterr().out)
    assert stack.failures() == ""
    # The identical second digest put is dropped, as AWS writes no record for it.
    assert metrics == {"LockItemChanges": 2, "DigestItemChanges": 1}
