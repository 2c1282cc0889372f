import io
import json
from datetime import UTC, datetime

from chalicelib.channels.console import ConsoleChannel
from chalicelib.domain.notifications import Notification, Severity, state_changed, state_unreadable
from chalicelib.domain.s3_events import ObjectChange, ObjectEvent
from chalicelib.domain.state import StateHeader
from chalicelib.domain.state_index import StateIndex
from chalicelib.domain.state_keys import StateKey

# The contract's envelope, and the fields added since (never renamed or removed): `backend`, its backend's name.
CONTRACT_FIELDS = [
    "id", "type", "severity", "occurred_at", "bucket", "key", "workspace", "summary", "details", "backend"
]  # fmt: skip
STATE_CHANGED_DETAILS = {
    "serial", "lineage", "terraform_version", "version_id", "previous_version_id", "lock", "principal",
    "resources", "outputs", "encrypted", "size", "too_large",
}  # fmt: skip
# DESIGN.md's fields of state.unreadable, and `restore_by_hand` beside `restore`.
STATE_UNREADABLE_DETAILS = {
    "reason", "size", "version_id", "principal", "lock", "last_readable_version_id", "restore", "restore_by_hand",
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


def index(
    serial: int, lineage: str = "L1", resources: dict[str, int] | None = None, encrypted: bool = False
) -> StateIndex:
    return StateIndex(
        header=StateHeader(serial=serial, lineage=lineage, terraform_version="1.11.4", encrypted=encrypted),
        size=1234,
        md5="0" * 32,
        resources=resources or {},
        outputs={},
    )


def changed(after: StateIndex, before: StateIndex | None, version: str = "v2", threshold: int = 5):
    return state_changed(
        event=event(version),
        state_key=KEY,
        after=after,
        before=before,
        previous_version_id="v1" if before else None,
        removed_resources_warning=threshold,
    )


KEY = StateKey.parse("env:/prod/network/terraform.tfstate", ("env:",))


def test_state_changed_follows_the_contract() -> None:
    before = index(41, resources={"aws_instance.a": 1, "aws_instance.b": 2, "aws_instance.gone": 3})
    after = index(42, resources={"aws_instance.a": 1, "aws_instance.b": 20, "module.m.aws_instance.new[0]": 4})
    notification = changed(after, before).to_dict()
    assert list(notification) == CONTRACT_FIELDS
    assert set(notification["details"]) == STATE_CHANGED_DETAILS
    assert notification["type"] == "state.changed"
    assert notification["severity"] == "info"
    assert notification["occurred_at"] == "2026-11-26T11:05:21.798Z"
    assert notification["workspace"] == "prod"
    assert notification["summary"] == "network [prod]: serial 41→42: +1 ~1 -1"
    assert notification["details"]["resources"] == {
        "added": ["module.m.aws_instance.new[0]"],
        "changed": ["aws_instance.b"],
        "removed": ["aws_instance.gone"],
        "counts": {"added": 1, "changed": 1, "removed": 1},
        "truncated": False,
    }
    assert notification["details"]["serial"] == {"before": 41, "after": 42}
    assert notification["details"]["lineage"] == {"before": "L1", "after": "L1", "changed": False}
    assert notification["details"]["previous_version_id"] == "v1"
    json.dumps(notification)


def test_severity_follows_lineage_serial_and_removals() -> None:
    assert changed(index(5, "L2"), index(4)).severity is Severity.CRITICAL
    assert changed(index(3), index(4)).severity is Severity.WARNING
    assert changed(index(0), None).severity is Severity.INFO
    three = index(4, resources={"a.a": 1, "a.b": 1, "a.c": 1})
    assert changed(index(5), three, threshold=3).severity is Severity.INFO
    assert changed(index(5), three, threshold=2).severity is Severity.WARNING


def test_encrypted_state_reports_size_and_no_diff() -> None:
    notification = changed(index(3, encrypted=True), index(2, encrypted=True))
    assert notification.summary == "network [prod]: serial 2→3 (encrypted, 1234 bytes)"
    assert notification.details["resources"] is None and notification.details["encrypted"] is True


def test_long_lists_are_cut_but_counts_stay_complete() -> None:
    notification = changed(index(1, resources={f"null_resource.r[{i}]": i for i in range(2000)}), None)
    resources = notification.details["resources"]
    assert len(resources["added"]) == 500 and resources["counts"]["added"] == 2000 and resources["truncated"]


def test_first_write_reports_a_created_state() -> None:
    notification = changed(index(1, resources={"aws_instance.a": 1}), None)
    assert notification.summary == "network [prod]: created at serial 1: +1 ~0 -0"
    assert notification.details["serial"] == {"before": None, "after": 1}


def test_id_is_stable_per_version_and_differs_between_versions() -> None:
    first = changed(index(2), index(1), "v2").id
    assert first == changed(index(2), index(1), "v2").id
    assert first != changed(index(2), index(1), "v3").id


def test_console_channel_writes_two_readable_lines() -> None:
    stream = io.StringIO()
    ConsoleChannel(stream).send(changed(index(42), index(41)))
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0] == "11:05:21 INFO     state.changed  network [prod]: serial 41→42: +0 ~0 -0"
    assert "s3://tfstate/env:/prod/network/terraform.tfstate" in lines[1]
    assert "version v2" in lines[1] and "by AWS:AIDAEXAMPLE" in lines[1]


def test_console_channel_links_the_state_page_when_one_is_served() -> None:
    stream = io.StringIO()
    ConsoleChannel(stream, page_url="http://127.0.0.1:8056/").send(changed(index(42), index(41)))
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3
    assert lines[2].strip() == "http://127.0.0.1:8056/#/state?key=env%3A%2Fprod%2Fnetwork%2Fterraform.tfstate"


def test_a_kept_notification_comes_back_the_same() -> None:
    """Pending notifications are kept as their contract JSON and delivered again from it."""
    before = index(41, resources={"aws_instance.a": 1})
    after = index(42, resources={"aws_instance.a": 2})
    notification = changed(after, before)
    kept = json.loads(json.dumps(notification.to_dict()))
    assert Notification.from_dict(kept).to_dict() == notification.to_dict()


def test_state_unreadable_follows_the_contract_and_is_critical() -> None:
    notification = state_unreadable(
        event=event("v9"),
        state_key=StateKey.parse("prod/network/terraform.tfstate", ("env:",)),
        reason="not valid JSON",
        size=42,
        last_readable_version_id="v8",
        restore="tfguardian rollback prod/network/terraform.tfstate --version-id v8",
        restore_by_hand=None,
    ).to_dict()
    assert list(notification) == CONTRACT_FIELDS
    assert set(notification["details"]) == STATE_UNREADABLE_DETAILS
    assert notification["type"] == "state.unreadable" and notification["severity"] == "critical"
    assert notification["details"]["version_id"] == "v9" and notification["details"]["last_readable_version_id"] == "v8"
    assert "not valid JSON" in notification["summary"] and "restore version v8" in notification["summary"]


def test_a_state_too_large_to_read_is_announced_from_its_headers() -> None:
    after = index(42, resources={})
    before = index(41, resources={})
    notification = state_changed(
        event=event(), state_key=StateKey.parse("prod/network/terraform.tfstate", ("env:",)), after=after,
        before=before, previous_version_id="v1", removed_resources_warning=5, too_large=True,
    ).to_dict()  # fmt: skip
    details = notification["details"]
    assert details["too_large"] is True and details["resources"] is None and details["outputs"] is None
    assert details["serial"] == {"before": 41, "after": 42} and "too large to diff" in notification["summary"]
