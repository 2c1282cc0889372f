"""Notifications as the domain builds them, for the message tests and the README's examples.

`python -m tests.support.example_notifications` prints the README's example messages (Slack, email, Teams,
PagerDuty) as the code renders them; `tests/unit/test_readme_messages.py` checks the README shows exactly these.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from chalicelib.channels.pagerduty import pagerduty_events
from chalicelib.channels.slack import slack_message
from chalicelib.channels.teams import teams_body
from chalicelib.domain import notifications
from chalicelib.domain.email_message import email_body, email_subject
from chalicelib.domain.locks import LockInfo, LockSession
from chalicelib.domain.notifications import Notification
from chalicelib.domain.s3_events import ObjectChange, ObjectEvent
from chalicelib.domain.state import StateHeader
from chalicelib.domain.state_index import StateIndex
from chalicelib.domain.state_keys import StateKey

BACKEND = "prod"  # the backend the README's examples come from, named as the notifier names it
BUCKET = "tfstate-prod"
KEY = "platform/network/terraform.tfstate"
LOCK_TABLE = "tf-locks"
PAGE_URL = "https://guardian.example.com/"
ROUTING_KEY = "R0UT1NGK3Y0000000000000000000001"  # 32 characters, as PagerDuty's integration keys
AT = datetime(2026, 11, 26, 11, 5, 21, 798000, tzinfo=UTC)
PREFIXES = ("env:",)


def lock(who: str = "ci@runner-7", lock_id: str = "0b7a5f1e-6c1d-4e0a-9f1e-3c5d7a9b1e2f") -> LockInfo:
    return LockInfo(id=lock_id, operation="OperationTypeApply", who=who, version="1.11.4",
                    created="2026-11-26T11:04:02.123456789Z", path=f"{BUCKET}/{KEY}")  # fmt: skip


def holder(who: str = "ci@runner-7") -> LockSession:
    return LockSession(lock=lock(who), source="dynamodb", acquired_at=AT - timedelta(minutes=1))


def event(change: ObjectChange, version_id: str, key: str = KEY) -> ObjectEvent:
    name = "ObjectRemoved:DeleteMarkerCreated" if change is ObjectChange.DELETE_MARKER_CREATED else "ObjectCreated:Put"
    return ObjectEvent(bucket=BUCKET, key=key, change=change, event_name=name, event_time=AT, version_id=version_id,
                       sequencer="0055AED6DCD90281E5", size=48213, principal="AWS:AROAEXAMPLE:ci-deployer")  # fmt: skip


def deleted(key: str = KEY, who: str = "ci@runner-7") -> Notification:
    """A delete marker over the current version: the state is gone."""
    marker = "Ab1.delete-marker-9Qz"
    return notifications.state_deleted(
        event=event(ObjectChange.DELETE_MARKER_CREATED, marker, key),
        state_key=StateKey.parse(key, PREFIXES),
        last_version_id="3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY",
        last_serial=41,
        restore=f"aws s3api delete-object --bucket {BUCKET} --key {key} --version-id {marker}",
        state_gone=True,
        holder=holder(who),
    )


def changed(removed: int = 14, key: str = KEY) -> Notification:
    """A write that removed many resources: a warning, with the addresses and the command that undoes it."""
    before = {f'module.subnets.aws_subnet.private["10.0.{i}.0/24"]': i for i in range(removed)}
    before |= {"aws_vpc.main": 1, "aws_route_table.private": 2}
    after = {"aws_vpc.main": 1, "aws_route_table.private": 3, "aws_nat_gateway.egress[0]": 4}
    return notifications.state_changed(
        event=event(ObjectChange.CREATED, "Zq8.new-version-4Kp", key),
        state_key=StateKey.parse(key, PREFIXES),
        after=index(42, after, {"vpc_id": 1, "nat_ip": 2}),
        before=index(41, before, {"vpc_id": 1}),
        previous_version_id="3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY",
        removed_resources_warning=5,
        holder=holder(),
    )


def mismatch(key: str = KEY) -> Notification:
    path = f"{BUCKET}/{key}-md5"
    item = json.dumps({"LockID": {"S": path}, "Digest": {"S": "9b2cf535f27731c974343645a3985328"}})
    return notifications.digest_mismatch(
        bucket=BUCKET, state_key=StateKey.parse(key, PREFIXES), version_id="3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY",
        calculated="9b2cf535f27731c974343645a3985328", stored="d41d8cd98f00b204e9800998ecf8427e", occurred_at=AT,
        repair=f"aws dynamodb put-item --table-name {LOCK_TABLE} --item '{item}'",
    )  # fmt: skip


def unreadable(key: str = KEY) -> Notification:
    return notifications.state_unreadable(
        event=event(ObjectChange.CREATED, "Unr.version-77x", key), state_key=StateKey.parse(key, PREFIXES),
        reason="not JSON", size=12, last_readable_version_id="3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY",
        restore=None, restore_by_hand=None, holder=holder(),
    )  # fmt: skip


def restored(key: str = KEY) -> Notification:
    return notifications.state_restored(
        bucket=BUCKET, state_key=StateKey.parse(key, PREFIXES), occurred_at=AT + timedelta(minutes=7),
        from_version_id="3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY", new_version_id="Rst.version-12a", serial_before=None,
        serial_after=42, caller="arn:aws:sts::123456789012:assumed-role/oncall/alice",
        reason="restore the deleted state",
    )  # fmt: skip


def stale(key: str = KEY) -> Notification:
    return notifications.lock_stale(
        lock=lock(), source="dynamodb", state_key=StateKey.parse(key, PREFIXES), occurred_at=AT, held_for_s=9000.0,
        evidence={"state_written_since": False}, release_after=AT + timedelta(minutes=15), fingerprint="f1",
    )  # fmt: skip


def index(serial: int, resources: dict[str, int], outputs: dict[str, int]) -> StateIndex:
    header = StateHeader(
        serial=serial, lineage="af92c2b5-9a79-f453-83f3-1ae377ca98e3", terraform_version="1.11.4", encrypted=False
    )
    return StateIndex(header=header, size=48213, md5="0" * 32, resources=resources, outputs=outputs)


def sent(notification: Notification, backend: str = BACKEND) -> Notification:
    """The notification as the notifier sends it: naming its backend."""
    return replace(notification, backend=backend)


def readme_examples() -> dict[str, str]:
    """The README's example messages, as the code renders them: name -> the text shown."""
    email = email_body(sent(changed()).to_dict(), page_url=PAGE_URL)
    events = pagerduty_events(sent(deleted()), ROUTING_KEY, page_url=PAGE_URL)
    events += pagerduty_events(sent(restored()), ROUTING_KEY, page_url=PAGE_URL)
    teams = teams_body(sent(mismatch()), page_url=PAGE_URL)
    return {
        "slack": json.dumps(slack_message(sent(deleted()), page_url=PAGE_URL), indent=2, ensure_ascii=False),
        "email": f"Subject: {email_subject(changed().summary, BACKEND)}\n\n{email}".rstrip("\n"),
        "teams": json.dumps(json.loads(teams), indent=2, ensure_ascii=False),
        "pagerduty": "\n".join(json.dumps(event, indent=2, ensure_ascii=False) for event in events),
    }


if __name__ == "__main__":
    for name, text in readme_examples().items():
        print(f"<!-- example:{name} -->\n{text}\n<!-- /example -->\n")
