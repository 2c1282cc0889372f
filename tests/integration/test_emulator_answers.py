"""The emulator's shortcuts through moto's costs (`local_stack/moto_costs.py`) answer as moto does: every kind of
attribute value comes back as it was written, update expressions apply and are refused as moto applies and refuses
them, and an XML answer carries the request id its header gives."""

from __future__ import annotations

import uuid
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

# One attribute of each kind DynamoDB has, nested values among them.
EVERY_KIND: dict[str, Any] = {
    "pk": {"S": "item"},
    "empty": {"S": ""},
    "text": {"S": 'ünïcode \u2028 "quoted"'},
    "number": {"N": "12.5"},
    "binary": {"B": b"\x00\x01binary\xff"},
    "strings": {"SS": ["a", "b"]},
    "numbers": {"NS": ["1", "2"]},
    "binaries": {"BS": [b"x", b"\x00y"]},
    "map": {
        "M": {
            "a": {"S": "1"},
            "nested": {"M": {"list": {"L": [{"N": "1"}, {"NULL": True}, {"BOOL": False}, {"B": b"zz"}]}}},
        }
    },
    "empty_list": {"L": []},
    "empty_map": {"M": {}},
    "null": {"NULL": True},
    "flag": {"BOOL": True},
}


@pytest.fixture
def table(aws: boto3.session.Session) -> str:
    name = f"answers-{uuid.uuid4().hex[:8]}"
    aws.client("dynamodb").create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return name


def test_every_kind_of_value_reads_back_as_written(aws: boto3.session.Session, table: str) -> None:
    dynamodb = aws.client("dynamodb")
    dynamodb.put_item(TableName=table, Item=EVERY_KIND)
    key = {"pk": {"S": "item"}}
    assert dynamodb.get_item(TableName=table, Key=key)["Item"] == EVERY_KIND
    assert dynamodb.query(
        TableName=table, KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": key["pk"]}
    )["Items"] == [EVERY_KIND]
    assert dynamodb.scan(TableName=table)["Items"] == [EVERY_KIND]
    assert dynamodb.batch_get_item(RequestItems={table: {"Keys": [key]}})["Responses"][table] == [EVERY_KIND]
    projected = dynamodb.get_item(TableName=table, Key=key, ProjectionExpression="#b, #m.nested",
                                  ExpressionAttributeNames={"#b": "binary", "#m": "map"})["Item"]  # fmt: skip
    assert projected == {"binary": EVERY_KIND["binary"], "map": {"M": {"nested": EVERY_KIND["map"]["M"]["nested"]}}}


def test_an_update_of_many_actions_applies_each(aws: boto3.session.Session, table: str) -> None:
    dynamodb = aws.client("dynamodb")
    sets = {f"#a{n}": f"a{n}" for n in range(14)}
    values: dict[str, Any] = {f":a{n}": {"N": str(n)} for n in range(14)}
    expression = "SET " + ", ".join(f"#a{n} = :a{n}" for n in range(14)) + " REMOVE gone ADD tally :one"
    values[":one"] = {"N": "1"}
    for _ in range(2):  # the first creates the item (moto validates the expression twice), the second updates it
        dynamodb.put_item(TableName=table, Item={"pk": {"S": "other"}})
        answer = dynamodb.update_item(
            TableName=table,
            Key={"pk": {"S": "updated"}},
            UpdateExpression=expression,
            ExpressionAttributeNames=sets,
            ExpressionAttributeValues=values,
            ReturnValues="ALL_NEW",
        )
    assert answer["Attributes"] == {
        "pk": {"S": "updated"},
        "tally": {"N": "2"},
        **{f"a{n}": {"N": str(n)} for n in range(14)},
    }


@pytest.mark.parametrize(
    ("expression", "section"),
    [
        ("SET a = :v SET b = :v", "SET"),
        ("REMOVE a REMOVE b", "REMOVE"),
        ("ADD a :v ADD b :v SET c = :v SET d = :v", "SET"),  # the later sections are met first, as moto meets them
        ("SET c = :v SET d = :v ADD a :v ADD b :v", "ADD"),
    ],
)
def test_an_update_with_a_section_twice_is_refused_naming_it(
    aws: boto3.session.Session, table: str, expression: str, section: str
) -> None:
    values: dict[str, Any] = {"ExpressionAttributeValues": {":v": {"N": "1"}}} if ":v" in expression else {}
    with pytest.raises(ClientError, match=f'The "{section}" section can only be used once'):
        aws.client("dynamodb").update_item(
            TableName=table, Key={"pk": {"S": "refused"}}, UpdateExpression=expression, **values
        )


def test_an_xml_answer_carries_the_request_id_of_its_header(aws: boto3.session.Session) -> None:
    sns = aws.client("sns")
    topic = sns.create_topic(Name=f"answers-{uuid.uuid4().hex[:8]}")["TopicArn"]
    metadata = sns.publish(TopicArn=topic, Message="hello")["ResponseMetadata"]
    assert metadata["RequestId"] == metadata["HTTPHeaders"]["x-amzn-requestid"]
    assert len(metadata["RequestId"]) == 52
