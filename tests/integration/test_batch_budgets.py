"""SNS PublishBatch and EventBridge PutEvents requests are packed by size: 256 KB per request, not only ten entries."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import boto3

from chalicelib.adapters.event_bus import EventBus
from chalicelib.adapters.sns_topic import SnsTopic
from chalicelib.domain.notifications import Notification, NotificationType, Severity

REQUEST_MAX_BYTES = 262_144


def notification(number: int, names: int = 400) -> Notification:
    """About 150 KB each: each fits alone, two do not fit one request."""
    added = [f'module.m.aws_s3_object.o["{"k" * 350}{i}"]' for i in range(names)]
    return Notification(
        id=f"n{number}",
        type=NotificationType.STATE_CHANGED,
        severity=Severity.INFO,
        occurred_at=datetime(2026, 11, 26, 11, 5, 21, tzinfo=UTC),
        bucket="tfstate",
        key=f"team-{number}/terraform.tfstate",
        workspace="default",
        summary=f"team-{number}: serial 1→2: +{names} ~0 -0",
        details={
            "serial": {"before": 1, "after": 2},
            "resources": {"added": added, "changed": [], "removed": [], "truncated": False,
                          "counts": {"added": names, "changed": 0, "removed": 0}},
        },
    )  # fmt: skip


def request_size(entry: dict[str, Any]) -> int:
    """What SNS counts of a message: body, subject, and each attribute's name, data type and value."""
    size = len(entry["Message"].encode()) + len(entry.get("Subject", "").encode())
    for name, attribute in entry.get("MessageAttributes", {}).items():
        size += len(name.encode()) + len(attribute["DataType"].encode()) + len(attribute["StringValue"].encode())
    return size


def entry_size(entry: dict[str, Any]) -> int:
    """A PutEvents entry's size as AWS documents it: Source, DetailType, Detail and Resources in UTF-8 bytes."""
    parts = [entry["Source"], entry["DetailType"], entry.get("Detail", ""), *entry.get("Resources", [])]
    return sum(len(part.encode()) for part in parts) + (14 if "Time" in entry else 0)


def record(client: Any, operation: str) -> list[dict[str, Any]]:
    requests: list[dict[str, Any]] = []
    client.meta.events.register(
        f"before-parameter-build.{client.meta.service_model.endpoint_prefix}.{operation}",
        lambda params, **_: requests.append(params),
    )
    return requests


def queue(aws: boto3.session.Session, name: str) -> tuple[str, str]:
    sqs = aws.client("sqs")
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    return url, sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def received(aws: boto3.session.Session, url: str) -> list[dict[str, Any]]:
    sqs, bodies = aws.client("sqs"), []
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages"):
        bodies += [json.loads(message["Body"]) for message in messages]
        for message in messages:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return bodies


def test_publish_batch_requests_stay_within_256_kb(aws: boto3.session.Session) -> None:
    sns = aws.client("sns")
    topic_arn = sns.create_topic(Name="guardian")["TopicArn"]
    url, arn = queue(aws, "subscriber")
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"})
    requests = record(sns, "PublishBatch")
    notifications = [notification(n) for n in range(3)]

    assert SnsTopic(sns, topic_arn).send_batch(notifications) == []

    assert len(requests) >= 2
    for request in requests:
        assert sum(request_size(entry) for entry in request["PublishBatchRequestEntries"]) <= REQUEST_MAX_BYTES
    got = sorted(received(aws, url), key=lambda body: body["id"])
    assert got == [n.to_dict() for n in notifications]  # each fitted alone, so nothing was trimmed


def test_put_events_requests_stay_within_256_kb(aws: boto3.session.Session) -> None:
    events = aws.client("events")
    events.create_event_bus(Name="guardian")
    url, arn = queue(aws, "matched")
    events.put_rule(Name="all", EventBusName="guardian", EventPattern=json.dumps({"source": ["tfstate-guardian"]}))
    events.put_targets(Rule="all", EventBusName="guardian", Targets=[{"Id": "q", "Arn": arn}])
    requests = record(events, "PutEvents")
    notifications = [notification(n) for n in range(3)] + [notification(9, names=2000)]  # the last one too big

    assert EventBus(events, "guardian").send_batch(notifications) == []

    assert len(requests) >= 3
    for request in requests:
        assert sum(entry_size(entry) for entry in request["Entries"]) < REQUEST_MAX_BYTES
    got = {event["detail"]["id"]: event["detail"] for event in received(aws, url)}
    assert [got[n.id] for n in notifications[:3]] == [n.to_dict() for n in notifications[:3]]
    big = got["n9"]["details"]["resources"]
    assert big["truncated"] is True and big["counts"]["added"] == 2000 and 0 < len(big["added"]) < 2000
