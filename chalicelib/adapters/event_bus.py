"""`EventBus`: an EventBridge bus; each notification becomes one event, detail-type its notification type."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.adapters.aws_errors import translate
from chalicelib.domain.notifications import Notification
from chalicelib.errors import TransientAwsError

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient

SOURCE = "tfstate-guardian"


class EventBus:
    """Sends with source `tfstate-guardian`, so that rules can match on source and detail-type."""

    name = "eventbridge"

    def __init__(self, client: EventBridgeClient, bus_name: str) -> None:
        self._client = client
        self.bus_name = bus_name

    def send(self, notification: Notification) -> None:
        try:
            response = self._client.put_events(
                Entries=[
                    {
                        "Source": SOURCE,
                        "DetailType": notification.type.value,
                        "Detail": json.dumps(notification.to_dict(), separators=(",", ":")),
                        "EventBusName": self.bus_name,
                        "Resources": [f"arn:aws:s3:::{notification.bucket}/{notification.key}"],
                    }
                ]
            )
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, f"put an event on {self.bus_name}") from exc
        if response.get("FailedEntryCount"):
            codes = {entry.get("ErrorCode", "") for entry in response.get("Entries", []) if entry.get("ErrorCode")}
            raise TransientAwsError(f"EventBridge refused the event: {', '.join(sorted(codes))}")
