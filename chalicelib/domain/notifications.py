"""Notifications in the public contract of DESIGN.md: one JSON object, the same for every channel."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from chalicelib.domain.locks import WORKSPACE_DELETE_OPERATION, LockInfo, LockSession
from chalicelib.domain.s3_events import ObjectChange, ObjectEvent
from chalicelib.domain.state import StateHeader
from chalicelib.domain.state_index import StateDiff, StateIndex
from chalicelib.domain.state_keys import StateKey
from chalicelib.domain.text import FIELD_CHARS, KEY_CHARS, REASON_CHARS, SUMMARY_CHARS, bound

# Addresses listed per added/changed/removed, a bound on memory; the counts are always complete. Each channel trims
# the lists further to its own byte budget (domain/payload_budget.py).
MAX_LISTED = 500


class Severity(Enum):
    """How urgent a notification is; teams route on it."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class NotificationType(Enum):
    """Every type of notification the guardian sends."""

    STATE_CHANGED = "state.changed"
    STATE_DELETED = "state.deleted"
    STATE_RESTORED = "state.restored"
    STATE_UNREADABLE = "state.unreadable"
    DIGEST_MISMATCH = "digest.mismatch"
    LOCK_ACQUIRED = "lock.acquired"
    LOCK_RELEASED = "lock.released"
    LOCK_STALE = "lock.stale"
    LOCK_REAPED = "lock.reaped"
    LOCK_FORCE_RELEASED = "lock.force_released"
    DIGEST_REPAIRED = "digest.repaired"


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
    backend: str | None = None  # the name of the backend the state is in, set as the notifier sends it

    def __post_init__(self) -> None:
        # Text from outside is bounded once, here, whichever builder made the notification (see domain/text.py).
        object.__setattr__(self, "summary", bound(self.summary, SUMMARY_CHARS))
        object.__setattr__(self, "key", bound(self.key, KEY_CHARS))
        object.__setattr__(self, "workspace", bound(self.workspace, KEY_CHARS))
        object.__setattr__(self, "details", _bounded_details(self.details))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Notification:
        """The notification `to_dict` gave, e.g. kept aside until it is delivered."""
        return cls(
            id=data["id"],
            type=NotificationType(data["type"]),
            severity=Severity(data["severity"]),
            occurred_at=datetime.fromisoformat(data["occurred_at"].replace("Z", "+00:00")),
            bucket=data["bucket"],
            key=data["key"],
            workspace=data["workspace"],
            summary=data["summary"],
            details=data["details"],
            backend=data.get("backend"),
        )

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
            "backend": self.backend,
        }


def backend_of(data: Mapping[str, Any]) -> str | None:
    """The name of the backend of a notification given as the contract's dict, when it has one."""
    backend = data.get("backend")
    return backend if isinstance(backend, str) and backend else None


_FREE_TEXT_CHARS = {"principal": FIELD_CHARS, "caller": FIELD_CHARS, "reason": REASON_CHARS}


def _bounded_details(details: dict[str, Any]) -> dict[str, Any]:
    """`details` with the free text it took from outside cut: `principal`, `caller`, `reason`, the `lock` fields."""
    bounded = dict(details)
    for name, limit in _FREE_TEXT_CHARS.items():
        if isinstance(bounded.get(name), str):
            bounded[name] = bound(bounded[name], limit)
    if isinstance(bounded.get("lock"), dict):
        bounded["lock"] = {
            name: bound(value, FIELD_CHARS) if isinstance(value, str) else value
            for name, value in bounded["lock"].items()
        }
    return bounded


