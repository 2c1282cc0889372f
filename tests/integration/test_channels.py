"""Every channel against real endpoints: SNS, EventBridge and secrets on the emulator, webhooks on 127.0.0.1."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters

from chalicelib.adapters.audit_table import AuditTable, key_partition
from chalicelib.adapters.event_bus import EventBus
from chalicelib.adapters.guardian_table import GuardianTable
from chalicelib.adapters.secrets import SecretValue
from chalicelib.channels.slack import SlackChannel
from chalicelib.channels.webhook import WebhookChannel, signature
from chalicelib.domain.notifications import Notification, NotificationType, Severity
from chalicelib.errors import ChannelDeliveryError, GuardianError, SettingsError
from chalicelib.services.notifier import Notifier
from local_stack.provision import provision
from tests.support.receiver import receiver


def notification(kind: NotificationType = NotificationType.STATE_CHANGED, id: str = "n1") -> Notification:
    return Notification(
        id=id,
        type=kind,
        severity=Severity.WARNING,
        occurred_at=datetime(2026, 11, 26, 11, 5, 21, tzinfo=UTC),
        bucket="tfstate",
        key="env:/prod/network/terraform.tfstate",
        workspace="prod",
        summary="network [prod]: serial 41→42 by ci@runner-7 (apply): +2 ~1 -0",
        details={"serial": {"before": 41, "after": 42}},
    )


@pytest.fixture(autouse=True)
def fresh_parameters() -> None:
    """Powertools caches parameters per process; each test has its own emulator state."""
    parameters.clear_caches()  # type: ignore[no-untyped-call]


@pytest.fixture
def ledger(aws: boto3.session.Session) -> GuardianTable:
    resources = provision(aws, state_bucket="states", lock_table="locks", guardian_table="guardian", topic="t")
    return GuardianTable(aws.client("dynamodb"), resources.guardian_table)


def test_slack_gets_block_kit_from_a_url_kept_in_ssm(aws: boto3.session.Session) -> None:
    with receiver() as slack:
        aws.client("ssm").put_parameter(Name="/guardian/slack", Value=slack.url, Type="SecureString")
        SlackChannel(SecretValue("ssm:/guardian/slack")).send(notification())
    (request,) = slack.requests
    message = json.loads(request.body)
    assert message["text"] == ":warning: network [prod]: serial 41→42 by ci@runner-7 (apply): +2 ~1 -0"
    assert message["blocks"][0]["type"] == "header" and message["blocks"][1]["block_id"] == "summary"
    assert "s3://tfstate/env:/prod/network/terraform.tfstate" in message["blocks"][2]["fields"][0]["text"]


def test_webhook_is_signed_with_a_secret_from_secrets_manager(aws: boto3.session.Session) -> None:
    aws.client("secretsmanager").create_secret(Name="guardian-webhook", SecretString="hmac-key")
    with receiver() as hook:
        WebhookChannel(hook.url, SecretValue("secretsmanager:guardian-webhook")).send(notification())
    (request,) = hook.requests
    timestamp = request.headers["X-Guardian-Timestamp"]
    assert abs(int(timestamp) - time.time()) < 60
    assert request.headers["X-Guardian-Signature"] == signature("hmac-key", timestamp, request.body)
    assert request.headers["X-Guardian-Signature"] != signature("other-key", timestamp, request.body)
    assert json.loads(request.body) == notification().to_dict()


def test_a_failing_webhook_is_retried_then_delivered_once(aws, ledger: GuardianTable) -> None:
    aws.client("ssm").put_parameter(Name="/guardian/hook", Value="k", Type="SecureString")
    sleeps: list[float] = []
    with receiver() as hook:
        hook.fail_next = 2
        notifier = Notifier([WebhookChannel(hook.url, SecretValue("ssm:/guardian/hook"))], ledger, sleep=sleeps.append)
        notifier.notify(notification())
        notifier.notify(notification())  # a replay
    assert len(hook.requests) == 1
    assert sleeps == [0.5, 1.0]  # backoff between the three attempts


def test_a_webhook_that_stays_down_raises_for_a_retry(aws, ledger: GuardianTable) -> None:
    aws.client("ssm").put_parameter(Name="/guardian/hook", Value="k", Type="SecureString")
    with receiver() as hook:
        hook.fail_next = 3
        notifier = Notifier([WebhookChannel(hook.url, SecretValue("ssm:/guardian/hook"))], ledger, sleep=lambda s: None)
        with pytest.raises(ChannelDeliveryError):
            notifier.notify(notification())
        notifier.notify(notification())  # the retry delivers
    assert len(hook.requests) == 1


def test_eventbridge_events_carry_source_and_detail_type(aws: boto3.session.Session) -> None:
    events, sqs = aws.client("events"), aws.client("sqs")
    events.create_event_bus(Name="guardian")
    queue_url = sqs.create_queue(QueueName="matched")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(
        Name="deletions",
        EventBusName="guardian",
        EventPattern=json.dumps({"source": ["tfstate-guardian"], "detail-type": ["state.deleted"]}),
    )
    events.put_targets(Rule="deletions", EventBusName="guardian", Targets=[{"Id": "q", "Arn": queue_arn}])
    bus = EventBus(events, "guardian")
    bus.send(notification(NotificationType.STATE_CHANGED, "a"))
    bus.send(notification(NotificationType.STATE_DELETED, "b"))
    (message,) = sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=1, MaxNumberOfMessages=10)["Messages"]
    event = json.loads(message["Body"])
    assert event["source"] == "tfstate-guardian" and event["detail-type"] == "state.deleted"
    assert event["detail"]["id"] == "b"


def test_routes_send_each_type_only_where_asked(aws, ledger: GuardianTable) -> None:
    with receiver() as slack, receiver() as hook:
        aws.client("ssm").put_parameter(Name="/guardian/slack", Value=slack.url, Type="SecureString")
        aws.client("ssm").put_parameter(Name="/guardian/hook", Value="k", Type="SecureString")
        notifier = Notifier(
            [
                SlackChannel(SecretValue("ssm:/guardian/slack")),
                WebhookChannel(hook.url, SecretValue("ssm:/guardian/hook")),
            ],
            ledger,
            routes={"slack": frozenset({"state.deleted"})},
        )
        notifier.notify(notification(NotificationType.STATE_CHANGED, "a"))
        notifier.notify(notification(NotificationType.STATE_DELETED, "b"))
    assert [json.loads(r.body)["text"].startswith(":warning:") for r in slack.requests] == [True]
    assert [json.loads(r.body)["id"] for r in hook.requests] == ["a", "b"]


def test_bad_secret_references_and_urls_are_clear_errors(aws) -> None:
    with pytest.raises(SettingsError):
        SecretValue("vault:/x")
    with pytest.raises(SettingsError):
        WebhookChannel("http://example.com/hook", SecretValue("ssm:/x"))
    with pytest.raises(GuardianError):
        SecretValue("ssm:/does/not/exist").get()


def test_nothing_is_delivered_before_it_is_in_the_audit_trail(aws, ledger: GuardianTable) -> None:
    # A notification is in the audit trail before any channel has it: one the trail could not take is sent
    # nowhere and holds no claim, so that the retry delivers it at once rather than after a claim's lease (under
    # an outage of the table, a claim taken first could not be given back).
    aws.client("ssm").put_parameter(Name="/guardian/hook", Value="k", Type="SecureString")
    dynamodb = aws.client("dynamodb")
    with receiver() as hook:
        channels = [WebhookChannel(hook.url, SecretValue("ssm:/guardian/hook"))]
        missing = AuditTable(dynamodb, "no-such-table", retention=timedelta(days=1))
        with pytest.raises(GuardianError):
            Notifier(channels, ledger, journal=missing).notify(notification())
        assert hook.requests == []
        audit = AuditTable(dynamodb, ledger.name, retention=timedelta(days=1))
        started = time.monotonic()
        Notifier(channels, ledger, journal=audit).notify(notification())
        assert time.monotonic() - started < 5  # not held back by the first attempt's claim
    assert len(hook.requests) == 1
    partition = key_partition("tfstate", "env:/prod/network/terraform.tfstate")
    events, _ = audit.query(partition, since=None, until=None, limit=10, start_sk=None, filters={})
    assert [event.id for event in events] == ["n1"]


@pytest.mark.parametrize("answer_carries_the_claim", [True, False], ids=["claim in the answer", "claim read back"])
def test_a_refused_claim_tells_delivered_from_leased_elsewhere(aws, answer_carries_the_claim: bool) -> None:
    # One notification is claimed by a conditional PutItem, several by a transaction; a refused claim is told apart
    # by the claim found in its place, which DynamoDB returns with the refusal (`ReturnValuesOnConditionCheckFailure`)
    # and which is read back when an answer does not carry it.
    resources = provision(aws, state_bucket="states", lock_table="locks", guardian_table="guardian", topic="t")
    dynamodb = aws.client("dynamodb")
    reads: list[str] = []
    dynamodb.meta.events.register("before-call.dynamodb.GetItem", lambda **_: reads.append("GetItem"))
    if not answer_carries_the_claim:  # a DynamoDB-compatible store that does not return the item

        def drop_item(parsed: dict[str, Any], **_: Any) -> None:
            parsed.pop("Item", None)
            for reason in parsed.get("CancellationReasons", []):
                reason.pop("Item", None)

        for operation in ("PutItem", "TransactWriteItems"):
            dynamodb.meta.events.register(f"after-call.dynamodb.{operation}", drop_item)
    ledger = GuardianTable(dynamodb, resources.guardian_table)
    assert ledger.claim_deliveries(["sent", "held"], "hook", now=100, lease_s=55).claimed == {"sent", "held"}
    ledger.complete_deliveries(["sent"], "hook", now=101)
    for ids in (["sent"], ["held"], ["sent", "held", "new"]):
        claims = ledger.claim_deliveries(ids, "hook", now=110, lease_s=55)
        assert claims.delivered == {"sent"} & set(ids)
        assert claims.leased == ({"held": 155.0} if "held" in ids else {})
        assert claims.claimed == {"new"} & set(ids)
    assert ledger.claim_deliveries(["held"], "hook", now=156, lease_s=55).claimed == {"held"}  # its lease ran out
    assert len(reads) == (0 if answer_carries_the_claim else 4)
