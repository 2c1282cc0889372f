"""`BucketEventRouter`: sends each S3 event of the state bucket to the service it concerns."""

from __future__ import annotations

from chalicelib.domain.s3_events import S3EventBatch
from chalicelib.domain.state_keys import StateKeyFilter, is_lockfile, state_key_of_lockfile
from chalicelib.observability import count, logger
from chalicelib.services.lock_lifecycle import LockLifecycleService
from chalicelib.services.state_changes import StateChangeService


class BucketEventRouter:
    """State keys go to state changes, their `.tflock` objects to the lock lifecycle, the rest nowhere."""

    def __init__(
        self, bucket: str, state_keys: StateKeyFilter, states: StateChangeService, locks: LockLifecycleService
    ) -> None:
        self._bucket = bucket
        self._state_keys = state_keys
        self._states = states
        self._locks = locks

    def handle(self, batch: S3EventBatch) -> None:
        for reason in batch.rejected:
            _skip("malformed S3 event record", reason=reason)
        for event in batch.events:
            if event.bucket != self._bucket:
                _skip("event of another bucket", bucket=event.bucket, key=event.key)
            elif is_lockfile(event.key) and self._state_keys.matches(state_key_of_lockfile(event.key)):
                self._locks.handle_lockfile_event(event)
            elif self._state_keys.matches(event.key):
                self._states.handle_event(event)
            else:
                logger.debug("not a state key", key=event.key)


def _skip(message: str, **keys: object) -> None:
    logger.warning(message, extra=keys)
    count("EventsSkipped")
