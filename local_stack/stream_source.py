"""The local DynamoDB stream source: reads the lock table's stream and builds Lambda batches in the AWS shape."""

from __future__ import annotations

import base64
import math
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_dynamodbstreams import DynamoDBStreamsClient

BATCH_SIZE = 100


class StreamPoller:
    """Follows every shard of one stream from where it was when the poller started."""

    def __init__(self, client: DynamoDBStreamsClient, stream_arn: str, region: str) -> None:
        self._client = client
        self.stream_arn = stream_arn
        self._region = region
        self._positions: dict[str, str | None] = {}  # shard id -> last sequence number delivered

    def baseline(self) -> None:
        """Start after the records already in the stream."""
        for shard_id in self._shard_ids():
            last = None
            for record in self._read(shard_id, None):
                last = record["dynamodb"]["SequenceNumber"]
            self._positions[shard_id] = last

    def poll(self) -> list[dict[str, Any]]:
        """The records written since the last call that was acknowledged, in Lambda event shape."""
        records: list[dict[str, Any]] = []
        for shard_id in self._shard_ids():
            for record in self._read(shard_id, self._positions.get(shard_id)):
                records.append(self._lambda_record(record, shard_id))
        return records

    def acknowledge(self, records: list[dict[str, Any]]) -> None:
        """Move past `records`: they were handled, as Lambda does when a batch succeeds."""
        for record in records:
            self._positions[record["_shard_id"]] = record["dynamodb"]["SequenceNumber"]

    def _shard_ids(self) -> list[str]:
        shards = self._client.describe_stream(StreamArn=self.stream_arn)["StreamDescription"].get("Shards", [])
        return [shard["ShardId"] for shard in shards]

    def _read(self, shard_id: str, after: str | None) -> list[dict[str, Any]]:
        if after is None:
            iterator = self._client.get_shard_iterator(
                StreamArn=self.stream_arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
            )["ShardIterator"]
        else:
            iterator = self._client.get_shard_iterator(
                StreamArn=self.stream_arn,
                ShardId=shard_id,
                ShardIteratorType="AFTER_SEQUENCE_NUMBER",
                SequenceNumber=after,
            )["ShardIterator"]
        records: list[dict[str, Any]] = []
        next_iterator: str | None = iterator
        while next_iterator:
            response = self._client.get_records(ShardIterator=next_iterator, Limit=1000)
            batch = response.get("Records", [])
            records.extend(dict(record) for record in batch)
            if not batch:
                break
            next_iterator = response.get("NextShardIterator")
        return records

    def _lambda_record(self, record: dict[str, Any], shard_id: str) -> dict[str, Any]:
        body = dict(record["dynamodb"])
        created = body.get("ApproximateCreationDateTime")
        if isinstance(created, datetime):
            body["ApproximateCreationDateTime"] = math.floor(created.timestamp())
        elif isinstance(created, (int, float)):
            body["ApproximateCreationDateTime"] = math.floor(created)
        for image in ("Keys", "NewImage", "OldImage"):
            if image in body:
                body[image] = _wire_attributes(body[image])
        return {
            "eventID": record["eventID"],
            "eventName": record["eventName"],
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": self._region,
            "dynamodb": body,
            "eventSourceARN": self.stream_arn,
            "_shard_id": shard_id,
        }


def is_unchanged_modify(record: dict[str, Any]) -> bool:
    """A MODIFY whose old and new images are equal: the emulator writes one, AWS writes no record."""
    body = record["dynamodb"]
    return bool(record["eventName"] == "MODIFY" and body.get("OldImage") == body.get("NewImage"))


def without_local_fields(record: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in record.items() if not name.startswith("_")}


def _wire_attributes(value: Any) -> Any:
    # The client decodes binary attributes to bytes; Lambda delivers them base64-encoded.
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, dict):
        return {name: _wire_attributes(item) for name, item in value.items()}
    if isinstance(value, list):
        return [_wire_attributes(item) for item in value]
    return value
