"""`GuardianTable`: the guardian's own DynamoDB table; here, the ledger that makes each delivery happen once."""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.adapters.aws_errors import translate

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

PENDING = "pending"
SENT = "sent"
# Long enough to outlive every retry of an S3 event or a stream batch.
DELIVERY_RECORD_DAYS = 8


class GuardianTable:
    """A table with a string partition key `pk`, a string sort key `sk` and TTL on `expires_at`."""

    def __init__(self, client: DynamoDBClient, table: str) -> None:
        self._client = client
        self.name = table

    def claim_delivery(self, notification_id: str, channel: str, *, now: float, lease_s: float) -> bool:
        """Take the right to deliver one notification to one channel.

        False when it was delivered already, or another invocation is delivering it and its lease holds.
        """
        try:
            self._client.put_item(
                TableName=self.name,
                Item={
                    "pk": {"S": f"delivery#{notification_id}"},
                    "sk": {"S": channel},
                    "status": {"S": PENDING},
                    "lease_until": {"N": str(now + lease_s)},
                    "expires_at": {"N": str(int(now) + DELIVERY_RECORD_DAYS * 86400)},
                },
                ConditionExpression="attribute_not_exists(pk) OR (#status = :pending AND lease_until < :now)",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={":pending": {"S": PENDING}, ":now": {"N": str(now)}},
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise translate(exc, f"claim delivery in {self.name}") from exc
        except BotoCoreError as exc:
            raise translate(exc, f"claim delivery in {self.name}") from exc
        return True

    def complete_delivery(self, notification_id: str, channel: str) -> None:
        """Record that the notification reached the channel: later claims of it fail."""
        try:
            self._client.update_item(
                TableName=self.name,
                Key={"pk": {"S": f"delivery#{notification_id}"}, "sk": {"S": channel}},
                UpdateExpression="SET #status = :sent REMOVE lease_until",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={":sent": {"S": SENT}},
            )
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, f"complete delivery in {self.name}") from exc

    def release_delivery(self, notification_id: str, channel: str) -> None:
        """Give a claim back after a failed delivery, so that a retry may deliver it."""
        try:
            self._client.delete_item(
                TableName=self.name,
                Key={"pk": {"S": f"delivery#{notification_id}"}, "sk": {"S": channel}},
                ConditionExpression="#status = :pending",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={":pending": {"S": PENDING}},
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return
            raise translate(exc, f"release delivery in {self.name}") from exc
        except BotoCoreError as exc:
            raise translate(exc, f"release delivery in {self.name}") from exc
