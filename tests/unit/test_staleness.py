import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.domain.locks import LockInfo
from chalicelib.domain.staleness import HeldLock, ReaperPolicy, StaleRecord, Verdict, judge

CREATED = datetime(2026, 11, 26, 8, 0, 0, tzinfo=UTC)
PATH = "tfstate/prod/app/terraform.tfstate"


def held(operation: str = "OperationTypeApply", path: str = PATH, raw: str | None = None) -> HeldLock:
    info = json.dumps(
        {"ID": "id-1", "Operation": operation, "Info": "", "Who": "ci@runner", "Version": "1.11.4",
         "Created": "2026-11-26T08:00:00.123456789Z", "Path": path},
        separators=(",", ":"),
    )  # fmt: skip
    raw = raw if raw is not None else info
    try:
        lock = LockInfo.parse(raw)
    except Exception:
        lock = None
    return HeldLock(state_path=PATH, source="dynamodb", raw=raw, lock=lock)


def record(lock: HeldLock, judged_at: datetime, warned: bool = True) -> StaleRecord:
    return StaleRecord(lock_id="id-1", fingerprint=lock.fingerprint, first_judged_at=judged_at, warned=warned)


POLICY = ReaperPolicy(ttl=timedelta(hours=2), grace=timedelta(minutes=15), quiet_window=timedelta(hours=1))


def verdict(lock: HeldLock, now: datetime, **kwargs) -> Verdict:
    kwargs.setdefault("policy", POLICY)
    kwargs.setdefault("last_state_write", None)
    kwargs.setdefault("record", None)
    return judge(lock, now=now, **kwargs).verdict


def test_the_whole_path_to_a_release() -> None:
    lock = held()
    assert verdict(lock, CREATED + timedelta(hours=1)) is Verdict.FRESH
    first = CREATED + timedelta(hours=3)
    assert verdict(lock, first) is Verdict.STALE
    assert verdict(lock, first + timedelta(minutes=5), record=record(lock, first)) is Verdict.WAITING
    assert verdict(lock, first + timedelta(minutes=15), record=record(lock, first)) is Verdict.RELEASE


@pytest.mark.parametrize(
    "changed",
    [
        lambda lock, at: StaleRecord("other-id", lock.fingerprint, at, True),
        lambda lock, at: StaleRecord("id-1", "other-bytes", at, True),
        lambda lock, at: StaleRecord("id-1", lock.fingerprint, at, False),
    ],
    ids=["another lock id", "other bytes", "never warned"],
)
def test_anything_but_the_same_warned_lock_starts_again(changed) -> None:
    lock = held()
    first = CREATED + timedelta(hours=3)
    assert verdict(lock, first + timedelta(days=1), record=changed(lock, first)) is Verdict.STALE


def test_a_state_write_under_the_lock_is_proof_of_life() -> None:
    lock = held()
    now = CREATED + timedelta(hours=5)
    first = now - timedelta(hours=1)
    assert verdict(lock, now, last_state_write=now - timedelta(minutes=10), record=record(lock, first)) is Verdict.ALIVE
    # A write before the lock was taken says nothing of its holder; an old one falls out of the quiet window.
    assert verdict(lock, now, last_state_write=CREATED - timedelta(hours=1), record=record(lock, first)) is (
        Verdict.RELEASE
    )
    assert verdict(lock, now, last_state_write=now - timedelta(hours=2), record=record(lock, first)) is Verdict.RELEASE


def test_the_guardians_own_lock_lives_as_long_as_a_lambda_and_its_write_is_no_proof_of_life() -> None:
    lock = held(operation="tfstate-guardian-rollback")
    assert verdict(lock, CREATED + timedelta(minutes=14)) is Verdict.FRESH
    first = CREATED + timedelta(minutes=16)
    wrote = CREATED + timedelta(seconds=20)  # the rollback's own write, before it was stopped
    assert verdict(lock, first, last_state_write=wrote) is Verdict.STALE
    later = first + timedelta(minutes=15)
    assert verdict(lock, later, last_state_write=wrote, record=record(lock, first)) is Verdict.RELEASE
    # An explicit TTL for the operation still wins.
    policy = replace(POLICY, ttl_by_operation={"tfstate-guardian-rollback": timedelta(hours=1)})
    assert verdict(lock, first, policy=policy) is Verdict.FRESH


def test_a_liveness_check_keeps_the_lock() -> None:
    lock = held()
    now = CREATED + timedelta(hours=5)
    assert verdict(lock, now, record=record(lock, now - timedelta(hours=1)), alive_by_check=True) is Verdict.ALIVE


def test_ttl_per_operation_and_per_key_and_protected_keys() -> None:
    plan = held("OperationTypePlan")
    policy = replace(POLICY, ttl_by_operation={"OperationTypePlan": timedelta(minutes=30)})
    assert verdict(plan, CREATED + timedelta(hours=1), policy=policy) is Verdict.STALE
    assert verdict(held(), CREATED + timedelta(hours=1), policy=policy) is Verdict.FRESH
    policy = replace(POLICY, ttl_by_key=(("prod/*", timedelta(hours=8)),))
    assert verdict(held(), CREATED + timedelta(hours=3), policy=policy) is Verdict.FRESH
    policy = replace(POLICY, never_release=("prod/app/*",))
    assert verdict(held(), CREATED + timedelta(days=30), policy=policy) is Verdict.PROTECTED


@pytest.mark.parametrize(
    "lock",
    [held(raw="not json"), held(raw="{}"), held(path="tfstate/other/terraform.tfstate"), held("OperationTypeSurprise")],
    ids=["not json", "empty object", "path elsewhere", "unknown operation"],
)
def test_what_cannot_be_read_is_never_released(lock: HeldLock) -> None:
    assert verdict(lock, CREATED + timedelta(days=30)) is Verdict.UNREADABLE
