"""The local DynamoDB stream source: reads the lock table's stream and builds Lambda batches in the AWS shape."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from deploy.stream_records import lambda_record

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
        # The emulator's records say eventVersion 1.0; AWS's (and so Lambda's) say 1.1.
        return {**lambda_record(record, self.stream_arn, self._region), "eventVersion": "1.1", "_shard_id": shard_id}


def is_unchanged_modify(record: dict[str, Any]) -> bool:
    """A MODIFY whose old and new images are equal: the emulator writes one, AWS writes no record."""
    body = record["dynamodb"]
    return bool(record["eventName"] == "MODIFY" and body.get("OldImage") == body.get("NewImage"))


def without_local_fields(record: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in record.items() if not name.startswith("_")}
