"""The history's queries against the emulator: paged, within scope, from the records and the stored indexes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from chalice.test import Client

from bench.generate_state import generate_state, state_bytes
from chalicelib import composition
from chalicelib.domain.access import AccessPolicy
from chalicelib.domain.history import AuditEvent, VersionKind, VersionRecord
from tests.conftest import AWS_CALLS, RunningStack

KEY = "team/app/terraform.tfstate"


def get(stack: RunningStack, path: str) -> tuple[int, dict[str, Any]]:
    with Client(stack.app.app) as client:
        response = client.http.get(path)
    return response.status_code, response.json_body


def put(aws, stack: RunningStack, key: str, state: dict[str, Any]) -> str:
    body = state_bytes(state)
    return str(aws.client("s3").put_object(Bucket=stack.resources.state_bucket, Key=key, Body=body)["VersionId"])


def every_page(stack: RunningStack, path: str, items: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    token = None
    while True:
        status, body = get(stack, path + (f"&next={token}" if token else ""))
        assert status == 200, body
        found += body[items]
        token = body["next"]
        if token is None:
            return found


def test_the_fleet_pages_through_every_state_once_within_the_callers_scope(
    aws, stack: RunningStack, monkeypatch
) -> None:
    keys = [f"team-{n}/app/terraform.tfstate" for n in range(7)]
    for number, key in enumerate(keys):
        put(aws, stack, key, generate_state(3, serial=number + 1, seed=number))
    stack.pump()
    listed = every_page(stack, "/states?limit=2", "states")
    assert [state["key"] for state in listed] == keys
    assert [state["serial"] for state in listed] == list(range(1, 8))
    assert all(state["resource_count"] == 3 and state["writer"]["principal"] for state in listed)
    _status, body = get(stack, "/states?prefix=team-3/")
    assert [state["key"] for state in body["states"]] == ["team-3/app/terraform.tfstate"]
    monkeypatch.setattr(composition.container().home, "access", AccessPolicy(deployment_prefixes=("team-1", "team-5")))
    scoped = every_page(stack, "/states?limit=3", "states")
    assert [state["key"] for state in scoped] == [keys[1], keys[5]]


def test_versions_name_their_changes_and_the_address_filter_finds_them(aws, stack: RunningStack) -> None:
    state = generate_state(6, serial=1, lineage="L", seed=1)
    first = put(aws, stack, KEY, state)
    second = put(aws, stack, KEY, {**state, "serial": 2, "resources": state["resources"][:-1]})  # one removed
    third = put(aws, stack, KEY, {**state, "serial": 3})  # it is back
    stack.pump()
    removed = state["resources"][-1]
    address = f"{removed.get('module') + '.' if removed.get('module') else ''}{removed['type']}.{removed['name']}"
    if removed["instances"][0].get("index_key") is not None:
        key = removed["instances"][0]["index_key"]
        address += f"[{key}]" if isinstance(key, int) else f'["{key}"]'
    versions = every_page(stack, f"/states/versions?key={KEY}&limit=1", "versions")
    assert [v["version_id"] for v in versions] == [third, second, first]
    assert [v["serial"] for v in versions] == [3, 2, 1] and all(v["recorded"] for v in versions)
    assert versions[1]["changes"]["resources"]["removed"] >= 1 and versions[0]["previous_version_id"] == second
    touched = every_page(stack, f"/states/versions?key={KEY}&address={address}", "versions")
    assert [v["version_id"] for v in touched] == [third, second, first]  # added back, removed, created
    assert every_page(stack, f"/states/versions?key={KEY}&address=aws_instance.never", "versions") == []


def test_a_version_with_too_many_changes_to_record_is_found_through_its_index(aws, stack: RunningStack) -> None:
    big = generate_state(3_000, serial=1, lineage="L", seed=2)
    for block in big["resources"]:
        block["name"] = f"{block['name']}_{'x' * 40}"
    first = put(aws, stack, KEY, big)
    second = put(aws, stack, KEY, {**big, "serial": 2, "resources": big["resources"][1:]})
    stack.pump()
    records = composition.container().home.history.versions(stack.resources.state_bucket, KEY, limit=10).items
    assert records[-1].changed_addresses_overflow  # the first version added too many to keep on its record
    gone = big["resources"][0]
    address = f"{gone.get('module') + '.' if gone.get('module') else ''}{gone['type']}.{gone['name']}"
    index_key = gone["instances"][0].get("index_key")
    if index_key is not None:
        address += f"[{index_key}]" if isinstance(index_key, int) else f'["{index_key}"]'
    touched = every_page(stack, f"/states/versions?key={KEY}&address={address}", "versions")
    assert [v["version_id"] for v in touched] == [second, first]


def test_versions_written_before_the_guardian_list_from_s3_marked_so(aws, stack: RunningStack) -> None:
    old = [put(aws, stack, KEY, generate_state(2, serial=serial, lineage="L", seed=serial)) for serial in (1, 2)]
    stack.stack.take_events()  # written while no guardian watched
    new = put(aws, stack, KEY, generate_state(2, serial=3, lineage="L", seed=3))
    stack.pump()
    versions = every_page(stack, f"/states/versions?key={KEY}&limit=2", "versions")
    assert [(v["version_id"], v["recorded"]) for v in versions] == [(new, True), (old[1], False), (old[0], False)]
    assert [v["serial"] for v in versions] == [3, 2, 1]
    _status, body = get(stack, "/states?prefix=team/")
    assert body["states"][0]["history_complete"] is False


def test_the_last_page_of_a_complete_history_asks_for_nothing_more(aws, stack: RunningStack) -> None:
    for serial in (1, 2):
        put(aws, stack, KEY, generate_state(2, serial=serial, lineage="L", seed=serial))
    stack.pump()  # the guardian saw the state's first version: its history is complete
    asked = len(AWS_CALLS)
    status, body = get(stack, f"/states/versions?key={KEY}")
    assert status == 200 and body["history_complete"] is True and [v["serial"] for v in body["versions"]] == [2, 1]
    # The state's latest record and one page: neither the recorded ids of the oldest second nor S3's listing.
    assert [(call.service, call.operation) for call in AWS_CALLS[asked:]] == [("dynamodb", "GetItem"),
                                                                            ("dynamodb", "Query")]  # fmt: skip


def test_a_diff_of_recorded_versions_reads_neither_state(aws, stack: RunningStack) -> None:
    state = generate_state(20, serial=1, lineage="L", seed=4)
    first = put(aws, stack, KEY, state)
    second = put(aws, stack, KEY, {**state, "serial": 2, "resources": state["resources"][2:]})
    third = put(aws, stack, KEY, {**state, "serial": 3, "resources": state["resources"][3:], "outputs": {}})
    stack.pump()
    # A version against its predecessor, from the newer one's record.
    status, adjacent = get(stack, f"/states/diff?key={KEY}&from={second}&to={third}")
    assert status == 200 and len(adjacent["resources"]["removed"]) >= 1
    assert adjacent["outputs"]["removed"] == ["db_password", "endpoint"]
    s3 = aws.client("s3")
    for version in (first, second, third):  # gone from S3: only the records and the stored indexes are left
        s3.delete_object(Bucket=stack.resources.state_bucket, Key=KEY, VersionId=version)
    assert get(stack, f"/states/diff?key={KEY}&from={second}&to={third}") == (200, adjacent)
    # Any two versions, from their stored indexes.
    status, across = get(stack, f"/states/diff?key={KEY}&from={first}&to={third}")
    assert status == 200 and len(across["resources"]["removed"]) > len(adjacent["resources"]["removed"])
    assert across["outputs"]["removed"] == ["db_password", "endpoint"]


def test_the_audit_trail_pages_by_state_and_across_days_with_filters(aws, stack: RunningStack) -> None:
    now = datetime.now(UTC)
    audit = composition.container().home.audit
    events = [
        AuditEvent(
            id=f"e{n}",
            type="state.changed" if n % 2 else "lock.force_released",
            bucket=stack.resources.state_bucket,
            key=f"team-{n % 3}/terraform.tfstate",
            workspace="default",
            severity="info",
            summary=f"event {n}",
            occurred_at=now - timedelta(days=n, minutes=n),
            who="ci@runner" if n % 2 else None,
            caller=None if n % 2 else "arn:aws:iam::1:user/alice",
        )
        for n in range(40)
    ]
    audit.record(events)
    trail = every_page(stack, "/events?limit=5", "events")
    assert [e["id"] for e in trail] == [f"e{n}" for n in range(40)]  # newest first, across 40 days
    mine = every_page(stack, "/events?actor=arn:aws:iam::1:user/alice&limit=4", "events")
    assert [e["id"] for e in mine] == [f"e{n}" for n in range(0, 40, 2)]
    typed = every_page(stack, "/events?type=state.changed&prefix=team-1/", "events")
    assert {e["key"] for e in typed} == {"team-1/terraform.tfstate"} and all(
        e["type"] == "state.changed" for e in typed
    )
    since = (now - timedelta(days=5, hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    recent = every_page(stack, f"/events?since={since}", "events")
    assert [e["id"] for e in recent] == [f"e{n}" for n in range(6)]
    by_key = every_page(stack, "/events?key=team-2/terraform.tfstate&limit=3", "events")
    assert [e["id"] for e in by_key] == [f"e{n}" for n in range(2, 40, 3)]
    status, body = get(stack, "/events?next=not-a-token")
    assert (status, body["error"]) == (400, "invalid_request")
    assert json.dumps(trail).count("s3cr3t") == 0


def test_the_fleet_filters_by_workspace_page_by_page(aws, stack: RunningStack) -> None:
    keys = ["app/terraform.tfstate", "env:/staging/app/terraform.tfstate", "env:/prod/app/terraform.tfstate"]
    keys += ["env:/staging/db/terraform.tfstate", "zz/terraform.tfstate"]
    for number, key in enumerate(keys):
        put(aws, stack, key, generate_state(2, serial=number + 1, seed=number))
    stack.pump()
    staging = every_page(stack, "/states?workspace=staging&limit=1", "states")
    assert [state["key"] for state in staging] == [keys[1], keys[3]]  # in key order, one Query per page
    assert {state["workspace"] for state in staging} == {"staging"}
    default = every_page(stack, "/states?workspace=default&limit=2", "states")
    assert [state["key"] for state in default] == [keys[0], keys[4]]
    _status, body = get(stack, "/states?workspace=staging&prefix=env:/staging/app")
    assert [state["key"] for state in body["states"]] == [keys[1]]
    assert every_page(stack, "/states?workspace=nope&limit=2", "states") == []


def test_changed_addresses_are_one_string_and_records_of_the_older_string_set_still_read(aws, stack) -> None:
    table = composition.container().home.history
    bucket = stack.resources.state_bucket
    odd = '-module.x\n~y.aws_instance.z["a"]'  # a hand-made state's module name may hold a line break
    entries = frozenset({"+aws_instance.web", "~aws_instance.db", odd})
    moments = [datetime(2026, 11, 30, 12, minute, tzinfo=UTC) for minute in (1, 2)]
    for version_id, written_at in zip(("v-old", "v-new"), moments, strict=True):
        table.record(
            VersionRecord(bucket=bucket, key=KEY, workspace="default", version_id=version_id,
                          kind=VersionKind.WRITTEN, written_at=written_at, changed_addresses=entries),
            history_complete=True, only_if_new=False,
        )  # fmt: skip
    dynamodb = aws.client("dynamodb")
    name = stack.resources.guardian_table
    items = dynamodb.query(TableName=name, KeyConditionExpression="pk = :pk",
                           ExpressionAttributeValues={":pk": {"S": f"versions#{bucket}/{KEY}"}})["Items"]  # fmt: skip
    assert all("changes" in item and "changed" not in item for item in items)
    # The older record as versions before this one wrote it: a string set.
    old = next(item for item in items if item["version_id"]["S"] == "v-old")
    del old["changes"]
    dynamodb.put_item(TableName=name, Item={**old, "changed": {"SS": sorted(entries)}})
    listed = table.versions(bucket, KEY, limit=10).items
    assert [(record.version_id, record.changed_addresses) for record in listed] == [
        ("v-new", entries),
        ("v-old", entries),
    ]
    for address, found in (
        ("aws_instance.web", 2),
        ("aws_instance.we", 0),
        ("aws_instance.db", 2),
        ("aws_instance.x", 0),
    ):
        assert len(table.versions(bucket, KEY, limit=10, address=address).items) == found, address
    assert len(table.versions(bucket, KEY, limit=10, address=odd[1:]).items) == 2
