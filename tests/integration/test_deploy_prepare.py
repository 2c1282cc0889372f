"""`python -m deploy prepare`: a bare backend made ready over the moto server, idempotently, and its refusals."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest

from deploy.__main__ import main
from deploy.resource_shapes import DEFAULT_ENCRYPTION, PUBLIC_ACCESS_BLOCK, create_guardian_table
from local_stack.stack import REGION
from tests.support.deployed import recording_session, writes

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT = "123456789012"  # moto's account
BUCKET = "team-tfstate-test"
LOCK_TABLE = "team-tf-locks-test"
GUARDIAN_TABLE = "tfstate-guardian-test"
INDEX_BUCKET = "tfstate-guardian-test-indexes"
TOPIC_ARN = f"arn:aws:sns:{REGION}:{ACCOUNT}:tfstate-guardian-test"
EVENT_BUS = "tfstate-guardian-test"
SLACK_PARAMETER = "/tfstate-guardian/test/slack-webhook-url"
SLACK_URL = "https://hooks.slack.com/services/T000/B000/never-printed-7f3a"
ALARM_TOPIC_ARN = f"arn:aws:sns:{REGION}:{ACCOUNT}:tfstate-guardian-test-alarms"


def write_config(tmp_path: Path, **overrides: str) -> Path:
    """A Chalice config like the project's: the guardian table at top level, the rest in the stage."""
    stage_env = {
        "GUARDIAN_STATE_BUCKET": BUCKET,
        "GUARDIAN_LOCK_TABLE": LOCK_TABLE,
        "GUARDIAN_INDEX_BUCKET": INDEX_BUCKET,
        "GUARDIAN_NOTIFY_TOPIC_ARN": TOPIC_ARN,
        "GUARDIAN_NOTIFY_EVENT_BUS": EVENT_BUS,
        "GUARDIAN_SLACK_WEBHOOK_SECRET": f"ssm:{SLACK_PARAMETER}",
        **overrides,
    }
    config = {
        "version": "2.0",
        "app_name": "tfstate-guardian",
        "environment_variables": {"GUARDIAN_TABLE": GUARDIAN_TABLE, "GUARDIAN_STATE_BUCKET": "overridden-by-stage"},
        "stages": {"test": {"environment_variables": {k: v for k, v in stage_env.items() if v}}},
    }
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


