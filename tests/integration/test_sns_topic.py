import json
from datetime import UTC, datetime

import boto3

from chalicelib.adapters.sns_topic import SnsTopic
from chalicelib.domain.notifications import Notification, NotificationType, Severity


def test_notification_arrives_as_json_with_filterable_attributes(aws: boto3.session.Session) -> None:
    sns, sqs = aws.client("sns"), aws.client("sqs")
    topic_arn = sns.create_topic(Name="guardian")["TopicArn"]
    queue_url = sqs.create_queue(QueueName="subscriber")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
    notification = Notification(
        id="abc",
        type=NotificationType.STATE_CHANGED,
        severity=Severity.CRITICAL,
        occurred_at=datetime(2026, 11, 26, 11, 5, 21, tzinfo=UTC),
        bucket="tfstate",
        key="prod/terraform.tfstate",
        workspace="default",
        summary="prod: serial 41→42 (lineage changed) " + "x" * 200,
        details={"serial": {"before": 41, "after": 42}},
    )

    SnsTopic(sns, topic_arn).send(notification)

    (message,) = sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=1)["Messages"]
    envelope = json.loads(message["Body"])
    assert json.loads(envelope["Message"]) == notification.to_dict()
    assert envelope["MessageAttributes"]["type"]["Value"] == "state.changed"
    assert envelope["MessageAttributes"]["severity"]["Value"] == "critical"
    assert envelope["Subject"].startswith("prod: serial 41->42") and len(envelope["Subject"]) < 100
