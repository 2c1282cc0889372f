"""`python -m deploy replay`: the dead-letter queues replayed through the guardian's handlers, exactly once.

Harness workaround: moto stores the functions but cannot run them (its Invoke needs Docker), so the test injects an
invoker that runs the app's own handler in this process against the moto server (the local stack's), as Lambda would
run it; production's invoker calls `lambda:Invoke` (RequestResponse) and fails on a `FunctionError`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest

from deploy.__main__ import main
from deploy.replay import InvocationFailedError
from local_stack.lambda_runtime import LocalLambdaContext
from local_stack.s3_source import VersionWatcher
from local_stack.stack import REGION
from tests.conftest import RunningStack
from tests.support.deployed import function_name, write_config
from tests.support.events import state_bytes

S3_QUEUE = "tfstate-guardian-test-s3-dlq"
STREAM_QUEUE = "tfstate-guardian-test-stream-dlq"
LOCK_INFO = {
    "ID": "0c0ffee0-e4fe-1612-b981-3bd2066a6bb1",
    "Operation": "OperationTypeApply",
    "Info": "",
    "Who": "ci@runner-9",
    "Version": "1.11.4",
    "Created": "2026-11-26T11:05:21.717552571Z",
}


class LocalInvoker:
    """Runs the app's handler for a function name here, against the emulator; counts the invocations."""

    def __init__(self, stack: RunningStack, *, failing: bool = False) -> None:
        self._handlers = {
            function_name("on_state_object_event"): stack.app.on_state_object_event,
            function_name("on_lock_table_change"): stack.app.on_lock_table_change,
        }
        self.failing = failing
        self.invoked: list[str] = []

    def __call__(self, name: str, event: dict[str, Any]) -> None:
        self.invoked.append(name)
        if self.failing:
            raise InvocationFailedError(f"{name} failed (Unhandled); see its logs")
        try:
            self._handlers[name](event, LocalLambdaContext(function_name=name))
        except Exception as exc:
            raise InvocationFailedError(f"{name} failed ({type(exc).__name__}); see its logs") from exc


@pytest.fixture
def config(stack: RunningStack, tmp_path: Path) -> Path:
    resources = stack.resources
    return write_config(
        tmp_path,
        {
            "GUARDIAN_STATE_BUCKET": resources.state_bucket,
            "GUARDIAN_LOCK_TABLE": resources.lock_table,
            "GUARDIAN_TABLE": resources.guardian_table,
        },
    )


def queue(aws: boto3.session.Session, name: str) -> str:
    return str(aws.client("sqs").create_queue(QueueName=name)["QueueUrl"])


def depth(aws: boto3.session.Session, url: str) -> int:
    attributes = aws.client("sqs").get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])


def said(capsys: pytest.CaptureFixture[str]) -> list[str]:
    """What the command printed; the handlers' metrics (Powertools prints them, as Lambda logs them) left out."""
    return [line for line in capsys.readouterr().out.splitlines() if not line.startswith('{"_aws"')]


def run(config: Path, invoker: LocalInvoker, *extra: str) -> int:
    return main(["replay", "--stage", "test", "--config", str(config), *extra], session=boto3.session.Session(),
                invoker=invoker)  # fmt: skip


def s3_failure(aws: boto3.session.Session, stack: RunningStack) -> dict[str, Any]:
    """A state written to the bucket, and the asynchronous invocation record Lambda sends when its event failed."""
    bucket = stack.resources.state_bucket
    watcher = VersionWatcher(aws.client("s3"), bucket, REGION, "tfstate-guardian-test")
    watcher.baseline()
    aws.client("s3").put_object(Bucket=bucket, Key="app/terraform.tfstate",
                                Body=state_bytes("state_tf1.11.4_second_apply_serial2.json"))  # fmt: skip
    (event,) = watcher.poll()
    return {
        "version": "1.0",
        "timestamp": "2026-11-30T12:00:00.000Z",
        "requestContext": {
            "requestId": "7e0a1c1e-0000-4000-8000-000000000001",
            "functionArn": f"arn:aws:lambda:{REGION}:123456789012:function:{function_name('on_state_object_event')}",
            "condition": "RetriesExhausted",
            "approximateInvokeCount": 3,
        },
        "requestPayload": event,
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "responsePayload": {"errorMessage": "timed out", "errorType": "Sandbox.Timedout"},
    }


