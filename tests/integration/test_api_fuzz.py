"""A schema-based fuzz run against the local stack's API: never a 500, and an invalid request changes nothing."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import schemathesis
from chalice.test import Client
from hypothesis import HealthCheck, settings

from local_stack.emulator import free_port
from local_stack.stack import LocalStack
from tests.conftest import RunningStack
from tests.support.events import state_bytes

ROOT = Path(__file__).resolve().parents[2]
schema = schemathesis.openapi.from_path(ROOT / "docs" / "openapi.json")
# Undocumented methods are API Gateway's to refuse (Chalice's local server answers them 501); the coverage
# phase's boundary cases and the fuzzing phase's random ones are what this run is for.
schema.config.phases.coverage.unexpected_methods = set()
KEY = "fuzz/terraform.tfstate"


HELD = "fuzz/held/terraform.tfstate"  # a state whose lock is held: no request may release it or write it


@pytest.fixture
def api(aws, stack_with) -> tuple[LocalStack, object]:
    stack = stack_with(api_port=free_port())
    assert stack.resources is not None
    s3, bucket = aws.client("s3"), stack.resources.state_bucket
    for name in ("state_tf1.11.4_first_apply_serial1.json", "state_tf1.11.4_second_apply_serial2.json"):
        s3.put_object(Bucket=bucket, Key=KEY, Body=state_bytes(name))
        s3.put_object(Bucket=bucket, Key=HELD, Body=state_bytes(name))
    info = {"ID": "fuzz-lock", "Operation": "OperationTypeApply", "Info": "", "Who": "ci@runner", "Version": "1.11.4",
            "Created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f000Z"), "Path": f"{bucket}/{HELD}"}  # fmt: skip
    aws.client("dynamodb").put_item(
        TableName=stack.resources.lock_table,
        Item={"LockID": {"S": f"{bucket}/{HELD}"}, "Info": {"S": json.dumps(info, separators=(",", ":"))}},
    )
    return stack, aws


def snapshot(stack: LocalStack, aws) -> tuple[list[str], list[str]]:
    """Every object version and delete marker, and every lock table item (locks and digests)."""
    assert stack.resources is not None
    listed = aws.client("s3").list_object_versions(Bucket=stack.resources.state_bucket)
    versions = sorted(v["VersionId"] for v in listed.get("Versions", []) + listed.get("DeleteMarkers", []))
    items = aws.client("dynamodb").scan(TableName=stack.resources.lock_table)["Items"]
    return versions, sorted(json.dumps(item, sort_keys=True) for item in items)


def test_the_fuzz_run_covers_every_route(stack: RunningStack) -> None:
    """The run is generated from the API's document: it must name every route the app has, and no other."""
    documented = {(path, method.upper()) for path, methods in schema.raw_schema["paths"].items() for method in methods}
    routes = {(path, method) for path, methods in stack.app.app.routes.items() for method in methods}
    assert documented == routes


@pytest.mark.parametrize("path", ["/rollback", "/locks/reap"])
def test_json_nested_deeper_than_python_decodes_is_a_400(stack: RunningStack, path: str) -> None:
    with Client(stack.app.app) as client:
        response = client.http.post(path, headers={"content-type": "application/json"}, body=b"[" * 50_000)
    assert response.status_code == 400 and response.json_body["error"] == "invalid_request"


@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_never_fails_and_never_changes_state_on_a_refusal(case, api) -> None:
    stack, aws = api
    before = snapshot(stack, aws)
    response = case.call(base_url=stack.api_url)
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert snapshot(stack, aws) == before
    if response.status_code in (400, 403, 404, 409, 413, 422):
        assert set(response.json()) >= {"error", "message"}, response.text
