"""The local stack's event sources make up for what the emulator leaves out of its events."""

from urllib.parse import unquote_plus

import boto3

from chalicelib.domain.s3_events import ObjectChange, parse_s3_event
from local_stack.s3_source import VersionWatcher
from local_stack.stream_source import StreamPoller
from tests.support.events import state_bytes

BUCKET = "watched"


def test_version_watcher_builds_aws_shaped_records(aws: boto3.session.Session) -> None:
    s3 = aws.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket=BUCKET, Key="before/start", Body=b"x")
    watcher = VersionWatcher(s3, BUCKET, "us-east-1", "tfstate-guardian")
    watcher.baseline()

    key = "env:/staging/my app/terraform.tfstate"
    v1 = s3.put_object(Bucket=BUCKET, Key=key, Body=b"{}")["VersionId"]
    v2 = s3.put_object(Bucket=BUCKET, Key=key, Body=b"{ }")["VersionId"]
    marker = s3.delete_object(Bucket=BUCKET, Key=key)["VersionId"]
    events = watcher.poll()
    s3.delete_object(Bucket=BUCKET, Key=key, VersionId=v1)
    events += watcher.poll()
    assert watcher.poll() == []

    records = [event["Records"][0] for event in events]
    assert [r["eventName"] for r in records] == [
        "ObjectCreated:Put",
        "ObjectCreated:Put",
        "ObjectRemoved:DeleteMarkerCreated",
        "ObjectRemoved:Delete",
    ]
    assert [r["s3"]["object"]["versionId"] for r in records] == [v1, v2, marker, v1]
    # AWS encodes keys but leaves "/" alone (the emulator encodes it too).
    assert {r["s3"]["object"]["key"] for r in records} == {"env%3A/staging/my+app/terraform.tfstate"}
    assert all(unquote_plus(r["s3"]["object"]["key"]) == key for r in records)
    sequencers = [r["s3"]["object"]["sequencer"] for r in records]
    assert sequencers == sorted(sequencers) and len(set(sequencers)) == 4
    assert records[0]["s3"]["object"]["size"] == 2 and records[0]["userIdentity"]["principalId"]
    changes = [event.change for e in events for event in parse_s3_event(e).events]
    assert changes == [
        ObjectChange.CREATED,
        ObjectChange.CREATED,
        ObjectChange.DELETE_MARKER_CREATED,
        ObjectChange.DELETED,
    ]


def test_stream_poller_builds_lambda_records_and_resumes_where_acknowledged(aws: boto3.session.Session) -> None:
    dynamodb = aws.client("dynamodb", region_name="eu-central-1")
    dynamodb.create_table(
        TableName="locks",
        KeySchema=[{"AttributeName": "LockID", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "LockID", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    dynamodb.put_item(TableName="locks", Item={"LockID": {"S": "old"}})
    arn = dynamodb.describe_table(TableName="locks")["Table"]["LatestStreamArn"]
    poller = StreamPoller(aws.client("dynamodbstreams", region_name="eu-central-1"), arn, "eu-central-1")
    poller.baseline()

    dynamodb.put_item(TableName="locks", Item={"LockID": {"S": "b/k"}, "Info": {"S": "{}"}})
    dynamodb.delete_item(TableName="locks", Key={"LockID": {"S": "b/k"}})
    records = poller.poll()
    assert [r["eventName"] for r in records] == ["INSERT", "REMOVE"]
    assert all(r["eventSourceARN"] == arn and r["awsRegion"] == "eu-central-1" for r in records)
    assert all(r["eventVersion"] == "1.1" for r in records)
    assert all(isinstance(r["dynamodb"]["ApproximateCreationDateTime"], int) for r in records)
    assert records[0]["dynamodb"]["NewImage"] == {"LockID": {"S": "b/k"}, "Info": {"S": "{}"}}

    assert [r["eventName"] for r in poller.poll()] == ["INSERT", "REMOVE"]  # not acknowledged: again
    poller.acknowledge(records[:1])
    assert [r["eventName"] for r in poller.poll()] == ["REMOVE"]
    poller.acknowledge(records)
    assert poller.poll() == []


def test_a_pump_with_a_limit_leaves_the_rest_of_the_s3_events_queued_for_the_next(aws, stack) -> None:
    s3 = aws.client("s3")
    keys = [f"limit/{i}/terraform.tfstate" for i in range(3)]
    for key in keys:
        s3.put_object(
            Bucket=stack.resources.state_bucket, Key=key, Body=state_bytes("state_tf1.11.4_first_apply_serial1.json")
        )
    assert stack.stack.pump(max_s3_events=1) == 1
    assert len(stack.notifications()) == 1
    assert stack.stack.pump(max_s3_events=0) == 0
    assert stack.pump() == 2
    assert stack.pump() == 0
    assert sorted(n["key"] for n in stack.notifications()) == keys
