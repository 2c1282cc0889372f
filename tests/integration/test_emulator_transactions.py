"""The emulator's transactions (`local_stack/moto_costs.py`): a failed one leaves every item as it found it, while
it copies only the items its actions name."""

from __future__ import annotations

import uuid
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError


@pytest.fixture
def table(aws: boto3.session.Session) -> str:
    name = f"transactions-{uuid.uuid4().hex[:8]}"
    aws.client("dynamodb").create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    return name


def _item(aws: boto3.session.Session, table: str, pk: str, sk: str) -> Any:
    return aws.client("dynamodb").get_item(TableName=table, Key={"pk": {"S": pk}, "sk": {"S": sk}}).get("Item")


def test_a_failed_transaction_puts_back_what_its_actions_changed(aws: boto3.session.Session, table: str) -> None:
    dynamodb = aws.client("dynamodb")
    dynamodb.put_item(TableName=table, Item={"pk": {"S": "a"}, "sk": {"S": "1"}, "n": {"N": "1"}})
    dynamodb.put_item(TableName=table, Item={"pk": {"S": "a"}, "sk": {"S": "2"}, "n": {"N": "2"}})
    before = [_item(aws, table, "a", "1"), _item(aws, table, "a", "2")]
    with pytest.raises(ClientError, match="TransactionCanceled"):
        dynamodb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": table, "Item": {"pk": {"S": "a"}, "sk": {"S": "1"}, "n": {"N": "10"}}}},
                {  # an update in place, which a copy that shares items would not undo
                    "Update": {
                        "TableName": table,
                        "Key": {"pk": {"S": "a"}, "sk": {"S": "2"}},
                        "UpdateExpression": "SET n = :n",
                        "ExpressionAttributeValues": {":n": {"N": "20"}},
                    }
                },
                {"Put": {"TableName": table, "Item": {"pk": {"S": "b"}, "sk": {"S": "1"}}}},  # added, then removed
                {
                    "Put": {
                        "TableName": table,
                        "Item": {"pk": {"S": "c"}, "sk": {"S": "1"}},
                        "ConditionExpression": "attribute_exists(pk)",  # fails: cancels the whole transaction
                    }
                },
            ]
        )
    assert [_item(aws, table, "a", "1"), _item(aws, table, "a", "2")] == before
    assert _item(aws, table, "b", "1") is None
    assert _item(aws, table, "c", "1") is None


def test_a_transaction_that_succeeds_writes_every_action(aws: boto3.session.Session, table: str) -> None:
    dynamodb = aws.client("dynamodb")
    dynamodb.transact_write_items(
        TransactItems=[{"Put": {"TableName": table, "Item": {"pk": {"S": "a"}, "sk": {"S": str(n)}}}} for n in range(3)]
    )
    assert all(_item(aws, table, "a", str(n)) for n in range(3))
