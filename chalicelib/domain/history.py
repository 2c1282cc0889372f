"""What the guardian remembers: each state version it handled, each state's latest summary, and the audit trail.

Records hold names, counts and identities, never a value of a state. Every one is keyed so that writing it again
(an event delivered twice, a backfill run again) writes the same item.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import Any, Generic, TypeVar

from chalicelib.domain.notifications import Notification, rfc3339
from chalicelib.errors import InvalidRequestError

T = TypeVar("T")

# At most this many changed addresses are kept on a version record for the `address=` filter (a DynamoDB item
# holds 400 KB); a version that changed more is found through its stored index instead.
MAX_RECORDED_CHANGES_BYTES = 100_000


class VersionKind(Enum):
    """What a version of a state key is."""

    WRITTEN = "written"  # a readable state
    UNREADABLE = "unreadable"  # written at a state key, not a state
    DELETE_MARKER = "delete_marker"
    DELETED = "deleted"  # a version permanently removed


@dataclass(frozen=True)
class Writer:
    """Who wrote a version: the lock holder at write time, and the S3 principal."""

    who: str | None = None
    operation: str | None = None
    lock_id: str | None = None
    principal: str | None = None

    def to_dict(self) -> dict[str, str | None]:
        return {"who": self.who, "operation": self.operation, "lock_id": self.lock_id, "principal": self.principal}


@dataclass(frozen=True)
class ChangeCounts:
    """How many resource instances and outputs a version added, changed and removed against its predecessor."""

    resources_added: int = 0
    resources_changed: int = 0
    resources_removed: int = 0
    outputs_added: int = 0
    outputs_changed: int = 0
    outputs_removed: int = 0

    def to_dict(self) -> dict[str, dict[str, int]]:
        return {
            "resources": {
                "added": self.resources_added,
                "changed": self.resources_changed,
                "removed": self.resources_removed,
            },
            "outputs": {"added": self.outputs_added, "changed": self.outputs_changed, "removed": self.outputs_removed},
        }


@dataclass(frozen=True)
class VersionRecord:
    """One version of one state key, as the guardian saw it."""

    bucket: str
    key: str
    workspace: str
    version_id: str
    kind: VersionKind
    written_at: datetime
    serial: int | None = None
    lineage: str | None = None
    terraform_version: str | None = None
    size: int | None = None
    writer: Writer = field(default_factory=Writer)
    resource_count: int | None = None
    output_count: int | None = None
    changes: ChangeCounts | None = None  # None: no readable predecessor to compare with
    previous_version_id: str | None = None
    severity: str | None = None
    notification_id: str | None = None
    reason: str | None = None  # why an unreadable version is not a state
    index_stored: bool = False
    backfilled: bool = False
    # "+address", "~address", "-address" for each resource instance the version added, changed or removed; empty
    # with `changed_addresses_overflow` when they do not fit a record.
    changed_addresses: frozenset[str] = frozenset()
    changed_addresses_overflow: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The version as the API answers it."""
        return {
            "version_id": self.version_id,
            "kind": self.kind.value,
            "written_at": rfc3339(self.written_at),
            "serial": self.serial,
            "lineage": self.lineage,
            "terraform_version": self.terraform_version,
            "size": self.size,
            "writer": self.writer.to_dict(),
            "resource_count": self.resource_count,
            "output_count": self.output_count,
            "changes": self.changes.to_dict() if self.changes else None,
            "previous_version_id": self.previous_version_id,
            "severity": self.severity,
            "notification_id": self.notification_id,
            "reason": self.reason,
            "backfilled": self.backfilled,
            "recorded": True,
        }

    def changes_listed(self) -> dict[str, dict[str, list[str]]] | None:
        """The resources and outputs this version added, changed and removed against its predecessor, sorted, from
        the record alone; None when the record does not keep them."""
        if self.changed_addresses_overflow or self.changes is None:
            return None
        listed: dict[str, dict[str, list[str]]] = {
            kind: {"added": [], "changed": [], "removed": []} for kind in ("resources", "outputs")
        }
        for entry in self.changed_addresses:
            sign, name = entry[0], entry[1:]
            kind = "outputs" if name.startswith(OUTPUT_PREFIX) else "resources"
            which = {"+": "added", "~": "changed", "-": "removed"}[sign]
            listed[kind][which].append(name.removeprefix(OUTPUT_PREFIX) if kind == "outputs" else name)
        for lists in listed.values():
            for names in lists.values():
                names.sort()
        return listed

    def touches(self, address: str) -> bool | None:
        """Whether this version added, changed or removed `address`; None when only its stored index can tell."""
        if any(f"{sign}{address}" in self.changed_addresses for sign in "+~-"):
            return True
        return None if self.changed_addresses_overflow else False


OUTPUT_PREFIX = "output."  # an output's name as a recorded change: no resource address starts so


