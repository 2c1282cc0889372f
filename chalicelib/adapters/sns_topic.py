"""`SnsTopic`: the notification topic, a channel with `type` and `severity` message attributes."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.adapters.aws_errors import translate
from chalicelib.domain.notifications import Notification

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient

_SUBJECT_LIMIT = 99


class SnsTopic:
    """An SNS topic that receives every notification as JSON."""

    name = "sns"

    def __init__(self, client: SNSClient, topic_arn: str) -> None:
        self._client = client
        self.topic_arn = topic_arn

    def send(self, notification: Notification) -> None:
        try:
            self._client.publish(
                TopicArn=self.topic_arn,
                Subject=_subject(notification.summary),
                Message=json.dumps(notification.to_dict(), separators=(",", ":")),
                MessageAttributes={
                    "type": {"DataType": "String", "StringValue": notification.type.value},
                    "severity": {"DataType": "String", "StringValue": notification.severity.value},
                },
            )
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, f"publish to {self.topic_arn}") from exc


def _subject(summary: str) -> str:
    # SNS subjects are ASCII without line breaks, under 100 characters.
    ascii_only = summary.replace("→", "->").encode("ascii", "replace").decode("ascii")
    flat = " ".join(ascii_only.split())
    return flat if len(flat) <= _SUBJECT_LIMIT else flat[: _SUBJECT_LIMIT - 3] + "..."