def stream_failure(aws: boto3.session.Session, stack: RunningStack) -> dict[str, Any]:
    """A lock taken, and the on-failure record of the stream mapping that gave up on its batch."""
    path = f"{stack.resources.state_bucket}/app/terraform.tfstate"
    info = json.dumps({**LOCK_INFO, "Path": path}, separators=(",", ":"))
    aws.client("dynamodb").put_item(
        TableName=stack.resources.lock_table, Item={"LockID": {"S": path}, "Info": {"S": info}}
    )
    streams = aws.client("dynamodbstreams")
    stream_arn = stack.resources.lock_table_stream_arn
    (shard,) = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"]
    iterator = streams.get_shard_iterator(StreamArn=stream_arn, ShardId=shard["ShardId"],
                                          ShardIteratorType="TRIM_HORIZON")["ShardIterator"]  # fmt: skip
    records = streams.get_records(ShardIterator=iterator)["Records"]
    ours = [record for record in records if record["dynamodb"]["Keys"]["LockID"]["S"] == path]
    return {
        "requestContext": {
            "requestId": "7e0a1c1e-0000-4000-8000-000000000002",
            "condition": "RetryAttemptsExhausted",
            "approximateInvokeCount": 6,
        },
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "version": "1.0",
        "timestamp": "2026-11-30T12:00:00.000Z",
        "DDBStreamBatchInfo": {
            "shardId": shard["ShardId"],
            "startSequenceNumber": ours[0]["dynamodb"]["SequenceNumber"],
            "endSequenceNumber": ours[-1]["dynamodb"]["SequenceNumber"],
            "approximateArrivalOfFirstRecord": "2026-11-30T12:00:00Z",
            "approximateArrivalOfLastRecord": "2026-11-30T12:00:00Z",
            "batchSize": len(ours),
            "streamArn": stream_arn,
        },
    }


def test_replay_delivers_a_failed_s3_event_and_a_failed_stream_batch_once(
    aws: boto3.session.Session, stack: RunningStack, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    s3_url, stream_url = queue(aws, S3_QUEUE), queue(aws, STREAM_QUEUE)
    sqs = aws.client("sqs")
    s3_message = json.dumps(s3_failure(aws, stack))
    # Lambda may send the same failure twice: both copies are replayed, one notification is sent.
    sqs.send_message(QueueUrl=s3_url, MessageBody=s3_message)
    sqs.send_message(QueueUrl=s3_url, MessageBody=s3_message)
    sqs.send_message(QueueUrl=stream_url, MessageBody=json.dumps(stream_failure(aws, stack)))
    invoker = LocalInvoker(stack)

    assert run(config, invoker, "--dry-run") == 0
    dry = said(capsys)
    assert len(dry) == 3 and all(line.startswith("[dry run] ") for line in dry)
    assert (invoker.invoked, depth(aws, s3_url), depth(aws, stream_url)) == ([], 2, 1)
    assert stack.notifications() == []

    assert run(config, invoker) == 0

    out = said(capsys)
    assert len(out) == 3 and all(line.endswith(", deleted") for line in out), out
    assert stack.failures() == ""
    assert sorted(n["type"] for n in stack.notifications()) == ["lock.acquired", "state.changed"]
    assert (depth(aws, s3_url), depth(aws, stream_url)) == (0, 0)

    # A second replay finds nothing; and the same events arriving late, the normal way, notify no one again.
    assert run(config, invoker) == 0
    assert said(capsys) == ["nothing to replay"]
    stack.pump()
    assert sorted(n["type"] for n in stack.notifications()) == ["lock.acquired", "state.changed"]


def test_a_message_whose_invocation_fails_stays_in_the_queue(
    aws: boto3.session.Session, stack: RunningStack, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    s3_url, _ = queue(aws, S3_QUEUE), queue(aws, STREAM_QUEUE)
    aws.client("sqs").send_message(QueueUrl=s3_url, MessageBody=json.dumps(s3_failure(aws, stack)))
    invoker = LocalInvoker(stack, failing=True)

    assert run(config, invoker) == 1

    (line,) = capsys.readouterr().out.splitlines()
    assert line.endswith(
        f"{function_name('on_state_object_event')} failed (Unhandled); see its logs; left in the queue"
    )
    assert depth(aws, s3_url) == 1
    assert stack.notifications() == []
