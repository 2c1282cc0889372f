"""`AuditTable`: the audit trail in the guardian's table, every notification the guardian gave with its actors.

Each event is written twice, so that both ways of asking are one Query a page:
- by state: `pk = audit#key#<bucket>/<key>`, `sk = <time>#<id>`;
- by day, for the fleet: `pk = audit#day#<yyyy-mm-dd>`, `sk = <time>#<id>`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.adapters.aws_errors import translate
from chalicelib.adapters.dynamo_items import attributes, batch_write, iso, moment, text
from chalicelib.domain.history import AuditEvent

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


class AuditTable:
    """The audit trail; each event kept `retention` (DynamoDB TTL)."""

    def __init__(self, client: DynamoDBClient, table: str, *, retention: timedelta) -> None:
        self._client = client
        self.name = table
        self._retention = retention

    def record(self, events: list[AuditEvent]) -> None:
        """Write each event under its state and under its day; writing one again writes the same items."""
        requests = []
        for event in events:
            item = attributes(
                {
                    "sk": f"{iso(event.occurred_at)}#{event.id}",
                    "id": event.id,
                    "type": event.type,
                    "occurred_at": event.occurred_at,
                    "bucket": event.bucket,
                    "key": event.key,
                    "workspace": event.workspace,
                    "severity": event.severity,
                    "summary": event.summary,
                    "who": event.who,
                    "principal": event.principal,
                    "caller": event.caller,
                    "reason": event.reason,
                    "version_id": event.version_id,
                    "expires_at": int((event.occurred_at + self._retention).timestamp()),
                }
            )
            for pk in (key_partition(event.bucket, event.key), day_partition(event.occurred_at)):
                requests.append({"PutRequest": {"Item": {"pk": {"S": pk}, **item}}})
        batch_write(self._client, self.name, requests, "record audit events")

    def query(
        self,
        pk: str,
        *,
        since: datetime | None,
        until: datetime | None,
        limit: int,
        start_sk: str | None,
        filters: dict[str, str],
    ) -> tuple[list[AuditEvent], str | None]:
        """One page of one partition, newest first, within [since, until]; the sort key to go on from, if any.

        `filters`: `type`, `actor` (the lock holder, the S3 principal or the API caller) and `prefix` (of the key).
        """
        values: dict[str, Any] = {":pk": {"S": pk}}
        condition = "pk = :pk"
        if since or until:
            values[":low"] = {"S": iso(since) if since else ""}
            values[":high"] = {"S": (iso(until) if until else "~") + "#~"}
            condition += " AND sk BETWEEN :low AND :high"
        clauses = []
        names: dict[str, str] = {}
        if "type" in filters:
            clauses.append("#type = :type")
            names["#type"] = "type"
            values[":type"] = {"S": filters["type"]}
        if "actor" in filters:
            clauses.append("(who = :actor OR principal = :actor OR caller = :actor)")
            values[":actor"] = {"S": filters["actor"]}
        if "prefix" in filters:
            clauses.append("begins_with(#key, :prefix)")
            names["#key"] = "key"
            values[":prefix"] = {"S": filters["prefix"]}
        query: dict[str, Any] = {
            "TableName": self.name,
            "KeyConditionExpression": condition,
            "ExpressionAttributeValues": values,
            "ScanIndexForward": False,
            "Limit": limit,
        }
        if clauses:
            query["FilterExpression"] = " AND ".join(clauses)
        if names:
            query["ExpressionAttributeNames"] = names
        if start_sk:
            query["ExclusiveStartKey"] = {"pk": {"S": pk}, "sk": {"S": start_sk}}
        try:
            response = self._client.query(**query)
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, f"read the audit trail in {self.name}") from exc
        last = response.get("LastEvaluatedKey")
        return [_event(item) for item in response.get("Items", [])], (last["sk"]["S"] if last else None)


def key_partition(bucket: str, key: str) -> str:
    return f"audit#key#{bucket}/{key}"


def day_partition(moment_: datetime) -> str:
    return f"audit#day#{moment_.astimezone(UTC).strftime('%Y-%m-%d')}"


def _event(item: dict[str, Any]) -> AuditEvent:
    return AuditEvent(
        id=text(item, "id") or "",
        type=text(item, "type") or "",
        occurred_at=moment(item, "occurred_at") or datetime.fromtimestamp(0, UTC),
        bucket=text(item, "bucket") or "",
        key=text(item, "key") or "",
        workspace=text(item, "workspace") or "default",
        severity=text(item, "severity") or "info",
        summary=text(item, "summary") or "",
        who=text(item, "who"),
        principal=text(item, "principal"),
        caller=text(item, "caller"),
        reason=text(item, "reason"),
        version_id=text(item, "version_id"),
    )
