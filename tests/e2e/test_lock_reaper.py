"""The reaper against real Terraform: a live lock is never released; a crafted stale one is, and Terraform goes on."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest

from chalicelib import composition
from chalicelib.domain.staleness import ReaperPolicy
from local_stack.backend_blocks import backend_block_legacy, backend_block_modern
from tests.conftest import RunningStack
from tests.e2e.conftest import configuration
from tests.support.terraform import Terraform, TerraformDir, find_terraform_1_11

KEY = "reap/terraform.tfstate"
# Terraform persists state during an apply once 20 s have passed, when the next resource completes; `last` then
# holds the lock 5 s more, while the test sees that write and asks the reaper.
SLOW = """
resource "terraform_data" "first" {
  input = "quick"
}
resource "terraform_data" "slow" {
  input = terraform_data.first.id
  provisioner "local-exec" {
    command = "sleep 21"
  }
}
resource "terraform_data" "last" {
  input = terraform_data.slow.id
  provisioner "local-exec" {
    command = "sleep 5"
  }
}
"""


@pytest.fixture
def terraform_1_11() -> Terraform:
    found = find_terraform_1_11()
    if found is None:
        pytest.skip("Terraform 1.11 is not on PATH (or GUARDIAN_TERRAFORM_1_11)")
    return found


def directory(terraform: Terraform, stack: RunningStack, path: Path, *, dynamodb: bool, lockfile: bool) -> TerraformDir:
    tf = TerraformDir(terraform, path)
    if terraform.modern:
        block = backend_block_modern(stack.stack.endpoint, stack.resources, KEY, dynamodb=dynamodb, lockfile=lockfile)
    else:
        block = backend_block_legacy(stack.stack.endpoint, stack.resources, KEY)
    tf.write("backend.tf", block)
    tf.write("main.tf", configuration(terraform))
    tf.init()
    return tf


def reaper(**policy: object):
    reaper = composition.container().home.reaper
    reaper.policy = ReaperPolicy(**policy)  # type: ignore[arg-type]
    return reaper


MECHANISMS = pytest.mark.parametrize(
    ("dynamodb", "lockfile"), [(True, False), (False, True), (True, True)], ids=["dynamodb", "lockfile", "both"]
)


@MECHANISMS
def test_a_lock_held_at_the_prompt_is_warned_about_but_never_released_before_the_grace_period(
    terraform_1_11: Terraform, stack: RunningStack, tmp_path: Path, dynamodb: bool, lockfile: bool
) -> None:
    tf = directory(terraform_1_11, stack, tmp_path / "tf", dynamodb=dynamodb, lockfile=lockfile)
    reaping = reaper(ttl=timedelta(0), grace=timedelta(hours=1))
    with tf.holding_lock("-var", "v=held"):
        first = reaping.run(datetime.now(UTC))
        assert {o.action for o in first} == {"warned"}
        assert len(first) == int(dynamodb) + int(lockfile)
        later = reaping.run(datetime.now(UTC) + timedelta(minutes=59))
        assert {o.judgement.verdict.value for o in later} == {"waiting"}
    # holding_lock asserts that the apply succeeded, unlock included: its lock was never taken from it.
    assert [n["type"] for n in stack.notifications()] == ["lock.stale"]


def test_a_holder_that_writes_state_is_alive_even_when_warned_and_past_grace(
    terraform_1_11: Terraform, stack: RunningStack, tmp_path: Path, aws: boto3.session.Session
) -> None:
    tf = directory(terraform_1_11, stack, tmp_path / "tf", dynamodb=True, lockfile=False)
    tf.write("main.tf", SLOW)
    reaping = reaper(ttl=timedelta(0), grace=timedelta(0))
    s3 = aws.client("s3")
    with tf.background_apply():
        deadline = time.monotonic() + 20
        while not reaping.run(datetime.now(UTC)) and time.monotonic() < deadline:
            time.sleep(0.2)  # until the apply holds its lock; this first run warns about it
        # Terraform persists the state partway through a long apply: that write is proof of life.
        deadline = time.monotonic() + 40
        while "Versions" not in s3.list_object_versions(Bucket=stack.resources.state_bucket, Prefix=KEY):
            assert time.monotonic() < deadline, "Terraform never persisted state during the apply"
            time.sleep(0.5)
        verdicts = {o.judgement.verdict.value for o in reaping.run(datetime.now(UTC))}
        assert verdicts == {"alive"}
    assert "lock.reaped" not in [n["type"] for n in stack.notifications()]


@MECHANISMS
def test_a_crafted_stale_lock_is_released_and_terraform_goes_on(
    terraform_1_11: Terraform, stack: RunningStack, tmp_path: Path, aws: boto3.session.Session,
    dynamodb: bool, lockfile: bool,
) -> None:  # fmt: skip
    tf = directory(terraform_1_11, stack, tmp_path / "tf", dynamodb=dynamodb, lockfile=lockfile)
    tf.apply()
    craft_stale_lock(aws, stack, dynamodb=dynamodb, lockfile=lockfile)
    assert tf.run("plan", "-no-color", "-lock-timeout=0s", check=False).returncode != 0  # locked
    # The apply above wrote the state a moment ago: outside a zero quiet window, that is no proof of life.
    reaping = reaper(ttl=timedelta(hours=2), grace=timedelta(0), quiet_window=timedelta(0))
    assert {o.action for o in reaping.run(datetime.now(UTC))} == {"warned"}
    assert {o.action for o in reaping.run(datetime.now(UTC))} == {"released"}
    tf.run("plan", "-no-color", "-lock-timeout=0s")
    reaped = [n for n in stack.notifications() if n["type"] == "lock.reaped"]
    assert len(reaped) == 1 and reaped[0]["details"]["lock"]["who"] == "ci@cancelled-job"


def test_a_crafted_stale_lock_with_terraform_1_0(
    terraform_1_0_3: Terraform, stack: RunningStack, tmp_path: Path, aws: boto3.session.Session
) -> None:
    tf = directory(terraform_1_0_3, stack, tmp_path / "tf", dynamodb=True, lockfile=False)
    tf.apply()
    craft_stale_lock(aws, stack, dynamodb=True, lockfile=False)
    assert tf.run("plan", "-no-color", "-lock-timeout=0s", check=False).returncode != 0
    reaping = reaper(grace=timedelta(0), quiet_window=timedelta(0))
    reaping.run(datetime.now(UTC))
    assert {o.action for o in reaping.run(datetime.now(UTC))} == {"released"}
    tf.run("plan", "-no-color", "-lock-timeout=0s")


def craft_stale_lock(aws: boto3.session.Session, stack: RunningStack, *, dynamodb: bool, lockfile: bool) -> None:
    """A lock left by a cancelled CI job three hours ago, in the exact shape Terraform writes."""
    path = f"{stack.resources.state_bucket}/{KEY}"
    created = (datetime.now(UTC) - timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M:%S.%f") + "421Z"
    info = json.dumps(
        {"ID": "c4ncel1e-d000-4000-8000-000000000001", "Operation": "OperationTypeApply", "Info": "",
         "Who": "ci@cancelled-job", "Version": "1.11.4", "Created": created, "Path": path},
        separators=(",", ":"),
    )  # fmt: skip
    if dynamodb:
        aws.client("dynamodb").put_item(
            TableName=stack.resources.lock_table, Item={"LockID": {"S": path}, "Info": {"S": info}}
        )
    if lockfile:
        aws.client("s3").put_object(Bucket=stack.resources.state_bucket, Key=KEY + ".tflock", Body=info.encode())


def test_a_lock_held_at_the_prompt_by_terraform_1_0(
    terraform_1_0_3: Terraform, stack: RunningStack, tmp_path: Path
) -> None:
    tf = directory(terraform_1_0_3, stack, tmp_path / "tf", dynamodb=True, lockfile=False)
    reaping = reaper(ttl=timedelta(0), grace=timedelta(hours=1))
    with tf.holding_lock("-var", "v=held"):
        assert [o.action for o in reaping.run(datetime.now(UTC))] == ["warned"]
        assert [o.action for o in reaping.run(datetime.now(UTC) + timedelta(minutes=59))] == ["none"]
