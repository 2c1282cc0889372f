"""`LockReaper`: finds every held lock, judges it, warns about stale ones, and releases only the verified."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from chalicelib.adapters.dynamo_lock_table import DynamoLockTable
from chalicelib.adapters.guardian_table import GuardianTable
from chalicelib.adapters.s3_state_bucket import S3StateBucket
from chalicelib.domain import notifications
from chalicelib.domain.access import Scope
from chalicelib.domain.locks import LockInfo, LockSource
from chalicelib.domain.staleness import HeldLock, Judgement, ReaperPolicy, StaleRecord, Verdict, judge
from chalicelib.domain.state_keys import StateKey, state_key_of_lockfile
from chalicelib.errors import ChannelDeliveryError, GuardianError, MalformedEventError
from chalicelib.observability import count, logger
from chalicelib.services.notifier import Notifier


class LivenessCheck(Protocol):
    """More evidence that a lock's holder still runs, e.g. asking a CI system about the job named in `Who`.

    Return True if the holder is alive, False if it is known to be gone, None if this check cannot tell.
    Raising counts as alive: the reaper never releases a lock on a failed check. "Gone" only shortens the wait
    between the warning and the release (`GUARDIAN_REAP_GONE_GRACE_S`); it never skips either. The checks are asked
    only about a lock that is past its TTL with no other sign of life.
    """

    name: str

    def is_alive(self, lock: LockInfo) -> bool | None: ...


@dataclass(frozen=True)
class ReapOutcome:
    """One lock's verdict and what was done about it."""

    judgement: Judgement
    action: str  # none, warned, released, would-release, changed, over-limit

    def to_dict(self) -> dict[str, Any]:
        held = self.judgement.held
        return {
            "key": held.state_key,
            "source": held.source,
            "lock": held.lock.to_dict(held.source) if held.lock else None,
            "verdict": self.judgement.verdict.value,
            "action": self.action,
            "evidence": self.judgement.evidence,
        }


