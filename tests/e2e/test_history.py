"""The guardian remembers, with real Terraform: who wrote each version, what it changed, and every action a caller
took (rollback, force-unlock, digest repair), through `GET /events`, `GET /states/versions` and `tfguardian`."""

from __future__ import annotations

import getpass
import json
from pathlib import Path
from typing import Any

import boto3

from local_stack.stack import LocalStack
from tests.e2e.conftest import working_dir
from tests.support.cli import tfguardian
from tests.support.terraform import Terraform

KEY = "history/terraform.tfstate"
CALLER = "arn:aws:sts::123456789012:assumed-role/platform-oncall/alice"
USER = getpass.getuser()  # Terraform's `Who` is <user>@<host name>


def bucket_resource(name: str) -> dict[str, Any]:
    """A resource as Terraform writes it, for `terraform state push`: no provider is needed to push or remove it."""
    return {
        "mode": "managed",
        "type": "aws_s3_bucket",
        "name": name,
        "provider": 'provider["registry.terraform.io/hashicorp/aws"]',
        "instances": [{"schema_version": 0, "attributes": {"id": name, "bucket": name}, "sensitive_attributes": []}],
    }


def cli(local: LocalStack, *args: str, stdin: str = "") -> Any:
    done = tfguardian(local, "--act-as", CALLER, *args, stdin=stdin)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout) if "--json" in args else done.stdout


def test_the_history_names_every_writer_and_every_action(
    aws: boto3.session.Session, terraform: Terraform, api_stack: LocalStack, tmp_path: Path
) -> None:
    local = api_stack
    assert local.resources is not None
    runner_a = working_dir(terraform, local, tmp_path / "a", KEY, hostname="runner-a")
    runner_b = working_dir(terraform, local, tmp_path / "b", KEY, hostname="runner-b")
    runner_a.apply()
    local.pump()

    # A cancelled CI job's lock, released by hand with a reason.
    with runner_a.holding_lock("-var", "v=held", answer="no"):
        local.pump()
        (held,) = cli(local, "--json", "locks")["locks"]
        cli(local, "unlock", KEY, held["lock"]["id"], "--reason", "CI job 4711 was cancelled")
    local.pump()

    # Runner B pushes a state with two buckets; runner A removes one.
    pulled = json.loads(runner_b.run("state", "pull").stdout)
    pushed = {**pulled, "serial": pulled["serial"] + 1}
    pushed["resources"] = [*pulled["resources"], bucket_resource("logs"), bucket_resource("data")]
    runner_b.write("pushed.tfstate", json.dumps(pushed, indent=2))
    runner_b.run("state", "push", "pushed.tfstate")
    local.pump()
    runner_a.run("state", "rm", "aws_s3_bucket.logs")
    local.pump()

    versions = cli(local, "--json", "versions", KEY)["versions"]
    removal, push, apply = versions[:3]
    assert [v["writer"]["who"] for v in (removal, push, apply)] == [
        f"{USER}@runner-a",
        f"{USER}@runner-b",
        f"{USER}@runner-a",
    ]
    assert [v["writer"]["operation"] for v in (removal, push, apply)] == [
        "state-rm", "state-push", "OperationTypeApply",
    ]  # fmt: skip
    assert removal["changes"]["resources"]["removed"] == 1 and push["changes"]["resources"]["added"] == 2
    assert all(v["recorded"] and v["writer"]["principal"] for v in (removal, push, apply))
    history_text = cli(local, "history", KEY)
    assert f"{USER}@runner-b" in history_text and "state-push" in history_text

    # Which version removed aws_s3_bucket.logs, and which added it.
    touched = cli(local, "--json", "versions", KEY, "--address", "aws_s3_bucket.logs")["versions"]
    assert [v["version_id"] for v in touched] == [removal["version_id"], push["version_id"]]

    # A rollback to the pushed version, then a broken digest repaired by hand.
    cli(local, "rollback", KEY, "--version-id", push["version_id"], "--yes", "--reason", "logs bucket is still in use")
    local.pump()
    aws.client("dynamodb").put_item(
        TableName=local.resources.lock_table,
        Item={"LockID": {"S": f"{local.resources.state_bucket}/{KEY}-md5"}, "Digest": {"S": "0" * 32}},
    )
    cli(local, "repair-digest", KEY)
    local.pump()

    events = cli(local, "--json", "events", "--key", KEY)["events"]
    by_type: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_type.setdefault(event["type"], []).append(event)
    assert {e["who"] for e in by_type["state.changed"]} >= {f"{USER}@runner-a", f"{USER}@runner-b"}
    (force,) = by_type["lock.force_released"]
    assert (
        force["caller"] == CALLER
        and force["reason"] == "CI job 4711 was cancelled"
        and force["who"] == f"{USER}@runner-a"
    )
    (restored,) = by_type["state.restored"]
    assert restored["caller"] == CALLER and restored["reason"] == "logs bucket is still in use"
    (repaired,) = by_type["digest.repaired"]
    assert repaired["caller"] == CALLER
    # The same trail across the fleet, by actor.
    mine = cli(local, "--json", "events", "--actor", CALLER)["events"]
    assert {e["type"] for e in mine} == {"lock.force_released", "state.restored", "digest.repaired"}
    table = cli(local, "events", "--key", KEY)
    assert "lock.force_released" in table and CALLER in table

    restored_version = cli(local, "--json", "versions", KEY, "--limit", "1")["versions"][0]
    assert restored_version["writer"]["who"] == f"{CALLER} via tfstate-guardian"
    assert restored_version["changes"]["resources"]["added"] == 1  # the logs bucket is back