def rfc3339(moment: datetime) -> str:
    """UTC time in RFC3339 with milliseconds and a `Z`, e.g. `2026-11-26T11:05:21.798Z`."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def dedupe_id(kind: NotificationType, *parts: str) -> str:
    """A stable id: the same event always gives the same id, so receivers and the guardian can dedupe."""
    digest = hashlib.sha256("\x1f".join((kind.value, *parts)).encode()).hexdigest()
    return digest[:32]


def state_changed(
    *,
    event: ObjectEvent,
    state_key: StateKey,
    after: StateIndex,
    before: StateIndex | None,
    previous_version_id: str | None,
    removed_resources_warning: int,
    holder: LockSession | None = None,
    too_large: bool = False,
    diff: StateDiff | None = None,
) -> Notification:
    """The `state.changed` notification for one write of a state object; `too_large`: from the headers alone.

    `diff`, when the caller has it already, is `StateDiff.between(before, after)`.
    """
    new, old = after.header, before.header if before else None
    lineage_changed = old is not None and new.lineage_differs(old)
    if too_large or not diffable(after, before):
        diff = None
    elif diff is None:
        diff = StateDiff.between(before, after)
    if lineage_changed:
        severity = Severity.CRITICAL
    elif (old is not None and new.serial < old.serial) or (
        diff is not None and len(diff.resources_removed) > removed_resources_warning
    ):
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
        summary=_state_changed_summary(
            state_key=state_key,
            new=new,
            old=old,
            diff=diff,
            lineage_changed=lineage_changed,
            size=after.size,
            holder=holder,
            over_unreadable=old is None and previous_version_id is not None,
            too_large=too_large,
        ),
        details={
            "serial": {"before": old.serial if old else None, "after": new.serial},
            "lineage": {"before": old.lineage if old else None, "after": new.lineage, "changed": lineage_changed},
            "terraform_version": new.terraform_version,
            "version_id": event.version_id,
            "previous_version_id": previous_version_id,
            "lock": holder.lock.to_dict(holder.source) if holder else None,
            "principal": event.principal,
            "resources": _changes(diff.resources_added, diff.resources_changed, diff.resources_removed)
            if diff
            else None,
            "outputs": _changes(diff.outputs_added, diff.outputs_changed, diff.outputs_removed) if diff else None,
            "encrypted": new.encrypted,
            "size": after.size,
            "too_large": too_large,
        },
    )


def diffable(after: StateIndex, before: StateIndex | None) -> bool:
    """Whether two versions have resources to compare: an encrypted OpenTofu state has none to show."""
    return not after.header.encrypted and not (before is not None and before.header.encrypted)


def state_deleted(
    *,
    event: ObjectEvent,
    state_key: StateKey,
    last_version_id: str | None,
    last_serial: int | None,
    restore: str | None,
    state_gone: bool,
    holder: LockSession | None = None,
) -> Notification:
    """The `state.deleted` notification for a delete marker or a permanent delete of a state version."""
    workspace_deleted = holder is not None and holder.lock.operation == WORKSPACE_DELETE_OPERATION
    if workspace_deleted and holder is not None:
        what = f"workspace deleted by {holder.lock.who}"
    elif event.change is ObjectChange.DELETE_MARKER_CREATED:
        what = "deleted (delete marker)"
    elif state_gone:
        what = f"deleted: version {event.version_id} permanently removed"
    else:
        what = f"old version {event.version_id} permanently removed; the current state is intact"
    return Notification(
        id=dedupe_id(NotificationType.STATE_DELETED, event.bucket, event.key, event.dedupe_token),
        type=NotificationType.STATE_DELETED,
        severity=Severity.CRITICAL if state_gone and not workspace_deleted else Severity.WARNING,
        occurred_at=event.event_time,
        bucket=event.bucket,
        key=event.key,
        workspace=state_key.workspace,
        summary=f"{state_key.display_name}: {what}",
        details={
            "version_id": event.version_id,
            "last_version_id": last_version_id,
            "last_serial": last_serial,
            "restore": restore,
            "principal": event.principal,
            "lock": holder.lock.to_dict(holder.source) if holder else None,
            "workspace_deleted": workspace_deleted,
        },
    )


def state_restored(
    *, bucket: str, state_key: StateKey, occurred_at: datetime, from_version_id: str, new_version_id: str,
    serial_before: int | None, serial_after: int, caller: str, reason: str,
) -> Notification:  # fmt: skip
    """`state.restored`: the guardian rolled a state back, for `caller`, because of `reason`."""
    before = "deleted" if serial_before is None else f"serial {serial_before}"
    return Notification(
        id=dedupe_id(NotificationType.STATE_RESTORED, bucket, state_key.key, new_version_id),
        type=NotificationType.STATE_RESTORED,
        severity=Severity.WARNING,
        occurred_at=occurred_at,
        bucket=bucket,
        key=state_key.key,
        workspace=state_key.workspace,
        summary=f"{state_key.display_name}: rolled back from {before} to version {from_version_id} "
        f"as serial {serial_after} by {caller}",
        details={
            "from_version_id": from_version_id,
            "new_version_id": new_version_id,
            "serial": {"before": serial_before, "after": serial_after},
            "caller": caller,
            "reason": reason,
        },
    )


def digest_mismatch(
    *,
    bucket: str,
    state_key: StateKey,
    version_id: str,
    calculated: str,
    stored: str,
    occurred_at: datetime,
    repair: str,
) -> Notification:
    """`digest.mismatch`: every Terraform client of this state fails until the digest is repaired."""
    return Notification(
        id=dedupe_id(NotificationType.DIGEST_MISMATCH, bucket, state_key.key, version_id, stored),
        type=NotificationType.DIGEST_MISMATCH,
        severity=Severity.CRITICAL,
        occurred_at=occurred_at,
        bucket=bucket,
        key=state_key.key,
        workspace=state_key.workspace,
        summary=f"{state_key.display_name}: digest mismatch, Terraform will refuse this state",
        details={"calculated": calculated, "stored": stored, "version_id": version_id, "repair": repair},
    )


def lock_acquired(*, lock: LockInfo, source: str, state_key: StateKey, occurred_at: datetime) -> Notification:
    """`lock.acquired`; its id is the lock's, so one lock taken through both mechanisms notifies once."""
    return _about_lock(
        NotificationType.LOCK_ACQUIRED, Severity.INFO, lock, state_key, occurred_at,
        summary=f"locked by {lock.who} ({lock.short_operation}, {lock.client})",
        details={"lock": lock.to_dict(source)},
    )  # fmt: skip