def bare_backend(aws: boto3.session.Session, stream_view: str | None = None) -> None:
    """A team's bucket and lock table as often found: no versioning, no encryption, no public access block."""
    aws.client("s3").create_bucket(Bucket=BUCKET)
    stream = {"StreamSpecification": {"StreamEnabled": True, "StreamViewType": stream_view}} if stream_view else {}
    aws.client("dynamodb").create_table(
        TableName=LOCK_TABLE,
        KeySchema=[{"AttributeName": "LockID", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "LockID", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        **stream,  # type: ignore[arg-type]
    )


def run(config: Path, *extra: str) -> tuple[int, list[str]]:
    session, calls = recording_session()
    code = main(["prepare", "--stage", "test", "--config", str(config), *extra], session=session)
    return code, calls


def public_access_block(aws: boto3.session.Session, bucket: str = BUCKET) -> dict[str, Any] | None:
    try:
        return dict(aws.client("s3").get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"])
    except aws.client("s3").exceptions.ClientError:
        return None


def bucket_names(aws: boto3.session.Session) -> list[str]:
    return sorted(bucket["Name"] for bucket in aws.client("s3").list_buckets()["Buckets"])


def lifecycle_rules(aws: boto3.session.Session, bucket: str = INDEX_BUCKET) -> list[dict[str, Any]]:
    try:
        return [dict(rule) for rule in aws.client("s3").get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]]
    except aws.client("s3").exceptions.ClientError:
        return []


def retention_rule(days: int) -> dict[str, Any]:
    return {
        "ID": "tfstate-guardian-index-retention",
        "Filter": {"Prefix": "indexes/"},
        "Status": "Enabled",
        "Expiration": {"Days": days},
    }


ALL_BLOCKED = {
    "BlockPublicAcls": True,
    "IgnorePublicAcls": True,
    "BlockPublicPolicy": True,
    "RestrictPublicBuckets": True,
}


def table_names(aws: boto3.session.Session) -> list[str]:
    return aws.client("dynamodb").list_tables()["TableNames"]


def topic_arns(aws: boto3.session.Session) -> list[str]:
    return [topic["TopicArn"] for topic in aws.client("sns").list_topics()["Topics"]]


def test_a_bare_backend_is_made_ready_and_a_second_run_changes_nothing(
    aws: boto3.session.Session, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    bare_backend(aws)
    monkeypatch.setenv("GUARDIAN_SLACK_WEBHOOK_URL_VALUE", SLACK_URL)
    config = write_config(tmp_path)

    code, _ = run(config)

    first = capsys.readouterr()
    s3, dynamodb = aws.client("s3"), aws.client("dynamodb")
    assert s3.get_bucket_versioning(Bucket=BUCKET)["Status"] == "Enabled"
    rules = s3.get_bucket_encryption(Bucket=BUCKET)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert public_access_block(aws) == ALL_BLOCKED
    lock_table = dynamodb.describe_table(TableName=LOCK_TABLE)["Table"]
    assert lock_table["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    guardian = dynamodb.describe_table(TableName=GUARDIAN_TABLE)["Table"]
    assert sorted((k["AttributeName"], k["KeyType"]) for k in guardian["KeySchema"]) == [
        ("pk", "HASH"),
        ("sk", "RANGE"),
    ]
    assert sorted((a["AttributeName"], a["AttributeType"]) for a in guardian["AttributeDefinitions"]) == [
        ("pk", "S"),
        ("sk", "S"),
    ]
    assert guardian["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    ttl = dynamodb.describe_time_to_live(TableName=GUARDIAN_TABLE)["TimeToLiveDescription"]
    assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", "expires_at")
    assert TOPIC_ARN in topic_arns(aws)
    assert aws.client("events").describe_event_bus(Name=EVENT_BUS)["Name"] == EVENT_BUS
    parameter = aws.client("ssm").get_parameter(Name=SLACK_PARAMETER, WithDecryption=True)["Parameter"]
    assert (parameter["Type"], parameter["Value"]) == ("SecureString", SLACK_URL)
    assert SLACK_URL not in first.out + first.err
    # The guardian's own index bucket, private and encrypted, its indexes going after GUARDIAN_HISTORY_DAYS (400).
    index_rules = s3.get_bucket_encryption(Bucket=INDEX_BUCKET)["ServerSideEncryptionConfiguration"]["Rules"]
    assert index_rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert public_access_block(aws, INDEX_BUCKET) == ALL_BLOCKED
    assert lifecycle_rules(aws) == [retention_rule(400)]
    assert "Status" not in s3.get_bucket_versioning(Bucket=INDEX_BUCKET)  # expired indexes leave nothing behind

    assert ALARM_TOPIC_ARN in topic_arns(aws)
    # No stream ARN to configure any more: harden finds the stream by describing the table.
    assert code == 0
    assert "GUARDIAN_LOCK_TABLE_STREAM_ARN" not in first.out
    assert first.out.splitlines() == [
        f"s3://{BUCKET}: enable versioning (it is never enabled)",
        f"s3://{BUCKET}: set default encryption to SSE-S3 (AES256) (it has none)",
        f"s3://{BUCKET}: block all public access "
        "(BlockPublicAcls, IgnorePublicAcls, BlockPublicPolicy, RestrictPublicBuckets off)",
        f"dynamodb table {LOCK_TABLE}: enable its stream with NEW_AND_OLD_IMAGES",
        "sns: create the topic tfstate-guardian-test",
        f"events: create the event bus {EVENT_BUS}",
        "sns: create the topic tfstate-guardian-test-alarms, for the guardian's alarms (subscribe to it)",
        f"dynamodb table {GUARDIAN_TABLE}: create it (pk, sk strings; on demand; TTL on expires_at)",
        f"s3://{INDEX_BUCKET}: create it, the guardian's index bucket (SSE-S3, all public access blocked, "
        "indexes/ expiring after 400 days)",
        f"ssm: create {SLACK_PARAMETER} from $GUARDIAN_SLACK_WEBHOOK_URL_VALUE",
    ]

    code, calls = run(config)

    second = capsys.readouterr()
    assert (code, second.out, second.err) == (0, "nothing to change\n", "")
    assert calls, "the second run must have read the account"
    assert writes(calls) == []


def test_a_dry_run_says_what_it_would_do_and_changes_nothing(
    aws: boto3.session.Session, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    bare_backend(aws)
    monkeypatch.setenv("GUARDIAN_SLACK_WEBHOOK_URL_VALUE", SLACK_URL)

    code, calls = run(write_config(tmp_path), "--dry-run")

    out = capsys.readouterr().out
    assert code == 0
    assert writes(calls) == []
    lines = out.splitlines()
    assert len(lines) == 10
    assert all(line.startswith("[dry run] ") for line in lines)
    assert "Status" not in aws.client("s3").get_bucket_versioning(Bucket=BUCKET)
    assert public_access_block(aws) is None
    assert "StreamSpecification" not in aws.client("dynamodb").describe_table(TableName=LOCK_TABLE)["Table"]
    assert table_names(aws) == [LOCK_TABLE]
    assert bucket_names(aws) == [BUCKET]
    assert topic_arns(aws) == []
    assert [bus["Name"] for bus in aws.client("events").list_event_buses()["EventBuses"]] == ["default"]
    assert aws.client("ssm").describe_parameters()["Parameters"] == []


def test_a_missing_state_bucket_is_refused_before_anything_changes(
    aws: boto3.session.Session, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    aws.client("dynamodb").create_table(
        TableName=LOCK_TABLE,
        KeySchema=[{"AttributeName": "LockID", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "LockID", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )

    code, calls = run(write_config(tmp_path))

    out, err = capsys.readouterr()
    assert code == 1
    assert out == ""
    assert err == (
        f"prepare: error: state bucket {BUCKET} of backend default does not exist: prepare never creates a team's "
        "state bucket; create it, or fix the backend's bucket (GUARDIAN_STATE_BUCKET or GUARDIAN_BACKENDS)\n"
    )
    assert writes(calls) == []
    assert aws.client("s3").list_buckets()["Buckets"] == []


def test_suspended_versioning_is_enabled_and_a_kms_default_encryption_is_kept(
    aws: boto3.session.Session, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bare_backend(aws, stream_view="NEW_AND_OLD_IMAGES")
    s3 = aws.client("s3")
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Suspended"})
    kms = {
        "Rules": [
            {
                "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": "alias/team"},
                "BucketKeyEnabled": True,
            }
        ]
    }
    s3.put_bucket_encryption(Bucket=BUCKET, ServerSideEncryptionConfiguration=kms)  # type: ignore[arg-type]

    code, _ = run(write_config(tmp_path, GUARDIAN_SLACK_WEBHOOK_SECRET=""))

    out = capsys.readouterr().out
    assert code == 0
    assert f"s3://{BUCKET}: enable versioning (it is Suspended)" in out
    assert "encryption" not in out
    assert s3.get_bucket_versioning(Bucket=BUCKET)["Status"] == "Enabled"
    rule = s3.get_bucket_encryption(Bucket=BUCKET)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": "alias/team"}


def test_a_stream_of_another_view_type_is_refused_and_left_alone(
    aws: boto3.session.Session, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bare_backend(aws, stream_view="KEYS_ONLY")

    code, calls = run(write_config(tmp_path))

    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith(f"prepare: error: lock table {LOCK_TABLE} has a KEYS_ONLY stream, and the guardian needs ")
    assert "cuts off every other consumer of the current stream" in err
    assert err.count("\n") == 1
    assert writes(calls) == []
    stream = aws.client("dynamodb").describe_table(TableName=LOCK_TABLE)["Table"]["StreamSpecification"]
    assert stream["StreamViewType"] == "KEYS_ONLY"


def test_a_missing_secret_without_a_value_is_left_to_do_and_fails_the_run(
    aws: boto3.session.Session, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    bare_backend(aws, stream_view="NEW_AND_OLD_IMAGES")
    monkeypatch.delenv("GUARDIAN_SLACK_WEBHOOK_URL_VALUE", raising=False)

    code, _ = run(write_config(tmp_path))

    out = capsys.readouterr().out
    assert code == 1
    assert out.splitlines()[-1] == (
        f"to do: ssm:{SLACK_PARAMETER} (GUARDIAN_SLACK_WEBHOOK_SECRET) does not exist: "
        "export GUARDIAN_SLACK_WEBHOOK_URL_VALUE with its value and run prepare again"
    )
    assert aws.client("ssm").describe_parameters()["Parameters"] == []
    assert GUARDIAN_TABLE in table_names(aws)  # everything else was still made ready


def test_a_topic_of_another_account_is_refused(
    aws: boto3.session.Session, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bare_backend(aws)

    code, calls = run(write_config(tmp_path, GUARDIAN_NOTIFY_TOPIC_ARN=f"arn:aws:sns:{REGION}:999999999999:guardian"))

    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("prepare: error: GUARDIAN_NOTIFY_TOPIC_ARN is in account 999999999999, region us-east-1, ")
    assert writes(calls) == []


def ready_backend(aws: boto3.session.Session) -> None:
    """A backend prepare has made ready before, with the guardian's alarm topic."""
    bare_backend(aws, stream_view="NEW_AND_OLD_IMAGES")
    s3 = aws.client("s3")
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_encryption(Bucket=BUCKET, ServerSideEncryptionConfiguration=DEFAULT_ENCRYPTION)
    s3.put_public_access_block(Bucket=BUCKET, PublicAccessBlockConfiguration=PUBLIC_ACCESS_BLOCK)
    create_guardian_table(aws.client("dynamodb"), GUARDIAN_TABLE)
    aws.client("sns").create_topic(Name="tfstate-guardian-test-alarms")


def ready_config(tmp_path: Path, **overrides: str) -> Path:
    """The config of a ready backend, without channels: prepare's only business is the index bucket."""
    return write_config(
        tmp_path,
        GUARDIAN_NOTIFY_TOPIC_ARN="",
        GUARDIAN_NOTIFY_EVENT_BUS="",
        GUARDIAN_SLACK_WEBHOOK_SECRET="",
        **overrides,
    )


def test_an_existing_index_bucket_is_brought_to_shape_keeping_the_operators_own_rules(
    aws: boto3.session.Session, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ready_backend(aws)
    config = ready_config(tmp_path, GUARDIAN_HISTORY_DAYS="90")
    s3 = aws.client("s3")
    s3.create_bucket(Bucket=INDEX_BUCKET)
    s3.put_public_access_block(
        Bucket=INDEX_BUCKET, PublicAccessBlockConfiguration={**PUBLIC_ACCESS_BLOCK, "BlockPublicPolicy": False}
    )
    uploads = {
        "ID": "abort-uploads",
        "Filter": {"Prefix": ""},
        "Status": "Enabled",
        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 2},
    }
    s3.put_bucket_lifecycle_configuration(
        Bucket=INDEX_BUCKET,
        LifecycleConfiguration={"Rules": [uploads, retention_rule(30)]},  # type: ignore[list-item]
    )

    code, calls = run(config, "--dry-run")

    dry = capsys.readouterr().out.splitlines()
    assert (code, writes(calls)) == (0, [])
    assert lifecycle_rules(aws) == [uploads, retention_rule(30)]

    code, _ = run(config)

    out = capsys.readouterr().out.splitlines()
    changed = [
        f"s3://{INDEX_BUCKET}: set default encryption to SSE-S3 (AES256) (it has none)",
        f"s3://{INDEX_BUCKET}: block all public access (BlockPublicPolicy off)",
        f"s3://{INDEX_BUCKET}: expire indexes/ after 90 days, as GUARDIAN_HISTORY_DAYS says (its rule says 30 days)",
    ]
    assert (code, out) == (0, changed)
    assert dry == [f"[dry run] {line}" for line in changed]
    rules = s3.get_bucket_encryption(Bucket=INDEX_BUCKET)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert public_access_block(aws, INDEX_BUCKET) == ALL_BLOCKED
    assert lifecycle_rules(aws) == [uploads, retention_rule(90)]

    code, calls = run(config)

    assert (code, capsys.readouterr().out, writes(calls)) == (0, "nothing to change\n", [])


@pytest.mark.parametrize(
    ("rule", "said"),
    [
        ({**retention_rule(400), "Status": "Disabled"}, "its rule is Disabled"),
        ({**retention_rule(400), "Filter": {"Prefix": ""}}, "its rule covers the prefix ''"),
        (None, "it has no such rule"),
    ],
)
def test_an_index_retention_rule_that_is_off_too_wide_or_missing_is_put_back(
    aws: boto3.session.Session,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    rule: dict[str, Any] | None,
    said: str,
) -> None:
    ready_backend(aws)
    config = ready_config(tmp_path)
    s3 = aws.client("s3")
    s3.create_bucket(Bucket=INDEX_BUCKET)
    s3.put_bucket_encryption(Bucket=INDEX_BUCKET, ServerSideEncryptionConfiguration=DEFAULT_ENCRYPTION)
    s3.put_public_access_block(Bucket=INDEX_BUCKET, PublicAccessBlockConfiguration=PUBLIC_ACCESS_BLOCK)
    if rule is not None:
        s3.put_bucket_lifecycle_configuration(Bucket=INDEX_BUCKET, LifecycleConfiguration={"Rules": [rule]})  # type: ignore[list-item]

    code, _ = run(config)

    assert (code, capsys.readouterr().out.splitlines()) == (
        0,
        [f"s3://{INDEX_BUCKET}: expire indexes/ after 400 days, as GUARDIAN_HISTORY_DAYS says ({said})"],
    )
    assert lifecycle_rules(aws) == [retention_rule(400)]


def test_an_index_bucket_that_is_the_state_bucket_is_refused_before_anything_is_read(
    aws: boto3.session.Session, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bare_backend(aws)

    code, calls = run(write_config(tmp_path, GUARDIAN_INDEX_BUCKET=BUCKET))

    out, err = capsys.readouterr()
    assert (code, out, calls) == (1, "", [])
    assert err.startswith(f"prepare: error: GUARDIAN_INDEX_BUCKET is the state bucket {BUCKET}: ")
    assert err.count("\n") == 1
    assert lifecycle_rules(aws, BUCKET) == []
    assert "Status" not in aws.client("s3").get_bucket_versioning(Bucket=BUCKET)


def test_without_an_index_bucket_none_is_made(
    aws: boto3.session.Session, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ready_backend(aws)
    config = ready_config(tmp_path, GUARDIAN_INDEX_BUCKET="")

    code, _ = run(config)

    assert (code, capsys.readouterr().out) == (0, "nothing to change\n")
    assert bucket_names(aws) == [BUCKET]


def test_the_module_runs_as_a_program(aws: boto3.session.Session, tmp_path: Path) -> None:
    bare_backend(aws)
    config = write_config(tmp_path)

    done = subprocess.run(
        [sys.executable, "-m", "deploy", "prepare", "--stage", "test", "--config", str(config), "--dry-run"],
        cwd=ROOT,
        env={**os.environ, "GUARDIAN_SLACK_WEBHOOK_URL_VALUE": ""},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 1, done.stderr
    assert f"[dry run] s3://{BUCKET}: enable versioning (it is never enabled)" in done.stdout
    assert "to do: ssm:/tfstate-guardian/test/slack-webhook-url (GUARDIAN_SLACK_WEBHOOK_SECRET) does not exist" in (
        done.stdout
    )
    assert "Traceback" not in done.stderr
    assert "Status" not in aws.client("s3").get_bucket_versioning(Bucket=BUCKET)
