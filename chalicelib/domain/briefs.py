"""What a person needs from a notification, the same for every channel people read: what happened, what changed,
who held the lock, and what to do.

A `Brief` is built from the contract's dict (as a channel has fitted it to its budget) and holds text from outside
as it is: each channel escapes it for where it lands (Slack mrkdwn, an Adaptive Card's text runs, plain text). It
never holds a value of a state: only what the contract carries, which is names and addresses.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from chalicelib.domain.locks import short_operation
from chalicelib.domain.notifications import backend_of
from chalicelib.domain.page_links import state_page_url
from chalicelib.domain.remedies import Remedy, remedy_for

# Addresses a chat message lists per added / changed / removed: what a person reads before acting. The counts are
# always exact, with how many more there are; the state's page and the contract have the rest.
TOP_ADDRESSES = 10
SIGNS = (("added", "+"), ("changed", "~"), ("removed", "-"))
_KINDS = (("resources", "Resources"), ("outputs", "Outputs"))
_TITLES = {
    "state.changed": "State written",
    "state.deleted": "State deleted",
    "state.restored": "State rolled back",
    "state.unreadable": "Unreadable state written",
    "digest.mismatch": "Digest mismatch",
    "digest.repaired": "Digest repaired",
    "lock.acquired": "Lock taken",
    "lock.released": "Lock released",
    "lock.stale": "Stale lock",
    "lock.reaped": "Stale lock released",
    "lock.force_released": "Lock force-released",
}
_HOLDER_TYPES = frozenset({"state.changed", "state.deleted", "state.unreadable"})


@dataclass(frozen=True)
class Changes:
    """One kind of change (resources or outputs): exact counts and the first names of each list."""

    label: str
    counts: dict[str, int]
    top: dict[str, list[str]]

    def more(self, name: str) -> int:
        """How many `name` (added, changed, removed) are not listed."""
        return max(self.counts.get(name, 0) - len(self.top.get(name, [])), 0)

    @property
    def tally(self) -> str:
        """`+2 ~1 -0`, with thousands separators."""
        return " ".join(f"{sign}{self.counts.get(name, 0):,}" for name, sign in SIGNS)


@dataclass(frozen=True)
class Fact:
    """A label of ours and a value from outside; `code` when the value is a key, an address or an id."""

    label: str
    value: str
    code: bool = False


@dataclass(frozen=True)
class Brief:
    """A notification as a person reads it."""

    id: str
    type: str
    severity: str
    title: str
    summary: str
    occurred_at: str
    facts: list[Fact] = field(default_factory=list)
    changes: list[Changes] = field(default_factory=list)
    remedy: Remedy | None = None
    page_url: str | None = None

    @property
    def heading(self) -> str:
        """`Critical: State deleted`: severity and what happened, in our own words only."""
        return f"{self.severity.capitalize()}: {self.title}"


def brief(data: Mapping[str, Any], *, page_url: str | None = None, top: int = TOP_ADDRESSES) -> Brief:
    """The brief of a notification (the contract's dict); `page_url` is the status page's base URL, if any."""
    given = data.get("details")
    details: Mapping[str, Any] = given if isinstance(given, Mapping) else {}
    kind = str(data["type"])
    return Brief(
        id=str(data["id"]),
        type=kind,
        severity=str(data["severity"]),
        title=_TITLES.get(kind, kind),
        summary=str(data["summary"]),
        occurred_at=str(data["occurred_at"]),
        facts=facts(data, details),
        changes=changes_of(details, top),
        remedy=remedy_for(data),
        page_url=state_page_url(page_url, str(data["key"]), backend_of(data)) if page_url else None,
    )


def changes_of(details: Mapping[str, Any], top: int = TOP_ADDRESSES) -> list[Changes]:
    """The resources and outputs a notification lists, each with exact counts and its first `top` names per list."""
    found = []
    for kind, label in _KINDS:
        lists = details.get(kind)
        if not isinstance(lists, Mapping):
            continue
        listed = {name: [str(item) for item in lists.get(name) or []] for name, _ in SIGNS}
        given = lists.get("counts")
        exact: Mapping[str, Any] = given if isinstance(given, Mapping) else {}
        counts = {name: int(exact.get(name, len(listed[name]))) for name, _ in SIGNS}
        if any(counts.values()):
            found.append(Changes(label, counts, {name: names[:top] for name, names in listed.items()}))
    return found


def facts(data: Mapping[str, Any], details: Mapping[str, Any]) -> list[Fact]:
    """The labelled facts worth reading at a glance: which backend and where, which serial, who held the lock, who
    wrote it, why."""
    kind = str(data["type"])
    backend = backend_of(data)
    found = [Fact("Backend", backend, code=True)] if backend else []
    found.append(Fact("State", f"s3://{data['bucket']}/{data['key']}", code=True))
    if data.get("workspace") not in (None, "default"):
        found.append(Fact("Workspace", str(data["workspace"]), code=True))
    found += _serial(details)
    lock = details.get("lock")
    if isinstance(lock, Mapping) and lock.get("who"):
        label = "Lock holder" if kind in _HOLDER_TYPES else "Lock"
        found.append(Fact(label, _holder(lock)))
    elif kind in _HOLDER_TYPES:
        found.append(Fact("Lock holder", "none seen"))
    for name, label in (("principal", "Written by"), ("caller", "By"), ("reason", "Reason")):
        if isinstance(details.get(name), str) and details[name]:
            found.append(Fact(label, details[name]))
    for name, label in (
        ("version_id", "Removed version" if kind == "state.deleted" else "Version"),
        ("from_version_id", "Restored from"),
        ("new_version_id", "New version"),
        ("last_version_id", "Last version"),
        ("last_readable_version_id", "Last readable version"),
    ):
        if isinstance(details.get(name), str) and details[name]:
            found.append(Fact(label, details[name], code=True))
    if isinstance(details.get("stored"), str) and isinstance(details.get("calculated"), str):
        found.append(Fact("Digest", f"stored {details['stored']}, the bytes' MD5 {details['calculated']}", code=True))
    return found


def _serial(details: Mapping[str, Any]) -> list[Fact]:
    serial = details.get("serial")
    if isinstance(serial, Mapping) and serial.get("after") is not None:
        before = serial.get("before")
        return [Fact("Serial", f"{before} → {serial['after']}" if before is not None else f"new, {serial['after']}")]
    if isinstance(details.get("last_serial"), int):
        return [Fact("Last serial", str(details["last_serial"]))]
    return []


def _holder(lock: Mapping[str, Any]) -> str:
    """`ci@runner-7 (apply, lock 0b7a5f1e-…)`."""
    parts = [short_operation(str(lock["operation"]))] if lock.get("operation") else []
    if lock.get("id"):
        parts.append(f"lock {lock['id']}")
    return f"{lock['who']} ({', '.join(parts)})" if parts else str(lock["who"])
