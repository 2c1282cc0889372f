"""DynamoDB's wire format for the guardian's own records: attribute values in and out, and batched writes."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.adapters.aws_errors import translate
from chalicelib.errors import TransientAwsError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

BATCH_WRITE_ITEMS = 25
BATCH_WRITE_ATTEMPTS = 5


def attributes(values: Mapping[str, object]) -> dict[str, Any]:
    """DynamoDB attribute values for plain ones; a None is left out (DynamoDB has no use for an empty string)."""
    item: dict[str, Any] = {}
    for name, value in values.items():
        if value is None:
            continue
        if isinstance(value, bool):
            item[name] = {"BOOL": value}
        elif isinstance(value, int | float):
            item[name] = {"N": str(value)}
        elif isinstance(value, frozenset | set):
            if value:  # DynamoDB refuses an empty set
                item[name] = {"SS": sorted(str(entry) for entry in value)}
        elif isinstance(value, datetime):
            item[name] = {"S": iso(value)}
        else:
            item[name] = {"S": str(value)}
    return item


def text(item: Mapping[str, Any], name: str) -> str | None:
    value = item.get(name, {}).get("S")
    return str(value) if value is not None else None


def number(item: Mapping[str, Any], name: str) -> int | None:
    value = item.get(name, {}).get("N")
    return int(value) if value is not None else None


def flag(item: Mapping[str, Any], name: str) -> bool:
    return bool(item.get(name, {}).get("BOOL", False))


def strings(item: Mapping[str, Any], name: str) -> frozenset[str]:
    return frozenset(item.get(name, {}).get("SS", []))


def moment(item: Mapping[str, Any], name: str) -> datetime | None:
    value = text(item, name)
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def iso(value: datetime) -> str:
    """Fixed width, so that sort keys order by time."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def batch_write(client: DynamoDBClient, table: str, requests: list[Any], what: str) -> None:
    """Write or delete items 25 a request, sending again what DynamoDB left unprocessed."""
    for start in range(0, len(requests), BATCH_WRITE_ITEMS):
        chunk: dict[str, Any] = {table: requests[start : start + BATCH_WRITE_ITEMS]}
        for attempt in range(BATCH_WRITE_ATTEMPTS):
            try:
                response = client.batch_write_item(RequestItems=chunk)
            except (ClientError, BotoCoreError) as exc:
                raise translate(exc, f"{what} in {table}") from exc
            chunk = dict(response.get("UnprocessedItems") or {})
            if not chunk:
                break
            time.sleep(0.05 * 2**attempt)
        if chunk:
            raise TransientAwsError(f"{what} in {table}: items left unprocessed")


def transact(client: DynamoDBClient, actions: list[Any], what: str) -> set[int]:
    """Run one transaction; the positions refused by their condition (then nothing was written)."""
    return set(transact_for_items(client, actions, what))


def transact_for_items(client: DynamoDBClient, actions: list[Any], what: str) -> dict[int, Mapping[str, Any] | None]:
    """Run one transaction; the positions refused by their condition (then nothing was written), each with the item
    its condition found when its action asked for it (`ReturnValuesOnConditionCheckFailure`), else None."""
    try:
        client.transact_write_items(TransactItems=actions)
    except ClientError as exc:
        reasons = exc.response.get("CancellationReasons")
        if exc.response.get("Error", {}).get("Code") == "TransactionCanceledException" and reasons:
            refused: dict[int, Mapping[str, Any] | None] = {
                position: reason.get("Item")
                for position, reason in enumerate(reasons)
                if reason.get("Code") == "ConditionalCheckFailed"
            }
            if refused:
                return refused
        raise translate(exc, what) from exc
    except BotoCoreError as exc:
        raise translate(exc, what) from exc
    return {}
