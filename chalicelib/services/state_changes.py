"""`StateChangeService`: turns S3 events on the state bucket into `state.changed` notifications."""

from __future__ import annotations

from aws_lambda_powertools.metrics import MetricUnit

from chalicelib.adapters.s3_state_bucket import S3StateBucket
from chalicelib.domain import notifications
from chalicelib.domain.s3_events import ObjectChange, ObjectEvent, S3EventBatch
from chalicelib.domain.state import StateHeader
from chalicelib.domain.state_keys import StateKey, is_lockfile
from chalicelib.errors import NotAStateError, ObjectNotFoundError
from chalicelib.observability import logger, metrics
from chalicelib.services.notifier import Notifier


class StateChangeService:
    """Reads each newly written state version and its predecessor, and notifies."""

    def __init__(self, bucket: S3StateBucket, notifier: Notifier, workspace_key_prefixes: tuple[str, ...]) -> None:
        self._bucket = bucket
        self._notifier = notifier
        self._workspace_key_prefixes = workspace_key_prefixes

    def handle(self, batch: S3EventBatch) -> None:
        """Handle every record; skip (with a warning and a metric) what cannot be a state write."""
        for reason in batch.rejected:
            _skip("malformed S3 event record", reason=reason)
        for event in batch.events:
            self._handle_event(event)

    def _handle_event(self, event: ObjectEvent) -> None:
        if event.bucket != self._bucket.name:
            _skip("event of another bucket", bucket=event.bucket, key=event.key)
            return
        if is_lockfile(event.key):
            logger.debug("lockfile event", key=event.key, event_name=event.event_name)
            return
        if event.change is not ObjectChange.CREATED:
            logger.debug("object removal", key=event.key, event_name=event.event_name)
            return
        try:
            after = self._bucket.read_header(event.key, event.version_id)
        except NotAStateError as exc:
            _skip("object is not a state", key=event.key, version_id=event.version_id, reason=str(exc))
            return
        except ObjectNotFoundError:
            # Deleted again before we read it: its removal has an event of its own.
            _skip("state version no longer exists", key=event.key, version_id=event.version_id)
            return
        previous_version_id, before = self._predecessor(event)
        notification = notifications.state_changed(
            event=event,
            state_key=StateKey.parse(event.key, self._workspace_key_prefixes),
            after=after,
            before=before,
            previous_version_id=previous_version_id,
        )
        self._notifier.notify(notification)

    def _predecessor(self, event: ObjectEvent) -> tuple[str | None, StateHeader | None]:
        if event.version_id is None:
            return None, None
        previous_version_id = self._bucket.previous_version(event.key, event.version_id)
        if previous_version_id is None:
            return None, None
        try:
            return previous_version_id, self._bucket.read_header(event.key, previous_version_id)
        except (NotAStateError, ObjectNotFoundError) as exc:
            logger.warning("previous version is not a readable state", key=event.key, reason=str(exc))
            return previous_version_id, None


def _skip(message: str, **keys: object) -> None:
    logger.warning(message, extra=keys)
    metrics.add_metric(name="EventsSkipped", unit=MetricUnit.Count, value=1)