def lock_released(
    *, lock: LockInfo, source: str, state_key: StateKey, occurred_at: datetime, held_for_s: float | None
) -> Notification:
    """`lock.released`, with how long the lock was held (from its `Created`)."""
    held = f" after {_duration(held_for_s)}" if held_for_s is not None else ""
    return _about_lock(
        NotificationType.LOCK_RELEASED, Severity.INFO, lock, state_key, occurred_at,
        summary=f"unlocked by {lock.who}{held} ({lock.short_operation})",
        details={"lock": lock.to_dict(source), "held_for_s": held_for_s},
    )  # fmt: skip


def lock_stale(
    *, lock: LockInfo, source: str, state_key: StateKey, occurred_at: datetime, held_for_s: float,
    evidence: dict[str, Any], release_after: datetime | None, fingerprint: str,
) -> Notification:  # fmt: skip
    """`lock.stale`: a warning that a lock will be released unless it changes; one per lock and bytes."""
    when = f"; it will be released after {rfc3339(release_after)} unless it changes" if release_after else ""
    return _about_lock(
        NotificationType.LOCK_STALE, Severity.WARNING, lock, state_key, occurred_at, fingerprint,
        summary=f"lock by {lock.who} ({lock.short_operation}) held {_duration(held_for_s)}{when}",
        details={
            "lock": lock.to_dict(source),
            "held_for_s": held_for_s,
            "evidence": evidence,
            "release_after": rfc3339(release_after) if release_after else None,
        },
    )  # fmt: skip


def lock_reaped(
    *, lock: LockInfo, source: str, state_key: StateKey, occurred_at: datetime, held_for_s: float,
    evidence: dict[str, Any],
) -> Notification:  # fmt: skip
    """`lock.reaped`: the guardian released a lock whose holder was verified gone."""
    return _about_lock(
        NotificationType.LOCK_REAPED, Severity.WARNING, lock, state_key, occurred_at,
        summary=f"released the stale lock of {lock.who} ({lock.short_operation}) after {_duration(held_for_s)}",
        details={"lock": lock.to_dict(source), "held_for_s": held_for_s, "evidence": evidence},
    )  # fmt: skip


def _about_lock(
    kind: NotificationType, severity: Severity, lock: LockInfo, state_key: StateKey, occurred_at: datetime,
    *id_parts: str, summary: str, details: dict[str, Any],
) -> Notification:  # fmt: skip
    return Notification(
        id=dedupe_id(kind, lock.path, lock.id, *id_parts),
        type=kind,
        severity=severity,
        occurred_at=occurred_at,
        bucket=lock.path.partition("/")[0],
        key=state_key.key,
        workspace=state_key.workspace,
        summary=f"{state_key.display_name}: {summary}",
        details=details,
    )


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    whole = max(0, round(seconds))
    if whole < 120:
        return f"{whole}s"
    if whole < 7200:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def _changes(added: list[str], changed: list[str], removed: list[str]) -> dict[str, Any]:
    lists = {"added": added, "changed": changed, "removed": removed}
    # Each channel trims further to its own size limit (SNS and EventBridge take 256 KB): payload_budget.fit.
    result: dict[str, Any] = {name: names[:MAX_LISTED] for name, names in lists.items()}
    result["counts"] = {name: len(names) for name, names in lists.items()}
    result["truncated"] = any(len(names) > MAX_LISTED for names in lists.values())
    return result