class LockReaper:
    """One run: every lock in the table and every `.tflock` in the bucket, each released at most once."""

    def __init__(
        self,
        lock_table: DynamoLockTable,
        bucket: S3StateBucket,
        table: GuardianTable,
        notifier: Notifier,
        *,
        policy: ReaperPolicy,
        liveness_checks: Sequence[LivenessCheck] = (),
        workspace_key_prefixes: tuple[str, ...],
    ) -> None:
        self._lock_table = lock_table
        self._bucket = bucket
        self._table = table
        self._notifier = notifier
        self.policy = policy
        self._liveness_checks = list(liveness_checks)
        self._workspace_key_prefixes = workspace_key_prefixes

    def run(self, now: datetime, *, dry_run: bool | None = None, scope: Scope | None = None) -> list[ReapOutcome]:
        """Judge every held lock and act on the verdicts; `scope` (an API caller's) limits which locks are seen.

        The operator's `GUARDIAN_REAP_DRY_RUN` is a ceiling: no request lifts it.
        """
        dry = self.policy.dry_run or (dry_run is not None and dry_run)
        if not dry and scope is None:
            self._deliver_pending()
        outcomes: list[ReapOutcome] = []
        releases = 0
        for held in self._held_locks():
            if scope is not None and not scope.admits(held.state_key):
                continue  # never judged, acted on or mentioned
            outcome = self._handle(held, now, dry, releases_left=self.policy.max_releases - releases)
            releases += outcome.action == "released"
            outcomes.append(outcome)
        return outcomes

    def _held_locks(self) -> list[HeldLock]:
        # A lock table may serve several buckets: only the states of this bucket can be checked for life.
        ours = f"{self._bucket.name}/"
        held = [
            HeldLock(state_path=lock_id, source=LockSource.DYNAMODB, raw=info, lock=_parse(info))
            for lock_id, info in self._lock_table.held_locks()
            if lock_id.startswith(ours)
        ]
        for key, version_id, body in self._bucket.lockfiles():
            state_path = f"{self._bucket.name}/{state_key_of_lockfile(key)}"
            held.append(
                HeldLock(
                    state_path=state_path,
                    source=LockSource.LOCKFILE,
                    raw=body,
                    lock=_parse(body),
                    version_id=version_id,
                )
            )
        return held

    def _handle(self, held: HeldLock, now: datetime, dry: bool, releases_left: int) -> ReapOutcome:
        newest = self._bucket.newest_version(held.state_key)
        record = self._table.stale_record(held)
        last_state_write = newest.last_modified if newest else None
        judgement = judge(held, now=now, policy=self.policy, last_state_write=last_state_write, record=record)
        if held.lock is not None and judgement.verdict in _ASK_THE_CHECKS and self._liveness_checks:
            alive, gone_by = self._liveness(held.lock)
            judgement = judge(
                held,
                now=now,
                policy=self.policy,
                last_state_write=last_state_write,
                record=record,
                alive_by_check=alive,
                gone_by=gone_by,
            )
        verdict = judgement.verdict
        logger.info("lock judged", state_path=held.state_path, source=held.source, verdict=verdict.value)
        if verdict is Verdict.UNREADABLE:
            count("LocksUnreadable")
            return ReapOutcome(judgement, "none")
        if verdict in (Verdict.FRESH, Verdict.ALIVE, Verdict.PROTECTED):
            if record is not None and not dry:
                self._table.forget_stale_record(held)
            return ReapOutcome(judgement, "none")
        if verdict is Verdict.STALE:
            return ReapOutcome(judgement, "would-warn" if dry else self._warn(held, judgement, now))
        if verdict is Verdict.WAITING:
            return ReapOutcome(judgement, "none")
        if dry:
            return ReapOutcome(judgement, "would-release")
        if releases_left <= 0:
            return ReapOutcome(judgement, "over-limit")
        return ReapOutcome(judgement, self._release(held, judgement, now))

    def _liveness(self, lock: LockInfo) -> tuple[bool, tuple[str, ...]]:
        """Whether any check says the holder runs (a failed check does), else the names of those that say gone."""
        gone_by = []
        for check in self._liveness_checks:
            try:
                answer = check.is_alive(lock)
            except (GuardianError, OSError) as exc:
                logger.warning("liveness check failed: keeping the lock", check=check.name, error=str(exc))
                return True, ()
            if answer:
                return True, ()
            if answer is False:
                gone_by.append(check.name)
        return False, tuple(gone_by)

    def _warn(self, held: HeldLock, judgement: Judgement, now: datetime) -> str:
        assert held.lock is not None and judgement.age is not None
        # Recorded before the warning goes out, marked warned after: a failed delivery never counts as warned.
        record = StaleRecord(held.lock.id, held.fingerprint, now, warned=False)
        self._table.put_stale_record(held, record)
        self._notifier.notify(
            notifications.lock_stale(
                lock=held.lock,
                source=held.source,
                state_key=self._state_key(held),
                occurred_at=now,
                held_for_s=round(judgement.age.total_seconds()),
                evidence=judgement.evidence,
                release_after=now + self.policy.grace_for(judgement.gone_by),
                fingerprint=held.fingerprint,
            )
        )
        self._table.put_stale_record(held, StaleRecord(record.lock_id, record.fingerprint, now, warned=True))
        count("LocksStale")
        return "warned"

    def _release(self, held: HeldLock, judgement: Judgement, now: datetime) -> str:
        assert held.lock is not None and judgement.age is not None
        if held.source == LockSource.DYNAMODB:
            released = self._lock_table.delete_lock_if_unchanged(held.state_path, held.raw)
        else:
            assert held.version_id is not None
            released = self._bucket.delete_lockfile_version(held.state_key + ".tflock", held.version_id)
        self._table.forget_stale_record(held)
        if not released:
            logger.info("lock changed before its release: left alone", state_path=held.state_path)
            return "changed"
        logger.warning("stale lock released", state_path=held.state_path, lock_id=held.lock.id, source=held.source)
        reaped = notifications.lock_reaped(
            lock=held.lock,
            source=held.source,
            state_key=self._state_key(held),
            occurred_at=now,
            held_for_s=round(judgement.age.total_seconds()),
            evidence=judgement.evidence,
        )
        # Kept until every channel has it: the next run will not find the lock again to tell of its release.
        self._table.put_pending_notification(reaped)
        self._notifier.notify(reaped)
        self._table.clear_pending_notification(reaped.id)
        return "released"

    def _deliver_pending(self) -> None:
        """What an earlier run released but could not tell every channel; the ledger skips who has it.

        One that still cannot be delivered stays for the next run, and never stops this run's judging.
        """
        for notification in self._table.pending_notifications():
            if notification.bucket != self._bucket.name:
                continue  # another backend's: its own reaper tells its own channels
            try:
                self._notifier.notify(notification)
            except ChannelDeliveryError as exc:
                logger.warning(
                    "pending notification still undelivered", notification_id=notification.id, error=str(exc)
                )
                continue
            self._table.clear_pending_notification(notification.id)

    def _state_key(self, held: HeldLock) -> StateKey:
        return StateKey.parse(held.state_key, self._workspace_key_prefixes)


# Only a lock that nothing else keeps is worth a question to EC2 or GitHub.
_ASK_THE_CHECKS = frozenset({Verdict.STALE, Verdict.WAITING, Verdict.RELEASE})


def _parse(raw: str) -> LockInfo | None:
    try:
        return LockInfo.parse(raw)
    except MalformedEventError:
        return None
