"""Notifications in the public contract of DESIGN.md: one JSON object, the same for every channel."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from chalicelib.domain.s3_events import ObjectEvent
from chalicelib.domain.state import StateHeader
from chalicelib.domain.state_keys import StateKey


class Severity(Enum):
    """How urgent a notification is; teams route on it."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class NotificationType(Enum):
    """Every type of notification the guardian sends."""

    STATE_CHANGED = "state.changed"


@dataclass(frozen=True)
class Notification:
    """One notification; `to_dict` gives exactly the contract's fields."""

    id: str
    type: NotificationType
    severity: Severity
    occurred_at: datetime
    bucket: str
    key: str
    workspace: str
    summary: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type.value,
            "severity": self.severity.value,
            "occurred_at": rfc3339(self.occurred_at),
            "bucket": self.bucket,
            "key": self.key,
            "workspace": self.workspace,
            "summary": self.summary,
            "details": self.details,
        }


def rfc3339(moment: datetime) -> str:
    """UTC time in RFC3339 with milliseconds and a `Z`, e.g. `2026-11-26T11:05:21.798Z`."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def dedupe_id(kind: NotificationType, *parts: str) -> str:
    """A stable id: the same event always gives the same id, so receivers and the guardian can dedupe."""
    digest = hashlib.sha256("\x1f".join((kind.value, *parts)).encode()).hexdigest()
    return digest[:32]


def state_changed(
    event: ObjectEvent,
    state_key: StateKey,
    after: StateHeader,
    before: StateHeader | None,
    previous_version_id: str | None,
) -> Notification:
    """The `state.changed` notification for one write of a state object."""
    lineage_changed = before is not None and before.lineage != after.lineage
    if lineage_changed:
        severity = Severity.CRITICAL
    elif before is not None and after.serial < before.serial:
        severity = Severity.WARNING
    else:
        severity = Severity.INFO
    return Notification(
        id=dedupe_id(NotificationType.STATE_CHANGED, event.bucket, event.key, event.dedupe_token),
        type=NotificationType.STATE_CHANGED,
        severity=severity,
        occurred_at=event.event_time,
        bucket=event.bucket,
        key=event.key,
        workspace=state_key.workspace,
        summary=_state_changed_summary(state_key, after, before, lineage_changed),
        details={
            "serial": {"before": before.serial if before else None, "after": after.serial},
            "lineage": {
                "before": before.lineage if before else None,
                "after": after.lineage,
                "changed": lineage_changed,
            },
            "terraform_version": after.terraform_version,
            "version_id": event.version_id,
            "previous_version_id": previous_version_id,
            "lock": None,
            "principal": event.principal,
            "resources": None,
            "outputs": None,
            "encrypted": after.encrypted,
        },
    )


def _state_changed_summary(
    state_key: StateKey, after: StateHeader, before: StateHeader | None, lineage_changed: bool
) -> str:
    name = state_key.display_name
    if before is None:
        return f"{name}: created at serial {after.serial}"
    summary = f"{name}: serial {before.serial}→{after.serial}"
    if lineage_changed:
        summary += " (lineage changed)"
    elif after.serial < before.serial:
        summary += " (serial went backwards)"
    return summary
