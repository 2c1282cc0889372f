"""`LockTableChangeService`: reads the lock table's stream, telling locks from digest items."""

from __future__ import annotations

from aws_lambda_powertools.metrics import MetricUnit

from chalicelib.domain.lock_table import ItemKind, LockTableBatch
from chalicelib.observability import logger, metrics


class LockTableChangeService:
    """Sorts each stream record into a lock change or a digest change; never raises on a bad record."""

    def handle(self, batch: LockTableBatch) -> None:
        for reason in batch.rejected:
            logger.warning("lock table record skipped", reason=reason)
            metrics.add_metric(name="StreamRecordsSkipped", unit=MetricUnit.Count, value=1)
        for change in batch.changes:
            if change.kind is ItemKind.DIGEST:
                logger.info(
                    "digest item changed",
                    event_name=change.event_name,
                    state_path=change.state_path,
                    digest_before=change.old_digest,
                    digest_after=change.new_digest,
                )
                metrics.add_metric(name="DigestItemChanges", unit=MetricUnit.Count, value=1)
            else:
                lock = change.new_lock or change.old_lock
                logger.info(
                    "lock item changed",
                    event_name=change.event_name,
                    state_path=change.state_path,
                    lock_id=lock.id if lock else None,
                    who=lock.who if lock else None,
                    operation=lock.operation if lock else None,
                )
                metrics.add_metric(name="LockItemChanges", unit=MetricUnit.Count, value=1)
