"""The exact shapes of the resources the guardian relies on, shared by `prepare` and the local stack."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import (
        AttributeDefinitionTypeDef,
        KeySchemaElementTypeDef,
        StreamSpecificationTypeDef,
    )
    from mypy_boto3_s3.type_defs import (
        PublicAccessBlockConfigurationTypeDef,
        ServerSideEncryptionConfigurationTypeDef,
    )

# The lock stream handler reads both images: the old one says which lock was released, and by whom.
LOCK_STREAM_VIEW_TYPE: Final = "NEW_AND_OLD_IMAGES"
LOCK_TABLE_STREAM: StreamSpecificationTypeDef = {"StreamEnabled": True, "StreamViewType": LOCK_STREAM_VIEW_TYPE}

DEFAULT_ENCRYPTION: ServerSideEncryptionConfigurationTypeDef = {
    "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
}

PUBLIC_ACCESS_BLOCK_FLAGS = ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")
PUBLIC_ACCESS_BLOCK: PublicAccessBlockConfigurationTypeDef = {
    "BlockPublicAcls": True,
    "IgnorePublicAcls": True,
    "BlockPublicPolicy": True,
    "RestrictPublicBuckets": True,
}

# The guardian's own table: delivery ledger, lock sessions and digest suspects, all keyed `pk` + `sk`.
GUARDIAN_TABLE_KEY_SCHEMA: list[KeySchemaElementTypeDef] = [
    {"AttributeName": "pk", "KeyType": "HASH"},
    {"AttributeName": "sk", "KeyType": "RANGE"},
]
GUARDIAN_TABLE_ATTRIBUTES: list[AttributeDefinitionTypeDef] = [
    {"AttributeName": "pk", "AttributeType": "S"},
    {"AttributeName": "sk", "AttributeType": "S"},
]
GUARDIAN_TABLE_TTL_ATTRIBUTE = "expires_at"


def create_guardian_table(dynamodb: DynamoDBClient, name: str) -> None:
    """Create the guardian's table on demand, and turn on its TTL once the table is active."""
    dynamodb.create_table(
        TableName=name,
        KeySchema=GUARDIAN_TABLE_KEY_SCHEMA,
        AttributeDefinitions=GUARDIAN_TABLE_ATTRIBUTES,
        BillingMode="PAY_PER_REQUEST",
    )
    # DynamoDB refuses a TTL change while the table is still being created.
    dynamodb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 2, "MaxAttempts": 60})
    enable_guardian_table_ttl(dynamodb, name)


def enable_guardian_table_ttl(dynamodb: DynamoDBClient, name: str) -> None:
    """Expire the guardian's items at their `expires_at`."""
    dynamodb.update_time_to_live(
        TableName=name,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": GUARDIAN_TABLE_TTL_ATTRIBUTE},
    )


# Where each state version's index is kept: a bucket of the guardian's own, its objects under this prefix.
INDEX_PREFIX = "indexes/"


def index_bucket_lifecycle(retention_days: int) -> dict[str, Any]:
    """The index bucket's one rule: an index goes `retention_days` after it was written, as its record does."""
    return {
        "Rules": [
            {
                "ID": "tfstate-guardian-index-retention",
                "Filter": {"Prefix": INDEX_PREFIX},
                "Status": "Enabled",
                "Expiration": {"Days": retention_days},
            }
        ]
    }
