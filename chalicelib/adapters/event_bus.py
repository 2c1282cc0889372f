"""`EventBus`: an EventBridge bus; each notification becomes one event, detail-type its notification type."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.adapters.aws_errors import translate
from chalicelib.domain.notifications import Notification
from chalicelib.errors import TransientAwsError

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient

SOURCE = "tfstate-guardian"
PUT_EVENTS_BATCH = 10


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
        """Put up to ten events per request; the ids EventBridge refused."""
        failed: list[str] = []
        for start in range(0, len(notifications), PUT_EVENTS_BATCH):
            chunk = notifications[start : start + PUT_EVENTS_BATCH]
            try:
                response = self._client.put_events(Entries=[self._entry(n) for n in chunk])
            except (ClientError, BotoCoreError) as exc:
                raise translate(exc, f"put events on {self.bus_name}") from exc
            if response.get("FailedEntryCount"):
                entries = response.get("Entries", [])
                failed.extend(n.id for n, entry in zip(chunk, entries, strict=False) if entry.get("ErrorCode"))
        return failed

    def _entry(self, notification: Notification) -> Any:
        return {
            "Source": SOURCE,
            "DetailType": notification.type.value,
            "Detail": json.dumps(notification.to_dict(), separators=(",", ":")),
            "EventBusName": self.bus_name,
            "Resources": [f"arn:aws:s3:::{notification.bucket}/{notification.key}"],
        }