def recorded_changes(
    added: list[str],
    changed: list[str],
    removed: list[str],
    outputs: tuple[list[str], list[str], list[str]] = ([], [], []),
) -> tuple[frozenset[str], bool]:
    """The changed addresses (and outputs, as `output.<name>`) a version record keeps, or none and an overflow
    mark when they are too many."""
    output_added, output_changed, output_removed = ([OUTPUT_PREFIX + name for name in names] for names in outputs)
    entries = [f"+{a}" for a in (*added, *output_added)] + [f"~{a}" for a in (*changed, *output_changed)]
    entries += [f"-{a}" for a in (*removed, *output_removed)]
    if sum(len(entry.encode()) + 1 for entry in entries) > MAX_RECORDED_CHANGES_BYTES:
        return frozenset(), True
    return frozenset(entries), False


@dataclass(frozen=True)
class FleetEntry:
    """A state's latest known version and lock holder: one line of `GET /states`."""

    bucket: str
    key: str
    workspace: str
    version_id: str | None = None
    kind: VersionKind | None = None
    written_at: datetime | None = None
    serial: int | None = None
    lineage: str | None = None
    terraform_version: str | None = None
    size: int | None = None
    resource_count: int | None = None
    writer: Writer = field(default_factory=Writer)
    lock: dict[str, str] | None = None  # the holder, while a lock is held
    history_complete: bool = True  # False while versions older than the guardian's records are not backfilled

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "workspace": self.workspace,
            "version_id": self.version_id,
            "kind": self.kind.value if self.kind else None,
            "last_written_at": rfc3339(self.written_at) if self.written_at else None,
            "serial": self.serial,
            "lineage": self.lineage,
            "terraform_version": self.terraform_version,
            "size": self.size,
            "resource_count": self.resource_count,
            "writer": self.writer.to_dict(),
            "lock": self.lock,
            "locked": self.lock is not None,
            "history_complete": self.history_complete,
        }


@dataclass(frozen=True)
class AuditEvent:
    """One entry of the audit trail: a notification the guardian gave, with who caused it."""

    id: str  # the notification's id
    type: str
    occurred_at: datetime
    bucket: str
    key: str
    workspace: str
    severity: str
    summary: str
    who: str | None = None  # the lock holder
    principal: str | None = None  # the S3 principal
    caller: str | None = None  # the IAM caller of the API, or "schedule"
    reason: str | None = None
    version_id: str | None = None

    @property
    def actors(self) -> tuple[str, ...]:
        return tuple(actor for actor in (self.who, self.principal, self.caller) if actor)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "occurred_at": rfc3339(self.occurred_at),
            "bucket": self.bucket,
            "key": self.key,
            "workspace": self.workspace,
            "severity": self.severity,
            "summary": self.summary,
            "who": self.who,
            "principal": self.principal,
            "caller": self.caller,
            "reason": self.reason,
            "version_id": self.version_id,
        }


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a listing, and the opaque token of the next one (None on the last page)."""

    items: list[T]
    next: str | None


def encode_token(position: dict[str, Any]) -> str:
    """An opaque `next` token for a position in a listing."""
    return base64.urlsafe_b64encode(json.dumps(position, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_token(token: str, *, expect: str | None) -> dict[str, Any]:
    """The position a `next` token names; 400 unless it is one this listing (`expect`; None: any) gave."""
    try:
        position = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError):
        raise InvalidRequestError("next is not a token this listing gave") from None
    if not isinstance(position, dict) or (expect is not None and position.get("for") != expect):
        raise InvalidRequestError("next is not a token this listing gave")
    return position


def order_second(moment: datetime) -> str:
    """The second a version was written, as its order names it."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def version_order(written_at: datetime, serial: int | None, version_id: str) -> str:
    """Where a version sorts among its key's versions, oldest first, the same however it was learnt of.

    S3 lists modification times to the second (an event knows the millisecond): the second, then the serial
    (Terraform writes several snapshots a second during one apply), then the version id; a version without a
    serial sorts as the newest of its second.
    """
    return f"{order_second(written_at)}#{'~' * 12 if serial is None else f'{serial:012d}'}#{version_id}"


def audit_event_of(notification: Notification) -> AuditEvent:
    """The audit trail's entry for a notification: who held the lock, the S3 principal, the API caller."""
    details = notification.details
    lock = details.get("lock") if isinstance(details.get("lock"), dict) else None
    version_id = details.get("version_id") or details.get("new_version_id")
    return AuditEvent(
        id=notification.id,
        type=notification.type.value,
        occurred_at=notification.occurred_at,
        bucket=notification.bucket,
        key=notification.key,
        workspace=notification.workspace,
        severity=notification.severity.value,
        summary=notification.summary,
        who=_text_or_none(lock.get("who")) if lock else None,
        principal=_text_or_none(details.get("principal")),
        caller=_text_or_none(details.get("caller")),
        reason=_text_or_none(details.get("reason")),
        version_id=_text_or_none(version_id),
    )


def _text_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
