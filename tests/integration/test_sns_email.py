"""Email through SNS on the emulator: email subscriptions read a subject and plain text, every other protocol the
JSON contract (SNS per-protocol messages, `MessageStructure: json`).

moto delivers nothing to an email subscription; the emulator the tests run (`local_stack/moto_server.py`) delivers
it to the SQS queue `inbox-<address>` instead, with the message SNS picks for that protocol (README, emulator notes).
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from chalicelib.adapters.sns_topic import PUBLISH_MAX_BYTES, SnsTopic, request_size
from chalicelib.domain.email_message import email_body, email_subject
from chalicelib.domain.notifications import Notification
from local_stack.moto_server import inbox_queue_name
from tests.support import example_notifications as examples
from tests.support.receiver import receiver

PAGE = "https://guardian.example.com/"


def queue(aws: boto3.session.Session, name: str) -> tuple[str, str]:
    sqs = aws.client("sqs")
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    return url, sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def drain(aws: boto3.session.Session, url: str) -> list[Any]:
    sqs, bodies = aws.client("sqs"), []
    # The emulator delivers as it publishes: every message is in the queue once Publish answers.
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages"):
        bodies += [json.loads(message["Body"]) for message in messages]
        for message in messages:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return bodies


class Subscribers:
    """One subscriber of each protocol the test can observe on the emulator."""

    def __init__(self, aws: boto3.session.Session, topic_arn: str, http_url: str) -> None:
        sns = aws.client("sns")
        self.aws = aws
        self.email, _ = queue(aws, inbox_queue_name("oncall@example.com"))
        self.email_json, _ = queue(aws, inbox_queue_name("robot@example.com"))
        self.raw, raw_arn = queue(aws, "raw-subscriber")
        self.wrapped, wrapped_arn = queue(aws, "wrapped-subscriber")
        sns.subscribe(TopicArn=topic_arn, Protocol="email", Endpoint="oncall@example.com")
        sns.subscribe(TopicArn=topic_arn, Protocol="email-json", Endpoint="robot@example.com")
        sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=raw_arn, Attributes={"RawMessageDelivery": "true"})
        sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=wrapped_arn)
        sns.subscribe(TopicArn=topic_arn, Protocol="http", Endpoint=http_url)

    def received(self) -> dict[str, list[Any]]:
        names = {"email": self.email, "email-json": self.email_json, "raw": self.raw, "wrapped": self.wrapped}
        return {name: drain(self.aws, url) for name, url in names.items()}


@pytest.fixture
def topic(aws: boto3.session.Session) -> str:
    return str(aws.client("sns").create_topic(Name="guardian")["TopicArn"])


def test_email_reads_a_subject_and_text_and_every_other_protocol_the_contract(aws, topic: str) -> None:
    notification = examples.deleted()
    with receiver() as http:
        subscribers = Subscribers(aws, topic, http.url)
        SnsTopic(aws.client("sns"), topic, page_url=PAGE).send(notification)
        got = subscribers.received()
    contract = notification.to_dict()

    (mail,) = got["email"]
    assert mail["Subject"] == email_subject(notification.summary) == "platform/network: deleted (delete marker)"
    assert mail["Message"] == email_body(contract, page_url=PAGE)
    assert mail["Message"].startswith("CRITICAL: State deleted\n")
    assert f"    tfguardian rollback {examples.KEY} --version-id 3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY" in mail["Message"]
    with pytest.raises(ValueError):
        json.loads(mail["Message"])  # a person's mail, not JSON

    (machine_mail,) = got["email-json"]
    assert json.loads(machine_mail["Message"]) == contract and machine_mail["Subject"] == mail["Subject"]
    (raw,) = got["raw"]
    assert raw == contract
    (wrapped,) = got["wrapped"]
    assert json.loads(wrapped["Message"]) == contract and wrapped["Subject"] == mail["Subject"]
    assert wrapped["MessageAttributes"]["severity"]["Value"] == "critical"
    (posted,) = http.requests
    assert json.loads(json.loads(posted.body)["Message"]) == contract


def test_batches_carry_the_email_text_too(aws, topic: str) -> None:
    with receiver() as http:
        subscribers = Subscribers(aws, topic, http.url)
        batch = [examples.deleted(), examples.mismatch(), examples.changed()]
        assert SnsTopic(aws.client("sns"), topic).send_batch(batch) == []
        got = subscribers.received()
    assert sorted(mail["Subject"] for mail in got["email"]) == sorted(email_subject(n.summary) for n in batch)
    assert any("tfguardian repair-digest platform/network/terraform.tfstate" in m["Message"] for m in got["email"])
    assert sorted(body["id"] for body in got["raw"]) == sorted(n.id for n in batch)


def test_a_huge_notification_fits_256_kb_as_a_whole_structured_message(aws, topic: str) -> None:
    data = examples.changed(removed=2000).to_dict()
    data["details"]["resources"]["removed"] = [f'module.m.aws_s3_object.o["{"k" * 480}{i}"]' for i in range(500)]
    notification = Notification.from_dict(data)  # 250 KB of names: with the email text, over the limit
    published: list[dict[str, Any]] = []
    sns = aws.client("sns")
    sns.meta.events.register("before-parameter-build.sns.Publish", lambda params, **_: published.append(params))
    with receiver() as http:
        subscribers = Subscribers(aws, topic, http.url)
        SnsTopic(sns, topic).send(notification)
        got = subscribers.received()
    (request,) = published
    assert request_size(request) <= PUBLISH_MAX_BYTES
    (raw,) = got["raw"]
    removed = raw["details"]["resources"]
    assert removed["truncated"] is True and removed["counts"]["removed"] == 2000 and 50 < len(removed["removed"]) < 500
    (mail,) = got["email"]
    assert "RESOURCES +1 ~1 -2,000" in mail["Message"] and "    - ...and 1,950 more" in mail["Message"]


def test_sns_refuses_a_structured_message_without_a_default(aws, topic: str) -> None:
    """The emulator checks the structure as SNS documents it, so the tests above could fail."""
    _, arn = queue(aws, "subscriber")
    aws.client("sns").subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
    with pytest.raises(ClientError, match="default"):
        aws.client("sns").publish(
            TopicArn=topic, MessageStructure="json", Message=json.dumps({"email": "text only"}), Subject="s"
        )
