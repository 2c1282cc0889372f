"""A schema-based fuzz run against the local stack's API: never a 500, and an invalid request changes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from local_stack.emulator import free_port
from local_stack.stack import LocalStack
from tests.support.events import state_bytes

ROOT = Path(__file__).resolve().parents[2]
schema = schemathesis.openapi.from_path(ROOT / "docs" / "openapi.json")
# Undocumented methods are API Gateway's to refuse (Chalice's local server answers them 501); the coverage
# phase's boundary cases and the fuzzing phase's random ones are what this run is for.
schema.config.phases.coverage.unexpected_methods = set()
KEY = "fuzz/terraform.tfstate"


@pytest.fixture
def api(aws, stack_with) -> tuple[LocalStack, object]:
    stack = stack_with(api_port=free_port())
    assert stack.resources is not None
    s3 = aws.client("s3")
    for name in ("state_tf1.11.4_first_apply_serial1.json", "state_tf1.11.4_second_apply_serial2.json"):
        s3.put_object(Bucket=stack.resources.state_bucket, Key=KEY, Body=state_bytes(name))
    return stack, s3


def snapshot(stack: LocalStack, s3) -> list[str]:
    assert stack.resources is not None
    listed = s3.list_object_versions(Bucket=stack.resources.state_bucket)
    return sorted(v["VersionId"] for v in listed.get("Versions", []) + listed.get("DeleteMarkers", []))


@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_never_fails_and_never_changes_state_on_a_refusal(case, api) -> None:
    stack, s3 = api
    before = snapshot(stack, s3)
    response = case.call(base_url=stack.api_url)
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert snapshot(stack, s3) == before
    if response.status_code in (400, 403, 404, 409, 413, 422):
        assert set(response.json()) >= {"error", "message"}, response.text
