"""A rollback killed after each of its steps: the state is the old or the new one, Terraform's digest check
passes at once or after the guardian's next scheduled run, and no lock the guardian took outlives its TTL."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, cast

import boto3
import pytest

from chalicelib import composition
from chalicelib.domain.access import AccessPolicy
from chalicelib.domain.rollback import RollbackRequest
from chalicelib.settings import Settings
from local_stack.stack import LocalStack
from tests.support.events import state_bytes
from tests.support.faults import LambdaKilled, inject_faults, kill_after

KEY = "crash/terraform.tfstate"
OLD, CURRENT = (
    state_bytes("state_tf1.11.4_first_apply_serial1.json"),
    state_bytes("state_tf1.11.4_second_apply_serial2.json"),
)
RESTORED = OLD.replace(b'"serial": 1,', b'"serial": 3,')  # the first version, serial bumped past the current

# Each step of a rollback, in order, as the adapter call that makes it.
STEPS: dict[str, tuple[Callable[[composition.Container], object], str]] = {
    "lock item taken": (lambda c: c.lock_table, "take_lock"),
    "lockfile taken": (lambda c: c.state_bucket, "create_lockfile"),
    "digest intent recorded": (lambda c: c.guardian_table, "put_digest_intent"),
    "state written": (lambda c: c.state_bucket, "put_state"),
    "digest written": (lambda c: c.lock_table, "put_digest"),
    "lockfile released": (lambda c: c.state_bucket, "delete_lockfile_version"),
    "lock item released": (lambda c: c.lock_table, "delete_lock_if_unchanged"),
}
GUARDIAN_ROLLBACK_LOCK_TTL = {
    "GUARDIAN_DIGEST_GRACE_S": "0",
    "GUARDIAN_REAP_GRACE_S": "0",
    "GUARDIAN_REAP_TTL_BY_OPERATION": "tfstate-guardian-rollback=0",
}


@pytest.fixture
def start(stack_with: Any, monkeypatch: pytest.MonkeyPatch) -> Callable[[dict[str, str]], LocalStack]:
    """`stack_with` whose settings end with the test: the local stack writes them into the process environment."""

    def started(env: dict[str, str]) -> LocalStack:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        return cast(LocalStack, stack_with(extra_env=env))

    return started


def seed(aws: boto3.session.Session, local: LocalStack) -> tuple[str, str]:
    """Two versions and their digest, as Terraform leaves them; the bucket and the first version's id."""
    assert local.resources is not None
    bucket, table = local.resources.state_bucket, local.resources.lock_table
    s3 = aws.client("s3")
    first = s3.put_object(Bucket=bucket, Key=KEY, Body=OLD)["VersionId"]
    s3.put_object(Bucket=bucket, Key=KEY, Body=CURRENT)
    aws.client("dynamodb").put_item(
        TableName=table,
        Item={"LockID": {"S": f"{bucket}/{KEY}-md5"}, "Digest": {"S": hashlib.md5(CURRENT).hexdigest()}},
    )
    local.pump()
    return bucket, first


def crash_rollback(step: str, first: str) -> None:
    """Run a rollback whose Lambda is killed right after `step`; then a new container, as Lambda would start."""
    container = composition.container().home
    target, method = STEPS[step]
    with inject_faults(container) as injector, pytest.MonkeyPatch.context() as patch:
        kill_after(patch, injector, target(container), method)
        with pytest.raises(LambdaKilled):
            container.rollbacks.rollback(
                RollbackRequest.parse({"key": KEY, "version_id": first}),
                scope=AccessPolicy().scope_for("crash-test"),
                now=datetime.now(UTC),
            )
    composition.install(composition.Container(Settings.from_env()))


