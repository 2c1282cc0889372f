"""Issue 12, point 6: a `state.changed` too large for any channel still reaches every channel, trimmed to fit.

A module rename with 2,000 long `for_each` keys, written in Terraform's layout, gives a `state.changed` of about
340 KB as the domain builds it. It must reach an SQS queue subscribed to the local stack's SNS topic, an SQS
queue behind an EventBridge rule, the Slack, Teams and webhook receivers and an email subscription of the topic,
each within its limit, with `truncated` set and the counts exact.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters

from chalicelib.channels.teams import TEAMS_MAX_BYTES
from chalicelib.channels.webhook import signature
from local_stack.moto_server import inbox_queue_name
from tests.support.receiver import receiver as local_receiver
from tests.support.receiver import slack_controls, slack_problems
from tests.support.teams_api import cards, text_runs

KEY = "platform/buckets/terraform.tfstate"
KEYS = 2000
SNS_MAX_BYTES = 262_144  # per Publish request: message, subject and attributes (Amazon SNS quotas)
PUT_EVENTS_MAX_BYTES = 262_144  # "less than 256KB" per PutEvents request, entry size as AWS documents it


def for_each_key(i: int) -> str:
    return f"{'platform/shared/objects/' * 12}object-{i:04d}.json"


def state(serial: int, module: str) -> bytes:
    """A Terraform 1.11 state of one `for_each` resource with 2,000 instances in `module`, in Terraform's layout."""
    instances = [
        {
            "index_key": for_each_key(i),
            "schema_version": 0,
            "attributes": {"bucket": "assets", "key": for_each_key(i), "etag": f"{i:032x}"},
            "sensitive_attributes": [],
        }
        for i in range(KEYS)
    ]
    data = {
        "version": 4,
        "terraform_version": "1.11.4",
        "serial": serial,
        "lineage": "af92c2b5-9a79-f453-83f3-1ae377ca98e3",
        "outputs": {f"{module}_{i}": {"value": f"v{i}", "type": "string"} for i in range(3)},
        "resources": [
            {
                "module": f"module.{module}",
                "mode": "managed",
                "type": "aws_s3_object",
                "name": "this",
                "provider": 'provider["registry.terraform.io/hashicorp/aws"]',
                "instances": instances,
            }
        ],
        "check_results": None,
    }
    return (json.dumps(data, indent=2) + "\n").encode()


def queue(aws: boto3.session.Session, name: str) -> tuple[str, str]:
    sqs = aws.client("sqs")
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    return url, sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def drain(aws: boto3.session.Session, url: str) -> list[dict[str, Any]]:
    sqs, bodies = aws.client("sqs"), []
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages"):
        bodies += [json.loads(message["Body"]) for message in messages]
        sqs.delete_message_batch(
            QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
        )
    return bodies


def sns_request_size(envelope: dict[str, Any]) -> int:
    """What SNS counted of the Publish request, from the envelope it delivered."""
    size = len(envelope["Message"].encode()) + len((envelope.get("Subject") or "").encode())
    for name, attribute in envelope.get("MessageAttributes", {}).items():
        size += len(name.encode()) + len(attribute["Type"].encode()) + len(attribute["Value"].encode())
    return size


def event_entry_size(event: dict[str, Any]) -> int:
    """The PutEvents entry size as AWS documents it, from the event the rule delivered."""
    detail = json.dumps(event["detail"], separators=(",", ":"))
    parts = [event["source"], event["detail-type"], detail, *event.get("resources", [])]
    return sum(len(part.encode()) for part in parts)


def assert_trimmed_with_exact_counts(notification: dict[str, Any]) -> None:
    resources, outputs = notification["details"]["resources"], notification["details"]["outputs"]
    assert resources["counts"] == {"added": KEYS, "changed": 0, "removed": KEYS}
    assert resources["truncated"] is True
    assert 50 < len(resources["added"]) < KEYS and 50 < len(resources["removed"]) < KEYS
    assert abs(len(resources["added"]) - len(resources["removed"])) <= 1  # fair: neither list is sacrificed
    assert resources["added"][0] == f'module.new_name.aws_s3_object.this["{for_each_key(0)}"]'
    assert outputs["counts"] == {"added": 3, "changed": 0, "removed": 3} and len(outputs["added"]) == 3


@pytest.fixture(autouse=True)
def fresh_parameters() -> None:
    parameters.clear_caches()  # type: ignore[no-untyped-call]


