"""One guardian, three backends: two buckets sharing a lock table, one of lockfiles only whose events come through
EventBridge. Real Terraform applies on each are announced once, naming their backend; a rollback works on each; a
stale lock on one is reaped and the others are left alone."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from chalice.test import Client

from local_stack.backend_blocks import backend_block_legacy, backend_block_modern
from local_stack.stack import LocalBackend, LocalStack
from tests.e2e.conftest import configuration, notifications_of
from tests.support.terraform import Terraform, TerraformDir

SHARED_TABLE = "tfg-e2e-shared-locks"
# A short TTL for alpha alone: its settings over the shared ones.
ALPHA_TTL = {"GUARDIAN_REAP_TTL_S": "1800", "GUARDIAN_REAP_GRACE_S": "0", "GUARDIAN_REAP_QUIET_WINDOW_S": "0"}
BACKENDS = (
    LocalBackend("alpha", "tfg-e2e-alpha", SHARED_TABLE, settings=ALPHA_TTL),
    LocalBackend("beta", "tfg-e2e-beta", SHARED_TABLE),
    LocalBackend("gamma", "tfg-e2e-gamma", None, events="eventbridge"),
)


@pytest.fixture
def three(stack_with: Any) -> LocalStack:
    return stack_with(backends=BACKENDS)  # type: ignore[no-any-return]


def working_dir(terraform: Terraform, local: LocalStack, backend: LocalBackend, path: Path) -> TerraformDir:
    assert local.resources is not None
    key = f"{backend.name}/terraform.tfstate"
    tables = {"bucket": backend.bucket, "lock_table": backend.lock_table}
    if terraform.modern:
        block = backend_block_modern(local.endpoint, local.resources, key, dynamodb=bool(backend.lock_table),
                                     lockfile=backend.lock_table is None, **tables)  # fmt: skip
    else:  # 1.0.3 has no lockfiles: it writes a lockfile-only backend's state without a lock
        block = backend_block_legacy(local.endpoint, local.resources, key, dynamodb=bool(backend.lock_table), **tables)
    directory = TerraformDir(terraform, path)
    directory.write("backend.tf", block)
    directory.write("main.tf", configuration(terraform))
    directory.init()
    return directory


def rollback(local: LocalStack, backend: str | None, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    assert local.app is not None
    path = "/rollback" + (f"?backend={backend}" if backend else "")
    with Client(local.app.app) as client:
        response = client.http.post(path, headers={"Content-Type": "application/json"}, body=json.dumps(body))
    return response.status_code, response.json_body


def versions(bucket: str, key: str) -> list[str]:
    listed = boto3.session.Session().client("s3").list_object_versions(Bucket=bucket, Prefix=key)
    return [v["VersionId"] for v in listed.get("Versions", []) if v["Key"] == key]  # newest first


def test_applies_on_each_backend_are_told_once_by_name_and_each_rolls_back(
    terraform: Terraform, three: LocalStack, tmp_path: Path
) -> None:
    dirs = {backend.name: working_dir(terraform, three, backend, tmp_path / backend.name) for backend in BACKENDS}
    for value in ("one", "two"):
        for tf in dirs.values():
            tf.apply("-var", f"v={value}")
        three.pump()
    three.pump()  # a second look finds nothing new

    changed = [n for n in notifications_of(three) if n["type"] == "state.changed"]
    for backend in BACKENDS:  # each apply once, by its backend's name (1.0.3 numbers its first state 0)
        serials = [n["details"]["serial"]["after"] for n in changed if (n["backend"], n["bucket"]) == (backend.name,
                   backend.bucket)]  # fmt: skip
        assert len(serials) == 2 and serials[1] == serials[0] + 1, (backend.name, serials)
    assert len(changed) == 2 * len(BACKENDS)
    locked = {n["backend"]: n["details"]["lock"] for n in changed[len(BACKENDS) :]}
    assert locked["alpha"]["source"] == locked["beta"]["source"] == "dynamodb"  # one table, two buckets
    if terraform.modern:
        assert locked["gamma"]["source"] == "lockfile"
        assert changed[-1]["details"]["principal"] == "123456789012"  # EventBridge names the account
    else:
        assert locked["gamma"] is None

    # With several backends a state's route must say which: the request is refused, nothing is written.
    first_alpha = versions("tfg-e2e-alpha", "alpha/terraform.tfstate")[-1]
    status, refused = rollback(three, None, {"key": "alpha/terraform.tfstate", "version_id": first_alpha})
    assert status == 400 and "backend=" in refused["message"]

    for backend in BACKENDS:
        key = f"{backend.name}/terraform.tfstate"
        first = versions(backend.bucket, key)[-1]
        status, answer = rollback(three, backend.name, {"key": key, "version_id": first, "reason": "e2e"})
        assert status == 200, answer
        assert answer["backend"] == backend.name
        # Terraform takes the restored state at once: its digest (where it keeps one) matches.
        outputs = json.loads(dirs[backend.name].run("output", "-json").stdout)
        assert outputs["v"]["value"] == "one"
    three.pump()
    restored = [n for n in notifications_of(three) if n["type"] == "state.restored"]
    assert sorted((n["backend"], n["details"]["caller"] is not None) for n in restored) == [
        ("alpha", True), ("beta", True), ("gamma", True)
    ]  # fmt: skip


def lock_info(bucket: str, key: str, lock_id: str, *, hours: float) -> str:
    created = (datetime.now(UTC) - timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%S.%f") + "123Z"
    return json.dumps(
        {"ID": lock_id, "Operation": "OperationTypeApply", "Info": "", "Who": "ci@runner-7", "Version": "1.11.4",
         "Created": created, "Path": f"{bucket}/{key}"},
        separators=(",", ":"),
    )  # fmt: skip


def test_a_stale_lock_on_one_backend_is_reaped_and_the_others_are_untouched(three: LocalStack) -> None:
    session = boto3.session.Session()
    dynamodb, s3 = session.client("dynamodb"), session.client("s3")
    key = "app/terraform.tfstate"
    # Each lock an hour old: past alpha's TTL of half an hour, well within the two hours beta and gamma keep.
    for backend, lock_id in (("alpha", "a1"), ("beta", "b1")):
        bucket = f"tfg-e2e-{backend}"
        info = lock_info(bucket, key, f"{lock_id}-0000-0000-0000-000000000000", hours=1)
        dynamodb.put_item(TableName=SHARED_TABLE, Item={"LockID": {"S": f"{bucket}/{key}"}, "Info": {"S": info}})
    gamma_info = lock_info("tfg-e2e-gamma", key, "c1-0000-0000-0000-000000000000", hours=1)
    s3.put_object(Bucket="tfg-e2e-gamma", Key=key + ".tflock", Body=gamma_info.encode(), IfNoneMatch="*")
    three.pump()

    for _ in range(2):  # the first run warns, a later one releases (alpha's grace is none)
        three.run_scheduled()
        three.pump()

    def held(bucket: str) -> bool:
        item = dynamodb.get_item(TableName=SHARED_TABLE, Key={"LockID": {"S": f"{bucket}/{key}"}}, ConsistentRead=True)
        return "Item" in item

    assert not held("tfg-e2e-alpha")
    assert held("tfg-e2e-beta")
    assert s3.get_object(Bucket="tfg-e2e-gamma", Key=key + ".tflock")["Body"].read() == gamma_info.encode()
    reaper_said = [(n["type"], n["backend"]) for n in notifications_of(three) if n["type"].startswith("lock.")
                   and n["type"] not in ("lock.acquired", "lock.released")]  # fmt: skip
    assert reaper_said == [("lock.stale", "alpha"), ("lock.reaped", "alpha")]