def _state_changed_summary(
    *,
    state_key: StateKey,
    new: StateHeader,
    old: StateHeader | None,
    diff: StateDiff | None,
    lineage_changed: bool,
    size: int,
    holder: LockSession | None,
    over_unreadable: bool,
    too_large: bool,
) -> str:
    name = state_key.display_name
    if old is not None:
        summary = f"{name}: serial {old.serial}→{new.serial}"
    elif over_unreadable:
        summary = f"{name}: written at serial {new.serial} over a version that is not a readable state"
    else:
        summary = f"{name}: created at serial {new.serial}"
    if holder is not None:
        summary += f" by {holder.lock.who} ({holder.lock.short_operation})"
    if lineage_changed:
        summary += " (lineage changed)"
    elif old is not None and new.serial < old.serial:
        summary += " (serial went backwards)"
    if diff is not None:
        counts = (len(diff.resources_added), len(diff.resources_changed), len(diff.resources_removed))
        summary += ": +{} ~{} -{}".format(*counts)
    elif too_large:
        summary += f" (too large to diff, {size} bytes)"
    else:
        summary += f" (encrypted, {size} bytes)"
    return summary


def state_unreadable(
    *,
    event: ObjectEvent,
    state_key: StateKey,
    reason: str,
    size: int | None,
    last_readable_version_id: str | None,
    restore: str | None,
    restore_by_hand: str | None,
    holder: LockSession | None = None,
) -> Notification:
    """`state.unreadable`: an object written at a state key is not a state; every Terraform run of it fails."""
    by = f" by {holder.lock.who} ({holder.lock.short_operation})" if holder else ""
    back = (
        f"; restore version {last_readable_version_id}" if last_readable_version_id else "; nothing readable to restore"
    )
    return Notification(
        id=dedupe_id(NotificationType.STATE_UNREADABLE, event.bucket, event.key, event.dedupe_token),
        type=NotificationType.STATE_UNREADABLE,
        severity=Severity.CRITICAL,
        occurred_at=event.event_time,
        bucket=event.bucket,
        key=event.key,
        workspace=state_key.workspace,
        summary=f"{state_key.display_name}: unreadable state written{by} ({reason}){back}",
        details={
            "reason": reason,
            "size": size,
            "version_id": event.version_id,
            "principal": event.principal,
            "lock": holder.lock.to_dict(holder.source) if holder else None,
            "last_readable_version_id": last_readable_version_id,
            "restore": restore,
            "restore_by_hand": restore_by_hand,
        },
    )


def lock_force_released(
    *, lock: LockInfo | None, lock_id: str, source: list[str], state_key: StateKey, bucket: str,
    occurred_at: datetime, caller: str, reason: str,
) -> Notification:  # fmt: skip
    """`lock.force_released`: a person released a lock by hand through the API; who it was, and why."""
    held_by = f" of {lock.who} ({lock.short_operation})" if lock else ""
    return Notification(
        id=dedupe_id(NotificationType.LOCK_FORCE_RELEASED, bucket, state_key.key, lock_id),
        type=NotificationType.LOCK_FORCE_RELEASED,
        severity=Severity.WARNING,
        occurred_at=occurred_at,
        bucket=bucket,
        key=state_key.key,
        workspace=state_key.workspace,
        summary=f"{state_key.display_name}: lock {lock_id}{held_by} force-released by {caller}",
        details={
            "lock": lock.to_dict(source[0]) if lock else {"id": lock_id},
            "released": source,
            "caller": caller,
            "reason": reason,
        },
    )


def digest_repaired(
    *, bucket: str, state_key: StateKey, version_id: str, stored_before: str | None, calculated: str,
    occurred_at: datetime, caller: str,
) -> Notification:  # fmt: skip
    """`digest.repaired`: the digest was set to the MD5 of the current bytes, by a caller or by the schedule."""
    return Notification(
        id=dedupe_id(NotificationType.DIGEST_REPAIRED, bucket, state_key.key, version_id, calculated),
        type=NotificationType.DIGEST_REPAIRED,
        severity=Severity.WARNING,
        occurred_at=occurred_at,
        bucket=bucket,
        key=state_key.key,
        workspace=state_key.workspace,
        summary=f"{state_key.display_name}: digest repaired for version {version_id} by {caller}",
        details={
            "version_id": version_id,
            "stored_before": stored_before,
            "calculated": calculated,
            "caller": caller,
        },
    )
