"""`python -m deploy harden` on a one-backend stage over the moto server: the stream mapping it creates and keeps
hardened, the S3 handler's failure destination, its refusals. (Several backends: test_deploy_backends.py.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.session import get_session
from chalice.awsclient import TypedAWSClient

from deploy.__main__ import main
from local_stack.stack import REGION
from tests.support.deployed import (
    HOME_ACCOUNT,
    deployed_functions,
    function_name,
    lock_table,
    recording_session,
    write_config,
    writes,
)

LOCK_TABLE = "team-tf-locks-test"
BUCKET = "team-tfstate-test"
FUNCTION = function_name("on_lock_table_change")
QUEUE = "tfstate-guardian-test-stream-dlq"
QUEUE_ARN = f"arn:aws:sqs:{REGION}:{HOME_ACCOUNT}:{QUEUE}"
S3_QUEUE_ARN = f"arn:aws:sqs:{REGION}:{HOME_ACCOUNT}:tfstate-guardian-test-s3-dlq"
FOURTEEN_DAYS_S = 1209600
HARDENED = {
    "BisectBatchOnFunctionError": True,
    "MaximumRetryAttempts": 5,
    "MaximumRecordAgeInSeconds": 3600,
    "DestinationConfig": {"OnFailure": {"Destination": QUEUE_ARN}},
}


def run(config: Path, *extra: str) -> tuple[int, list[str]]:
    session, calls = recording_session()
    code = main(["harden", "--stage", "test", "--config", str(config), *extra], session=session)
    return code, calls


def mappings(aws: boto3.session.Session) -> list[dict[str, Any]]:
    found = aws.client("lambda").list_event_source_mappings()["EventSourceMappings"]
    return [dict(mapping) for mapping in found if mapping["FunctionArn"].endswith(f":function:{FUNCTION}")]


def hardening_of(mapping: dict[str, Any]) -> dict[str, Any]:
    return {name: mapping.get(name) for name in HARDENED}


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_config(tmp_path, {"GUARDIAN_STATE_BUCKET": BUCKET, "GUARDIAN_LOCK_TABLE": LOCK_TABLE})


@pytest.fixture
def deployed(aws: boto3.session.Session) -> str:
    """A stage as prepare and `chalice deploy` leave it: the bucket, the stream, the functions, the alarm topic."""
    aws.client("s3").create_bucket(Bucket=BUCKET)
    stream_arn = lock_table(aws, LOCK_TABLE)
    aws.client("sns").create_topic(Name="tfstate-guardian-test-alarms")
    deployed_functions(aws)
    return str(stream_arn)


def test_harden_subscribes_the_stream_handler_hardened_and_a_second_run_changes_nothing(
    aws: boto3.session.Session, config: Path, deployed: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = run(config)

    out = capsys.readouterr().out.splitlines()
    assert code == 0, out
    assert out[:3] == [
        "sqs: create the queue tfstate-guardian-test-s3-dlq (encrypted with SSE-SQS, messages kept 14 days)",
        f"sqs: create the queue {QUEUE} (encrypted with SSE-SQS, messages kept 14 days)",
        f"lambda: subscribe {FUNCTION} to the stream of {LOCK_TABLE} ({deployed}): batches of 100 from the latest "
        f"record, bisected on error, 5 retries, records up to 1 hour old, failures to {QUEUE_ARN}",
    ]
    (mapping,) = mappings(aws)
    assert (mapping["EventSourceArn"], mapping["BatchSize"], mapping["StartingPosition"]) == (deployed, 100, "LATEST")
    assert hardening_of(mapping) == HARDENED
    sqs = aws.client("sqs")
    attributes = sqs.get_queue_attributes(QueueUrl=sqs.get_queue_url(QueueName=QUEUE)["QueueUrl"],
                                          AttributeNames=["All"])["Attributes"]  # fmt: skip
    assert (attributes["QueueArn"], attributes["SqsManagedSseEnabled"]) == (QUEUE_ARN, "true")
    assert attributes["MessageRetentionPeriod"] == str(FOURTEEN_DAYS_S)
    s3_handler = function_name("on_state_object_event")
    invoke_config = aws.client("lambda").get_function_event_invoke_config(FunctionName=s3_handler)
    assert invoke_config["DestinationConfig"] == {"OnFailure": {"Destination": S3_QUEUE_ARN}}

    code, calls = run(config)

    assert (code, capsys.readouterr().out) == (0, "nothing to change\n")
    assert calls
    assert writes(calls) == []


def test_a_mapping_left_unhardened_is_hardened_and_survives_the_update_chalice_makes_on_redeploy(
    aws: boto3.session.Session, config: Path, deployed: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # As an older deploy left it: Chalice's own subscription, a batch size and a starting position only.
    chalice = TypedAWSClient(get_session(), sleep=lambda _: None)
    uuid = chalice.create_lambda_event_source(  # type: ignore[func-returns-value]
        event_source_arn=deployed, function_name=FUNCTION, batch_size=100, starting_position="LATEST",
        maximum_batching_window_in_seconds=0,
    )  # fmt: skip

    code, _ = run(config)

    out = capsys.readouterr().out
    assert code == 0
    assert (
        f"lambda: event source mapping {uuid} of {FUNCTION}: BisectBatchOnFunctionError false → true, "
        f"MaximumRetryAttempts -1 → 5, MaximumRecordAgeInSeconds -1 → 3600, DestinationConfig none → {QUEUE_ARN}"
    ) in out.splitlines()
    (mapping,) = mappings(aws)
    assert hardening_of(mapping) == HARDENED
    chalice.update_lambda_event_source(event_uuid=str(uuid), batch_size=100, maximum_batching_window_in_seconds=0)
    code, calls = run(config)
    assert (code, capsys.readouterr().out, writes(calls)) == (0, "nothing to change\n", [])


def test_a_mapping_on_a_stream_no_backend_uses_now_is_removed(
    aws: boto3.session.Session, config: Path, deployed: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(config)[0] == 0
    capsys.readouterr()
    # The lock table the stage used before (renamed since in its config): its mapping is left over.
    old_stream = str(lock_table(aws, "team-tf-locks-old"))
    # By ARN: moto's ListEventSourceMappings matches FunctionName literally as the mapping was made (AWS: name or ARN).
    function_arn = aws.client("lambda").get_function(FunctionName=FUNCTION)["Configuration"]["FunctionArn"]
    old = aws.client("lambda").create_event_source_mapping(
        EventSourceArn=old_stream, FunctionName=function_arn, StartingPosition="LATEST"
    )["UUID"]

    code, _ = run(config)

    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert out == [
        f"lambda: remove the event source mapping {old} of {FUNCTION} on {old_stream} (no backend's lock table "
        "streams there now)"
    ]
    assert [mapping["EventSourceArn"] for mapping in mappings(aws)] == [deployed]


def test_a_dry_run_says_what_it_would_do_and_changes_nothing(
    aws: boto3.session.Session, config: Path, deployed: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, calls = run(config, "--dry-run")

    lines = capsys.readouterr().out.splitlines()
    assert code == 0
    assert len(lines) > 5
    assert all(line.startswith("[dry run] ") for line in lines)
    assert writes(calls) == []
    assert mappings(aws) == []
    assert aws.client("sqs").list_queues().get("QueueUrls", []) == []
    assert aws.client("cloudwatch").describe_alarms()["MetricAlarms"] == []


def test_an_existing_queue_gets_the_retention_it_lacks(
    aws: boto3.session.Session, config: Path, deployed: str, capsys: pytest.CaptureFixture[str]
) -> None:
    sqs = aws.client("sqs")
    url = sqs.create_queue(QueueName=QUEUE, Attributes={"MessageRetentionPeriod": "345600"})["QueueUrl"]

    code, _ = run(config)

    assert code == 0
    assert f"sqs: queue {QUEUE}: MessageRetentionPeriod 345600 → {FOURTEEN_DAYS_S}" in capsys.readouterr().out
    retention = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["MessageRetentionPeriod"])["Attributes"]
    assert retention["MessageRetentionPeriod"] == str(FOURTEEN_DAYS_S)


def test_without_deployed_functions_it_says_to_deploy_first(
    aws: boto3.session.Session, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lock_table(aws, LOCK_TABLE)

    code, calls = run(config)

    out, err = capsys.readouterr()
    assert (code, out) == (1, "")
    assert err == (
        f"harden: error: function {function_name('on_state_object_event')} does not exist: run chalice deploy first\n"
    )
    assert writes(calls) == []


def test_without_the_alarm_topic_it_says_to_prepare_first_and_changes_nothing(
    aws: boto3.session.Session, config: Path, deployed: str, capsys: pytest.CaptureFixture[str]
) -> None:
    aws.client("sns").delete_topic(TopicArn=f"arn:aws:sns:{REGION}:{HOME_ACCOUNT}:tfstate-guardian-test-alarms")

    code, calls = run(config)

    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("harden: error: the alarm topic ")
    assert err.endswith(" does not exist: run prepare first\n")
    assert writes(calls) == []


def test_a_notification_bucket_of_another_region_is_refused(
    aws: boto3.session.Session, tmp_path: Path, deployed: str, capsys: pytest.CaptureFixture[str]
) -> None:
    backends = [{"name": "far", "bucket": "team-tfstate-far", "region": "eu-west-1"}]
    config = write_config(tmp_path, {"GUARDIAN_BACKENDS": json.dumps(backends)})

    code, calls = run(config)

    err = capsys.readouterr().err
    assert code == 1
    assert err == (
        "harden: error: bucket team-tfstate-far of backend far is in eu-west-1, and S3 notifies functions of its "
        "own region only (us-east-1): set its events to eventbridge\n"
    )
    assert writes(calls) == []
