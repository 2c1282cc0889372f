"""Backfill: 300 versions written while no guardian watched are recorded once each, with serials, lineages and
diffs; a second run changes nothing; a run stopped half-way is finished by the next."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from bench.generate_state import generate_state, state_bytes
from chalicelib import composition
from chalicelib.domain.history import VersionKind
from local_stack.lambda_runtime import LocalLambdaContext
from local_stack.provision import provision
from tests.conftest import RunningStack

KEYS = [f"team-{team}/app/terraform.tfstate" for team in ("a", "b", "c")]
PER_KEY = 100


def write_history(aws, stack: RunningStack, per_key: int = PER_KEY) -> dict[str, list[str]]:
    """`per_key` versions of each key: serial going up, one resource more each time; one unreadable, one marker."""
    s3 = aws.client("s3")
    written: dict[str, list[str]] = {}
    for number, key in enumerate(KEYS):
        state = generate_state(10, serial=1, lineage=f"lineage-{number}", seed=number)
        for serial in range(1, per_key + 1):
            body = state_bytes({**state, "serial": serial, "resources": state["resources"][: 1 + serial // 10]})
            if key == KEYS[1] and serial == per_key // 2:
                body = b"<html>502 Bad Gateway</html>"  # a broken write among them
            put = s3.put_object(Bucket=stack.resources.state_bucket, Key=key, Body=body)
            written.setdefault(key, []).append(put["VersionId"])
    marker = s3.delete_object(Bucket=stack.resources.state_bucket, Key=KEYS[2])
    written[KEYS[2]].append(marker["VersionId"])
    s3.put_object(Bucket=stack.resources.state_bucket, Key="team-a/notes.txt", Body=b"not a state")
    return written


def records(aws, stack: RunningStack) -> list[dict[str, Any]]:
    """Every history item of the guardian's table (records, fleet entries), as stored."""
    items = aws.client("dynamodb").scan(TableName=stack.resources.guardian_table)["Items"]
    return sorted(
        (item for item in items if item["pk"]["S"].startswith(("versions#", "fleet#"))),
        key=lambda item: (item["pk"]["S"], item["sk"]["S"]),
    )


def stopping_after(calls: int) -> Callable[[], float]:
    left = [calls]

    def time_left() -> float:
        left[0] -= 1
        return 60.0 if left[0] > 0 else 0.0

    return time_left


@pytest.fixture
def backfill(stack: RunningStack) -> Any:
    return composition.container().home.backfill


def test_300_versions_recorded_once_with_serials_lineages_and_diffs(aws, stack: RunningStack, backfill) -> None:
    written = write_history(aws, stack)
    stack.stack.take_events()  # the guardian was not watching when these were written

    first = backfill.run(restart=True, time_left=stopping_after(120))  # stopped part-way through
    assert not first.done and 0 < first.recorded < 3 * PER_KEY
    second = backfill.run()  # the next run goes on from the checkpoint
    assert second.done
    assert first.recorded + second.recorded == 3 * PER_KEY + 1  # each version and the delete marker, once

    history = composition.container().home.history
    for number, key in enumerate(KEYS):
        listed = []
        token = None
        while True:
            page = history.versions(stack.resources.state_bucket, key, limit=40, next_token=token)
            listed += page.items
            if page.next is None:
                break
            token = page.next
        # Each version once. Within one second, versions order by serial; one without a serial (the unreadable
        # write, the delete marker) shows as the newest of its second.
        assert sorted(r.version_id for r in listed) == sorted(written[key]), key
        readable = [r for r in listed if r.kind is VersionKind.WRITTEN]
        assert [r.version_id for r in readable] == [
            v for v in reversed(written[key]) if v in {r.version_id for r in readable}
        ]
        assert all(r.backfilled and r.index_stored for r in readable), key
        assert {r.lineage for r in readable} == {f"lineage-{number}"}
        oldest = readable[-1]
        assert oldest.serial == 1 and oldest.changes is None and oldest.previous_version_id is None
        serial_20 = next(r for r in readable if r.serial == 20)
        assert serial_20.changes is not None and serial_20.changes.resources_added > 0  # one more resource
        assert serial_20.previous_version_id == written[key][18]
        latest = history.latest(stack.resources.state_bucket, key)
        assert latest is not None and latest.history_complete
    unreadable = [r for r in history.versions(stack.resources.state_bucket, KEYS[1], limit=100).items]
    assert [r.kind for r in unreadable].count(VersionKind.UNREADABLE) == 1
    after_marker = history.latest(stack.resources.state_bucket, KEYS[2])
    assert after_marker is not None and after_marker.kind is VersionKind.DELETE_MARKER

    before = records(aws, stack)
    again = backfill.run(restart=True)  # a second run over everything
    assert again.done and again.recorded == 0
    assert json.dumps(records(aws, stack), sort_keys=True) == json.dumps(before, sort_keys=True)


def test_the_local_stack_backfills_what_its_bucket_held_at_start(aws, stack_with) -> None:
    provision(
        aws, state_bucket="tfstate-guardian-local", lock_table="tfstate-guardian-locks",
        guardian_table="tfstate-guardian", topic="tfstate-guardian-notifications",
        index_bucket="tfstate-guardian-local-indexes",
    )  # fmt: skip
    s3 = aws.client("s3")
    for serial in (1, 2):
        s3.put_object(
            Bucket="tfstate-guardian-local",
            Key="before/terraform.tfstate",
            Body=state_bytes(generate_state(5, serial=serial, lineage="L", seed=serial)),
        )
    local = stack_with()
    versions = composition.container().home.history.versions(
        local.resources.state_bucket, "before/terraform.tfstate", limit=10
    )
    assert [r.serial for r in versions.items] == [2, 1] and all(r.backfilled for r in versions.items)


def test_the_scheduled_function_finishes_a_backfill_stopped_half_way(aws, stack: RunningStack, backfill) -> None:
    """`backfill_history` as Lambda runs it, within its timeout, goes on from where a stopped run left off."""
    written = write_history(aws, stack, per_key=20)  # the 300 are the test above's: here, resuming is the point
    stack.stack.take_events()
    assert not backfill.run(restart=True, time_left=stopping_after(15)).done  # stopped early on, as by a timeout

    scheduled = {
        "version": "0", "id": "backfill-1", "detail-type": "Scheduled Event", "source": "aws.events",
        "account": "123456789012", "time": "2026-11-30T10:00:00Z", "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/tfstate-guardian-local-backfill_history"],
        "detail": {},
    }  # fmt: skip
    history = composition.container().home.history
    for _ in range(3):  # each run is bounded by its context's remaining time; these versions fit in one
        context = LocalLambdaContext(function_name="tfstate-guardian-local-backfill_history")
        stack.app.backfill_history(scheduled, context)
        if (history.checkpoint(stack.resources.state_bucket) or {}).get("finished"):
            break

    assert (history.checkpoint(stack.resources.state_bucket) or {}).get("finished")
    assert backfill.run().looked_at == 0  # nothing left for another run
    for key in KEYS:
        listed = history.versions(stack.resources.state_bucket, key, limit=200).items
        assert sorted(r.version_id for r in listed) == sorted(written[key]), key
