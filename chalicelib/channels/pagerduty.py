"""`PagerDutyChannel`: PagerDuty's Events API v2; critical notifications page, the fixes that follow resolve.

Each critical notification is a `trigger` event, and `state.restored` and `digest.repaired` are `resolve` events,
for the incident keys of `domain/incidents.py` (one incident per state and family of breakage, so a restore
resolves what the deletion or mismatch opened); no other notification reaches PagerDuty (`accepts`). The request is
the one PagerDuty documents (developer.pagerduty.com, Events API v2, "Send an Alert Event"), POSTed to
`https://events.pagerduty.com/v2/enqueue` (`GUARDIAN_PAGERDUTY_EVENTS_URL` for the EU service region):

- `routing_key` (the service integration's key, kept as a secret), `event_action`, `dedup_key` (255 characters
  at most);
- for a trigger, `payload` with `summary` (at most 1,024 characters), `source` (the state's `s3://` location),
  `severity` (`critical`), `timestamp`, `group` (the bucket), `class` (the type) and `custom_details` (the facts,
  the commands that fix it, and the notification itself, names and addresses only); `links` to the state's page
  when `GUARDIAN_PAGE_URL` is set; `client`.

An event is at most `EVENT_MAX_BYTES`: PagerDuty documents 512 KB per event, taken here as 512,000 bytes; the
notification's lists are trimmed to fit (`payload_budget.fit`). PagerDuty answers 202 when it accepted an event.
"""

from __future__ import annotations

import json
from typing import Any

from chalicelib.adapters.secrets import SecretValue
from chalicelib.channels.http import check_url, post_json
from chalicelib.domain.briefs import brief
from chalicelib.domain.incidents import IncidentAction, incident_actions
from chalicelib.domain.notifications import Notification
from chalicelib.domain.payload_budget import fit
from chalicelib.domain.text import bound, plain_text

EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
EVENT_MAX_BYTES = 512_000
SUMMARY_CHARS = 1024  # payload.summary
SOURCE_CHARS = 1024  # payload.source has no documented limit: a key's length (S3 allows 1,024 bytes)
CLIENT = "tfstate-guardian"


class PagerDutyChannel:
    """Sends the Events API v2 events of each notification that pages or resolves."""

    name = "pagerduty"

    def __init__(self, routing_key: SecretValue, *, events_url: str = EVENTS_URL, page_url: str | None = None) -> None:
        check_url(events_url, "GUARDIAN_PAGERDUTY_EVENTS_URL")
        self._routing_key = routing_key
        self._events_url = events_url
        self._page_url = page_url

    def accepts(self, notification: Notification) -> bool:
        """Only what triggers or resolves an incident is delivered (and recorded in the ledger) here."""
        return bool(incident_actions(notification.to_dict()))

    def send(self, notification: Notification) -> None:
        # A resolve repeated by a retry is harmless: PagerDuty drops one for an incident that is not open.
        for event in pagerduty_events(notification, self._routing_key.get(), page_url=self._page_url):
            post_json(self._events_url, json.dumps(event, separators=(",", ":")).encode(), {}, "PagerDuty")


def pagerduty_events(
    notification: Notification, routing_key: str, *, page_url: str | None = None
) -> list[dict[str, Any]]:
    """The events of a notification, each within `EVENT_MAX_BYTES`; [] when it neither triggers nor resolves."""
    data = notification.to_dict()
    events = []
    for action in incident_actions(data):
        if action.action != "trigger":
            events.append({"routing_key": routing_key, "event_action": action.action, "dedup_key": action.dedup_key})
            continue

        def size(candidate: dict[str, Any], action: IncidentAction = action) -> int:
            event = trigger_event(candidate, routing_key, action.dedup_key, page_url)
            return len(json.dumps(event, separators=(",", ":")).encode())

        events.append(trigger_event(fit(data, EVENT_MAX_BYTES, size), routing_key, action.dedup_key, page_url))
    return events


def trigger_event(data: dict[str, Any], routing_key: str, dedup_key: str, page_url: str | None) -> dict[str, Any]:
    """The `trigger` event of a notification (the contract's dict) for the incident `dedup_key`."""
    about = brief(data, page_url=page_url)
    details: dict[str, Any] = {fact.label: plain_text(fact.value) for fact in about.facts}
    details |= {kind.label: kind.tally for kind in about.changes}
    if about.remedy is not None:
        details["What to do"] = plain_text(about.remedy.what)
        details["Command"] = plain_text(about.remedy.command)
        details["Through the API"] = plain_text(about.remedy.api_call)
        if about.remedy.by_hand:
            details["By hand"] = plain_text(about.remedy.by_hand)
    details["notification"] = data  # the contract, as every channel gives it: names and addresses only
    event: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": dedup_key,
        "payload": {
            "summary": bound(plain_text(about.summary), SUMMARY_CHARS),
            "source": bound(plain_text(f"s3://{data['bucket']}/{data['key']}"), SOURCE_CHARS),
            "severity": about.severity,
            "timestamp": about.occurred_at,
            "group": plain_text(str(data["bucket"])),
            "class": about.type,
            "custom_details": details,
        },
        "client": CLIENT,
    }
    if about.page_url:
        event["links"] = [{"href": about.page_url, "text": "The state's page in tfstate-guardian"}]
    return event
