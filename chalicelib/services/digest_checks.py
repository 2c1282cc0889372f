"""`DigestCheckService`: notices when a state's bytes and its `-md5` digest item disagree, and stay so."""

from __future__ import annotations

import json
import shlex
from datetime import datetime, timedelta

from chalicelib.adapters.dynamo_lock_table import DynamoLockTable
from chalicelib.adapters.guardian_table import GuardianTable
from chalicelib.adapters.s3_state_bucket import S3StateBucket
from chalicelib.domain import notifications
from chalicelib.domain.digests import DigestIntent, DigestSuspect, digest_matches
from chalicelib.domain.lock_table import DIGEST_SUFFIX
from chalicelib.domain.locks import split_path
from chalicelib.domain.state_keys import StateKey
from chalicelib.errors import ChannelDeliveryError, NotAStateError, ObjectNotFoundError
from chalicelib.observability import count, logger
from chalicelib.services.notifier import Notifier

SCHEDULE = "schedule"  # the caller named when the digest check itself repairs a digest


class DigestCheckService:
    """Checks each write at once, and looks again after a grace period before it alarms."""

    def __init__(
        self,
        bucket: S3StateBucket,
        lock_table: DynamoLockTable,
        table: GuardianTable,
        notifier: Notifier,
        *,
        grace: timedelta,
        workspace_key_prefixes: tuple[str, ...],
    ) -> None:
        self._bucket = bucket
        self._lock_table = lock_table
        self._table = table
        self._notifier = notifier
        self._grace = grace
        self._workspace_key_prefixes = workspace_key_prefixes

    def stored_digest(self, key: str) -> str | None:
        """The digest Terraform stored for a state of this bucket; None when there is no digest item."""
        return self._lock_table.digest_of(f"{self._bucket.name}/{key}")

    def check_write(
        self, key: str, version_id: str | None, calculated: str, now: datetime, *, stored: str | None
    ) -> None:
        """Compare a freshly written state with its digest (`stored`, read while the state was); a mismatch is
        only remembered for now.

        Terraform writes the digest just after the object, so a mismatch seen here may be gone a moment later.
        """
        path = f"{self._bucket.name}/{key}"
        if digest_matches(stored, calculated):
            return
        logger.info("digest does not match yet", key=key, version_id=version_id)
        self._table.put_digest_suspect(DigestSuspect(state_path=path, version_id=version_id or "", first_seen=now))

    def verify(self, now: datetime) -> int:
        """Finish the digests of interrupted writes, then look again at every suspect past the grace period and
        notify those still mismatched. Returns how many."""
        for intent in self._table.digest_intents(self._bucket.name):
            if intent.due(now, self._grace):
                self._finish(intent)
        alarms = 0
        for suspect in self._table.digest_suspects(self._bucket.name):
            if suspect.due(now, self._grace):
                alarms += self._verify(suspect, now)
        return alarms

    def _verify(self, suspect: DigestSuspect, now: datetime) -> int:
        bucket, key = split_path(suspect.state_path)
        newest = self._bucket.newest_version(key) if bucket == self._bucket.name else None
        if newest is None or not newest.is_current:
            self._table.clear_digest_suspect(suspect)  # deleted meanwhile: `state.deleted` tells of that
            return 0
        try:
            calculated = self._bucket.md5_of(key, newest.version_id)
        except (NotAStateError, ObjectNotFoundError) as exc:
            logger.warning("digest check could not read the state", key=key, reason=str(exc))
            self._table.clear_digest_suspect(suspect)
            return 0
        stored = self._lock_table.digest_of(suspect.state_path)
        mismatched = stored is not None and not digest_matches(stored, calculated)
        if mismatched and stored is not None:
            # Notify before forgetting: if delivery fails, the suspect stays for the next run.
            self._notifier.notify(
                notifications.digest_mismatch(
                    bucket=bucket,
                    state_key=StateKey.parse(key, self._workspace_key_prefixes),
                    version_id=newest.version_id,
                    calculated=calculated,
                    stored=stored,
                    occurred_at=now,
                    repair=self._repair_command(suspect.state_path, calculated),
                )
            )
        self._table.clear_digest_suspect(suspect)
        return int(mismatched)

    def _finish(self, intent: DigestIntent) -> None:
        """Write the digest an interrupted writer meant to, if the current bytes are the ones it put."""
        bucket, key = split_path(intent.state_path)
        newest = self._bucket.newest_version(key) if bucket == self._bucket.name else None
        if newest is not None and newest.is_current:
            try:
                calculated = self._bucket.md5_of(key, newest.version_id)
            except (NotAStateError, ObjectNotFoundError):
                calculated = None
            stored = self._lock_table.digest_of(intent.state_path)
            # Only the bytes that writer put, and only over the digest read here: Terraform's own digest wins.
            if (
                calculated == intent.digest
                and stored is not None
                and not digest_matches(stored, calculated)
                and self._lock_table.put_digest_if(intent.state_path, calculated, expected=stored)
            ):
                logger.warning("digest of an interrupted write completed", key=key, version_id=newest.version_id)
                count("DigestsCompleted")
                repaired = notifications.digest_repaired(
                    bucket=bucket, state_key=StateKey.parse(key, self._workspace_key_prefixes),
                    version_id=newest.version_id, stored_before=stored, calculated=calculated,
                    occurred_at=intent.recorded_at, caller=SCHEDULE,
                )  # fmt: skip
                # Kept until every channel has it: the digest is right now, so no later run would tell of it.
                self._table.put_pending_notification(repaired)
                try:
                    self._notifier.notify(repaired)
                    self._table.clear_pending_notification(repaired.id)
                except ChannelDeliveryError as exc:
                    logger.warning("digest repair not notified yet", key=key, error=str(exc))
        self._table.clear_digest_intent(intent)

    def _repair_command(self, state_path: str, calculated: str) -> str:
        item = json.dumps({"LockID": {"S": state_path + DIGEST_SUFFIX}, "Digest": {"S": calculated}})
        return f"aws dynamodb put-item --table-name {shlex.quote(self._lock_table.name)} --item {shlex.quote(item)}"
