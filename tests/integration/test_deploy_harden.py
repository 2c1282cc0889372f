"""`python -m deploy harden`: the lock stream mapping `chalice deploy` leaves, hardened over the moto server."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import boto3
import botocore.session
import pytest
from chalice.awsclient import TypedAWSClient

from deploy.__main__ import main
from local_stack.stack import REGION

ACCOUNT = "123456789012"  # moto's account
LOCK_TABLE = "team-tf-locks-test"
FUNCTION = "tfstate-guardian-test-on_lock_table_change"
QUEUE = "tfstate-guardian-test-stream-dlq"
QUEUE_ARN = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{QUEUE}"
FOURTEEN_DAYS_S = 1209600
HARDENED = {
    "BisectBatchOnFunctionError": True,
    "MaximumRetryAttempts": 5,
    "MaximumRecordAgeInSeconds": 3600,
    "DestinationConfig": {"OnFailure": {"Destination": QUEUE_ARN}},
}
READS = ("Get", "Describe", "Head", "List")


def chalice_client() -> TypedAWSClient:
    """Chalice's own AWS client, making the very calls `chalice deploy` makes."""
    return TypedAWSClient(botocore.session.get_session(), sleep=lambda _: None)


def lock_table_stream(aws: boto3.session.Session) -> str:
    table = aws.client("dynamodb").create_table(
        TableName=LOCK_TABLE,
        KeySchema=[{"AttributeName": "LockID", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "LockID", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    return table["TableDescription"]["LatestStreamArn"]


def deployed_function(aws: boto3.session.Session) -> str:
    """The stream handler's function, as a zip moto stores without running it."""
    trust = {"Version": "2012-10-17", "Statement": []}
    role = aws.client("iam").create_role(RoleName="tfstate-guardian-test", AssumeRolePolicyDocument=json.dumps(trust))
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("app.py", "def on_lock_table_change(event, context):\n    return None\n")
    function = aws.client("lambda").create_function(
        FunctionName=FUNCTION,
        Runtime="python3.11",
        Role=role["Role"]["Arn"],
        Handler="app.on_lock_table_change",
        Code={"ZipFile": code.getvalue()},
    )
    return str(function["FunctionArn"])


def subscribe_like_chalice(stream_arn: str, function_arn: str) -> str:
    """What `chalice deploy` does for `@app.on_dynamodb_record(batch_size=100, starting_position="LATEST")`."""
    # Chalice annotates this method `-> None`, yet it returns the new mapping's UUID, which its planner records.
    uuid = chalice_client().create_lambda_event_source(  # type: ignore[func-returns-value]
        event_source_arn=stream_arn,
        function_name=function_arn,
        batch_size=100,
        starting_position="LATEST",
        maximum_batching_window_in_seconds=0,
    )
    return str(uuid)


def write_config(tmp_path: Path, stream_arn: str) -> Path:
    config = {
        "version": "2.0",
        "app_name": "tfstate-guardian",
        "environment_variables": {"GUARDIAN_TABLE": "tfstate-guardian-test"},
        "stages": {
            "test": {
                "environment_variables": {
                    "GUARDIAN_STATE_BUCKET": "team-tfstate-test",
                    "GUARDIAN_LOCK_TABLE": LOCK_TABLE,
                    "GUARDIAN_LOCK_TABLE_STREAM_ARN": stream_arn,
                }
            }
        },
    }
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


def run(config: Path, *extra: str) -> tuple[int, list[str]]:
    session = boto3.session.Session()
    calls: list[str] = []
    session.events.register("before-parameter-build", lambda model, **_: calls.append(model.name))
    code = main(["harden", "--stage", "test", "--config", str(config), *extra], session=session)
    return code, calls


def writes(calls: list[str]) -> list[str]:
    return [call for call in calls if not call.startswith(READS)]


def mapping(aws: boto3.session.Session, uuid: str) -> dict[str, Any]:
    return dict(aws.client("lambda").get_event_source_mapping(UUID=uuid))


def hardening_of(aws: boto3.session.Session, uuid: str) -> dict[str, Any]:
    found = mapping(aws, uuid)
    return {name: found.get(name) for name in HARDENED}


@pytest.fixture
def deployed(aws: boto3.session.Session, tmp_path: Path) -> tuple[Path, str]:
    """A stage as `chalice deploy` leaves it: the function subscribed to the lock table's stream, nothing more."""
    stream_arn = lock_table_stream(aws)
    uuid = subscribe_like_chalice(stream_arn, deployed_function(aws))
    return write_config(tmp_path, stream_arn), uuid


def test_harden_creates_the_queue_sets_the_mapping_and_a_second_run_changes_nothing(
    aws: boto3.session.Session, deployed: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    config, uuid = deployed
    assert hardening_of(aws, uuid) != HARDENED

    code, _ = run(config)

    out = capsys.readouterr().out
    assert code == 0
    assert out.splitlines() == [
        f"sqs: create the queue {QUEUE} (encrypted with SSE-SQS, messages kept 14 days)",
        f"lambda: event source mapping {uuid} of {FUNCTION}: BisectBatchOnFunctionError false → true, "
        f"MaximumRetryAttempts -1 → 5, MaximumRecordAgeInSeconds -1 → 3600, DestinationConfig none → {QUEUE_ARN}",
    ]
    sqs = aws.client("sqs")
    attributes = sqs.get_queue_attributes(
        QueueUrl=sqs.get_queue_url(QueueName=QUEUE)["QueueUrl"], AttributeNames=["All"]
    )
    assert attributes["Attributes"]["QueueArn"] == QUEUE_ARN
    assert attributes["Attributes"]["SqsManagedSseEnabled"] == "true"
    assert attributes["Attributes"]["MessageRetentionPeriod"] == str(FOURTEEN_DAYS_S)
    assert hardening_of(aws, uuid) == HARDENED
    assert mapping(aws, uuid)["BatchSize"] == 100  # what Chalice set is left as it was

    code, calls = run(config)

    assert (code, capsys.readouterr().out) == (0, "nothing to change\n")
    assert calls
    assert writes(calls) == []


def test_the_hardening_survives_the_update_chalice_makes_on_redeploy(
    aws: boto3.session.Session, deployed: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    config, uuid = deployed
    assert run(config)[0] == 0
    capsys.readouterr()

    # `chalice deploy` of an existing stage updates the mapping in place with its batch settings only.
    chalice_client().update_lambda_event_source(event_uuid=uuid, batch_size=100, maximum_batching_window_in_seconds=0)

    assert hardening_of(aws, uuid) == HARDENED
    code, calls = run(config)
    assert (code, capsys.readouterr().out, writes(calls)) == (0, "nothing to change\n", [])


def test_a_mapping_chalice_created_anew_is_hardened_again(
    aws: boto3.session.Session, deployed: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    config, uuid = deployed
    assert run(config)[0] == 0
    function_arn = mapping(aws, uuid)["FunctionArn"]
    stream_arn = mapping(aws, uuid)["EventSourceArn"]
    capsys.readouterr()

    # A new subscription (first deploy of a stage, a changed stream ARN, a deleted mapping) starts from defaults.
    chalice_client().remove_lambda_event_source(uuid)
    new_uuid = subscribe_like_chalice(stream_arn, function_arn)
    assert hardening_of(aws, new_uuid) != HARDENED

    code, _ = run(config)

    out = capsys.readouterr().out
    assert code == 0
    assert len(out.splitlines()) == 1  # the queue is there already
    assert out.startswith(f"lambda: event source mapping {new_uuid} of {FUNCTION}: ")
    assert hardening_of(aws, new_uuid) == HARDENED


def test_a_dry_run_says_what_it_would_do_and_changes_nothing(
    aws: boto3.session.Session, deployed: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    config, uuid = deployed
    before = hardening_of(aws, uuid)

    code, calls = run(config, "--dry-run")

    lines = capsys.readouterr().out.splitlines()
    assert code == 0
    assert len(lines) == 2
    assert all(line.startswith("[dry run] ") for line in lines)
    assert QUEUE_ARN in lines[1]
    assert writes(calls) == []
    assert hardening_of(aws, uuid) == before
    assert aws.client("sqs").list_queues().get("QueueUrls", []) == []


def test_an_existing_queue_gets_the_retention_it_lacks(
    aws: boto3.session.Session, deployed: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    config, _ = deployed
    sqs = aws.client("sqs")
    url = sqs.create_queue(QueueName=QUEUE, Attributes={"MessageRetentionPeriod": "345600"})["QueueUrl"]

    code, _ = run(config)

    assert code == 0
    assert f"sqs: queue {QUEUE}: MessageRetentionPeriod 345600 → {FOURTEEN_DAYS_S}" in capsys.readouterr().out
    retention = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["MessageRetentionPeriod"])["Attributes"]
    assert retention["MessageRetentionPeriod"] == str(FOURTEEN_DAYS_S)


def test_without_a_deployed_function_it_says_to_deploy_first(
    aws: boto3.session.Session, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, lock_table_stream(aws))

    code, calls = run(config)

    out, err = capsys.readouterr()
    assert (code, out) == (1, "")
    assert err == f"harden: error: function {FUNCTION} does not exist: run chalice deploy first\n"
    assert writes(calls) == []


def test_without_a_mapping_for_the_configured_stream_it_says_to_deploy_first(
    aws: boto3.session.Session, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stream_arn = lock_table_stream(aws)
    deployed_function(aws)

    code, calls = run(write_config(tmp_path, stream_arn))

    err = capsys.readouterr().err
    assert code == 1
    assert err == (
        f"harden: error: {FUNCTION} is not subscribed to {stream_arn} (GUARDIAN_LOCK_TABLE_STREAM_ARN): "
        "run chalice deploy first, with that stream ARN in the stage's config\n"
    )
    assert writes(calls) == []
    assert aws.client("sqs").list_queues().get("QueueUrls", []) == []


def test_a_subscription_to_another_stream_is_named_with_the_way_out(
    aws: boto3.session.Session, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    subscribed = lock_table_stream(aws)
    # The stream the config names now, as after the lock table's stream was switched off and on again.
    configured = aws.client("dynamodb").create_table(
        TableName="team-tf-locks-renewed",
        KeySchema=[{"AttributeName": "LockID", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "LockID", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )["TableDescription"]["LatestStreamArn"]
    old_uuid = subscribe_like_chalice(subscribed, deployed_function(aws))

    code, calls = run(write_config(tmp_path, configured))

    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith(f"harden: error: {FUNCTION} is subscribed to {subscribed} (mapping {old_uuid}), not to ")
    assert f"not to {configured} (GUARDIAN_LOCK_TABLE_STREAM_ARN)" in err
    assert "`aws lambda delete-event-source-mapping --uuid UUID`" in err
    assert writes(calls) == []
