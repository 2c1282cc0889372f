"""Creates the state bucket, the lock table with its stream, the guardian's own table and index bucket, a topic."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from deploy.resource_shapes import (
    DEFAULT_ENCRYPTION,
    LOCK_TABLE_STREAM,
    PUBLIC_ACCESS_BLOCK,
    create_guardian_table,
    index_bucket_lifecycle,
)

if TYPE_CHECKING:
    from boto3.session import Session
    from mypy_boto3_s3 import S3Client


@dataclass(frozen=True)
class Resources:
    """Names and ARNs of the local stack's resources."""

    region: str
    state_bucket: str
    lock_table: str
    lock_table_stream_arn: str
    guardian_table: str
    notify_topic_arn: str
    index_bucket: str

    def guardian_env(self) -> dict[str, str]:
        """The guardian's settings that name these resources."""
        return {
            "GUARDIAN_STATE_BUCKET": self.state_bucket,
            "GUARDIAN_LOCK_TABLE": self.lock_table,
            "GUARDIAN_TABLE": self.guardian_table,
            "GUARDIAN_NOTIFY_TOPIC_ARN": self.notify_topic_arn,
            "GUARDIAN_INDEX_BUCKET": self.index_bucket,
        }


def provision(
    session: Session,
    *,
    state_bucket: str,
    lock_table: str,
    guardian_table: str,
    topic: str,
    index_bucket: str = "tfstate-guardian-indexes",
    retention_days: int = 400,
) -> Resources:
    """Create the resources, or adopt them where they already exist."""
    s3 = session.client("s3")
    dynamodb = session.client("dynamodb")
    sns = session.client("sns")
    region = session.region_name or "us-east-1"

    existing = {bucket["Name"] for bucket in s3.list_buckets().get("Buckets", [])}
    if index_bucket not in existing:
        _create_bucket(s3, index_bucket, region)
    s3.put_bucket_lifecycle_configuration(
        Bucket=index_bucket,
        LifecycleConfiguration=index_bucket_lifecycle(retention_days),  # type: ignore[arg-type]
    )

    stream_arn = provision_backend(session, state_bucket, lock_table)
    assert stream_arn is not None
    if guardian_table not in dynamodb.list_tables().get("TableNames", []):
        create_guardian_table(dynamodb, guardian_table)
    topic_arn = sns.create_topic(Name=topic)["TopicArn"]
    return Resources(
        region=region,
        state_bucket=state_bucket,
        lock_table=lock_table,
        lock_table_stream_arn=stream_arn,
        guardian_table=guardian_table,
        notify_topic_arn=topic_arn,
        index_bucket=index_bucket,
    )


def provision_backend(session: Session, bucket: str, lock_table: str | None) -> str | None:
    """A backend's versioned, encrypted state bucket and its lock table with a stream (unless it has none, or it is
    already there: several buckets may share one); the stream's ARN."""
    s3, dynamodb = session.client("s3"), session.client("dynamodb")
    if bucket not in {found["Name"] for found in s3.list_buckets().get("Buckets", [])}:
        _create_bucket(s3, bucket, session.region_name or "us-east-1")
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    if lock_table is None:
        return None
    if lock_table not in dynamodb.list_tables().get("TableNames", []):
        dynamodb.create_table(
            TableName=lock_table,
            KeySchema=[{"AttributeName": "LockID", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "LockID", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification=LOCK_TABLE_STREAM,
        )
    return str(dynamodb.describe_table(TableName=lock_table)["Table"]["LatestStreamArn"])


def _create_bucket(s3: S3Client, bucket: str, region: str) -> None:
    if region == "us-east-1":
        s3.create_bucket(Bucket=bucket)
    else:
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})  # type: ignore[typeddict-item]
    s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration=DEFAULT_ENCRYPTION)
    s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=PUBLIC_ACCESS_BLOCK)
