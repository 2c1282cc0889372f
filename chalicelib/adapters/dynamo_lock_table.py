"""`DynamoLockTable`: Terraform's DynamoDB lock table, read for the digest items it keeps beside the locks."""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.adapters.aws_errors import translate
from chalicelib.domain.lock_table import DIGEST_SUFFIX

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


class DynamoLockTable:
    """The table named in the backend's `dynamodb_table`, with items keyed by `LockID`."""

    def __init__(self, client: DynamoDBClient, table: str) -> None:
        self._client = client
        self.name = table

    def digest_of(self, state_path: str) -> str | None:
        """The `Digest` Terraform stored for a state (`<bucket>/<key>`); None when there is no digest item."""
        try:
            response = self._client.get_item(
                TableName=self.name,
                Key={"LockID": {"S": state_path + DIGEST_SUFFIX}},
                ConsistentRead=True,
                ProjectionExpression="Digest",
            )
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, f"read the digest of {state_path}") from exc
        digest = response.get("Item", {}).get("Digest", {}).get("S")
        return str(digest) if digest else None
