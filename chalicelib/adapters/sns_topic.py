"""`SnsTopic`: the notification topic, a channel with `type` and `severity` message attributes."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.adapters.aws_errors import translate
from chalicelib.domain.notifications import Notification

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient

_SUBJECT_LIMIT = 99
PUBLISH_BATCH = 10


class SnsTopic:
    """An SNS topic that receives every notification as JSON."""

    name = "sns"

    def __init__(self, client: SNSClient, topic_arn: str) -> None:
        self._client = client
        self.topic_arn = topic_arn

    def send(self, notification: Notification) -> None:
        try:
            self._client.publish(TopicArn=self.topic_arn, **_message(notification))
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, f"publish to {self.topic_arn}") from exc

    def send_batch(self, notifications: Sequence[Notification]) -> list[str]:
        """Publish up to ten per request; the ids SNS did not take."""
        failed: list[str] = []
        for start in range(0, len(notifications), PUBLISH_BATCH):
            chunk = notifications[start : start + PUBLISH_BATCH]
            try:
                response = self._client.publish_batch(
                    TopicArn=self.topic_arn,
                    PublishBatchRequestEntries=[{"Id": n.id, **_message(n)} for n in chunk],  # type: ignore[typeddict-item]
                )
            except (ClientError, BotoCoreError) as exc:
                raise translate(exc, f"publish to {self.topic_arn}") from exc
            failed.extend(entry["Id"] for entry in response.get("Failed", []))
        return failed


def _message(notification: Notification) -> dict[str, Any]:
    return {
        "Subject": _subject(notification.summary),
        "Message": json.dumps(notification.to_dict(), separators=(",", ":")),
        "MessageAttributes": {
            "type": {"DataType": "String", "StringValue": notification.type.value},
            "severity": {"DataType": "String", "StringValue": notification.severity.value},
        },
    }


def _subject(summary: str) -> str:
    # SNS subjects are ASCII without line breaks, under 100 characters.
    ascii_only = summary.replace("→", "->").encode("ascii", "replace").decode("ascii")
    flat = " ".join(ascii_only.split())
    return flat if len(flat) <= _SUBJECT_LIMIT else flat[: _SUBJECT_LIMIT - 3] + "..."
