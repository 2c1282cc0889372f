"""An `Idempotency-Key` is never stuck: a request killed mid-way frees its key after its own lease, and storing the
first answer never fails the request, however large the answer."""

from __future__ import annotations

import gzip
import json
import os
import time
from types import SimpleNamespace
from typing import Any

import pytest
from chalice.test import Client

import chalicelib.api
from bench.generate_state import generate_state, state_bytes
from chalicelib.adapters.guardian_table import MAX_ANSWER_BYTES, GuardianTable, _storable_answer
from chalicelib.api import REQUEST_LEASE_S
from chalicelib.services.rollback import RollbackService
from tests.conftest import RunningStack

KEY = "big/terraform.tfstate"


class LambdaKilled(BaseException):
    """Lambda stopping the function at its timeout: nothing after this point of the invocation runs."""


def post(stack: RunningStack, body: dict[str, Any], key: str) -> tuple[int, dict[str, Any]]:
    with Client(stack.app.app) as client:
        response = client.http.post(
            "/rollback",
            headers={"Content-Type": "application/json", "Idempotency-Key": key},
            body=json.dumps(body),
        )
    return response.status_code, response.json_body


def versions(aws, stack: RunningStack) -> list[dict[str, Any]]:
    listed = aws.client("s3").list_object_versions(Bucket=stack.resources.state_bucket, Prefix=KEY)
    return [v for v in listed.get("Versions", []) if v["Key"] == KEY]


def put(aws, stack: RunningStack, body: bytes) -> str:
    return str(aws.client("s3").put_object(Bucket=stack.resources.state_bucket, Key=KEY, Body=body)["VersionId"])


def test_a_request_killed_mid_way_frees_its_key_after_its_lease_not_after_a_day(
    aws, stack: RunningStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = put(aws, stack, state_bytes(generate_state(20, serial=1, lineage="L", seed=1)))
    put(aws, stack, state_bytes(generate_state(25, serial=2, lineage="L", seed=2)))
    request = {"key": KEY, "version_id": first, "reason": "killed mid-way"}

    def killed(*args: Any, **kwargs: Any) -> Any:
        raise LambdaKilled

    with monkeypatch.context() as patch:  # killed after the key was taken: nothing of the request runs after that
        patch.setattr(RollbackService, "rollback", killed)
        patch.setattr(GuardianTable, "abandon_request", killed)
        with pytest.raises(LambdaKilled):
            post(stack, request, "rb-killed")
    status, body = post(stack, request, "rb-killed")  # the killed request might still be running
    assert (status, body["error"]) == (409, "idempotency_conflict") and "try again in" in body["message"]
    assert len(versions(aws, stack)) == 2

    later = time.time() + REQUEST_LEASE_S + 1  # once its lease has run out: the retry does the work, once
    monkeypatch.setattr(chalicelib.api, "time", SimpleNamespace(time=lambda: later))
    status, done = post(stack, request, "rb-killed")
    assert status == 200 and done["serial"]["after"] == 3
    assert post(stack, request, "rb-killed") == (200, done)
    assert len(versions(aws, stack)) == 3


def test_a_rollback_over_nine_thousand_addresses_keeps_its_answer_for_the_retry(aws, stack: RunningStack) -> None:
    # Long for_each keys: the answer's diff alone is far larger than a DynamoDB item may be.
    state = generate_state(9_000, serial=1, lineage="L", seed=3)
    for block in state["resources"]:
        for instance in block["instances"]:
            if isinstance(instance.get("index_key"), str):
                instance["index_key"] = f"{instance['index_key']}-" + "x" * 60
    target = put(aws, stack, state_bytes(state))
    put(aws, stack, state_bytes({**state, "serial": 2, "resources": []}))
    request = {"key": KEY, "version_id": target, "reason": "restore everything"}

    status, first = post(stack, request, "rb-big")
    assert status == 200, first
    assert len(json.dumps(first)) > 400_000 and len(first["diff"]["resources"]["added"]) == 9_000
    status, again = post(stack, request, "rb-big")
    assert (status, again) == (200, first)  # the very answer, not a second rollback
    assert len(versions(aws, stack)) == 3


def test_an_answer_too_large_even_compressed_is_kept_trimmed_with_truncated_set() -> None:
    answer = {"key": KEY, "new_version_id": "v3", "diff": {"added": [os.urandom(40).hex() for _ in range(20_000)]}}
    kept = _storable_answer(answer)
    assert len(kept) <= MAX_ANSWER_BYTES
    restored = json.loads(gzip.decompress(kept))
    assert restored["diff"]["truncated"] is True and restored["diff"]["counts"] == {"added": 20_000}
    assert restored["new_version_id"] == "v3" and 0 < len(restored["diff"]["added"]) < 20_000
    small = {"key": KEY, "new_version_id": "v3", "diff": {"added": ["a"]}}
    assert json.loads(gzip.decompress(_storable_answer(small))) == small
