"""`BackendEvents`: each S3 event and each lock table record goes to the backend of its bucket, or is skipped."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from chalicelib.domain.lock_table import LockTableBatch, parse_lock_table_batch, table_of
from chalicelib.domain.locks import split_path
from chalicelib.domain.s3_events import S3EventBatch
from chalicelib.observability import count, logger
from chalicelib.services.bucket_events import BucketEventRouter
from chalicelib.services.lock_lifecycle import LockLifecycleService

BucketRouterOf = Callable[[str], BucketEventRouter | None]
LockServiceOf = Callable[[str, str], LockLifecycleService | None]


class BackendEvents:
    """A bucket names its backend (bucket names are unique across AWS); a lock's `LockID` names its bucket, so a lock
    table several buckets share serves each of their backends. A lock of a bucket no backend watches goes to the
    backend that uses its table, when only one does (the table is that backend's, as with one backend)."""

    def __init__(self, bucket_router_of: BucketRouterOf, lock_service_of: LockServiceOf) -> None:
        self._bucket_router_of = bucket_router_of
        self._lock_service_of = lock_service_of

    def handle_objects(self, batch: S3EventBatch) -> None:
        for reason in batch.rejected:
            _skip("malformed S3 event record", reason=reason)
        by_bucket: dict[str, S3EventBatch] = {}
        for event in batch.events:
            by_bucket.setdefault(event.bucket, S3EventBatch(events=[], rejected=[])).events.append(event)
        for bucket, events in by_bucket.items():
            router = self._bucket_router_of(bucket)
            if router is None:
                _skip("event of a bucket no backend watches", bucket=bucket, records=len(events.events))
            else:
                router.handle(events)

    def handle_lock_records(self, event: Mapping[str, Any]) -> None:
        """A stream batch (all of one table, as Lambda delivers them), each record to the backend of its bucket."""
        records = event.get("Records")
        if not isinstance(records, list) or not records:
            _skip("stream event has no Records list", metric="RecordsSkipped")
            return
        by_table: dict[str, list[Any]] = {}
        for record in records:
            arn = record.get("eventSourceARN") if isinstance(record, dict) else None
            by_table.setdefault(table_of(str(arn)) if arn else "", []).append(record)
        for table, table_records in by_table.items():
            self._handle_table(table, parse_lock_table_batch({"Records": table_records}, table or None))

    def _handle_table(self, table: str, batch: LockTableBatch) -> None:
        for reason in batch.rejected:
            _skip("lock table record skipped", metric="RecordsSkipped", reason=reason)
        by_bucket: dict[str, LockTableBatch] = {}
        for change in batch.changes:
            bucket = split_path(change.state_path)[0]
            by_bucket.setdefault(bucket, LockTableBatch(changes=[], rejected=[])).changes.append(change)
        for bucket, changes in by_bucket.items():
            service = self._lock_service_of(bucket, table)
            if service is None:
                _skip("lock of a bucket no backend of this table watches", metric="RecordsSkipped", bucket=bucket,
                      table=table, records=len(changes.changes))  # fmt: skip
            else:
                service.handle_stream(changes)


def _skip(message: str, *, metric: str = "EventsSkipped", **keys: object) -> None:
    logger.warning(message, extra=keys)
    count(metric)
