"""`SnsTopic`: the notification topic, a channel with `type` and `severity` message attributes.

A topic takes 256 KB (262,144 bytes) per Publish request, counting the message, its subject and every message
attribute's name, data type and value; a PublishBatch request takes 256 KB for all its entries together. Each
notification is fitted to that budget (`payload_budget.fit`) and batches are packed by size as well as by count.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.adapters.aws_errors import translate
from chalicelib.domain.notifications import Notification
from chalicelib.domain.payload_budget import fit

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient

_SUBJECT_LIMIT = 99
PUBLISH_BATCH = 10
PUBLISH_MAX_BYTES = 262_144  # per Publish request, and per PublishBatch request for all entries together


class SnsTopic:
    """An SNS topic that receives every notification as JSON."""

    name = "sns"

    def __init__(self, client: SNSClient, topic_arn: str) -> None:
        self._client = client
        self.topic_arn = topic_arn

    def send(self, notification: Notification) -> None:
        try:
            self._client.publish(TopicArn=self.topic_arn, **message(notification))
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, f"publish to {self.topic_arn}") from exc

    def send_batch(self, notifications: Sequence[Notification]) -> list[str]:
        """Publish up to ten per request and 256 KB per request; the ids SNS did not take."""
        failed: list[str] = []
        entries = [{"Id": n.id, **message(n)} for n in notifications]
        for chunk in _packed(entries):
            try:
                response = self._client.publish_batch(TopicArn=self.topic_arn, PublishBatchRequestEntries=chunk)  # type: ignore[arg-type]
            except (ClientError, BotoCoreError) as exc:
                raise translate(exc, f"publish to {self.topic_arn}") from exc
            failed.extend(entry["Id"] for entry in response.get("Failed", []))
        return failed


def message(notification: Notification) -> dict[str, Any]:
    """The Publish parameters for `notification` (all but the topic), within `PUBLISH_MAX_BYTES`."""
    subject = _subject(notification.summary)
    attributes = {
        "type": {"DataType": "String", "StringValue": notification.type.value},
        "severity": {"DataType": "String", "StringValue": notification.severity.value},
    }

    def publish(data: dict[str, Any]) -> dict[str, Any]:
        body = json.dumps(data, separators=(",", ":"))
        return {"Subject": subject, "Message": body, "MessageAttributes": attributes}

    return publish(fit(notification.to_dict(), PUBLISH_MAX_BYTES, lambda data: request_size(publish(data))))


def request_size(parameters: dict[str, Any]) -> int:
    """The bytes SNS counts: message, subject, and each attribute's name, data type and value."""
    size = len(parameters["Message"].encode()) + len(parameters.get("Subject", "").encode())
    for name, attribute in parameters.get("MessageAttributes", {}).items():
        size += len(name.encode()) + len(attribute["DataType"].encode()) + len(attribute["StringValue"].encode())
    return size


def _packed(entries: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Consecutive entries in batches of at most ten and at most `PUBLISH_MAX_BYTES` together."""
    batches: list[list[dict[str, Any]]] = []
    used = 0
    for entry in entries:
        size = request_size(entry)
        if not batches or len(batches[-1]) == PUBLISH_BATCH or used + size > PUBLISH_MAX_BYTES:
            batches.append([])
            used = 0
        batches[-1].append(entry)
        used += size
    return batches


def _subject(summary: str) -> str:
    # SNS subjects are ASCII without line breaks or control characters, under 100 characters.
    ascii_only = summary.replace("→", "->").encode("ascii", "replace").decode("ascii")
    printable = "".join(char if unicodedata.category(char) != "Cc" else " " for char in ascii_only)
    flat = " ".join(printable.split()) or "tfstate-guardian notification"
    return flat if len(flat) <= _SUBJECT_LIMIT else flat[: _SUBJECT_LIMIT - 3] + "..."
