"""A write that breaks every Terraform client is announced once, with the holder and the command that undoes it;
running that command makes real Terraform work again with the last readable state."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from local_stack.stack import LocalStack
from tests.e2e.conftest import notifications_of, working_dir
from tests.support.cli import tfguardian
from tests.support.terraform import Terraform, TerraformDir

KEY = "broken/terraform.tfstate"
BAD_WRITES = {
    "empty object": b"",
    "not JSON": b"<html><body>502 Bad Gateway</body></html>",
    "truncated state": b'{\n  "version": 4,\n  "terraform_version": "1.11.4",\n  "serial": 9,\n  "lin',
    "git symlink stub": b"../../shared/prod/terraform.tfstate",
}


@pytest.fixture
def api_and_tf(terraform: Terraform, api_stack: LocalStack, tmp_path: Path) -> tuple[LocalStack, TerraformDir]:
    return api_stack, working_dir(terraform, api_stack, tmp_path / "tf", KEY)


def test_each_bad_write_gives_one_state_unreadable_and_its_restore_command_works(
    aws, api_and_tf: tuple[LocalStack, TerraformDir]
) -> None:
    local, tf = api_and_tf
    assert local.resources is not None and local.api_url is not None
    s3 = aws.client("s3")
    bucket = local.resources.state_bucket
    tf.apply()
    tf.apply("-var", "v=two")
    local.pump()
    readable = [n for n in notifications_of(local) if n["type"] == "state.changed"][-1]["details"]["version_id"]

    said = len(notifications_of(local))
    written = {}
    # A script overwrites the state while an apply holds its lock (and then gives up at the prompt).
    with tf.holding_lock("-var", "v=three", answer="no"):
        local.pump()  # the lock's stream record: the holder at write time
        for what, body in BAD_WRITES.items():
            written[what] = s3.put_object(Bucket=bucket, Key=KEY, Body=body)["VersionId"]
            for _ in range(2):  # however often S3 delivers the event
                local.pump()
    local.pump()
    new = [n for n in notifications_of(local)[said:] if n["type"] not in ("lock.acquired", "lock.released")]
    assert [n["type"] for n in new] == ["state.unreadable"] * len(BAD_WRITES)
    for notification, (what, body) in zip(new, BAD_WRITES.items(), strict=True):
        details = notification["details"]
        assert notification["severity"] == "critical", what
        assert details["version_id"] == written[what] and details["size"] == len(body), what
        assert details["reason"] and details["principal"], what
        assert details["lock"]["operation"] == "OperationTypeApply", what  # the apply held the lock
        assert details["last_readable_version_id"] == readable, what
        assert KEY in details["restore"] and readable in details["restore"], what

    # Terraform cannot read the state now; the announced command restores it.
    assert tf.run("plan", "-no-color", "-input=false", check=False).returncode != 0
    restore = shlex.split(new[-1]["details"]["restore"])
    assert restore[0] == "tfguardian"
    done = tfguardian(local, *restore[1:], stdin="y\n")
    assert done.returncode == 0, done.stderr
    assert json.loads(tf.run("output", "-json").stdout)["v"]["value"] == "two"
    plan = tf.run("plan", "-no-color", "-input=false", "-var", "v=two", "-detailed-exitcode", check=False)
    assert plan.returncode == 0, plan.stdout + plan.stderr
