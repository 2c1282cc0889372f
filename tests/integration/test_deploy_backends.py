"""`prepare` and `harden` for a stage of three backends over the moto server: two buckets sharing a lock table
(notifications), and a lockfile-only bucket of another account and region whose events come through EventBridge."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest

from chalicelib.adapters.backend_session import backend_session
from deploy.__main__ import main
from local_stack.stack import REGION
from tests.support.deployed import (
    APP,
    HOME_ACCOUNT,
    STAGE,
    all_calls,
    deployed_functions,
    drop_remove_permission_revision,
    function_name,
    keep_eventbridge_configuration,
    lock_table,
    write_config,
    writes,
)

PREFIX = f"{APP}-{STAGE}"
SANDBOX_ACCOUNT = "210987654321"
SANDBOX_REGION = "eu-west-1"
SANDBOX_ROLE = f"arn:aws:iam::{SANDBOX_ACCOUNT}:role/tfstate-guardian-access"
PROD, STAGING, SANDBOX = "team-tfstate-prod", "team-tfstate-staging", "team-tfstate-sandbox"
LOCKS = "team-tf-locks"
TOPIC_ARN = f"arn:aws:sns:{REGION}:{HOME_ACCOUNT}:{PREFIX}"
ALARM_TOPIC_ARN = f"arn:aws:sns:{REGION}:{HOME_ACCOUNT}:{PREFIX}-alarms"
BACKENDS = [
    {"name": "prod", "bucket": PROD, "lock_table": LOCKS},
    {"name": "staging", "bucket": STAGING, "lock_table": LOCKS},
    {"name": "sandbox", "bucket": SANDBOX, "region": SANDBOX_REGION, "role_arn": SANDBOX_ROLE, "events": "eventbridge"},
]
STAGE_ENV = {
    "GUARDIAN_BACKENDS": json.dumps(BACKENDS),
    "GUARDIAN_NOTIFY_TOPIC_ARN": TOPIC_ARN,
    "GUARDIAN_SLACK_WEBHOOK_SECRET": f"ssm:/{PREFIX}/slack",
}
# Somebody else's notification on the prod bucket: a queue of theirs told of every new object.
FOREIGN = {"Id": "their-audit-queue", "Events": ["s3:ObjectCreated:*"]}


def sandbox(aws: boto3.session.Session) -> boto3.session.Session:
    """The sandbox backend's account and region, through its role (moto takes any role of any account)."""
    return backend_session(aws, role_arn=SANDBOX_ROLE, region=SANDBOX_REGION)


def run(config: Path, command: str, *extra: str) -> tuple[int, list[str]]:
    with all_calls() as calls:
        code = main([command, "--stage", STAGE, "--config", str(config), *extra], session=boto3.session.Session())
    return code, calls


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_config(tmp_path, STAGE_ENV)


@pytest.fixture
def buckets(aws: boto3.session.Session) -> str:
    """The three buckets, the shared lock table (no stream yet), and a foreign notification on prod: its queue ARN."""
    s3 = aws.client("s3")
    for bucket in (PROD, STAGING):
        s3.create_bucket(Bucket=bucket)
    sandbox(aws).client("s3").create_bucket(
        Bucket=SANDBOX, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )
    sqs = aws.client("sqs")
    queue = sqs.create_queue(QueueName="their-audit")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.put_bucket_notification_configuration(
        Bucket=PROD,
        NotificationConfiguration={"QueueConfigurations": [{**FOREIGN, "QueueArn": queue_arn}]},  # type: ignore[list-item]
    )
    return str(queue_arn)


