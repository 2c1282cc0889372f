"""Terraform's locks: LockInfo as it writes it, and lock sessions (who held which state, from when to when)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from chalicelib.errors import MalformedEventError

_LOCK_INFO_FIELDS = ("ID", "Operation", "Who", "Version", "Created", "Path")
ROLLBACK_OPERATION = "tfstate-guardian-rollback"  # the guardian's own, shown to a blocked `terraform` run
REPAIR_OPERATION = "tfstate-guardian-repair"  # the guardian's lock while it repairs a digest
GUARDIAN_OPERATIONS = frozenset({ROLLBACK_OPERATION, REPAIR_OPERATION})
# Every Operation Terraform 1.0 to 1.11 and OpenTofu write, and the guardian's; anything else is not trusted.
KNOWN_OPERATIONS = frozenset(
    {
        "OperationTypeApply",
        "OperationTypePlan",
        "OperationTypeRefresh",
        "OperationTypeInvalid",
        "init",
        "import",
        "state-push",
        "state-mv",
        "state-rm",
        "state-replace-provider",
        "taint",
        "untaint",
        ROLLBACK_OPERATION,
        REPAIR_OPERATION,
    }
)
WORKSPACE_DELETE_OPERATION = "state-replace-provider"  # sic: what `terraform workspace delete` writes
_SHORT_OPERATION = {
    "OperationTypeApply": "apply",
    "OperationTypePlan": "plan",
    "OperationTypeRefresh": "refresh",
    "OperationTypeInvalid": "unknown",
}
_RFC3339 = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$")
# The `Version` Terraform and OpenTofu write: their own version number and nothing else.
_BARE_VERSION = re.compile(r"^v?\d+\.\d+(\.\d+)?([-+][0-9A-Za-z.-]+)?$")
# Event times and lock item times come from different clocks and roundings.
CLOCK_SLACK = timedelta(seconds=2)


def short_operation(operation: str) -> str:
    """The Operation as people say it: `apply` for `OperationTypeApply`; anything else as it is."""
    return _SHORT_OPERATION.get(operation, operation)


class LockSource:
    """Where a lock was seen."""

    DYNAMODB = "dynamodb"
    LOCKFILE = "lockfile"


@dataclass(frozen=True)
class LockInfo:
    """Terraform's LockInfo, as stored in a lock item's `Info` or in a `.tflock` object."""

    id: str
    operation: str
    who: str
    version: str
    created: str
    path: str

    @classmethod
    def parse(cls, raw: str | bytes) -> LockInfo:
        """Parse the compact JSON Terraform writes; raises `MalformedEventError` on anything else."""
        try:
            data = json.loads(raw)
        except (TypeError, ValueError, RecursionError):  # the decoder recurses once per level of nesting
            raise MalformedEventError("LockInfo is not JSON") from None
        if not isinstance(data, dict):
            raise MalformedEventError("LockInfo is not a JSON object")
        missing = [name for name in _LOCK_INFO_FIELDS if not isinstance(data.get(name), str) or not data[name]]
        if missing:
            raise MalformedEventError(f"LockInfo lacks string fields {', '.join(missing)}")
        if data["Operation"] not in KNOWN_OPERATIONS:
            raise MalformedEventError(f"LockInfo has an unknown Operation {data['Operation'][:40]!r}")
        info = cls(
            id=data["ID"],
            operation=data["Operation"],
            who=data["Who"],
            version=data["Version"],
            created=data["Created"],
            path=data["Path"],
        )
        info.created_at()  # refuse a Created that does not parse
        return info

    def created_at(self) -> datetime:
        """`Created` as a time; Terraform writes RFC3339 with nanoseconds, which Python cannot read as is."""
        match = _RFC3339.match(self.created)
        if not match:
            raise MalformedEventError(f"LockInfo Created {self.created[:40]!r} is not an RFC3339 time")
        seconds, fraction, zone = match.groups()
        micro = (fraction or "0")[:6].ljust(6, "0")
        try:
            moment = datetime.fromisoformat(f"{seconds}.{micro}{'+00:00' if zone == 'Z' else zone}")
        except ValueError:
            raise MalformedEventError(f"LockInfo Created {self.created[:40]!r} is not a valid time") from None
        return moment.astimezone(UTC)

    @property
    def short_operation(self) -> str:
        return short_operation(self.operation)

    @property
    def client(self) -> str:
        """What took the lock, as a person reads it: `Terraform 1.11.4` for the bare version Terraform and OpenTofu
        write, and any other `Version` as it is (the guardian's own is `tfstate-guardian 0.1.0`)."""
        return f"Terraform {self.version}" if _BARE_VERSION.match(self.version) else self.version

    def to_dict(self, source: str) -> dict[str, str]:
        """The `lock` object of the notification contract."""
        return {
            "id": self.id,
            "who": self.who,
            "operation": self.operation,
            "version": self.version,
            "created": self.created,
            "source": source,
        }


@dataclass(frozen=True)
class LockSession:
    """One lock, from when it was seen taken to when it was seen released (AWS clock)."""

    lock: LockInfo
    source: str
    acquired_at: datetime
    released_at: datetime | None = None

    def held_at(self, moment: datetime) -> bool:
        if self.acquired_at - CLOCK_SLACK > moment:
            return False
        return self.released_at is None or self.released_at + CLOCK_SLACK >= moment


@dataclass(frozen=True)
class LockSighting:
    """A lock seen taken, or seen released, at a time of AWS's clock."""

    lock: LockInfo
    source: str
    at: datetime
    released: bool


def holder_at(sessions: list[LockSession], moment: datetime) -> LockSession | None:
    """The session that held the lock at `moment`: the latest taken among those that cover it."""
    covering = [session for session in sessions if session.held_at(moment)]
    return max(covering, key=lambda session: session.acquired_at, default=None)


def split_path(path: str) -> tuple[str, str]:
    """`<bucket>/<key>` into bucket and key."""
    bucket, _, key = path.partition("/")
    return bucket, key
