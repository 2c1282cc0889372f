"""What to do about a notification: the exact commands that restore or repair what it reports.

A remedy is given three ways, each exact for this state and this version: the `tfguardian` command (it previews
and asks before it changes anything), the REST call that command makes (IAM-signed, to the API's URL), and, where
the notification carries it, the same by hand with the AWS CLI or Terraform (`details.restore`, `restore_by_hand`,
`repair`). Keys and version ids are quoted for a POSIX shell, and percent-encoded in a query string.

| type | remedy |
|---|---|
| `state.deleted` (the state is gone, or its workspace was deleted) | roll back to `last_version_id` |
| `state.unreadable` | roll back to `last_readable_version_id` |
| `digest.mismatch` | set the digest to the MD5 of the current bytes |
| `lock.stale` | release the lock, if its ID still matches |
| `state.changed` that is a warning or critical | roll back to `previous_version_id`, if the write was a mistake |
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote, urlencode

from chalicelib.domain.notifications import backend_of


@dataclass(frozen=True)
class Remedy:
    """One way out of what a notification reports, as a sentence and as commands to copy."""

    what: str  # what the commands do, in one sentence
    command: str  # the `tfguardian` command
    api_call: str  # the REST call: method, path with its query, and JSON body if any
    by_hand: str | None = None  # the same without the guardian, when the notification says how


def remedy_for(data: Mapping[str, Any]) -> Remedy | None:
    """The remedy for a notification (the contract's dict), or None when there is nothing to restore or repair.
    Its commands name the notification's backend, which a guardian of several backends needs to find the state."""
    build = _REMEDIES.get(str(data.get("type")))
    details = data.get("details")
    remedy = build(data, details) if build is not None and isinstance(details, Mapping) else None
    backend = backend_of(data)
    return in_backend(remedy, backend) if remedy is not None and backend else remedy


def in_backend(remedy: Remedy, backend: str) -> Remedy:
    """`remedy` with its `tfguardian` command and its REST call naming `backend` (`--backend`, `backend=`)."""
    method, _, rest = remedy.api_call.partition(" ")
    path, space, body = rest.partition(" ")
    path += ("&" if "?" in path else "?") + urlencode({"backend": backend}, quote_via=quote)
    return replace(
        remedy,
        command=f"{remedy.command} --backend {shlex.quote(backend)}",
        api_call=f"{method} {path}{space}{body}",
    )


def rollback_remedy(
    key: str, version_id: str, *, what: str, reason: str, allow_lineage_change: bool = False, by_hand: str | None = None
) -> Remedy:
    """Roll the state at `key` back to `version_id`: a new serial, under Terraform's locks, with its digest."""
    flag = " --allow-lineage-change" if allow_lineage_change else ""
    body: dict[str, Any] = {"key": key, "version_id": version_id, "reason": reason}
    if allow_lineage_change:
        body["allow_lineage_change"] = True
    return Remedy(
        what=what,
        command=f"tfguardian rollback {shlex.quote(key)} --version-id {shlex.quote(version_id)}"
        f" --reason {shlex.quote(reason)}{flag}",
        api_call=f"POST /rollback {json.dumps(body, ensure_ascii=False)}",
        by_hand=by_hand,
    )


def _deleted(data: Mapping[str, Any], details: Mapping[str, Any]) -> Remedy | None:
    version_id = details.get("last_version_id")
    gone = data.get("severity") == "critical" or details.get("workspace_deleted") is True
    if not isinstance(version_id, str) or not version_id or not gone:
        return None  # an old version was removed and the current state is intact: nothing to restore
    serial = details.get("last_serial")
    at = f" (serial {serial})" if isinstance(serial, int) else ""
    return rollback_remedy(
        data["key"],
        version_id,
        what=f"Restore the last version {version_id}{at} as the current state, under the state's lock, "
        "with its digest.",
        reason="restore the deleted state",
        by_hand=_text(details.get("restore")),
    )


def _unreadable(data: Mapping[str, Any], details: Mapping[str, Any]) -> Remedy | None:
    version_id = details.get("last_readable_version_id")
    if not isinstance(version_id, str) or not version_id:
        return None
    return rollback_remedy(
        data["key"],
        version_id,
        what=f"Restore the last readable version {version_id} as the current state, under the state's lock, "
        "with its digest.",
        reason="restore the last readable state",
        by_hand=_text(details.get("restore_by_hand")),
    )


def _mismatch(data: Mapping[str, Any], details: Mapping[str, Any]) -> Remedy:
    key = data["key"]
    return Remedy(
        what="If the current bytes are the state you want, set the digest to their MD5, under the state's lock "
        "(if they are not, roll back to an earlier version instead).",
        command=f"tfguardian repair-digest {shlex.quote(key)}",
        api_call=f"POST /states/digest?{urlencode({'key': key}, quote_via=quote)}",
        by_hand=_text(details.get("repair")),
    )


def _stale(data: Mapping[str, Any], details: Mapping[str, Any]) -> Remedy | None:
    lock = details.get("lock")
    lock_id = lock.get("id") if isinstance(lock, Mapping) else None
    if not isinstance(lock_id, str) or not lock_id:
        return None
    key, reason = data["key"], "stale lock"
    query = urlencode({"key": key, "lock_id": lock_id, "reason": reason}, quote_via=quote)
    return Remedy(
        what="If its holder is gone, release the lock now rather than wait for the reaper (only while the lock "
        "ID still matches).",
        command=f"tfguardian unlock {shlex.quote(key)} {shlex.quote(lock_id)} --reason {shlex.quote(reason)}",
        api_call=f"DELETE /locks?{query}",
        by_hand=f"terraform force-unlock {shlex.quote(lock_id)}",
    )


def _changed(data: Mapping[str, Any], details: Mapping[str, Any]) -> Remedy | None:
    version_id = details.get("previous_version_id")
    if data.get("severity") == "info" or not isinstance(version_id, str) or not version_id:
        return None
    lineage = details.get("lineage")
    lineage_changed = isinstance(lineage, Mapping) and lineage.get("changed") is True
    return rollback_remedy(
        data["key"],
        version_id,
        what=f"If this write was a mistake, roll back to the version before it ({version_id}), as a new serial "
        "under the state's lock.",
        reason="undo a bad write",
        allow_lineage_change=lineage_changed,
    )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


_REMEDIES: dict[str, Callable[[Mapping[str, Any], Mapping[str, Any]], Remedy | None]] = {
    "state.deleted": _deleted,
    "state.unreadable": _unreadable,
    "digest.mismatch": _mismatch,
    "lock.stale": _stale,
    "state.changed": _changed,
}
