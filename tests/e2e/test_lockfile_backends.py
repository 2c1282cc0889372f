"""Terraform 1.11 with `use_lockfile`: alone and together with DynamoDB, one lock gives one pair of notifications."""

from __future__ import annotations

from pathlib import Path

import pytest

from local_stack.backend_blocks import backend_block_modern
from tests.conftest import RunningStack
from tests.e2e.conftest import configuration
from tests.support.terraform import TerraformDir, find_terraform_1_11

KEY = "lf/terraform.tfstate"


@pytest.fixture
def terraform_1_11():
    found = find_terraform_1_11()
    if found is None:
        pytest.skip("Terraform 1.11 is not on PATH (or GUARDIAN_TERRAFORM_1_11)")
    return found


# The local stack delivers stream records before S3 events, as a lock is taken before the write it covers.
LOCKFILE_ONLY = ["lock.acquired", "state.changed", "lock.released"]
WITH_DYNAMODB = ["lock.acquired", "lock.released", "state.changed"]


@pytest.mark.parametrize(
    ("dynamodb", "sources", "sequence"),
    [(False, {"lockfile"}, LOCKFILE_ONLY), (True, {"dynamodb"}, WITH_DYNAMODB)],
)
def test_one_lock_one_acquired_one_released(
    terraform_1_11, stack: RunningStack, tmp_path: Path, dynamodb: bool, sources: set[str], sequence: list[str]
) -> None:
    tf = TerraformDir(terraform_1_11, tmp_path / "tf")
    tf.write(
        "backend.tf", backend_block_modern(stack.stack.endpoint, stack.resources, KEY, dynamodb=dynamodb, lockfile=True)
    )
    tf.write("main.tf", configuration(terraform_1_11))
    tf.init()
    tf.apply()
    stack.pump()
    tf.apply("-var", "v=two")
    stack.pump()
    stack.pump()  # a second look finds nothing new: no duplicates

    notifications = stack.notifications()
    assert stack.failures() == ""
    assert [n["type"] for n in notifications] == sequence * 2
    acquired = [n for n in notifications if n["type"] == "lock.acquired"]
    changed = [n for n in notifications if n["type"] == "state.changed"]
    assert {a["details"]["lock"]["source"] for a in acquired} == sources
    assert [c["details"]["lock"]["id"] for c in changed] == [a["details"]["lock"]["id"] for a in acquired]
    assert [c["details"]["serial"]["after"] for c in changed] == [1, 2]
    assert changed[1]["details"]["resources"]["changed"] == ["terraform_data.probe"]
