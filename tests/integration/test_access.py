"""Caller rules and key scopes on every route, tried over HTTP as a user would: the local stack's API acting as a
given principal (`X-Guardian-Act-As`), with the deployment's prefixes as the outer bound."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chalicelib import composition
from chalicelib.domain.locks import LockSource
from chalicelib.domain.staleness import HeldLock, StaleRecord
from local_stack.emulator import free_port
from local_stack.stack import LocalStack
from tests.support.events import state_bytes

ACCOUNT = "123456789012"
READER = f"arn:aws:sts::{ACCOUNT}:assumed-role/team-a-readers/alice"
DEPLOYER = f"arn:aws:sts::{ACCOUNT}:assumed-role/team-a-deployer/ci-4711"
OTHER_DEPLOYER = f"arn:aws:sts::{ACCOUNT}:assumed-role/team-a-deployer/ci-4712"
PLATFORM = f"arn:aws:iam::{ACCOUNT}:user/platform-oncall"
STRANGER = "arn:aws:sts::999999999999:assumed-role/intruder/x"
RULES = [
    {"principal": f"arn:aws:iam::{ACCOUNT}:role/team-a-readers", "prefixes": ["team-a"], "actions": ["read"]},
    {
        "principal": f"arn:aws:iam::{ACCOUNT}:role/team-a-*",
        "prefixes": ["team-a"],
        "actions": ["read", "rollback", "unlock", "repair", "reap"],
    },
    {"principal": f"arn:aws:iam::{ACCOUNT}:user/platform-*", "actions": ["read", "reap"]},
]
TEAM_A = "team-a/app/terraform.tfstate"
TEAM_A_STAGING = "env:/staging/team-a/app/terraform.tfstate"
TEAM_AB = "team-ab/app/terraform.tfstate"
OUTSIDE = "other/app/terraform.tfstate"  # outside the deployment's prefixes
KEYS = (TEAM_A, TEAM_A_STAGING, TEAM_AB, OUTSIDE)


@pytest.fixture
def api(stack_with, monkeypatch: pytest.MonkeyPatch) -> LocalStack:
    env = {
        "GUARDIAN_API_CALLERS": json.dumps(RULES),
        "GUARDIAN_API_KEY_PREFIXES": "team-a,team-ab",
        "GUARDIAN_REAP_DRY_RUN": "true",
        "GUARDIAN_REAP_TTL_S": "0",
        "GUARDIAN_REAP_GRACE_S": "0",
        "GUARDIAN_REAP_QUIET_WINDOW_S": "0",  # the states below are written after the locks' Created
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return stack_with(api_port=free_port(), extra_env=env)  # type: ignore[no-any-return]


def call(
    api: LocalStack,
    method: str,
    path: str,
    *,
    act_as: str | None,
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any]]:
    assert api.api_url is not None
    request = urllib.request.Request(
        api.api_url + path,
        data=json.dumps(body).encode() if body is not None else None,
        method=method,
        headers={
            "Content-Type": "application/json",
            **({"X-Guardian-Act-As": act_as} if act_as else {}),
            **(headers or {}),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def put_states(aws, api: LocalStack) -> dict[str, list[str]]:
    assert api.resources is not None
    s3 = aws.client("s3")
    versions: dict[str, list[str]] = {}
    for key in KEYS:
        for name in ("state_tf1.11.4_first_apply_serial1.json", "state_tf1.11.4_second_apply_serial2.json"):
            put = s3.put_object(Bucket=api.resources.state_bucket, Key=key, Body=state_bytes(name))
            versions.setdefault(key, []).append(put["VersionId"])
    api.pump()  # the guardian records each write, as the S3 events reach it
    return versions


def lock(aws, api: LocalStack, key: str, lock_id: str, *, age: timedelta = timedelta(hours=3)) -> str:
    assert api.resources is not None
    info = json.dumps(
        {"ID": lock_id, "Operation": "OperationTypeApply", "Info": "", "Who": "ci@runner-7", "Version": "1.11.4",
         "Created": (datetime.now(UTC) - age).strftime("%Y-%m-%dT%H:%M:%S.%f000Z"),
         "Path": f"{api.resources.state_bucket}/{key}"},
        separators=(",", ":"),
    )  # fmt: skip
    aws.client("dynamodb").put_item(
        TableName=api.resources.lock_table,
        Item={"LockID": {"S": f"{api.resources.state_bucket}/{key}"}, "Info": {"S": info}},
    )
    return info


def held(aws, api: LocalStack, key: str) -> bool:
    assert api.resources is not None
    item = aws.client("dynamodb").get_item(
        TableName=api.resources.lock_table, Key={"LockID": {"S": f"{api.resources.state_bucket}/{key}"}}
    )
    return "Item" in item


def version_count(aws, api: LocalStack, key: str) -> int:
    assert api.resources is not None
    listed = aws.client("s3").list_object_versions(Bucket=api.resources.state_bucket, Prefix=key)
    return len([v for v in listed.get("Versions", []) if v["Key"] == key])


def writes(versions: dict[str, list[str]]) -> list[tuple[str, str, Any]]:
    first = versions[TEAM_A][0]
    return [
        ("POST", "/rollback", {"key": TEAM_A, "version_id": first}),
        ("POST", "/rollback", {"key": TEAM_A, "version_id": first, "dry_run": True}),
        ("POST", f"/states/digest?key={TEAM_A}", None),
        ("DELETE", f"/locks?key={TEAM_A}&lock_id=L-A", None),
        ("POST", "/locks/reap", {"dry_run": False}),
        ("POST", "/locks/reap", {"dry_run": True}),
    ]


def test_a_read_only_caller_reads_its_scope_and_gets_403_on_every_write(aws, api: LocalStack) -> None:
    versions = put_states(aws, api)
    lock(aws, api, TEAM_A, "L-A")

    status, body = call(api, "GET", "/states", act_as=READER)
    assert status == 200 and sorted(s["key"] for s in body["states"]) == sorted([TEAM_A, TEAM_A_STAGING])
    status, body = call(api, "GET", f"/states/versions?key={TEAM_A_STAGING}", act_as=READER)
    assert status == 200 and len(body["versions"]) == 2
    first, second = versions[TEAM_A]
    assert call(api, "GET", f"/states/diff?key={TEAM_A}&from={first}&to={second}", act_as=READER)[0] == 200
    status, body = call(api, "GET", "/locks", act_as=READER)
    assert status == 200 and [item["key"] for item in body["locks"]] == [TEAM_A]

    for method, path, request in writes(versions):
        status, body = call(api, method, path, act_as=READER, body=request, headers={"Idempotency-Key": "k-1"})
        assert (status, body["error"]) == (403, "not_allowed"), (method, path)
        assert body["rule"] == f"GUARDIAN_API_CALLERS[1] (arn:aws:iam::{ACCOUNT}:role/team-a-readers)", path
        assert "allows read on team-a/" in body["message"], path
    assert version_count(aws, api, TEAM_A) == 2 and held(aws, api, TEAM_A)  # nothing changed


def test_team_a_never_reaches_team_ab_on_any_route(aws, api: LocalStack) -> None:
    versions = put_states(aws, api)
    lock(aws, api, TEAM_AB, "L-AB")
    status, body = call(api, "GET", "/states", act_as=DEPLOYER)
    assert TEAM_AB not in {s["key"] for s in body["states"]}
    first, second = versions[TEAM_AB]
    for method, path, request in [
        ("GET", f"/states/versions?key={TEAM_AB}", None),
        ("GET", f"/states/diff?key={TEAM_AB}&from={first}&to={second}", None),
        ("POST", "/rollback", {"key": TEAM_AB, "version_id": first}),
        ("POST", f"/states/digest?key={TEAM_AB}", None),
        ("DELETE", f"/locks?key={TEAM_AB}&lock_id=L-AB", None),
    ]:
        status, body = call(api, method, path, act_as=DEPLOYER, body=request)
        assert (status, body["error"]) == (403, "not_allowed"), path
        assert body["rule"].startswith("GUARDIAN_API_CALLERS[2]"), path
    status, body = call(api, "GET", "/locks", act_as=DEPLOYER)
    assert body["locks"] == []
    assert version_count(aws, api, TEAM_AB) == 2 and held(aws, api, TEAM_AB)


def test_the_deployments_prefixes_bound_every_caller(aws, api: LocalStack) -> None:
    versions = put_states(aws, api)
    status, body = call(api, "GET", "/states", act_as=PLATFORM)
    assert OUTSIDE not in {s["key"] for s in body["states"]}
    status, body = call(api, "GET", f"/states/versions?key={OUTSIDE}", act_as=PLATFORM)
    assert (status, body["rule"]) == (403, "GUARDIAN_API_KEY_PREFIXES")
    status, body = call(
        api, "POST", "/rollback", act_as=PLATFORM, body={"key": TEAM_A, "version_id": versions[TEAM_A][0]}
    )
    assert status == 403 and "needs rollback" in body["message"]


def test_a_caller_no_rule_matches_gets_nothing(aws, api: LocalStack) -> None:
    put_states(aws, api)
    for act_as in (STRANGER, None):  # no identity at all: the rules still apply
        status, body = call(api, "GET", "/states", act_as=act_as)
        assert (status, body["rule"]) == (403, "GUARDIAN_API_CALLERS"), act_as
        assert "no rule of GUARDIAN_API_CALLERS matches" in body["message"]


def test_reaping_under_a_scope_never_touches_or_mentions_a_lock_outside_it_and_the_dry_run_is_a_ceiling(
    aws, api: LocalStack
) -> None:
    put_states(aws, api)
    inside = lock(aws, api, TEAM_A, "L-A")
    lock(aws, api, TEAM_AB, "L-AB")
    lock(aws, api, OUTSIDE, "L-OUT")
    # Both in-scope and out-of-scope locks were warned about long ago: without the ceiling they would go now.
    table = composition.container().guardian_table
    assert api.resources is not None
    for key, lock_id in ((TEAM_A, "L-A"), (TEAM_AB, "L-AB")):
        path = f"{api.resources.state_bucket}/{key}"
        raw = composition.container().home.lock_table.current_lock(path)
        assert raw is not None
        record = StaleRecord(lock_id, HeldLock(path, LockSource.DYNAMODB, raw, None).fingerprint,
                             datetime.now(UTC) - timedelta(hours=1), warned=True)  # fmt: skip
        table.put_stale_record(HeldLock(path, LockSource.DYNAMODB, raw, None), record)

    status, body = call(api, "POST", "/locks/reap", act_as=DEPLOYER, body={"dry_run": False})
    assert status == 200
    assert body["dry_run"] is True and body["dry_run_by"] == "GUARDIAN_REAP_DRY_RUN"
    assert [(item["key"], item["verdict"], item["action"]) for item in body["locks"]] == [
        (TEAM_A, "release", "would-release")
    ]
    assert "L-AB" not in json.dumps(body) and TEAM_AB not in json.dumps(body)
    assert held(aws, api, TEAM_A) and held(aws, api, TEAM_AB) and held(aws, api, OUTSIDE)
    assert composition.container().home.lock_table.current_lock(f"{api.resources.state_bucket}/{TEAM_A}") == inside

    # The platform on-call may reap every team's locks, still under the ceiling, never beyond the deployment.
    status, body = call(api, "POST", "/locks/reap", act_as=PLATFORM, body={"dry_run": False})
    assert status == 200 and sorted(item["key"] for item in body["locks"]) == [TEAM_A, TEAM_AB]
    assert held(aws, api, TEAM_A) and held(aws, api, TEAM_AB)


def test_an_idempotency_key_never_answers_another_callers_request(aws, api: LocalStack) -> None:
    versions = put_states(aws, api)
    headers = {"Idempotency-Key": "shared-key"}
    request = {"key": TEAM_A, "version_id": versions[TEAM_A][0], "dry_run": True}
    status, first = call(api, "POST", "/rollback", act_as=DEPLOYER, body=request, headers=headers)
    assert status == 200 and first["from_version_id"] == versions[TEAM_A][0]
    status, body = call(api, "POST", "/rollback", act_as=READER, body=request, headers=headers)
    assert (status, body["error"]) == (403, "not_allowed")  # refused before any answer is replayed
    # Another caller's request under the same key is its own, not a conflict with (or a replay of) the first.
    other = {**request, "version_id": versions[TEAM_A][1]}
    status, answer = call(api, "POST", "/rollback", act_as=OTHER_DEPLOYER, body=other, headers=headers)
    assert status == 200 and answer["from_version_id"] == versions[TEAM_A][1]
    status, replayed = call(api, "POST", "/rollback", act_as=DEPLOYER, body=request, headers=headers)
    assert (status, replayed) == (200, first)
