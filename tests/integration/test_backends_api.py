"""The API over several backends, over HTTP: fleet answers page across backends and name each item's backend, a
state's routes need `backend=`, and each backend's own caller rules and prefixes bound what a caller sees there."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from local_stack.emulator import free_port
from local_stack.stack import LocalBackend, LocalStack
from tests.support.cli import tfguardian
from tests.support.events import state_bytes

ACCOUNT = "123456789012"
READER = f"arn:aws:sts::{ACCOUNT}:assumed-role/readers/alice"
OPERATOR = f"arn:aws:sts::{ACCOUNT}:assumed-role/operators/bob"
# In beta, readers may only read `team-b/`; in alpha the deployment's rules (none: everyone may do everything).
BETA_RULES = [
    {"principal": f"arn:aws:iam::{ACCOUNT}:role/readers", "prefixes": ["team-b"], "actions": ["read"]},
    {"principal": f"arn:aws:iam::{ACCOUNT}:role/operators", "actions": ["read", "unlock", "reap", "rollback"]},
]
BACKENDS = (
    LocalBackend("alpha", "tfg-api-alpha", "tfg-api-locks"),
    LocalBackend("beta", "tfg-api-beta", "tfg-api-locks", settings={"GUARDIAN_API_CALLERS": json.dumps(BETA_RULES)}),
    LocalBackend("gamma", "tfg-api-gamma", None, events="eventbridge"),
)
KEYS = {
    "alpha": ["a/1.tfstate", "a/2.tfstate"],
    "beta": ["team-b/1.tfstate", "other/1.tfstate"],
    "gamma": ["g.tfstate"],
}


@pytest.fixture
def api(stack_with: Any, aws: Any) -> LocalStack:
    local: LocalStack = stack_with(api_port=free_port(), backends=BACKENDS)
    s3 = aws.client("s3")
    for backend in BACKENDS:
        for key in KEYS[backend.name]:
            s3.put_object(Bucket=backend.bucket, Key=key, Body=state_bytes("state_tf1.11.4_first_apply_serial1.json"))
    local.pump()
    return local


def call(api: LocalStack, method: str, path: str, *, act_as: str | None = OPERATOR) -> tuple[int, dict[str, Any]]:
    assert api.api_url is not None
    headers = {"X-Guardian-Act-As": act_as} if act_as else {}
    request = urllib.request.Request(api.api_url + path, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def every_state(api: LocalStack, query: str, *, act_as: str | None = OPERATOR) -> list[tuple[str, str]]:
    """Every page of GET /states, followed to its end."""
    seen: list[tuple[str, str]] = []
    token = ""
    for _ in range(20):
        status, page = call(api, "GET", f"/states?limit=2{query}" + (f"&next={token}" if token else ""), act_as=act_as)
        assert status == 200, page
        assert len(page["states"]) <= 2
        seen += [(state["backend"], state["key"]) for state in page["states"]]
        if not page["next"]:
            return seen
        token = page["next"]
    raise AssertionError("GET /states never ended")


def test_the_fleet_pages_across_backends_in_order_naming_each(api: LocalStack) -> None:
    expected = [(name, key) for name in ("alpha", "beta", "gamma") for key in sorted(KEYS[name])]
    assert every_state(api, "") == expected
    assert every_state(api, "&backend=beta") == [("beta", key) for key in sorted(KEYS["beta"])]
    status, refused = call(api, "GET", "/states?backend=delta")
    assert status == 400 and "no backend 'delta'" in refused["message"]
    # A caller no rule of beta names sees the backends without rules, and nothing of beta.
    assert {name for name, _ in every_state(api, "", act_as=None)} == {"alpha", "gamma"}
    status, refused = call(api, "GET", "/states?backend=beta", act_as=None)
    assert status == 403


def test_each_backend_bounds_a_caller_by_its_own_rules(api: LocalStack) -> None:
    # The reader sees every state of alpha and gamma (no rules there) and only team-b/ in beta.
    assert [item for item in every_state(api, "", act_as=READER) if item[0] == "beta"] == [("beta", "team-b/1.tfstate")]
    status, refused = call(api, "GET", "/states/versions?backend=beta&key=other/1.tfstate", act_as=READER)
    assert status == 403 and refused["rule"]
    status, answer = call(api, "GET", "/states/versions?backend=alpha&key=a/1.tfstate", act_as=READER)
    assert status == 200 and answer["backend"] == "alpha"


def test_a_state_route_needs_its_backend_when_there_are_several(api: LocalStack) -> None:
    status, refused = call(api, "GET", "/states/versions?key=a/1.tfstate")
    assert status == 400 and "backend=" in refused["message"] and "alpha, beta, gamma" in refused["message"]
    status, answer = call(api, "GET", "/states/versions?key=a/1.tfstate&backend=alpha")
    assert status == 200 and [v["serial"] for v in answer["versions"]] == [1]
    # The same key in another backend is another state: beta has no a/1.tfstate.
    status, _ = call(api, "GET", "/states/versions?key=a/1.tfstate&backend=beta")
    assert status == 404


def test_locks_and_the_audit_trail_name_their_backend(api: LocalStack, aws: Any) -> None:
    created = (datetime.now(UTC) - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S.%f000Z")
    for backend, key in (("alpha", "a/1.tfstate"), ("beta", "team-b/1.tfstate")):
        bucket = f"tfg-api-{backend}"
        info = json.dumps({"ID": f"{backend}-lock", "Operation": "OperationTypeApply", "Info": "", "Who": "ci@r",
                           "Version": "1.11.4", "Created": created, "Path": f"{bucket}/{key}"})  # fmt: skip
        aws.client("dynamodb").put_item(
            TableName="tfg-api-locks", Item={"LockID": {"S": f"{bucket}/{key}"}, "Info": {"S": info}}
        )
    status, answer = call(api, "GET", "/locks")
    assert status == 200
    assert sorted((lock["backend"], lock["key"]) for lock in answer["locks"]) == [
        ("alpha", "a/1.tfstate"), ("beta", "team-b/1.tfstate")
    ]  # fmt: skip
    status, answer = call(api, "GET", "/locks?backend=beta", act_as=READER)
    assert status == 200 and [lock["key"] for lock in answer["locks"]] == ["team-b/1.tfstate"]

    status, events = call(api, "GET", "/events?type=state.changed")
    assert status == 200
    assert sorted((e["backend"], e["key"]) for e in events["events"]) == sorted(
        (name, key) for name, keys in KEYS.items() for key in keys
    )
    status, events = call(api, "GET", "/events?type=state.changed", act_as=READER)
    assert sorted(e["key"] for e in events["events"] if e["backend"] == "beta") == ["team-b/1.tfstate"]
    status, one = call(api, "GET", "/events?key=g.tfstate&backend=gamma")
    assert status == 200 and [e["backend"] for e in one["events"]] == ["gamma"] and one["backend"] == "gamma"


def test_tfguardian_names_the_backend(api: LocalStack) -> None:
    listed = tfguardian(api, "states", "--act-as", OPERATOR)
    assert listed.returncode == 0, listed.stderr
    header, *rows = listed.stdout.splitlines()
    assert header.split()[:2] == ["BACKEND", "KEY"]
    assert sorted(row.split()[0] for row in rows) == ["alpha", "alpha", "beta", "beta", "gamma"]
    refused = tfguardian(api, "history", "a/1.tfstate")
    assert refused.returncode == 3 and "backend=" in refused.stderr
    found = tfguardian(api, "history", "a/1.tfstate", "--backend", "alpha", "--json")
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)["backend"] == "alpha"