def test_a_huge_state_changed_reaches_every_channel_within_its_limit(aws, stack_with) -> None:
    sns_url, sns_queue = queue(aws, "topic-subscriber")
    bus_url, bus_queue = queue(aws, "bus-subscriber")
    events = aws.client("events")
    events.create_event_bus(Name="guardian-bus")
    events.put_rule(
        Name="state-changes",
        EventBusName="guardian-bus",
        EventPattern=json.dumps({"source": ["tfstate-guardian"], "detail-type": ["state.changed"]}),
    )
    events.put_targets(Rule="state-changes", EventBusName="guardian-bus", Targets=[{"Id": "q", "Arn": bus_queue}])
    inbox_url, _ = queue(aws, inbox_queue_name("oncall@example.com"))
    ssm = aws.client("ssm")
    with (
        local_receiver(kind="slack") as slack,
        local_receiver(kind="webhook") as hook,
        local_receiver(kind="teams") as teams,
    ):
        ssm.put_parameter(Name="/guardian/slack", Value=slack.url, Type="SecureString")
        ssm.put_parameter(Name="/guardian/hook", Value="hmac-key", Type="SecureString")
        ssm.put_parameter(Name="/guardian/teams", Value=teams.url, Type="SecureString")
        local = stack_with(
            extra_env={
                "GUARDIAN_NOTIFY_EVENT_BUS": "guardian-bus",
                "GUARDIAN_SLACK_WEBHOOK_SECRET": "ssm:/guardian/slack",
                "GUARDIAN_WEBHOOK_URL": hook.url,
                "GUARDIAN_WEBHOOK_SECRET": "ssm:/guardian/hook",
                "GUARDIAN_TEAMS_WEBHOOK_SECRET": "ssm:/guardian/teams",
            }
        )
        sns = aws.client("sns")
        sns.subscribe(TopicArn=local.resources.notify_topic_arn, Protocol="sqs", Endpoint=sns_queue)
        sns.subscribe(TopicArn=local.resources.notify_topic_arn, Protocol="email", Endpoint="oncall@example.com")
        s3 = aws.client("s3")
        s3.put_object(Bucket=local.resources.state_bucket, Key=KEY, Body=state(1, "old_name"))
        local.pump()
        s3.put_object(Bucket=local.resources.state_bucket, Key=KEY, Body=state(2, "new_name"))
        local.pump()

        assert slack.refused == [] and hook.refused == [] and teams.refused == []
        slack_requests = [r for r in slack.requests if "serial 1→2" in json.loads(r.body)["text"]]
        log = (local.options.work_dir / "stack.log").read_text(encoding="utf-8")
        assert len(slack_requests) == 1, log[-4000:]
        slack_request = slack_requests[0]
        (hook_request,) = [r for r in hook.requests if json.loads(r.body)["details"]["serial"]["after"] == 2]
        (teams_request,) = [r for r in teams.requests if "serial 1→2" in str(text_runs(cards(json.loads(r.body))[0]))]

    # As built, the notification lists 500 addresses each and is over 256 KB: every channel below had to trim it.
    lines = local.options.notify_file.read_text(encoding="utf-8").splitlines()
    (whole,) = [line for line in lines if json.loads(line)["details"]["serial"]["after"] == 2]
    assert len(whole.encode()) > 300_000 and len(json.loads(whole)["details"]["resources"]["removed"]) == 500

    # SNS: the whole Publish request within 256 KB, delivered.
    envelopes = [e for e in drain(aws, sns_url) if json.loads(e["Message"])["details"]["serial"]["after"] == 2]
    assert len(envelopes) == 1, "the state.changed never reached the topic's subscriber"
    assert sns_request_size(envelopes[0]) <= SNS_MAX_BYTES
    from_sns = json.loads(envelopes[0]["Message"])
    assert_trimmed_with_exact_counts(from_sns)
    assert envelopes[0]["MessageAttributes"]["type"]["Value"] == "state.changed"

    # EventBridge: the entry, as AWS sizes it, under 256 KB.
    (event,) = [e for e in drain(aws, bus_url) if e["detail"]["details"]["serial"]["after"] == 2]
    assert event_entry_size(event) < PUT_EVENTS_MAX_BYTES
    assert_trimmed_with_exact_counts(event["detail"])

    # The webhook: within its documented 256 KB cap, signed over exactly the trimmed body.
    assert len(hook_request.body) <= 262_144
    timestamp = hook_request.headers["X-Guardian-Timestamp"]
    assert hook_request.headers["X-Guardian-Signature"] == signature("hmac-key", timestamp, hook_request.body)
    assert_trimmed_with_exact_counts(json.loads(hook_request.body))

    # Slack: within Block Kit's limits (the receiver refuses anything else), the counts exact, pinging nobody.
    message = json.loads(slack_request.body)
    assert slack_problems(message) == [] and slack_controls(message) == []
    (changes,) = [block["text"]["text"] for block in message["blocks"] if block.get("block_id") == "changes"]
    assert changes.startswith("*Resources* +2,000 ~0 -2,000") and "_…and " in changes

    # Teams: within 28 KB (the receiver refuses anything else), the first addresses of both lists, the counts exact.
    assert len(teams_request.body) <= TEAMS_MAX_BYTES
    runs = text_runs(cards(json.loads(teams_request.body))[0])
    assert "+2,000 ~0 -2,000" in runs
    assert [run for run in runs if "…and " in run] == ["+ …and 1,990 more", "- …and 1,990 more"]

    # Email: a subject and plain text, with the same exact counts.
    mails = [mail for mail in drain(aws, inbox_url) if "serial 1->2" in mail["Subject"]]
    assert len(mails) == 1 and "RESOURCES +2,000 ~0 -2,000" in mails[0]["Message"]
    assert "    + ...and 1,950 more" in mails[0]["Message"] and "    - ...and 1,950 more" in mails[0]["Message"]
