"""Real Terraform commands give exactly the expected lock notifications, on every lock mechanism."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from local_stack.backend_blocks import backend_block_legacy, backend_block_modern
from tests.conftest import RunningStack
from tests.e2e.conftest import configuration
from tests.support.events import state_bytes
from tests.support.terraform import Terraform, TerraformDir, find_terraform_1_11

KEY = "ops/terraform.tfstate"


def lock_events(stack: RunningStack) -> list[tuple[str, str]]:
    return [
        (n["type"], n["details"]["lock"]["operation"]) for n in stack.notifications() if n["type"].startswith("lock.")
    ]


def pair(operation: str) -> list[tuple[str, str]]:
    return [("lock.acquired", operation), ("lock.released", operation)]


def run_and_collect(stack: RunningStack, tf: TerraformDir, *args: str) -> list[tuple[str, str]]:
    before = len(lock_events(stack))
    tf.run(*args)
    stack.pump()
    return lock_events(stack)[before:]


@pytest.mark.parametrize(
    ("dynamodb", "lockfile"), [(True, False), (False, True), (True, True)], ids=["dynamodb", "lockfile", "both"]
)
def test_terraform_1_11_commands(stack: RunningStack, tmp_path: Path, dynamodb: bool, lockfile: bool) -> None:
    terraform = find_terraform_1_11()
    if terraform is None:
        pytest.skip("Terraform 1.11 is not on PATH (or GUARDIAN_TERRAFORM_1_11)")
    tf = TerraformDir(terraform, tmp_path / "tf")
    block = backend_block_modern(stack.stack.endpoint, stack.resources, KEY, dynamodb=dynamodb, lockfile=lockfile)
    tf.write("backend.tf", block)
    tf.write("main.tf", configuration(terraform))
    tf.init()

    assert run_and_collect(stack, tf, "apply", "-auto-approve", "-no-color") == pair("OperationTypeApply")
    assert run_and_collect(stack, tf, "plan", "-no-color") == []  # plans are quiet by default
    assert run_and_collect(stack, tf, "taint", "-no-color", "terraform_data.probe") == pair("taint")
    assert run_and_collect(stack, tf, "state", "mv", "terraform_data.probe", "terraform_data.moved") == pair("state-mv")
    assert run_and_collect(stack, tf, "workspace", "new", "-no-color", "staging") == pair("init")
    tf.run("workspace", "select", "-no-color", "default")
    assert run_and_collect(stack, tf, "workspace", "delete", "-no-color", "staging") == pair("state-replace-provider")
    deleted = [n for n in stack.notifications() if n["type"] == "state.deleted"]
    assert [(d["workspace"], d["details"]["workspace_deleted"], d["severity"]) for d in deleted] == [
        ("staging", True, "warning")
    ]
    # One lock taken through both mechanisms is one pair of notifications, from whichever was seen first.
    sources = {n["details"]["lock"]["source"] for n in stack.notifications() if n["type"].startswith("lock.")}
    assert sources <= {"dynamodb", "lockfile"} and (dynamodb or sources == {"lockfile"})
    assert stack.failures() == ""


def test_terraform_1_0_commands(terraform_1_0_3: Terraform, stack: RunningStack, tmp_path: Path) -> None:
    tf = TerraformDir(terraform_1_0_3, tmp_path / "tf103")
    tf.write("backend.tf", backend_block_legacy(stack.stack.endpoint, stack.resources, key=KEY))
    tf.write("main.tf", configuration(terraform_1_0_3))
    tf.init()
    assert run_and_collect(stack, tf, "apply", "-auto-approve", "-no-color") == pair("OperationTypeApply")
    assert run_and_collect(stack, tf, "plan", "-no-color") == []
    # Outputs alone have no resource to move or remove: push a state that has some (under a lock of its own).
    current = json.loads(tf.run("state", "pull").stdout)
    crafted = json.loads(state_bytes("state_tf1.11.4_after_state_push_fake_aws_resources.json"))
    crafted.update(lineage=current["lineage"], serial=current["serial"] + 1, terraform_version="1.0.3")
    crafted.pop("check_results", None)
    (tf.path / "crafted.tfstate").write_text(json.dumps(crafted))
    assert run_and_collect(stack, tf, "state", "push", "crafted.tfstate") == pair("state-push")
    assert run_and_collect(stack, tf, "state", "mv", "aws_s3_bucket.logs", "aws_s3_bucket.moved") == pair("state-mv")
    assert run_and_collect(stack, tf, "state", "rm", "aws_s3_bucket.moved") == pair("state-rm")
    assert run_and_collect(stack, tf, "workspace", "new", "-no-color", "staging") == pair("init")
    tf.run("workspace", "select", "-no-color", "default")
    assert run_and_collect(stack, tf, "workspace", "delete", "-no-color", "staging") == pair("state-replace-provider")
    assert stack.failures() == ""
