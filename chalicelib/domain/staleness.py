"""Whether a held lock may be released: every condition must hold, and silence alone is never enough.

Terraform has no heartbeat and never re-checks its lock before writing, so releasing a live lock lets a second
writer corrupt the state. A lock is released only when it is older than its TTL, shows no proof of life, was
judged stale with the same bytes on an earlier run at least a grace period ago, and a warning went out then.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum
from fnmatch import fnmatchcase

from chalicelib.domain.locks import GUARDIAN_OPERATIONS, LockInfo


class Verdict(Enum):
    """What the reaper decided about one lock."""

    UNREADABLE = "unreadable"  # not a LockInfo, or its Path disagrees with where it was found: never released
    PROTECTED = "protected"  # its key is never released automatically
    FRESH = "fresh"  # younger than its TTL
    ALIVE = "alive"  # proof of life: its holder wrote the state recently, or a liveness check says so
    STALE = "stale"  # judged stale for the first time (or its bytes changed): warn, look again later
    WAITING = "waiting"  # judged stale before, but the grace period has not passed yet
    RELEASE = "release"  # every condition holds


@dataclass(frozen=True)
class HeldLock:
    """A lock as found: its parsed LockInfo, the exact bytes it was read from, and where."""

    state_path: str  # `<bucket>/<key>` of the state it locks
    source: str  # dynamodb or lockfile
    raw: str  # the exact Info attribute, or the exact .tflock body
    lock: LockInfo | None  # None when `raw` is not a valid LockInfo
    version_id: str | None = None  # the .tflock object version that was read

    @property
    def fingerprint(self) -> str:
        """Identifies the exact bytes judged: any change to them starts the judgement again."""
        return hashlib.sha256(self.raw.encode()).hexdigest()

    @property
    def state_key(self) -> str:
        return self.state_path.partition("/")[2]


@dataclass(frozen=True)
class StaleRecord:
    """What an earlier run decided about a lock: judged stale at `first_judged_at`, warned or not."""

    lock_id: str
    fingerprint: str
    first_judged_at: datetime
    warned: bool


@dataclass(frozen=True)
class ReaperPolicy:
    """All the reaper's settings."""

    ttl: timedelta = timedelta(hours=2)
    ttl_by_operation: dict[str, timedelta] = field(default_factory=dict)
    ttl_by_key: tuple[tuple[str, timedelta], ...] = ()  # (glob pattern, ttl); the first match wins
    never_release: tuple[str, ...] = ()  # glob patterns of state keys
    grace: timedelta = timedelta(minutes=15)
    gone_grace: timedelta | None = None  # the wait when a liveness check proves the holder gone; never longer
    quiet_window: timedelta = timedelta(hours=1)
    max_releases: int = 5
    dry_run: bool = False

    def ttl_for(self, held: HeldLock, lock: LockInfo) -> timedelta:
        if lock.operation in GUARDIAN_OPERATIONS:  # the guardian's own lock lives no longer than its Lambda
            return self.ttl_by_operation.get(lock.operation, GUARDIAN_LOCK_TTL)
        for pattern, ttl in self.ttl_by_key:
            if fnmatchcase(held.state_key, pattern):
                return ttl
        return self.ttl_by_operation.get(lock.operation, self.ttl)

    def protects(self, held: HeldLock) -> bool:
        return any(fnmatchcase(held.state_key, pattern) for pattern in self.never_release)

    def grace_for(self, gone_by: tuple[str, ...]) -> timedelta:
        """The wait between the warning and the release: shorter only when a check proved the holder gone."""
        if gone_by and self.gone_grace is not None:
            return min(self.grace, self.gone_grace)
        return self.grace


@dataclass(frozen=True)
class Judgement:
    """A verdict, with the evidence for it in words a person can check."""

    held: HeldLock
    verdict: Verdict
    evidence: dict[str, object]
    age: timedelta | None = None
    gone_by: tuple[str, ...] = ()  # the liveness checks that proved its holder gone


def judge(
    held: HeldLock,
    *,
    now: datetime,
    policy: ReaperPolicy,
    last_state_write: datetime | None,
    record: StaleRecord | None,
    alive_by_check: bool = False,
    gone_by: tuple[str, ...] = (),
) -> Judgement:
    """Judge one lock. `last_state_write` is the newest write of its state; `record` what an earlier run found;
    `alive_by_check` what the liveness checks say (a check that fails counts as alive); `gone_by` the checks that
    proved its holder gone, which shortens the grace period (`ReaperPolicy.gone_grace`) and nothing else."""
    lock = held.lock
    if lock is None or lock.path != held.state_path:
        return Judgement(held, Verdict.UNREADABLE, {"reason": "not a LockInfo for this state"})
    age = now - lock.created_at()
    ttl = policy.ttl_for(held, lock)
    evidence: dict[str, object] = {"age_s": round(age.total_seconds()), "ttl_s": round(ttl.total_seconds())}
    if policy.protects(held):
        return Judgement(held, Verdict.PROTECTED, {**evidence, "reason": "key is never released automatically"}, age)
    if age <= ttl:
        return Judgement(held, Verdict.FRESH, evidence, age)
    # A rollback's own write is no sign that it still runs: a Lambda stopped after the write leaves its lock behind.
    guardians_own = lock.operation in GUARDIAN_OPERATIONS
    if not guardians_own and last_state_write is not None and last_state_write >= lock.created_at() - CLOCK_SKEW:
        since_write = now - last_state_write
        evidence["last_state_write_s_ago"] = round(since_write.total_seconds())
        if since_write <= policy.quiet_window:
            return Judgement(held, Verdict.ALIVE, {**evidence, "reason": "its holder wrote the state recently"}, age)
    if alive_by_check:
        return Judgement(held, Verdict.ALIVE, {**evidence, "reason": "a liveness check says its holder runs"}, age)
    if gone_by:
        evidence["gone_by"] = list(gone_by)
    grace = policy.grace_for(gone_by)
    # Only a warning that went out on an earlier run, about these very bytes, can lead to a release.
    if record is None or record.lock_id != lock.id or record.fingerprint != held.fingerprint or not record.warned:
        reason = "its holder is gone" if gone_by else "older than its TTL with no sign of life"
        return Judgement(held, Verdict.STALE, {**evidence, "reason": reason}, age, gone_by)
    judged_ago = now - record.first_judged_at
    evidence["judged_stale_s_ago"] = round(judged_ago.total_seconds())
    evidence["grace_s"] = round(grace.total_seconds())
    if judged_ago < grace:
        return Judgement(held, Verdict.WAITING, evidence, age, gone_by)
    return Judgement(held, Verdict.RELEASE, {**evidence, "reason": "stale, warned, unchanged since"}, age, gone_by)


# The lock's Created comes from the client's clock, the write time from S3's.
CLOCK_SKEW = timedelta(minutes=5)
# A rollback runs inside one Lambda invocation, which AWS stops after 15 minutes at most.
GUARDIAN_LOCK_TTL = timedelta(minutes=15)
