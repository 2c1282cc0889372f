"""A lease is not a delivery: an invocation killed while delivering leaves a claim; the retry that finds it live does
not count it as delivered, and the notification goes out once the lease has run out, exactly once per channel."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib import composition
from chalicelib.adapters.sns_topic import SnsTopic
from chalicelib.errors import ChannelDeliveryError
from chalicelib.services.notifier import LEASE_S
from local_stack.lambda_runtime import LocalLambdaContext
from tests.conftest import RunningStack
from tests.support.terraform import TerraformDir


class LambdaKilled(BaseException):
    """Lambda stopping the function at its timeout: nothing after this point of the invocation runs."""


@pytest.fixture
def sns_queue(aws, stack: RunningStack) -> Iterator[Any]:
    sqs = aws.client("sqs")
    url = sqs.create_queue(QueueName="leases")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    aws.client("sns").subscribe(TopicArn=stack.resources.notify_topic_arn, Protocol="sqs", Endpoint=arn)
    received: list[str] = []

    def read() -> list[str]:
        while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
            for message in messages:
                received.append(json.loads(json.loads(message["Body"])["Message"])["id"])
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return list(received)

    yield read


def killed_while_publishing(monkeypatch: pytest.MonkeyPatch) -> None:
    def killed(self: SnsTopic, *args: Any) -> Any:
        raise LambdaKilled

    monkeypatch.setattr(SnsTopic, "send", killed)
    monkeypatch.setattr(SnsTopic, "send_batch", killed)


def invocation(timeout_s: float) -> LocalLambdaContext:
    return LocalLambdaContext(function_name="tfstate-guardian-local-retry", timeout_s=timeout_s)


def file_ids(stack: RunningStack) -> Counter[str]:
    return Counter(n["id"] for n in stack.notifications())


@pytest.mark.parametrize("handler", ["on_state_object_event", "on_lock_table_change"])
def test_a_retry_during_a_dead_invocations_lease_fails_and_the_next_delivers_once(
    stack: RunningStack, tf: TerraformDir, sns_queue: Any, monkeypatch: pytest.MonkeyPatch, handler: str
) -> None:
    tf.apply()
    s3_events, stream_batches = stack.stack.take_events()
    events = s3_events if handler == "on_state_object_event" else stream_batches
    assert events
    deliver = getattr(stack.app, handler)

    with monkeypatch.context() as patch:  # the first invocation dies while publishing to SNS
        killed_while_publishing(patch)
        with pytest.raises(LambdaKilled):
            for event in events:
                deliver(event, invocation(45))
    # An immediate retry (a stream batch is retried at once) with too little time to wait out the lease: it fails,
    # and publishes nothing: the dead invocation's claim is not a delivery.
    with pytest.raises(ChannelDeliveryError):
        for event in events:
            deliver(event, invocation(3))
    assert sns_queue() == []

    # After the lease (Lambda's retry of an S3 event comes a minute later), the retry delivers; later ones skip.
    notifier = composition.container().home.notifier
    monkeypatch.setattr(notifier, "_clock", lambda: time.time() + LEASE_S + 1)
    for _ in range(2):
        for event in events:
            deliver(event, invocation(3))
    published = Counter(sns_queue())
    assert published and set(published.values()) == {1}
    assert set(published) == set(file_ids(stack)) and set(file_ids(stack).values()) == {1}


def test_a_retry_with_time_enough_waits_for_the_lease_and_delivers_in_the_same_invocation(
    stack: RunningStack, tf: TerraformDir, sns_queue: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    tf.apply()
    s3_events, _ = stack.stack.take_events()
    with monkeypatch.context() as patch:
        killed_while_publishing(patch)
        with pytest.raises(LambdaKilled):
            for event in s3_events:
                stack.app.on_state_object_event(event, invocation(45))
    # The retry comes when two seconds of the lease are left, with 45 s to run: it waits, then delivers.
    started = time.time()
    monkeypatch.setattr(composition.container().home.notifier, "_clock", lambda: time.time() + LEASE_S - 2)
    for event in s3_events:
        stack.app.on_state_object_event(event, invocation(45))
    assert 1.5 < time.time() - started < 20
    published = Counter(sns_queue())
    assert published and set(published.values()) == {1} and set(published) == set(file_ids(stack))
    assert set(file_ids(stack).values()) == {1}
