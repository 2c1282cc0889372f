"""`SnsTopic`: the notification topic, a channel with `type` and `severity` message attributes.

Each notification is published with `MessageStructure: json` (SNS's per-protocol messages): `default`, which SNS
delivers to every protocol not named (SQS, Lambda, HTTP/S, email-json, …), is the contract's JSON; `email` is a
plain-text body a person can act on (`domain/email_message.py`), under a readable `Subject` (the summary: ASCII, no
line breaks, under 100 characters, as SNS takes it).

A topic takes 256 KB (262,144 bytes) per Publish request, counting the message (here the whole structured message:
both bodies, JSON-encoded), its subject and every message attribute's name, data type and value; a PublishBatch
request takes 256 KB for all its entries together. Each notification is fitted to that budget
(`payload_budget.fit`: both bodies list the same trimmed names) and batches are packed by size as well as by count.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.adapters.aws_errors import translate
from chalicelib.domain.email_message import email_body, email_subject
from chalicelib.domain.notifications import Notification
from chalicelib.domain.payload_budget import fit

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient

PUBLISH_BATCH = 10
PUBLISH_MAX_BYTES = 262_144  # per Publish request, and per PublishBatch request for all entries together


class SnsTopic:
    """An SNS topic that receives every notification: as JSON, and as plain text for email subscriptions."""

    name = "sns"

    def __init__(self, client: SNSClient, topic_arn: str, *, page_url: str | None = None) -> None:
        self._client = client
        self.topic_arn = topic_arn
        self._page_url = page_url

    def send(self, notification: Notification) -> None:
        try:
            self._client.publish(TopicArn=self.topic_arn, **message(notification, page_url=self._page_url))
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, f"publish to {self.topic_arn}") from exc

    def send_batch(self, notifications: Sequence[Notification]) -> list[str]:
        """Publish up to ten per request and 256 KB per request; the ids SNS did not take."""
        failed: list[str] = []
        entries = [{"Id": n.id, **message(n, page_url=self._page_url)} for n in notifications]
        for chunk in _packed(entries):
            try:
                response = self._client.publish_batch(TopicArn=self.topic_arn, PublishBatchRequestEntries=chunk)  # type: ignore[arg-type]
            except (ClientError, BotoCoreError) as exc:
                raise translate(exc, f"publish to {self.topic_arn}") from exc
            failed.extend(entry["Id"] for entry in response.get("Failed", []))
        return failed


def message(notification: Notification, *, page_url: str | None = None) -> dict[str, Any]:
    """The Publish parameters for `notification` (all but the topic), within `PUBLISH_MAX_BYTES`."""
    subject = email_subject(notification.summary, notification.backend)
    attributes = {
        "type": {"DataType": "String", "StringValue": notification.type.value},
        "severity": {"DataType": "String", "StringValue": notification.severity.value},
    }

    def publish(data: dict[str, Any]) -> dict[str, Any]:
        contract = json.dumps(data, separators=(",", ":"))
        per_protocol = {"default": contract, "email": email_body(data, page_url=page_url)}
        return {
            "Subject": subject,
            "Message": json.dumps(per_protocol, ensure_ascii=False, separators=(",", ":")),
            "MessageStructure": "json",
            "MessageAttributes": attributes,
        }

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
