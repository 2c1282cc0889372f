import io
import json
from datetime import UTC, datetime

from chalicelib.channels.console import ConsoleChannel
from chalicelib.domain.notifications import Severity, state_changed
from chalicelib.domain.s3_events import ObjectChange, ObjectEvent
from chalicelib.domain.state import StateHeader
from chalicelib.domain.state_keys import StateKey

CONTRACT_FIELDS = ["id", "type", "severity", "occurred_at", "bucket", "key", "workspace", "summary", "details"]
STATE_CHANGED_DETAILS = {
    "serial", "lineage", "terraform_version", "version_id", "previous_version_id", "lock", "principal",
    "resources", "outputs", "encrypted",
}  # fmt: skip


def event(version_id: str = "v2") -> ObjectEvent:
    return ObjectEvent(
        bucket="tfstate",
        key="env:/prod/network/terraform.tfstate",
        change=ObjectChange.CREATED,
        event_name="ObjectCreated:Put",
        event_time=datetime(2026, 11, 26, 11, 5, 21, 798000, tzinfo=UTC),
        version_id=version_id,
        sequencer="0055AED6DCD90281E5",
        size=959,
        principal="AWS:AIDAEXAMPLE",
    )


def header(serial: int, lineage: str = "L1") -> StateHeader:
    return StateHeader(serial=serial, lineage=lineage, terraform_version="1.11.4", encrypted=False)


KEY = StateKey.parse("env:/prod/network/terraform.tfstate", ("env:",))


def test_state_changed_follows_the_contract() -> None:
    notification = state_changed(event(), KEY, header(42), header(41), "v1").to_dict()
    assert list(notification) == CONTRACT_FIELDS
    assert set(notification["details"]) == STATE_CHANGED_DETAILS
    assert notification["type"] == "state.changed"
    assert notification["severity"] == "info"
    assert notification["occurred_at"] == "2026-11-26T11:05:21.798Z"
    assert notification["workspace"] == "prod"
    assert notification["summary"] == "network [prod]: serial 41→42"
    assert notification["details"]["serial"] == {"before": 41, "after": 42}
    assert notification["details"]["lineage"] == {"before": "L1", "after": "L1", "changed": False}
    assert notification["details"]["previous_version_id"] == "v1"
    json.dumps(notification)


def test_severity_follows_lineage_and_serial() -> None:
    assert state_changed(event(), KEY, header(5, "L2"), header(4), "v1").severity is Severity.CRITICAL
    assert state_changed(event(), KEY, header(3), header(4), "v1").severity is Severity.WARNING
    assert state_changed(event(), KEY, header(0), None, None).severity is Severity.INFO


def test_first_write_reports_a_created_state() -> None:
    notification = state_changed(event(), KEY, header(1), None, None)
    assert notification.summary == "network [prod]: created at serial 1"
    assert notification.details["serial"] == {"before": None, "after": 1}


def test_id_is_stable_per_version_and_differs_between_versions() -> None:
    first = state_changed(event("v2"), KEY, header(2), header(1), "v1").id
    assert first == state_changed(event("v2"), KEY, header(2), header(1), "v1").id
    assert first != state_changed(event("v3"), KEY, header(2), header(1), "v1").id


def test_console_channel_writes_two_readable_lines() -> None:
    stream = io.StringIO()
    ConsoleChannel(stream).send(state_changed(event(), KEY, header(42), header(41), "v1"))
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0] == "11:05:21 INFO     state.changed  network [prod]: serial 41→42"
    assert "s3://tfstate/env:/prod/network/terraform.tfstate" in lines[1]
    assert "version v2" in lines[1] and "by AWS:AIDAEXAMPLE" in lines[1]
