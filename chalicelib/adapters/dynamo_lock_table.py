"""`DynamoLockTable`: Terraform's DynamoDB lock table: its lock items, and the digest items beside them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.adapters.aws_errors import conditional_write, translate
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

    def held_locks(self) -> list[tuple[str, str]]:
        """Every lock item as `(LockID, Info)`: a filtered scan that never returns digest items."""
        locks: list[tuple[str, str]] = []
        try:
            pages = self._client.get_paginator("scan").paginate(
                TableName=self.name,
                FilterExpression="attribute_exists(#info)",
                ProjectionExpression="LockID, #info",
                ExpressionAttributeNames={"#info": "Info"},
                ConsistentRead=True,
            )
            for page in pages:
                for item in page.get("Items", []):
                    lock_id, info = item.get("LockID", {}).get("S"), item.get("Info", {}).get("S")
                    if lock_id and info is not None and not lock_id.endswith(DIGEST_SUFFIX):
                        locks.append((lock_id, info))
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, f"scan {self.name}") from exc
        return locks

    def delete_lock_if_unchanged(self, lock_id: str, info: str) -> bool:
        """Delete a lock item only if its `Info` is byte for byte what was verified; False if it changed or went."""
        if lock_id.endswith(DIGEST_SUFFIX):
            raise ValueError("a digest item is never a lock")
        return conditional_write(
            lambda: self._client.delete_item(
                TableName=self.name,
                Key={"LockID": {"S": lock_id}},
                ConditionExpression="#info = :info",
                ExpressionAttributeNames={"#info": "Info"},
                ExpressionAttributeValues={":info": {"S": info}},
            ),
            f"release a lock in {self.name}",
        )

    def current_lock(self, state_path: str) -> str | None:
        """The `Info` of the lock item of a state, if one is held."""
        try:
            response = self._client.get_item(
                TableName=self.name, Key={"LockID": {"S": state_path}}, ConsistentRead=True
            )
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, f"read the lock of {state_path}") from exc
        info = response.get("Item", {}).get("Info", {}).get("S")
        return str(info) if info is not None else None

    def take_lock(self, state_path: str, info: str) -> bool:
        """Take a lock the way Terraform does (a put conditioned on no lock item); False if one is held."""
        return conditional_write(
            lambda: self._client.put_item(
                TableName=self.name,
                Item={"LockID": {"S": state_path}, "Info": {"S": info}},
                ConditionExpression="attribute_not_exists(LockID)",
            ),
            f"lock {state_path}",
        )

    def put_digest_if(self, state_path: str, digest: str, *, expected: str | None) -> bool:
        """Set the digest only if it still is `expected` (None: only if there is none): a digest Terraform wrote
        meanwhile is never overwritten."""
        if expected is None:
            condition: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(LockID)"}
        else:
            condition = {
                "ConditionExpression": "Digest = :stored",
                "ExpressionAttributeValues": {":stored": {"S": expected}},
            }
        return conditional_write(
            lambda: self._client.put_item(
                TableName=self.name,
                Item={"LockID": {"S": state_path + DIGEST_SUFFIX}, "Digest": {"S": digest}},
                **condition,
            ),
            f"write the digest of {state_path}",
        )

    def put_digest(self, state_path: str, digest: str) -> None:
        """Set the digest Terraform checks the state's bytes against."""
        try:
            self._client.put_item(
                TableName=self.name,
                Item={"LockID": {"S": state_path + DIGEST_SUFFIX}, "Digest": {"S": digest}},
            )
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, f"write the digest of {state_path}") from exc
