"""The EMF records real handler runs print: each alarmed metric under `[service]` and `[service, X...]`."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import boto3
import pytest

from chalicelib import composition
from chalicelib.domain.staleness import ReaperPolicy
from chalicelib.observability import METRICS_NAMESPACE, SERVICE
from local_stack.bridge_source import bridge_event
from local_stack.lambda_runtime import LocalLambdaContext
from local_stack.s3_source import VersionWatcher
from local_stack.stack import REGION
from tests.conftest import RunningStack
from tests.support.events import state_bytes

KEY = "prod/app/terraform.tfstate"
Emitted = dict[tuple[str, tuple[tuple[str, ...], ...], tuple[tuple[str, str], ...]], float]


def emitted(output: str) -> Emitted:
    """Each metric printed as EMF: (name, its dimension sets, the dimension values) → the total counted."""
    totals: Emitted = {}
    for line in output.splitlines():
        if '"_aws"' not in line:
            continue
        record = json.loads(line)
        (directive,) = record["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == METRICS_NAMESPACE
        sets = tuple(tuple(names) for names in directive["Dimensions"])
        values = tuple(sorted({name: record[name] for names in sets for name in names}.items()))
        for metric in directive["Metrics"]:
            assert metric["Unit"] == "Count"
            given = record[metric["Name"]]
            total = sum(given if isinstance(given, list) else [given])
            totals[(metric["Name"], sets, values)] = totals.get((metric["Name"], sets, values), 0) + total
    return totals


def alarmed(name: str, **dimensions: str) -> tuple[str, tuple[tuple[str, ...], ...], tuple[tuple[str, str], ...]]:
    """The key of a metric emitted under both sets: `[service]` and `[service, *dimensions]`."""
    sets = (("service",), ("service", *dimensions))
    return name, sets, tuple(sorted({"service": SERVICE, **dimensions}.items()))


def service_only(name: str) -> tuple[str, tuple[tuple[str, ...], ...], tuple[tuple[str, str], ...]]:
    return name, (("service",),), (("service", SERVICE),)


def delivered(*types: str) -> Emitted:
    """One of each type delivered to each of the local stack's channels."""
    return {
        alarmed("NotificationsDelivered", channel=channel, type=kind): 1
        for kind in types
        for channel in ("file", "sns")
    }


def only(output: str, *names: str) -> Emitted:
    return {key: total for key, total in emitted(output).items() if key[0] in names}


ALARMED = ("ChannelFailures", "NotificationsDelivered", "DigestMismatches", "StatesUnreadable", "LocksReaped")


def put(aws: boto3.session.Session, stack: RunningStack, key: str, body: bytes) -> None:
    aws.client("s3").put_object(Bucket=stack.resources.state_bucket, Key=key, Body=body)


def test_each_alarmed_count_names_what_its_alarm_needs(
    aws: boto3.session.Session, stack: RunningStack, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    # The file channel fails (its file is a directory): three attempts, one failure counted; SNS still delivers.
    stack.notify_file.mkdir()
    put(aws, stack, KEY, state_bytes("state_tf1.11.4_first_apply_serial1.json"))
    stack.pump()
    assert only(capsys.readouterr().out, *ALARMED) == {
        alarmed("ChannelFailures", channel="file"): 1,
        alarmed("NotificationsDelivered", channel="sns", type="state.changed"): 1,
    }

    # The retry delivers to the file what it lacks, and nothing to SNS again.
    stack.notify_file.rmdir()
    stack.pump()
    assert only(capsys.readouterr().out, *ALARMED) == {
        alarmed("NotificationsDelivered", channel="file", type="state.changed"): 1
    }
    (changed,) = stack.notifications()
    backend = changed["backend"]
    assert backend

    # Bytes at a state key that no Terraform can read.
    put(aws, stack, "broken/terraform.tfstate", bytes(range(256)))
    stack.pump()
    assert only(capsys.readouterr().out, *ALARMED) == {
        alarmed("StatesUnreadable", backend=backend): 1,
        **delivered("state.unreadable"),
    }

    # A write whose digest Terraform never wrote, and a stale lock: the scheduled jobs, as their schedules run them.
    aws.client("dynamodb").put_item(
        TableName=stack.resources.lock_table,
        Item={"LockID": {"S": f"{stack.resources.state_bucket}/{KEY}-md5"}, "Digest": {"S": "0" * 32}},
    )
    put(aws, stack, KEY, state_bytes("state_tf1.11.4_second_apply_serial2.json"))
    stack.pump()
    assert only(capsys.readouterr().out, *ALARMED) == delivered("state.changed")
    locked = "prod/idle/terraform.tfstate"
    lock = {"ID": "0b7a5f1e-aaaa-bbbb-cccc-000000000001", "Operation": "OperationTypeApply", "Info": "",
            "Who": "ci@runner-7", "Version": "1.11.4", "Created": "2026-01-01T00:00:00.000000000Z",
            "Path": f"{stack.resources.state_bucket}/{locked}"}  # fmt: skip
    aws.client("dynamodb").put_item(
        TableName=stack.resources.lock_table,
        Item={"LockID": {"S": f"{stack.resources.state_bucket}/{locked}"}, "Info": {"S": json.dumps(lock)}},
    )
    composition.container().home.reaper.policy = ReaperPolicy(grace=timedelta(0))
    stack.stack.run_scheduled()  # the mismatch is alarmed, the lock warned about
    stack.stack.run_scheduled()  # the lock released; the mismatch is not alarmed again
    assert only(capsys.readouterr().out, *ALARMED) == {
        alarmed("DigestMismatches", backend=backend): 1,
        alarmed("LocksReaped", backend=backend): 1,
        **delivered("digest.mismatch", "lock.stale", "lock.reaped"),
    }
    assert [n["type"] for n in stack.notifications()][3:] == ["digest.mismatch", "lock.stale", "lock.reaped"]
    assert stack.failures().count("handler on_state_object_event failed") == 1  # the failed delivery only


def test_skipped_events_are_counted_for_the_service_only(
    aws: boto3.session.Session, stack: RunningStack, capsys: pytest.CaptureFixture[str]
) -> None:
    watcher = VersionWatcher(aws.client("s3"), stack.resources.state_bucket, REGION, "test")
    watcher.baseline()
    put(aws, stack, KEY, state_bytes("state_tf1.11.4_first_apply_serial1.json"))
    (notification,) = watcher.poll()
    bridged: dict[str, Any] | None = bridge_event(notification, REGION)
    assert bridged is not None
    context = LocalLambdaContext(function_name="on_state_object_event")
    capsys.readouterr()
    stack.app.on_state_object_event({**bridged, "detail-type": "Object Restore Completed"}, context)
    unknown_deletion = {
        **bridged,
        "detail-type": "Object Deleted",
        "detail": {**bridged["detail"], "deletion-type": "x"},
    }
    stack.app.on_state_object_event(unknown_deletion, context)
    stack.app.on_state_object_event(
        {**bridged, "detail": {**bridged["detail"], "bucket": {"name": "someone-elses"}}}, context
    )
    assert only(capsys.readouterr().out, "EventsSkipped", *ALARMED) == {service_only("EventsSkipped"): 3}
    assert stack.notifications() == []


def test_disabled_metrics_print_nothing(
    aws: boto3.session.Session,
    stack: RunningStack,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    capsys.readouterr()
    put(aws, stack, KEY, state_bytes("state_tf1.11.4_first_apply_serial1.json"))
    stack.pump()
    assert [n["type"] for n in stack.notifications()] == ["state.changed"]
    assert '"_aws"' not in capsys.readouterr().out
