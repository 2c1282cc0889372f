"""A history of real writes: resources added, changed and removed, a copied-back old version, a deletion."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import boto3
import pytest

from local_stack.backend_blocks import backend_block_legacy
from tests.conftest import RunningStack
from tests.support.events import state_bytes
from tests.support.terraform import Terraform, TerraformDir

KEY = "e2e/terraform.tfstate"

FIRST = """
resource "terraform_data" "a" {
  input = "one"
}
resource "terraform_data" "b" {
  count = 2
  input = count.index
}
module "m" {
  source = "./m"
}
output "a" {
  value = terraform_data.a.id
}
"""

SECOND = """
resource "terraform_data" "a" {
  input = "two"
}
resource "terraform_data" "b" {
  count = 1
  input = count.index
}
resource "terraform_data" "c" {
  for_each = toset(["x"])
  input    = each.key
}
module "m" {
  source = "./m"
}
output "c" {
  value = "c"
}
"""


def state_changes(stack: RunningStack) -> list[dict]:
    return [n for n in stack.notifications() if n["type"] == "state.changed"]


def test_resources_added_changed_removed_then_copied_back_then_deleted(
    aws: boto3.session.Session, stack: RunningStack, tf: TerraformDir
) -> None:
    if not tf.terraform.modern:
        pytest.skip("terraform_data needs Terraform 1.4 or later; 1.0.3 is covered with outputs and state push")
    (tf.path / "m").mkdir()
    tf.write("m/main.tf", 'resource "terraform_data" "inner" {\n  input = "m"\n}\n')
    tf.write("main.tf", FIRST)
    tf.init()
    tf.apply()
    stack.pump()
    tf.write("main.tf", SECOND)
    tf.apply()
    stack.pump()

    created, changed = state_changes(stack)
    assert sorted(created["details"]["resources"]["added"]) == [
        "module.m.terraform_data.inner",
        "terraform_data.a",
        "terraform_data.b[0]",
        "terraform_data.b[1]",
    ]
    resources = changed["details"]["resources"]
    assert resources["added"] == ['terraform_data.c["x"]']
    assert resources["changed"] == ["terraform_data.a"]
    assert resources["removed"] == ["terraform_data.b[1]"]
    assert changed["details"]["outputs"] == {
        "added": ["c"],
        "changed": [],
        "removed": ["a"],
        "counts": {"added": 1, "changed": 0, "removed": 1},
        "truncated": False,
    }
    assert changed["summary"].endswith(": +1 ~1 -1")
    assert changed["severity"] == "info"

    # Someone copies the first version back over the current one, outside the guardian.
    s3 = aws.client("s3")
    bucket = stack.resources.state_bucket
    s3.copy_object(
        Bucket=bucket,
        Key=KEY,
        CopySource={"Bucket": bucket, "Key": KEY, "VersionId": created["details"]["version_id"]},
    )
    stack.pump()
    restored = state_changes(stack)[-1]
    assert restored["severity"] == "warning"
    assert restored["details"]["serial"]["after"] < restored["details"]["serial"]["before"]
    assert "serial went backwards" in restored["summary"]

    # The copy left the digest behind: Terraform refuses the state, and the guardian says so.
    assert tf.run("plan", "-no-color", "-input=false", check=False).returncode != 0
    stack.stack.run_scheduled()
    mismatch = stack.notifications()[-1]
    assert mismatch["type"] == "digest.mismatch" and mismatch["severity"] == "critical"
    assert mismatch["details"]["version_id"] == restored["details"]["version_id"]
    # Its repair command, done through the API it names, makes Terraform accept the state again.
    repair = shlex.split(mismatch["details"]["repair"])
    item = json.loads(repair[repair.index("--item") + 1])
    aws.client("dynamodb").put_item(TableName=repair[repair.index("--table-name") + 1], Item=item)
    tf.run("plan", "-no-color", "-input=false")
    stack.pump()
    stack.stack.run_scheduled()
    assert stack.notifications()[-1] == mismatch  # nothing more to say

    s3.delete_object(Bucket=bucket, Key=KEY)
    stack.pump()
    deleted = stack.notifications()[-1]
    assert deleted["type"] == "state.deleted" and deleted["severity"] == "critical"
    assert deleted["details"]["last_version_id"] == restored["details"]["version_id"]


def test_outputs_and_pushed_states_with_terraform_1_0(
    terraform_1_0_3: Terraform, stack: RunningStack, tmp_path: Path
) -> None:
    tf = TerraformDir(terraform_1_0_3, tmp_path / "tf103")
    tf.write("backend.tf", backend_block_legacy(stack.stack.endpoint, stack.resources, key=KEY))
    tf.write("main.tf", 'output "a" {\n  value = "1"\n}\noutput "b" {\n  value = "2"\n}\n')
    tf.init()
    tf.apply()
    stack.pump()
    tf.write("main.tf", 'output "a" {\n  value = "changed"\n}\noutput "c" {\n  value = "3"\n}\n')
    tf.apply()
    stack.pump()
    # A crafted state with resources, pushed over the current one (same lineage, next serial).
    current = json.loads(tf.run("state", "pull").stdout)
    crafted = json.loads(state_bytes("state_tf1.11.4_after_state_push_fake_aws_resources.json"))
    crafted.update(lineage=current["lineage"], serial=current["serial"] + 1, terraform_version="1.0.3")
    crafted.pop("check_results", None)
    (tf.path / "crafted.tfstate").write_text(json.dumps(crafted))
    tf.run("state", "push", "crafted.tfstate")
    stack.pump()

    first, second, pushed = state_changes(stack)
    assert first["details"]["outputs"]["added"] == ["a", "b"]
    assert (second["details"]["outputs"]["added"], second["details"]["outputs"]["changed"]) == (["c"], ["a"])
    assert second["details"]["outputs"]["removed"] == ["b"]
    assert pushed["details"]["resources"]["added"] == [
        "aws_instance.web[0]",
        "aws_s3_bucket.logs",
        "terraform_data.probe",
    ]
    assert pushed["details"]["lock"]["operation"] == "state-push"
    assert stack.failures() == ""
