"""`GuardianTable`: the guardian's own DynamoDB table: the delivery ledger and the lock sessions it has seen."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.adapters.aws_errors import translate
from chalicelib.domain.digests import DigestSuspect
from chalicelib.domain.locks import LockInfo, LockSession
from chalicelib.errors import MalformedEventError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

PENDING = "pending"
SENT = "sent"
# Long enough to outlive every retry of an S3 event or a stream batch.
DELIVERY_RECORD_DAYS = 8
LOCK_SESSION_DAYS = 30
RECENT_SESSIONS = 10
DIGEST_SUSPECTS = "digest-suspects"


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

    def record_lock_acquired(self, lock: LockInfo, source: str, at: datetime) -> None:
        """Remember a lock as taken at `at`; the same lock seen through both mechanisms stays one session."""
        self._update_session(
            lock,
            "SET info = :info, acquired_at = if_not_exists(acquired_at, :at),"
            " #source = if_not_exists(#source, :source), expires_at = :expires",
            {":at": {"S": _iso(at)}, ":source": {"S": source}},
        )

    def record_lock_released(self, lock: LockInfo, source: str, at: datetime) -> LockSession:
        """Remember a lock as released at `at`; the session as it now stands."""
        item = self._update_session(
            lock,
            "SET info = :info, released_at = if_not_exists(released_at, :at),"
            " acquired_at = if_not_exists(acquired_at, :created), #source = if_not_exists(#source, :source),"
            " expires_at = :expires",
            {":at": {"S": _iso(at)}, ":created": {"S": _iso(lock.created_at())}, ":source": {"S": source}},
        )
        return _session(item)

    def recent_lock_sessions(self, path: str) -> list[LockSession]:
        """The latest lock sessions of one state (`<bucket>/<key>`), newest first."""
        try:
            response = self._client.query(
                TableName=self.name,
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": {"S": f"lock#{path}"}},
                ScanIndexForward=False,
                Limit=RECENT_SESSIONS,
                ConsistentRead=True,
            )
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, f"read lock sessions in {self.name}") from exc
        sessions = []
        for item in response.get("Items", []):
            try:
                sessions.append(_session(item))
            except MalformedEventError:
                continue  # written by another version of the guardian; not ours to judge
        return sessions

    def put_digest_suspect(self, suspect: DigestSuspect) -> None:
        """Remember a state whose bytes did not match its digest, to look at again after the grace period."""
        try:
            self._client.put_item(
                TableName=self.name,
                Item={
                    "pk": {"S": DIGEST_SUSPECTS},
                    "sk": {"S": suspect.state_path},
                    "version_id": {"S": suspect.version_id},
                    "first_seen": {"S": _iso(suspect.first_seen)},
                    "expires_at": {"N": str(int(suspect.first_seen.timestamp()) + DELIVERY_RECORD_DAYS * 86400)},
                },
                # A later sighting of the same mismatch keeps the first one's time.
                ConditionExpression="attribute_not_exists(pk) OR version_id <> :version",
                ExpressionAttributeValues={":version": {"S": suspect.version_id}},
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return
            raise translate(exc, f"record a digest suspect in {self.name}") from exc
        except BotoCoreError as exc:
            raise translate(exc, f"record a digest suspect in {self.name}") from exc

    def digest_suspects(self) -> list[DigestSuspect]:
        """Every state waiting for a second look at its digest."""
        suspects: list[DigestSuspect] = []
        try:
            pages = self._client.get_paginator("query").paginate(
                TableName=self.name,
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": {"S": DIGEST_SUSPECTS}},
                ConsistentRead=True,
            )
            for page in pages:
                for item in page.get("Items", []):
                    suspects.append(
                        DigestSuspect(
                            state_path=item["sk"]["S"],
                            version_id=item["version_id"]["S"],
                            first_seen=datetime.fromisoformat(item["first_seen"]["S"].replace("Z", "+00:00")),
                        )
                    )
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, f"read digest suspects in {self.name}") from exc
        return suspects

    def clear_digest_suspect(self, suspect: DigestSuspect) -> None:
        """Forget a suspect, unless a newer sighting replaced it meanwhile."""
        try:
            self._client.delete_item(
                TableName=self.name,
                Key={"pk": {"S": DIGEST_SUSPECTS}, "sk": {"S": suspect.state_path}},
                ConditionExpression="version_id = :version",
                ExpressionAttributeValues={":version": {"S": suspect.version_id}},
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return
            raise translate(exc, f"clear a digest suspect in {self.name}") from exc
        except BotoCoreError as exc:
            raise translate(exc, f"clear a digest suspect in {self.name}") from exc

    def _update_session(self, lock: LockInfo, expression: str, values: dict[str, Any]) -> dict[str, Any]:
        info = json.dumps(
            {"ID": lock.id, "Operation": lock.operation, "Who": lock.who, "Version": lock.version,
             "Created": lock.created, "Path": lock.path},
            separators=(",", ":"),
        )  # fmt: skip
        expires = int(datetime.now(UTC).timestamp()) + LOCK_SESSION_DAYS * 86400
        try:
            response = self._client.update_item(
                TableName=self.name,
                Key={"pk": {"S": f"lock#{lock.path}"}, "sk": {"S": f"{_iso(lock.created_at())}#{lock.id}"}},
                UpdateExpression=expression,
                ExpressionAttributeNames={"#source": "source"},
                ExpressionAttributeValues={":info": {"S": info}, ":expires": {"N": str(expires)}, **values},
                ReturnValues="ALL_NEW",
            )
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, f"record lock session in {self.name}") from exc
        return dict(response.get("Attributes", {}))


def _iso(moment: datetime) -> str:
    # Fixed width, so that sort keys order by time.
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _session(item: dict[str, Any]) -> LockSession:
    try:
        released = item.get("released_at", {}).get("S")
        return LockSession(
            lock=LockInfo.parse(item["info"]["S"]),
            source=item["source"]["S"],
            acquired_at=datetime.fromisoformat(item["acquired_at"]["S"].replace("Z", "+00:00")),
            released_at=datetime.fromisoformat(released.replace("Z", "+00:00")) if released else None,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise MalformedEventError(f"lock session item lacks {exc}") from None