def test_prepare_readies_each_backend_in_its_account_and_the_shared_lock_table_once(
    aws: boto3.session.Session, config: Path, buckets: str, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    keep_eventbridge_configuration(monkeypatch)
    lock_table(aws, LOCKS, stream=False)
    monkeypatch.setenv("GUARDIAN_SLACK_WEBHOOK_URL_VALUE", "https://hooks.slack.com/services/T0/B0/x")

    code, _ = run(config, "prepare")

    out = capsys.readouterr().out.splitlines()
    assert code == 0, out
    for bucket in (PROD, STAGING, SANDBOX):
        assert f"s3://{bucket}: enable versioning (it is never enabled)" in out
    assert out.count(f"dynamodb table {LOCKS}: enable its stream with NEW_AND_OLD_IMAGES") == 1
    assert f"s3://{SANDBOX}: send its events to EventBridge (backend sandbox; its other notifications kept)" in out
    assert f"sns: create the topic {PREFIX}-alarms, for the guardian's alarms (subscribe to it)" in out
    assert not any("GUARDIAN_LOCK_TABLE_STREAM_ARN" in line for line in out)
    # The sandbox bucket, in its own account and region, was readied there.
    sandbox_s3 = sandbox(aws).client("s3")
    assert sandbox_s3.get_bucket_versioning(Bucket=SANDBOX)["Status"] == "Enabled"
    assert "EventBridgeConfiguration" in sandbox_s3.get_bucket_notification_configuration(Bucket=SANDBOX)
    # The foreign notification on prod is untouched (prepare does not subscribe anything).
    prod = aws.client("s3").get_bucket_notification_configuration(Bucket=PROD)
    assert [item["Id"] for item in prod["QueueConfigurations"]] == [FOREIGN["Id"]]

    code, calls = run(config, "prepare")

    assert (code, capsys.readouterr().out) == (0, "nothing to change\n")
    assert "AssumeRole" in calls  # the sandbox bucket was read through its role
    assert writes([call for call in calls if call != "AssumeRole"]) == []


@pytest.fixture
def deployed(aws: boto3.session.Session, buckets: str) -> dict[str, str]:
    """What prepare and `chalice deploy` leave: the stream on, the functions, the alarm topic."""
    lock_table(aws, LOCKS)
    aws.client("sns").create_topic(Name=f"{PREFIX}-alarms")
    return deployed_functions(aws)


def test_harden_subscribes_every_backend_keeps_foreign_notifications_and_a_second_run_changes_nothing(
    aws: boto3.session.Session, config: Path, buckets: str, deployed: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    code, calls = run(config, "harden", "--dry-run")

    dry = capsys.readouterr().out.splitlines()
    assert code == 0
    assert dry and all(line.startswith("[dry run] ") for line in dry)
    assert [call for call in writes(calls) if call != "AssumeRole"] == []
    assert aws.client("lambda").list_event_source_mappings()["EventSourceMappings"] == []

    code, _ = run(config, "harden")

    out = capsys.readouterr().out.splitlines()
    assert code == 0, out
    assert [f"[dry run] {line}" for line in out] == dry  # the dry run said exactly what was then done
    s3_function, stream_function = deployed["on_state_object_event"], deployed["on_lock_table_change"]
    lambda_client = aws.client("lambda")
    queue_arn = f"arn:aws:sqs:{REGION}:{HOME_ACCOUNT}:{PREFIX}-stream-dlq"
    s3_queue_arn = f"arn:aws:sqs:{REGION}:{HOME_ACCOUNT}:{PREFIX}-s3-dlq"

    # One mapping for the lock table both buckets share, hardened.
    (mapping,) = lambda_client.list_event_source_mappings(FunctionName=stream_function)["EventSourceMappings"]
    stream_arn = aws.client("dynamodb").describe_table(TableName=LOCKS)["Table"]["LatestStreamArn"]
    assert mapping["EventSourceArn"] == stream_arn
    assert {
        key: mapping.get(key)
        for key in (
            "BatchSize",
            "StartingPosition",
            "BisectBatchOnFunctionError",
            "MaximumRetryAttempts",
            "MaximumRecordAgeInSeconds",
            "DestinationConfig",
        )
    } == {
        "BatchSize": 100,
        "StartingPosition": "LATEST",
        "BisectBatchOnFunctionError": True,
        "MaximumRetryAttempts": 5,
        "MaximumRecordAgeInSeconds": 3600,
        "DestinationConfig": {"OnFailure": {"Destination": queue_arn}},
    }
    # Failed asynchronous S3 handler invocations go to a queue of their own.
    invoke_config = lambda_client.get_function_event_invoke_config(FunctionName=function_name("on_state_object_event"))
    assert invoke_config["DestinationConfig"]["OnFailure"]["Destination"] == s3_queue_arn
    sqs = aws.client("sqs")
    attributes = sqs.get_queue_attributes(
        QueueUrl=sqs.get_queue_url(QueueName=f"{PREFIX}-s3-dlq")["QueueUrl"], AttributeNames=["All"]
    )["Attributes"]
    assert (attributes["SqsManagedSseEnabled"], attributes["MessageRetentionPeriod"]) == ("true", "1209600")

    # Both notification buckets notify the S3 handler; prod's foreign configuration is still there.
    s3 = aws.client("s3")
    ours = {
        "Id": f"{PREFIX}-on_state_object_event",
        "LambdaFunctionArn": s3_function,
        "Events": ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"],
    }
    for bucket in (PROD, STAGING):
        assert s3.get_bucket_notification_configuration(Bucket=bucket)["LambdaFunctionConfigurations"] == [ours]
    prod = s3.get_bucket_notification_configuration(Bucket=PROD)
    assert prod["QueueConfigurations"] == [{**FOREIGN, "QueueArn": buckets}]
    statements = {
        item["Sid"]: item
        for item in json.loads(lambda_client.get_policy(FunctionName=s3_function)["Policy"])["Statement"]
    }
    s3_grant = statements[f"tfstate-guardian-s3-{PROD}"]
    assert s3_grant["Principal"] == {"Service": "s3.amazonaws.com"}
    assert s3_grant["Condition"] == {
        "ArnLike": {"AWS:SourceArn": f"arn:aws:s3:::{PROD}"},
        "StringEquals": {"AWS:SourceAccount": HOME_ACCOUNT},
    }
    assert f"tfstate-guardian-s3-{STAGING}" in statements
    assert f"tfstate-guardian-s3-{SANDBOX}" not in statements  # its events come through EventBridge

    # The sandbox's events: a rule on the guardian's default bus, fed by a forwarding rule in the sandbox account.
    events = aws.client("events")
    rule = events.describe_rule(Name=f"{PREFIX}-s3-objects")
    assert json.loads(rule["EventPattern"]) == {
        "source": ["aws.s3"],
        "detail-type": ["Object Created", "Object Deleted"],
        "detail": {"bucket": {"name": [SANDBOX]}},
    }
    assert events.list_targets_by_rule(Rule=f"{PREFIX}-s3-objects")["Targets"] == [
        {"Id": "tfstate-guardian", "Arn": s3_function}
    ]
    events_grant = statements[f"tfstate-guardian-events-{PREFIX}-s3-objects"]
    assert events_grant["Principal"] == {"Service": "events.amazonaws.com"}
    remote = sandbox(aws).client("events")
    forwarding = remote.describe_rule(Name=f"{PREFIX}-forward-s3-objects")
    assert json.loads(forwarding["EventPattern"]) == json.loads(rule["EventPattern"])
    role_arn = f"arn:aws:iam::{SANDBOX_ACCOUNT}:role/{PREFIX}-forward-s3-objects"
    assert remote.list_targets_by_rule(Rule=f"{PREFIX}-forward-s3-objects")["Targets"] == [
        {
            "Id": "tfstate-guardian-bus",
            "Arn": f"arn:aws:events:{REGION}:{HOME_ACCOUNT}:event-bus/default",
            "RoleArn": role_arn,
        }
    ]
    assert sandbox(aws).client("iam").get_role(RoleName=f"{PREFIX}-forward-s3-objects")["Role"]["Arn"] == role_arn
    bus_policy = json.loads(events.describe_event_bus(Name="default")["Policy"])
    (grant,) = [
        item for item in bus_policy["Statement"] if item["Sid"] == f"tfstate-guardian-forward-{SANDBOX_ACCOUNT}"
    ]
    assert grant["Principal"] == {"AWS": f"arn:aws:iam::{SANDBOX_ACCOUNT}:root"}

    # Alarms on the alarm topic, and one dashboard.
    alarms = {alarm["AlarmName"]: alarm for alarm in aws.client("cloudwatch").describe_alarms()["MetricAlarms"]}
    assert all(alarm["AlarmActions"] == [ALARM_TOPIC_ARN] for alarm in alarms.values())
    for name in ("on_state_object_event errors", "api_handler throttles", "on_lock_table_change iterator age",
                 f"{PREFIX}-s3-dlq depth", f"{PREFIX}-stream-dlq depth", "slack channel failures",
                 "sns channel failures", "DigestMismatches", "StatesUnreadable", "EventsSkipped"):  # fmt: skip
        assert f"{PREFIX}: {name}" in alarms, name
    slack = alarms[f"{PREFIX}: slack channel failures"]
    assert (slack["Namespace"], slack["MetricName"]) == ("TfstateGuardian", "ChannelFailures")
    assert sorted((d["Name"], d["Value"]) for d in slack["Dimensions"]) == [
        ("channel", "slack"),
        ("service", "tfstate-guardian"),
    ]
    assert alarms[f"{PREFIX}: DigestMismatches"]["Dimensions"] == [{"Name": "service", "Value": "tfstate-guardian"}]
    body = json.loads(aws.client("cloudwatch").get_dashboard(DashboardName=PREFIX)["DashboardBody"])
    titles = [widget["properties"]["title"] for widget in body["widgets"]]
    assert "Channel failures per channel" in titles
    assert "Lock stream iterator age (ms)" in titles

    code, calls = run(config, "harden")

    assert (code, capsys.readouterr().out) == (0, "nothing to change\n")
    assert [call for call in writes(calls) if call != "AssumeRole"] == []


def test_a_backend_that_left_the_config_loses_its_subscriptions(
    aws: boto3.session.Session, config: Path, buckets: str, deployed: dict[str, str], tmp_path: Path,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    drop_remove_permission_revision(monkeypatch)
    assert run(config, "harden")[0] == 0
    capsys.readouterr()
    # Only prod is left, without its lock table, its events now coming through EventBridge.
    only_prod = [{"name": "prod", "bucket": PROD, "events": "eventbridge"}]
    (tmp_path / "smaller").mkdir()
    smaller = write_config(tmp_path / "smaller", {**STAGE_ENV, "GUARDIAN_BACKENDS": json.dumps(only_prod)})

    code, _ = run(smaller, "harden")

    out, err = capsys.readouterr()
    assert code == 0, out + err
    lambda_client = aws.client("lambda")
    assert (
        lambda_client.list_event_source_mappings(FunctionName=deployed["on_lock_table_change"])["EventSourceMappings"]
        == []
    )
    sids = {item["Sid"] for item in json.loads(lambda_client.get_policy(FunctionName=deployed["on_state_object_event"])[
        "Policy"])["Statement"]}  # fmt: skip
    assert f"tfstate-guardian-s3-{STAGING}" not in sids
    assert f"tfstate-guardian-s3-{PROD}" not in sids
    pattern = json.loads(aws.client("events").describe_rule(Name=f"{PREFIX}-s3-objects")["EventPattern"])
    assert pattern["detail"]["bucket"]["name"] == [PROD]
    alarms = {alarm["AlarmName"] for alarm in aws.client("cloudwatch").describe_alarms()["MetricAlarms"]}
    assert f"{PREFIX}: on_lock_table_change iterator age" not in alarms
    assert run(smaller, "harden")[0] == 0
    assert capsys.readouterr().out == "nothing to change\n"
