"""What PagerDuty's Events API v2 checks of an event, as PagerDuty documents it.

Sources: developer.pagerduty.com, Events API v2 "Send an Alert Event" (`routing_key`, the 32-character integration
key, and `event_action` — `trigger`, `acknowledge` or `resolve` — are required; `dedup_key` at most 255 characters;
a trigger's `payload.summary` (at most 1,024 characters), `payload.source` and `payload.severity` — `critical`,
`error`, `warning` or `info` — are required; `payload.timestamp` is ISO 8601; `links` are objects with an `href`)
and "Events API v2 Overview" (payloads are limited to 512 KB; 202 when an event is accepted, 400 when it is not).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from tests.support.json_requests import json_object_problems

MAX_BYTES = 512_000  # "512 KB", read strictly
ACTIONS = {"trigger", "acknowledge", "resolve"}
SEVERITIES = {"critical", "error", "warning", "info"}
SUMMARY_CHARS = 1024
DEDUP_KEY_CHARS = 255


def pagerduty_problems(content_type: str, body: bytes) -> list[str]:
    """How a request breaks the documented event shape or size; [] if it does not."""
    problems, event = json_object_problems(content_type, body, MAX_BYTES)
    if event is None:
        return problems
    return problems + event_problems(event)


def event_problems(event: dict[str, Any]) -> list[str]:
    problems = []
    if not isinstance(event.get("routing_key"), str) or len(event["routing_key"]) != 32:
        problems.append("routing_key is not a 32-character integration key")
    action = event.get("event_action")
    if action not in ACTIONS:
        problems.append(f"event_action {action!r} is not one of {sorted(ACTIONS)}")
    dedup_key = event.get("dedup_key")
    if dedup_key is not None and (not isinstance(dedup_key, str) or not 0 < len(dedup_key) <= DEDUP_KEY_CHARS):
        problems.append("dedup_key is not a string of 1 to 255 characters")
    if action in ("acknowledge", "resolve") and dedup_key is None:
        problems.append(f"{action} without a dedup_key")
    if action == "trigger":
        problems += _payload_problems(event.get("payload"))
    for link in event.get("links", []):
        if not isinstance(link, dict) or not isinstance(link.get("href"), str):
            problems.append("a link without an href")
    return problems


def _payload_problems(payload: Any) -> list[str]:
    if not isinstance(payload, dict):
        return ["a trigger without a payload"]
    problems = []
    summary = payload.get("summary")
    if not isinstance(summary, str) or not 0 < len(summary) <= SUMMARY_CHARS:
        problems.append(f"payload.summary is not a string of 1 to {SUMMARY_CHARS} characters")
    if not isinstance(payload.get("source"), str) or not payload["source"]:
        problems.append("payload.source is missing")
    if payload.get("severity") not in SEVERITIES:
        problems.append(f"payload.severity {payload.get('severity')!r} is not one of {sorted(SEVERITIES)}")
    if "timestamp" in payload:
        try:
            datetime.fromisoformat(str(payload["timestamp"]).replace("Z", "+00:00"))
        except ValueError:
            problems.append("payload.timestamp is not ISO 8601")
    if "custom_details" in payload and not isinstance(payload["custom_details"], dict):
        problems.append("payload.custom_details is not an object")
    return problems


def accepted(event: dict[str, Any]) -> bytes:
    """PagerDuty's answer to an accepted event (202)."""
    return json.dumps({"status": "success", "message": "Event processed", "dedup_key": event.get("dedup_key")}).encode()


def refused(problems: list[str]) -> bytes:
    """PagerDuty's answer to an invalid event (400)."""
    return json.dumps({"status": "invalid event", "message": "Event object is invalid", "errors": problems}).encode()
