"""The reaper against the emulator: crafted stale locks in the table and as lockfiles, races, dry runs, limits."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from chalice.test import Client

from chalicelib import composition
from chalicelib.adapters.dynamo_lock_table import DynamoLockTable
from chalicelib.adapters.http_liveness import HttpLivenessCheck
from chalicelib.domain.staleness import ReaperPolicy
from tests.conftest import RunningStack
from tests.support.events import state_bytes
from tests.support.receiver import receiver

NOW = datetime.now(UTC)
KEY = "prod/app/terraform.tfstate"


def lock_info(
    stack: RunningStack, key: str = KEY, lock_id: str = "0b7a5f1e-aaaa-bbbb-cccc-000000000001", hours: float = 3
) -> str:
    created = (NOW - timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%S.%f") + "123Z"
    return json.dumps(
        {"ID": lock_id, "Operation": "OperationTypeApply", "Info": "", "Who": "ci@runner-7", "Version": "1.11.4",
         "Created": created, "Path": f"{stack.resources.state_bucket}/{key}"},
        separators=(",", ":"),
    )  # fmt: skip


def put_lock(aws, stack: RunningStack, info: str, key: str = KEY) -> None:
    aws.client("dynamodb").put_item(
        TableName=stack.resources.lock_table,
        Item={"LockID": {"S": f"{stack.resources.state_bucket}/{key}"}, "Info": {"S": info}},
    )


def lock_item(aws, stack: RunningStack, key: str = KEY) -> Any:
    item = aws.client("dynamodb").get_item(
        TableName=stack.resources.lock_table,
        Key={"LockID": {"S": f"{stack.resources.state_bucket}/{key}"}},
        ConsistentRead=True,
    )
    return item.get("Item")


@pytest.fixture
def reaper(stack: RunningStack):
    reaper = composition.container().home.reaper
    reaper.policy = ReaperPolicy(grace=timedelta(0))
    return reaper


def kinds(stack: RunningStack) -> list[str]:
    return [n["type"] for n in stack.notifications()]


def test_a_stale_lock_is_warned_about_then_released_on_a_later_run(aws, stack, reaper) -> None:
    info = lock_info(stack)
    put_lock(aws, stack, info)
    digest = {"LockID": {"S": f"{stack.resources.state_bucket}/{KEY}-md5"}, "Digest": {"S": "0" * 32}}
    aws.client("dynamodb").put_item(TableName=stack.resources.lock_table, Item=digest)

    (first,) = reaper.run(NOW)
    assert (first.judgement.verdict.value, first.action) == ("stale", "warned")
    assert lock_item(aws, stack) is not None
    warning = stack.notifications()[-1]
    assert warning["type"] == "lock.stale" and warning["severity"] == "warning"
    assert "will be released after" in warning["summary"]

    (second,) = reaper.run(NOW + timedelta(seconds=1))
    assert (second.judgement.verdict.value, second.action) == ("release", "released")
    assert lock_item(aws, stack) is None
    reaped = stack.notifications()[-1]
    assert reaped["type"] == "lock.reaped"
    assert reaped["details"]["lock"]["who"] == "ci@runner-7" and reaped["details"]["evidence"]["age_s"] >= 3 * 3600
    # The digest item is never a lock: still there, untouched.
    item = aws.client("dynamodb").get_item(TableName=stack.resources.lock_table, Key={"LockID": digest["LockID"]})
    assert item["Item"] == digest
    assert reaper.run(NOW + timedelta(seconds=2)) == []


def test_never_before_the_grace_period(aws, stack, reaper) -> None:
    reaper.policy = ReaperPolicy(grace=timedelta(minutes=15))
    put_lock(aws, stack, lock_info(stack))
    reaper.run(NOW)
    (outcome,) = reaper.run(NOW + timedelta(minutes=14))
    assert (outcome.judgement.verdict.value, outcome.action) == ("waiting", "none")
    assert lock_item(aws, stack) is not None
    (outcome,) = reaper.run(NOW + timedelta(minutes=16))
    assert outcome.action == "released"


def test_a_lock_retaken_between_verification_and_release_is_left_alone(aws, stack, reaper, monkeypatch) -> None:
    put_lock(aws, stack, lock_info(stack))
    reaper.run(NOW)
    retaken = lock_info(stack, lock_id="0b7a5f1e-aaaa-bbbb-cccc-000000000002", hours=0)
    release = DynamoLockTable.delete_lock_if_unchanged

    def terraform_gets_there_first(self, lock_id: str, info: str) -> bool:
        put_lock(aws, stack, retaken)  # Terraform released the old lock and took a new one
        return release(self, lock_id, info)

    monkeypatch.setattr(DynamoLockTable, "delete_lock_if_unchanged", terraform_gets_there_first)
    (outcome,) = reaper.run(NOW + timedelta(seconds=1))
    assert outcome.action == "changed"
    assert lock_item(aws, stack)["Info"]["S"] == retaken
    assert "lock.reaped" not in kinds(stack)


def test_changed_bytes_start_the_judgement_again(aws, stack, reaper) -> None:
    put_lock(aws, stack, lock_info(stack))
    reaper.run(NOW)
    put_lock(aws, stack, lock_info(stack, hours=4))  # same ID, other bytes
    (outcome,) = reaper.run(NOW + timedelta(seconds=1))
    assert outcome.action == "warned"


def test_a_state_write_under_the_lock_keeps_it(aws, stack, reaper) -> None:
    put_lock(aws, stack, lock_info(stack))
    aws.client("s3").put_object(
        Bucket=stack.resources.state_bucket, Key=KEY, Body=state_bytes("state_tf1.11.4_first_apply_serial1.json")
    )
    (outcome,) = reaper.run(NOW)
    assert outcome.judgement.verdict.value == "alive"
    assert "lock.stale" not in kinds(stack)


def test_dry_run_changes_nothing(aws, stack, reaper) -> None:
    put_lock(aws, stack, lock_info(stack))
    (first,) = reaper.run(NOW, dry_run=True)
    assert first.action == "would-warn"
    reaper.run(NOW)
    (second,) = reaper.run(NOW + timedelta(seconds=1), dry_run=True)
    assert second.action == "would-release"
    assert lock_item(aws, stack) is not None
    assert kinds(stack) == ["lock.stale"]


def test_at_most_the_configured_releases_per_run(aws, stack, reaper) -> None:
    reaper.policy = replace(reaper.policy, max_releases=2)
    for n in range(4):
        put_lock(
            aws,
            stack,
            lock_info(stack, key=f"k{n}/terraform.tfstate", lock_id=f"id-{n}"),
            key=f"k{n}/terraform.tfstate",
        )
    reaper.run(NOW)
    actions = sorted(outcome.action for outcome in reaper.run(NOW + timedelta(seconds=1)))
    assert actions == ["over-limit", "over-limit", "released", "released"]


def test_a_stale_lockfile_is_released_by_its_exact_version(aws, stack, reaper) -> None:
    s3 = aws.client("s3")
    bucket = stack.resources.state_bucket
    old = s3.put_object(Bucket=bucket, Key=KEY + ".tflock", Body=lock_info(stack).encode())["VersionId"]
    (first,) = reaper.run(NOW)
    assert (first.judgement.held.source, first.action) == ("lockfile", "warned")
    (second,) = reaper.run(NOW + timedelta(seconds=1))
    assert second.action == "released"
    versions = s3.list_object_versions(Bucket=bucket, Prefix=KEY + ".tflock").get("Versions", [])
    assert old not in [v["VersionId"] for v in versions]
    with pytest.raises(s3.exceptions.ClientError):
        s3.head_object(Bucket=bucket, Key=KEY + ".tflock")


def test_a_lockfile_retaken_before_its_release_stays(aws, stack, reaper, monkeypatch) -> None:
    s3 = aws.client("s3")
    bucket = stack.resources.state_bucket
    s3.put_object(Bucket=bucket, Key=KEY + ".tflock", Body=lock_info(stack).encode())
    reaper.run(NOW)
    fresh = lock_info(stack, lock_id="new-lock", hours=0).encode()
    bucket_adapter = composition.container().home.state_bucket
    delete = bucket_adapter.delete_lockfile_version

    def terraform_gets_there_first(key: str, version_id: str) -> bool:
        s3.delete_object(Bucket=bucket, Key=key)  # Terraform's unlock: a delete marker
        s3.put_object(Bucket=bucket, Key=key, Body=fresh)  # and a new lock
        return delete(key, version_id)

    monkeypatch.setattr(bucket_adapter, "delete_lockfile_version", terraform_gets_there_first)
    reaper.run(NOW + timedelta(seconds=1))
    assert s3.get_object(Bucket=bucket, Key=KEY + ".tflock")["Body"].read() == fresh


def test_unreadable_locks_are_never_released(aws, stack, reaper) -> None:
    put_lock(aws, stack, "not a lockinfo")
    put_lock(aws, stack, lock_info(stack, key="elsewhere/terraform.tfstate"))  # Path disagrees with LockID
    for at in (NOW, NOW + timedelta(days=30)):
        outcomes = reaper.run(at)
        assert {o.judgement.verdict.value for o in outcomes} == {"unreadable"}
    assert lock_item(aws, stack)["Info"]["S"] == lock_info(stack, key="elsewhere/terraform.tfstate")


@pytest.mark.parametrize(
    ("answer", "verdicts"),
    [
        (b'{"alive": true}', ["alive", "alive"]),
        (b'{"alive": null}', ["stale", "release"]),
        (b'{"alive": false}', ["stale", "release"]),
        (b"<html>", ["alive", "alive"]),  # an answer it cannot read keeps the lock
    ],
)
def test_the_reference_liveness_check(aws, stack, reaper, answer: bytes, verdicts: list[str]) -> None:
    put_lock(aws, stack, lock_info(stack))
    with receiver() as endpoint:
        endpoint.answer = answer
        reaper._liveness_checks = [HttpLivenessCheck(endpoint.url + "?who={who}&id={id}")]
        got = [reaper.run(NOW + timedelta(seconds=n))[0].judgement.verdict.value for n in range(2)]
        assert endpoint.requests[0].path == "/hook?who=ci%40runner-7&id=0b7a5f1e-aaaa-bbbb-cccc-000000000001"
    assert got == verdicts


def test_the_api_trigger_is_a_dry_run_unless_told_otherwise(aws, stack, reaper) -> None:
    put_lock(aws, stack, lock_info(stack))
    with Client(stack.app.app) as client:
        response = client.http.post("/locks/reap", headers={"Content-Type": "application/json"}, body="{}")
        assert response.status_code == 200
        assert response.json_body["dry_run"] is True
        assert [lock["action"] for lock in response.json_body["locks"]] == ["would-warn"]
        response = client.http.post(
            "/locks/reap", headers={"Content-Type": "application/json"}, body=json.dumps({"dry_run": "no"})
        )
        assert response.status_code == 400
        response = client.http.post(
            "/locks/reap", headers={"Content-Type": "application/json"}, body=json.dumps({"dry_run": False})
        )
        assert [lock["action"] for lock in response.json_body["locks"]] == ["warned"]


def test_locks_of_another_bucket_sharing_the_table_are_left_alone(aws, stack, reaper) -> None:
    info = json.loads(lock_info(stack))
    info["Path"] = "other-bucket/" + KEY
    aws.client("dynamodb").put_item(
        TableName=stack.resources.lock_table,
        Item={"LockID": {"S": "other-bucket/" + KEY}, "Info": {"S": json.dumps(info, separators=(",", ":"))}},
    )
    assert reaper.run(NOW) == [] and reaper.run(NOW + timedelta(days=1)) == []