class World:
    """What Terraform sees of the state: its bytes, its digest item, its locks."""

    def __init__(self, aws: boto3.session.Session, local: LocalStack) -> None:
        assert local.resources is not None
        self._s3, self._dynamodb = aws.client("s3"), aws.client("dynamodb")
        self.bucket, self.table = local.resources.state_bucket, local.resources.lock_table

    def state(self) -> bytes:
        return bytes(self._s3.get_object(Bucket=self.bucket, Key=KEY)["Body"].read())

    def digest_passes(self) -> bool:
        """Terraform's own check: the digest item holds the MD5 of the bytes (no item: nothing to check)."""
        item = self._item(f"{self.bucket}/{KEY}-md5")
        return item is None or item["Digest"]["S"] == hashlib.md5(self.state()).hexdigest()

    def locks(self) -> list[str]:
        held = []
        if (item := self._item(f"{self.bucket}/{KEY}")) is not None:
            held.append(json.loads(item["Info"]["S"])["Operation"])
        try:
            body = self._s3.get_object(Bucket=self.bucket, Key=KEY + ".tflock")["Body"].read()
            held.append(json.loads(body)["Operation"])
        except self._s3.exceptions.NoSuchKey:
            pass
        return held

    def _item(self, lock_id: str) -> Any:
        return self._dynamodb.get_item(TableName=self.table, Key={"LockID": {"S": lock_id}}, ConsistentRead=True).get(
            "Item"
        )


@pytest.mark.parametrize("step", list(STEPS))
def test_a_rollback_killed_after_each_step_leaves_a_state_terraform_accepts(
    aws: boto3.session.Session, start: Callable[[dict[str, str]], LocalStack], step: str
) -> None:
    local = start({**GUARDIAN_ROLLBACK_LOCK_TTL, "GUARDIAN_REAP_QUIET_WINDOW_S": "0"})
    _, first = seed(aws, local)
    crash_rollback(step, first)
    world = World(aws, local)

    written = list(STEPS).index(step) >= list(STEPS).index("state written")
    assert world.state() == (RESTORED if written else CURRENT)  # the old state or the new one, whole
    # Terraform fails on the digest only between the two writes, and not for long:
    assert world.digest_passes() == (step != "state written")
    done = list(STEPS)[: list(STEPS).index(step) + 1]
    held = ("lock item taken" in done) - ("lock item released" in done) + ("lockfile taken" in done)
    assert len(world.locks()) == held - ("lockfile released" in done)
    assert set(world.locks()) <= {"tfstate-guardian-rollback"}

    local.pump()  # the events of what the rollback did
    local.run_scheduled()  # the digest check finishes the digest; the reaper warns about the lock
    assert world.digest_passes()
    local.run_scheduled()  # past the lock's TTL and grace: the reaper releases it
    assert world.locks() == []
    assert world.state() == (RESTORED if written else CURRENT)
    assert world.digest_passes()


def test_a_crashed_rollbacks_lock_is_released_after_its_ttl_whatever_it_wrote(
    aws: boto3.session.Session, start: Callable[[dict[str, str]], LocalStack]
) -> None:
    local = start(GUARDIAN_ROLLBACK_LOCK_TTL)  # the default quiet window
    _, first = seed(aws, local)
    crash_rollback("digest written", first)
    local.pump()
    local.run_scheduled()
    local.run_scheduled()
    assert World(aws, local).locks() == []


def test_without_a_ttl_for_it_the_guardians_lock_lives_as_long_as_a_lambda_at_most(
    aws: boto3.session.Session, start: Callable[[dict[str, str]], LocalStack]
) -> None:
    local = start({"GUARDIAN_REAP_GRACE_S": "0"})
    _, first = seed(aws, local)
    crash_rollback("lockfile taken", first)
    outcomes = composition.container().home.reaper.run(datetime.now(UTC))
    assert {(o.judgement.verdict.value, o.judgement.evidence["ttl_s"]) for o in outcomes} == {("fresh", 900)}
    assert World(aws, local).locks() == ["tfstate-guardian-rollback", "tfstate-guardian-rollback"]
