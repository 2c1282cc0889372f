"""A DynamoDB stream record as `GetRecords` gives it, in the shape Lambda hands a function (the local stack's stream
source and `replay` both build Lambda's batches from what they read)."""

from __future__ import annotations

import base64
import math
from datetime import datetime
from typing import Any


def lambda_record(record: dict[str, Any], stream_arn: str, region: str) -> dict[str, Any]:
    """`record` as Lambda delivers it: its creation time in whole epoch seconds, binary attributes base64-encoded."""
    body = dict(record["dynamodb"])
    created = body.get("ApproximateCreationDateTime")
    if isinstance(created, datetime):
        body["ApproximateCreationDateTime"] = math.floor(created.timestamp())
    elif isinstance(created, (int, float)):
        body["ApproximateCreationDateTime"] = math.floor(created)
    for image in ("Keys", "NewImage", "OldImage"):
        if image in body:
            body[image] = _wire(body[image])
    return {
        "eventID": record["eventID"],
        "eventName": record["eventName"],
        "eventVersion": record.get("eventVersion", "1.1"),
        "eventSource": "aws:dynamodb",
        "awsRegion": region,
        "dynamodb": body,
        "eventSourceARN": stream_arn,
    }


def _wire(value: Any) -> Any:
    # The client decodes binary attributes to bytes; Lambda delivers them base64-encoded.
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, dict):
        return {name: _wire(item) for name, item in value.items()}
    if isinstance(value, list):
        return [_wire(item) for item in value]
    return value
