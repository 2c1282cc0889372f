"""`POST /rollback` refusals that need no Terraform: lineage, invalid targets, bad bodies, allowed prefixes."""

from __future__ import annotations

import json
from typing import Any

from chalice.test import Client

from chalicelib import composition
from chalicelib.domain.access import AccessPolicy
from chalicelib.errors import ChannelDeliveryError
from tests.conftest import RunningStack
from tests.support.events import state_bytes

KEY = "api/terraform.tfstate"


def post(stack: RunningStack, body: str) -> tuple[int, dict[str, Any]]:
    with Client(stack.app.app) as client:
        response = client.http.post("/rollback", headers={"Content-Type": "application/json"}, body=body)
    return response.status_code, response.json_body


def put(aws, stack: RunningStack, body: bytes) -> str:
    return str(aws.client("s3").put_object(Bucket=stack.resources.state_bucket, Key=KEY, Body=body)["VersionId"])


def test_a_lineage_change_is_refused_unless_allowed(aws, stack: RunningStack) -> None:
    other = put(aws, stack, state_bytes("push_input_tf1.11.4_other_lineage.json"))
    put(aws, stack, state_bytes("state_tf1.11.4_second_apply_serial2.json"))
    status, body = post(stack, json.dumps({"key": KEY, "version_id": other}))
    assert (status, body["error"]) == (409, "lineage_change")
    status, body = post(stack, json.dumps({"key": KEY, "version_id": other, "allow_lineage_change": True}))
    assert status == 200 and body["serial"] == {"before": 2, "after": 3}
    restored = json.loads(aws.client("s3").get_object(Bucket=stack.resources.state_bucket, Key=KEY)["Body"].read())
    original = json.loads(state_bytes("push_input_tf1.11.4_other_lineage.json"))
    assert restored == {**original, "serial": 3}  # only the serial differs


def test_the_restored_bytes_are_the_targets_but_for_the_serial(aws, stack: RunningStack) -> None:
    first = put(aws, stack, state_bytes("state_tf1.11.4_first_apply_serial1.json"))
    put(aws, stack, state_bytes("state_tf1.11.4_second_apply_serial2.json"))
    status, _ = post(stack, json.dumps({"key": KEY, "version_id": first}))
    assert status == 200
    restored = aws.client("s3").get_object(Bucket=stack.resources.state_bucket, Key=KEY)["Body"].read()
    expected = state_bytes("state_tf1.11.4_first_apply_serial1.json").replace(b'"serial": 1,', b'"serial": 3,')
    assert restored == expected


def test_a_target_that_is_not_a_state_is_refused(aws, stack: RunningStack) -> None:
    broken = put(aws, stack, b'{"version": 4, "serial": ')
    put(aws, stack, state_bytes("state_tf1.11.4_second_apply_serial2.json"))
    status, body = post(stack, json.dumps({"key": KEY, "version_id": broken}))
    assert (status, body["error"]) == (422, "not_a_state")


def test_bad_bodies_are_400_not_500(stack: RunningStack) -> None:
    for raw in ("not json", "[]", "null", json.dumps({"key": 5, "serial": 1})):
        status, body = post(stack, raw)
        assert (status, body["error"]) == (400, "invalid_request"), raw


def test_keys_outside_the_allowed_prefixes_are_403(aws, stack: RunningStack, monkeypatch) -> None:
    put(aws, stack, state_bytes("state_tf1.11.4_first_apply_serial1.json"))
    monkeypatch.setattr(composition.container().home, "access", AccessPolicy(deployment_prefixes=("teams/a/",)))
    status, body = post(stack, json.dumps({"key": KEY, "serial": 1}))
    assert (status, body["error"], body["rule"]) == (403, "not_allowed", "GUARDIAN_API_KEY_PREFIXES")


def test_a_retried_rollback_with_an_idempotency_key_runs_once(aws, stack: RunningStack) -> None:
    first = put(aws, stack, state_bytes("state_tf1.11.4_first_apply_serial1.json"))
    put(aws, stack, state_bytes("state_tf1.11.4_second_apply_serial2.json"))
    request = json.dumps({"key": KEY, "version_id": first, "reason": "retry me"})
    headers = {"Content-Type": "application/json", "Idempotency-Key": "rb-1"}
    with Client(stack.app.app) as client:
        answers = [client.http.post("/rollback", headers=headers, body=request) for _ in range(3)]
        other = client.http.post("/rollback", headers=headers, body=json.dumps({"key": KEY, "serial": 1}))
    assert {a.status_code for a in answers} == {200}
    assert len({a.json_body["new_version_id"] for a in answers}) == 1  # the first answer, three times
    versions = aws.client("s3").list_object_versions(Bucket=stack.resources.state_bucket, Prefix=KEY)["Versions"]
    assert len(versions) == 3  # two writes and one rollback, not three
    assert (other.status_code, other.json_body["error"]) == (409, "idempotency_conflict")
    assert [n["type"] for n in stack.notifications()] == ["state.restored"]


def test_a_failed_request_can_be_retried_with_the_same_key(aws, stack: RunningStack) -> None:
    headers = {"Content-Type": "application/json", "Idempotency-Key": "rb-2"}
    body = json.dumps({"key": KEY, "serial": 1})
    with Client(stack.app.app) as client:
        assert client.http.post("/rollback", headers=headers, body=body).status_code == 404
        put(aws, stack, state_bytes("state_tf1.11.4_first_apply_serial1.json"))
        put(aws, stack, state_bytes("state_tf1.11.4_second_apply_serial2.json"))
        assert client.http.post("/rollback", headers=headers, body=body).status_code == 200


def test_a_rollback_whose_notification_fails_is_not_done_twice(aws, stack: RunningStack, monkeypatch) -> None:
    first = put(aws, stack, state_bytes("state_tf1.11.4_first_apply_serial1.json"))
    put(aws, stack, state_bytes("state_tf1.11.4_second_apply_serial2.json"))
    notifier = composition.container().home.notifier

    def down(notifications) -> None:
        raise ChannelDeliveryError("every channel is down")

    monkeypatch.setattr(notifier, "notify_all", down)
    headers = {"Content-Type": "application/json", "Idempotency-Key": "rb-3"}
    body = json.dumps({"key": KEY, "version_id": first})
    with Client(stack.app.app) as client:
        answers = [client.http.post("/rollback", headers=headers, body=body) for _ in range(2)]
    assert [a.status_code for a in answers] == [200, 200]
    assert [a.json_body["notified"] for a in answers] == [False, False]
    versions = aws.client("s3").list_object_versions(Bucket=stack.resources.state_bucket, Prefix=KEY)["Versions"]
    assert len(versions) == 3
