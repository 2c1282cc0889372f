"""Rollbacks through the API against real Terraform: it accepts the result at once, and the locks hold."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from chalice.test import Client

from chalicelib.adapters.s3_state_bucket import S3StateBucket
from local_stack.backend_blocks import backend_block_legacy, backend_block_modern
from tests.conftest import RunningStack
from tests.support.terraform import Terraform, TerraformDir

KEY = "rollback/terraform.tfstate"


def post(stack: RunningStack, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    with Client(stack.app.app) as client:
        response = client.http.post("/rollback", headers={"Content-Type": "application/json"}, body=json.dumps(body))
    return response.status_code, response.json_body


def outputs(tf: TerraformDir) -> dict[str, Any]:
    return {name: value["value"] for name, value in json.loads(tf.run("output", "-json").stdout).items()}


def setup(terraform: Terraform, stack: RunningStack, path: Path, *, lockfile_only: bool = False) -> TerraformDir:
    tf = TerraformDir(terraform, path)
    if terraform.modern:
        block = backend_block_modern(
            stack.stack.endpoint, stack.resources, KEY, dynamodb=not lockfile_only, lockfile=lockfile_only
        )
    else:
        block = backend_block_legacy(stack.stack.endpoint, stack.resources, KEY)
    tf.write("backend.tf", block)
    tf.write("main.tf", 'variable "v" {\n  default = "one"\n}\noutput "v" {\n  value = var.v\n}\n')
    tf.init()
    return tf


def versions(aws: boto3.session.Session, stack: RunningStack) -> list[str]:
    listed = aws.client("s3").list_object_versions(Bucket=stack.resources.state_bucket, Prefix=KEY)
    return [v["VersionId"] for v in listed.get("Versions", []) if v["Key"] == KEY]  # newest first


def test_three_applies_then_back_to_the_first(
    terraform: Terraform, stack: RunningStack, tmp_path: Path, aws: boto3.session.Session
) -> None:
    tf = setup(terraform, stack, tmp_path / "tf")
    for value in ("one", "two", "three"):
        tf.apply("-var", f"v={value}")
    first = versions(aws, stack)[-1]
    serial_before = json.loads(tf.run("state", "pull").stdout)["serial"]

    status, dry = post(stack, {"key": KEY, "version_id": first, "dry_run": True, "reason": "look first"})
    assert status == 200 and dry["dry_run"] and "new_version_id" not in dry
    assert dry["diff"]["outputs"]["changed"] == ["v"]
    assert outputs(tf) == {"v": "three"}  # a dry run changes nothing

    status, done = post(stack, {"key": KEY, "version_id": first, "reason": "bad apply"})
    assert status == 200, done
    assert done["serial"] == {"before": serial_before, "after": serial_before + 1}
    assert outputs(tf) == {"v": "one"}  # at once, and with no digest error
    tf.run("plan", "-no-color", "-input=false", "-var", "v=one", "-detailed-exitcode")
    tf.apply("-var", "v=four")
    assert json.loads(tf.run("state", "pull").stdout)["serial"] == serial_before + 2
    stack.pump()
    restored = [n for n in stack.notifications() if n["type"] == "state.restored"]
    assert [r["details"]["reason"] for r in restored] == ["bad apply"]


def test_refused_while_terraform_holds_the_lock(
    terraform: Terraform, stack: RunningStack, tmp_path: Path, aws: boto3.session.Session
) -> None:
    tf = setup(terraform, stack, tmp_path / "tf")
    tf.apply("-var", "v=one")
    tf.apply("-var", "v=two")
    first = versions(aws, stack)[-1]
    with tf.holding_lock("-var", "v=three"):
        status, body = post(stack, {"key": KEY, "version_id": first})
        assert status == 409 and body["error"] == "locked"
        assert body["lock"]["operation"] == "OperationTypeApply"
        assert len(versions(aws, stack)) == 2  # nothing changed
    assert outputs(tf) == {"v": "three"}


def test_terraform_cannot_lock_during_a_rollback_and_one_of_two_rollbacks_wins(
    terraform: Terraform, stack: RunningStack, tmp_path: Path, aws: boto3.session.Session, monkeypatch
) -> None:
    tf = setup(terraform, stack, tmp_path / "tf")
    tf.apply("-var", "v=one")
    tf.apply("-var", "v=two")
    first = versions(aws, stack)[-1]
    put_state = S3StateBucket.put_state
    seen: dict[str, Any] = {}

    def while_locked(self: S3StateBucket, key: str, body: bytes) -> str:
        seen["apply"] = tf.run("apply", "-auto-approve", "-no-color", "-lock-timeout=0s", "-var", "v=x", check=False)
        seen["second"] = post(stack, {"key": KEY, "version_id": first})
        return put_state(self, key, body)

    monkeypatch.setattr(S3StateBucket, "put_state", while_locked)
    status, _ = post(stack, {"key": KEY, "version_id": first})
    assert status == 200
    assert seen["apply"].returncode != 0 and "lock" in (seen["apply"].stdout + seen["apply"].stderr).lower()
    assert seen["second"][0] == 409
    monkeypatch.undo()
    assert outputs(tf) == {"v": "one"}
    tf.apply("-var", "v=after")  # the guardian's locks are gone


def test_rollback_after_a_deletion_and_by_serial_and_time(
    terraform: Terraform, stack: RunningStack, tmp_path: Path, aws: boto3.session.Session
) -> None:
    tf = setup(terraform, stack, tmp_path / "tf")
    tf.apply("-var", "v=one")
    tf.apply("-var", "v=two")
    first_serial = json.loads(aws.client("s3").get_object(
        Bucket=stack.resources.state_bucket, Key=KEY, VersionId=versions(aws, stack)[-1]
    )["Body"].read())["serial"]  # fmt: skip
    aws.client("s3").delete_object(Bucket=stack.resources.state_bucket, Key=KEY)
    status, body = post(stack, {"key": KEY, "serial": first_serial})
    assert status == 200, body
    assert body["serial"]["before"] is None
    assert outputs(tf) == {"v": "one"}
    status, body = post(stack, {"key": KEY, "as_of": datetime.now(UTC).isoformat()})
    assert status == 200 and outputs(tf) == {"v": "one"}
    tf.run("plan", "-no-color", "-input=false")


def test_rollback_on_a_lockfile_only_backend(
    terraform: Terraform, stack: RunningStack, tmp_path: Path, aws: boto3.session.Session
) -> None:
    if not terraform.modern:
        pytest.skip("lockfiles need Terraform 1.10 or later")
    tf = setup(terraform, stack, tmp_path / "tf", lockfile_only=True)
    tf.apply("-var", "v=one")
    tf.apply("-var", "v=two")
    status, body = post(stack, {"key": KEY, "version_id": versions(aws, stack)[-1]})
    assert status == 200, body
    assert outputs(tf) == {"v": "one"}
    tf.apply("-var", "v=three")


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ({"key": KEY}, 400, "invalid_request"),
        ({"key": KEY, "serial": 1, "version_id": "x"}, 400, "invalid_request"),
        ({"key": KEY, "serial": "1"}, 400, "invalid_request"),
        ({"key": KEY, "as_of": "yesterday"}, 400, "invalid_request"),
        ({"key": KEY, "version_id": "x", "bogus": 1}, 400, "invalid_request"),
        ({"key": "nothing/here.tfstate", "version_id": "x"}, 404, "not_found"),
        ({"key": KEY, "version_id": "no-such-version"}, 404, "not_found"),
        ({"key": KEY, "serial": 999}, 404, "not_found"),
    ],
)
def test_bad_requests_are_clear_errors_and_change_nothing(
    terraform: Terraform, stack: RunningStack, tmp_path: Path, aws: boto3.session.Session,
    body: dict[str, Any], status: int, error: str,
) -> None:  # fmt: skip
    if terraform.version.startswith("1.0"):
        pytest.skip("the API's validation does not depend on the Terraform version")
    tf = setup(terraform, stack, tmp_path / "tf")
    tf.apply()
    before = versions(aws, stack)
    got_status, got = post(stack, body)
    assert (got_status, got["error"]) == (status, error)
    assert versions(aws, stack) == before
