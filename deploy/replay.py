"""`replay`: invoke the guardian again with what its dead-letter queues kept, deleting each message once that worked.

Two queues, two shapes (both written by Lambda itself):

- the S3 handler's on-failure destination: Lambda's asynchronous invocation record, whose `requestPayload` is the
  original S3 notification or EventBridge event; it is invoked again, as it was, on the S3 handler;
- the lock streams' mappings' on-failure destination: only `DDBStreamBatchInfo` (stream ARN, shard, first and last
  sequence number); the records are read again from the stream (DynamoDB keeps them 24 hours) and invoked, in
  Lambda's batch shape, on the stream handler. A batch no longer in the stream is said and left in the queue.

Exactly once still holds: both handlers record each notification in the delivery ledger before sending it, so a
replayed event that was in fact handled (or is replayed twice) notifies no one again. A message is deleted only
after its invocation succeeded; one that fails stays, and comes back after its visibility timeout.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from chalicelib.adapters.backend_session import backend_session
from deploy.changes import DRY_RUN_PREFIX
from deploy.errors import DeployError, aws_call, error_code
from deploy.sources import S3_HANDLER, STREAM_HANDLER, s3_queue_name, stream_queue_name
from deploy.stage_config import StageConfig
from deploy.stream_records import lambda_record

if TYPE_CHECKING:
    from boto3.session import Session

# How long a received message stays invisible to others while its invocation runs (the functions' timeout is 45 s).
VISIBILITY_TIMEOUT_S = 120
STREAM_READ_LIMIT = 1000


class InvocationFailedError(DeployError):
    """The function failed on a replayed event (its error is in the function's logs)."""


# Invokes one function (by name) with one event, returning normally only when the function succeeded.
Invoker = Callable[[str, dict[str, Any]], None]


def lambda_invoker(session: Session) -> Invoker:
    """Production's invoker: `lambda:Invoke`, RequestResponse; a `FunctionError` is a failure."""
    lambda_client: Any = session.client("lambda")

    def invoke(function_name: str, event: dict[str, Any]) -> None:
        with aws_call(f"invoke {function_name}"):
            answer = lambda_client.invoke(
                FunctionName=function_name, InvocationType="RequestResponse", Payload=json.dumps(event).encode()
            )
        if answer.get("FunctionError"):
            raise InvocationFailedError(f"{function_name} failed ({answer['FunctionError']}); see its logs")

    return invoke


@dataclass
class ReplayTally:
    replayed: int = 0
    failed: int = 0  # invocations that failed, or batches no longer in their stream: left in the queue


def replay(session: Session, stage: StageConfig, *, dry_run: bool, say: Callable[[str], None],
           invoke: Invoker | None = None) -> ReplayTally:  # fmt: skip
    """Replay both dead-letter queues of the stage, one line per message; what was replayed and what failed."""
    invoke = invoke or lambda_invoker(session)
    sqs: Any = session.client("sqs")
    tally = ReplayTally()
    queues = [(s3_queue_name(stage), S3_HANDLER)]
    if any(backend.lock_table for backend in stage.backends):
        queues.append((stream_queue_name(stage), STREAM_HANDLER))
    for queue, handler in queues:
        url = _queue_url(sqs, queue)
        if url is None:
            say(f"{queue}: no such queue (harden creates it)")
            continue
        function_name = stage.function_name(handler)
        for message in _messages(sqs, url, peek=dry_run):
            what = f"{queue}: message {message['MessageId']}"
            try:
                event = _s3_event(message) if handler == S3_HANDLER else _stream_event(session, stage, message)
            except _NotReplayableError as exc:
                say(f"{what}: {exc}; left in the queue")
                tally.failed += 1
                continue
            if dry_run:
                say(f"{DRY_RUN_PREFIX}{what}: would invoke {function_name} ({_summary(event)})")
                continue
            try:
                invoke(function_name, event)
            except DeployError as exc:
                say(f"{what}: {exc}; left in the queue")
                tally.failed += 1
                continue
            with aws_call(f"delete the replayed message from {queue}"):
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            say(f"{what}: replayed on {function_name} ({_summary(event)}), deleted")
            tally.replayed += 1
    if not dry_run and not tally.replayed and not tally.failed:
        say("nothing to replay")
    return tally


class _NotReplayableError(Exception):
    pass


def _queue_url(sqs: Any, name: str) -> str | None:
    with aws_call(f"read the queue {name}"):
        try:
            return str(sqs.get_queue_url(QueueName=name)["QueueUrl"])
        except sqs.exceptions.QueueDoesNotExist:
            return None


def _messages(sqs: Any, url: str, *, peek: bool) -> Iterator[dict[str, Any]]:
    """Every message of the queue once: received and hidden while it is handled, or (peek) left visible."""
    seen: set[str] = set()
    while True:
        with aws_call(f"receive from {url}"):
            answer = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0,
                                         VisibilityTimeout=0 if peek else VISIBILITY_TIMEOUT_S)  # fmt: skip
        batch = answer.get("Messages", [])
        fresh = [message for message in batch if message["MessageId"] not in seen]
        if not fresh:
            return
        for message in fresh:
            seen.add(message["MessageId"])
            yield message


