"""Every AWS call the guardian made in this run is allowed by the hand-written policy, and nothing more is wild."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from local_stack.stack import StackOptions
from tests.conftest import AWS_CALLS

POLICIES = sorted((Path(__file__).resolve().parents[1] / ".chalice").glob("policy-*.json"))
LOCAL = StackOptions(notify_file=Path(), work_dir=Path(), log=None)  # type: ignore[arg-type]
ROLES = {LOCAL.lock_table: "LockTable", LOCAL.guardian_table: "GuardianTable"}
TRANSACT = {"Put": "dynamodb:PutItem", "Update": "dynamodb:UpdateItem", "Delete": "dynamodb:DeleteItem",
            "ConditionCheck": "dynamodb:ConditionCheckItem"}  # fmt: skip


def needed(service: str, operation: str, params: dict[str, Any]) -> list[tuple[str, str]]:
    """(statement Sid, IAM action) for one call."""
    versioned = bool(params.get("VersionId"))
    if service == "s3":
        return [
            {
                "GetObject": ("StateBucketObjects", "s3:GetObjectVersion" if versioned else "s3:GetObject"),
                "HeadObject": ("StateBucketObjects", "s3:GetObjectVersion" if versioned else "s3:GetObject"),
                "PutObject": ("StateBucketObjects", "s3:PutObject"),
                "DeleteObject": ("StateBucketObjects", "s3:DeleteObjectVersion" if versioned else "s3:DeleteObject"),
                "ListObjectVersions": ("StateBucket", "s3:ListBucketVersions"),
                "ListObjectsV2": ("StateBucket", "s3:ListBucket"),
            }[operation]
        ]
    if service == "dynamodb" and operation == "TransactWriteItems":
        return [
            (ROLES[action[kind]["TableName"]], TRANSACT[kind]) for action in params["TransactItems"] for kind in action
        ]
    if service == "dynamodb" and operation == "BatchWriteItem":
        return [(ROLES[table], "dynamodb:BatchWriteItem") for table in params["RequestItems"]]
    if service == "dynamodb":
        return [(ROLES[params["TableName"]], f"dynamodb:{operation}")]
    if service == "sns":
        return [("NotifyTopic", "sns:Publish")]
    raise AssertionError(f"no policy mapping for {service}:{operation}: add one here and to the policy")


@pytest.mark.last
@pytest.mark.parametrize("path", POLICIES, ids=lambda p: p.name)
def test_every_call_of_this_run_is_allowed(path: Path) -> None:
    if len(AWS_CALLS) < 100:
        pytest.skip("run the whole suite: this checks the calls it made")
    statements = {s["Sid"]: s for s in json.loads(path.read_text())["Statement"]}
    missing = sorted(
        {
            f"{sid} {action} (for {service}:{operation})"
            for service, operation, params in AWS_CALLS
            for sid, action in needed(service, operation, params)
            if action not in statements.get(sid, {}).get("Action", [])
        }
    )
    assert missing == []


@pytest.mark.parametrize("path", POLICIES, ids=lambda p: p.name)
def test_no_wildcards_beyond_the_buckets_objects(path: Path) -> None:
    for statement in json.loads(path.read_text())["Statement"]:
        assert all("*" not in action for action in statement["Action"]), statement["Sid"]
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        for resource in resources:
            if statement["Sid"] == "StateBucketObjects":
                assert resource.endswith("/*") and "*" not in resource[:-2]
            elif statement["Sid"] == "Logs":
                # Lambda names its log streams itself: a stream wildcard under each function's own group.
                assert resource.endswith(":*") and "*" not in resource[:-2]
            else:
                assert "*" not in resource, statement["Sid"]
