"""`EventBus`: an EventBridge bus; each notification becomes one event, detail-type its notification type.

PutEvents takes less than 256 KB per request, counted as AWS documents it ("Calculating Amazon EventBridge
PutEvents event entry size"): the UTF-8 bytes of each entry's `Source`, `DetailType`, `Detail` and every
`Resources` ARN, plus 14 bytes for a `Time` (never set here). Each notification is fitted to that budget
(`payload_budget.fit`) and requests are packed by size as well as by count.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.adapters.aws_errors import translate
from chalicelib.domain.notifications import Notification
from chalicelib.domain.payload_budget import fit
from chalicelib.errors import TransientAwsError

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient

SOURCE = "tfstate-guardian"
PUT_EVENTS_BATCH = 10
PUT_EVENTS_MAX_BYTES = 262_143  # "less than 256KB" for all the entries of one request
_TIME_BYTES = 14


class EventBus:
    """Sends with source `tfstate-guardian`, so that rules can match on source and detail-type."""

    name = "eventbridge"

    def __init__(self, client: EventBridgeClient, bus_name: str) -> None:
        self._client = client
        self.bus_name = bus_name

    def send(self, notification: Notification) -> None:
        if self.send_batch([notification]):
            raise TransientAwsError(f"EventBridge refused the event {notification.id}")

    def send_batch(self, notifications: Sequence[Notification]) -> list[str]:
        """Put up to ten events and less than 256 KB per request; the ids EventBridge refused."""
        failed: list[str] = []
        for chunk in _packed([(n.id, self.entry(n)) for n in notifications]):
            try:
                response = self._client.put_events(Entries=[entry for _, entry in chunk])
            except (ClientError, BotoCoreError) as exc:
                raise translate(exc, f"put events on {self.bus_name}") from exc
            if response.get("FailedEntryCount"):
                entries = response.get("Entries", [])
                failed.extend(nid for (nid, _), entry in zip(chunk, entries, strict=False) if entry.get("ErrorCode"))
        return failed

    def entry(self, notification: Notification) -> Any:
        """The PutEvents entry for `notification`, within `PUT_EVENTS_MAX_BYTES`."""

        def entry(data: dict[str, Any]) -> dict[str, Any]:
            return {
                "Source": SOURCE,
                "DetailType": notification.type.value,
                "Detail": json.dumps(data, separators=(",", ":")),
                "EventBusName": self.bus_name,
                "Resources": [f"arn:aws:s3:::{notification.bucket}/{notification.key}"],
            }

        return entry(fit(notification.to_dict(), PUT_EVENTS_MAX_BYTES, lambda data: entry_size(entry(data))))


def entry_size(entry: dict[str, Any]) -> int:
    """An entry's size as EventBridge calculates it (`EventBusName` is not counted)."""
    size = _TIME_BYTES if entry.get("Time") is not None else 0
    size += len(entry["Source"].encode()) + len(entry["DetailType"].encode())
    size += len(entry["Detail"].encode()) if entry.get("Detail") is not None else 0
    return size + sum(len(resource.encode()) for resource in entry.get("Resources") or [])


def _packed(entries: list[tuple[str, Any]]) -> list[list[tuple[str, Any]]]:
    """Consecutive entries in requests of at most ten and at most `PUT_EVENTS_MAX_BYTES` together."""
    batches: list[list[tuple[str, Any]]] = []
    used = 0
    for item in entries:
        size = entry_size(item[1])
        if not batches or len(batches[-1]) == PUT_EVENTS_BATCH or used + size > PUT_EVENTS_MAX_BYTES:
            batches.append([])
            used = 0
        batches[-1].append(item)
        used += size
    return batches