def _body(message: dict[str, Any]) -> dict[str, Any]:
    try:
        body = json.loads(message["Body"])
    except ValueError:
        raise _NotReplayableError("not JSON") from None
    if not isinstance(body, dict):
        raise _NotReplayableError("not a JSON object")
    return body


def _s3_event(message: dict[str, Any]) -> dict[str, Any]:
    """The original event of an asynchronous invocation record."""
    payload = _body(message).get("requestPayload")
    if not isinstance(payload, dict):
        raise _NotReplayableError("not an asynchronous invocation record (no requestPayload)")
    return payload


def _stream_event(session: Session, stage: StageConfig, message: dict[str, Any]) -> dict[str, Any]:
    """The batch a stream on-failure record describes, read again from the stream, in Lambda's batch shape."""
    info = _body(message).get("DDBStreamBatchInfo")
    if not isinstance(info, dict) or not all(
        isinstance(info.get(key), str) for key in ("streamArn", "shardId", "startSequenceNumber", "endSequenceNumber")
    ):
        raise _NotReplayableError("not a stream on-failure record (no DDBStreamBatchInfo)")
    stream_arn, shard = info["streamArn"], info["shardId"]
    _, _, _, region, account, resource = stream_arn.split(":", 5)
    table = resource.split("/")[1] if resource.count("/") >= 1 else ""
    backend = next(
        (
            settings.backend
            for settings in stage.backends
            if settings.lock_table == table and (settings.backend.account in (None, account))
        ),
        None,
    )
    if backend is None:
        raise _NotReplayableError(f"no backend of the stage has the lock table {table} now")
    streams: Any = backend_session(session, role_arn=backend.role_arn, region=region).client("dynamodbstreams")
    first, last = int(info["startSequenceNumber"]), int(info["endSequenceNumber"])
    records: list[dict[str, Any]] = []
    try:
        iterator: str | None = streams.get_shard_iterator(
            StreamArn=stream_arn, ShardId=shard, ShardIteratorType="AT_SEQUENCE_NUMBER",
            SequenceNumber=info["startSequenceNumber"],
        )["ShardIterator"]  # fmt: skip
        while iterator:
            answer = streams.get_records(ShardIterator=iterator, Limit=STREAM_READ_LIMIT)
            batch = answer.get("Records", [])
            records.extend(record for record in batch if first <= int(record["dynamodb"]["SequenceNumber"]) <= last)
            if not batch or int(batch[-1]["dynamodb"]["SequenceNumber"]) >= last:
                break
            iterator = answer.get("NextShardIterator")
    except ClientError as exc:
        if error_code(exc) in ("TrimmedDataAccessException", "ResourceNotFoundException", "ValidationException"):
            raise _NotReplayableError(f"its records are no longer in {stream_arn} ({error_code(exc)})") from None
        raise
    if not records:
        raise _NotReplayableError(f"its records are no longer in {stream_arn}")
    return {"Records": [lambda_record(record, stream_arn, region) for record in records]}


def _summary(event: dict[str, Any]) -> str:
    """What an event is, without any of its content beyond counts and kinds (keys may name a team's states)."""
    if isinstance(event.get("Records"), list):
        return f"{len(event['Records'])} records"
    return str(event.get("detail-type") or "an event")
