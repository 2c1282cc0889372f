"""`Notifier`: each notification into the audit trail, then once to every channel, none stopped by another."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Protocol

from chalicelib import invocation
from chalicelib.domain.deliveries import DeliveryClaims
from chalicelib.domain.history import AuditEvent, audit_event_of
from chalicelib.domain.notifications import Notification, NotificationType
from chalicelib.errors import ChannelDeliveryError, GuardianError
from chalicelib.observability import count, logger

# A delivery claim's lease against the longest invocation that can hold one and the retries that can see it:
# - every function's timeout, `lambda_timeout` in .chalice/config.json, is LAMBDA_TIMEOUT_S (45 s): a lease outlives
#   the invocation that took it, so it never runs out while its holder may still be delivering;
# - a lease lasts LEASE_S (55 s), less than the shortest retry interval that could see it: Lambda retries a failed
#   asynchronous (S3) invocation 1 minute after the failure, and the schedules run every 1 and 5 minutes. A stream
#   batch is retried at once: that retry waits for the lease within its own time, or fails for a later retry.
LAMBDA_TIMEOUT_S = 45
LEASE_S = 55.0
# How often a delivery claimed by another invocation is looked at again while waiting for it.
LEASE_POLL_S = 2.0
BACKOFF_S = 0.5
# Recording a delivery the channel accepted is tried this many times (each with botocore's own retries): one left
# unrecorded is delivered again by a later retry of its event, if one comes after its lease.
RECORD_ATTEMPTS = 3
# Notifications counted per backend as they are sent, each type by a metric an alarm watches.
_COUNTED = {
    NotificationType.DIGEST_MISMATCH: "DigestMismatches",
    NotificationType.STATE_UNREADABLE: "StatesUnreadable",
    NotificationType.LOCK_REAPED: "LocksReaped",
}


class Channel(Protocol):
    """Somewhere notifications go. A channel may also say which notifications it takes at all, with
    `accepts(notification) -> bool` (PagerDuty takes only what pages or resolves): the others are neither sent
    there nor claimed in its ledger."""

    name: str

    def send(self, notification: Notification) -> None: ...


class BatchChannel(Channel, Protocol):
    """A channel that takes many notifications per request; it returns the ids it failed to deliver."""

    def send_batch(self, notifications: Sequence[Notification]) -> list[str]: ...


class DeliveryLedger(Protocol):
    """Remembers which notification reached which channel."""

    def claim_deliveries(
        self, notification_ids: list[str], channel: str, *, now: float, lease_s: float
    ) -> DeliveryClaims: ...

    def complete_deliveries(self, notification_ids: list[str], channel: str, *, now: float) -> None: ...

    def release_deliveries(self, notification_ids: list[str], channel: str) -> None: ...


class Journal(Protocol):
    """Keeps every notification as an entry of the audit trail."""

    def record(self, events: list[AuditEvent]) -> None: ...


class Notifier:
    """Fans notifications out to their channels, exactly once per channel however often it is asked."""

    def __init__(
        self,
        channels: Sequence[Channel],
        ledger: DeliveryLedger,
        *,
        attempts: int = 3,
        routes: Mapping[str, frozenset[str]] | None = None,
        journal: Journal | None = None,
        backend: str | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.channels = list(channels)
        self._ledger = ledger
        self._journal = journal
        self._attempts = attempts
        self._routes = dict(routes or {})
        self._backend = backend
        self._clock = clock
        self._sleep = sleep

    def notify(self, notification: Notification) -> None:
        self.notify_all([notification])

    def notify_all(self, notifications: Sequence[Notification]) -> None:
        """Deliver to every channel what it has not had yet; raise `ChannelDeliveryError` if any still failed.

        What was delivered is recorded, so the retry that the error causes delivers only what is missing. A
        notification another invocation has claimed is waited for while this invocation has time (that one either
        delivers it or its lease runs out and it is ours); when time runs short, it fails for a later retry.
        """
        if self._backend is not None:
            notifications = [n if n.backend else replace(n, backend=self._backend) for n in notifications]
        if self._journal is not None and notifications:
            # Recorded before any channel has it: a notification delivered is always in the audit trail.
            self._journal.record([audit_event_of(n) for n in notifications])
        for counted in (n for n in notifications if n.type in _COUNTED):  # before delivery, which may fail
            count(_COUNTED[counted.type], backend=counted.backend)
        failed: list[str] = []
        for channel in self.channels:
            wanted = {n.id: n for n in notifications if self._routed(channel.name, n.type.value) and _takes(channel, n)}
            if wanted and not self._deliver(channel, wanted):
                failed.append(channel.name)
        if failed:
            raise ChannelDeliveryError(f"delivery failed on {', '.join(failed)}")
        for notification in notifications:
            logger.info(
                "notification sent",
                notification_id=notification.id,
                notification_type=notification.type.value,
                severity=notification.severity.value,
                bucket=notification.bucket,
                key=notification.key,
            )

    def _deliver(self, channel: Channel, wanted: dict[str, Notification]) -> bool:
        """Claim, send and record; True once every wanted notification has reached the channel."""
        pending = list(wanted)
        while True:
            claims = self._ledger.claim_deliveries(pending, channel.name, now=self._clock(), lease_s=LEASE_S)
            for skipped in claims.delivered:
                logger.info("notification already delivered", channel=channel.name, notification_id=skipped)
            todo = [wanted[notification_id] for notification_id in pending if notification_id in claims.claimed]
            undelivered = self._send_with_retries(channel, todo) if todo else set()
            delivered = [n.id for n in todo if n.id not in undelivered]
            if delivered:
                for kind, sent in Counter(n.type.value for n in todo if n.id not in undelivered).items():
                    count("NotificationsDelivered", sent, channel=channel.name, type=kind)
                self._record_delivered(channel, delivered)
            if undelivered:
                self._ledger.release_deliveries(sorted(undelivered), channel.name)
                count("ChannelFailures", len(undelivered), channel=channel.name)
                return False
            if not claims.leased:
                return True
            pending = sorted(claims.leased)
            wait = min(max(claims.leased.values()) - self._clock(), LEASE_POLL_S)
            if wait > invocation.time_to_wait():
                logger.warning(
                    "notification claimed by another invocation: left for a retry",
                    channel=channel.name,
                    notification_ids=pending,
                    lease_ends_in_s=round(max(claims.leased.values()) - self._clock(), 1),
                )
                count("DeliveriesLeasedElsewhere", len(pending))
                return False
            self._sleep(max(wait, 0.0))

    def _record_delivered(self, channel: Channel, delivered: list[str]) -> None:
        """Record deliveries the channel accepted. Failing to record them does not fail the invocation: they were
        delivered, and a retry could only deliver them again; their claims' leases keep a redelivery of the same
        event from sending them again before the leases run out."""
        for attempt in range(1, RECORD_ATTEMPTS + 1):
            try:
                self._ledger.complete_deliveries(delivered, channel.name, now=self._clock())
                return
            except GuardianError as exc:
                if attempt == RECORD_ATTEMPTS:
                    logger.warning("deliveries made but not recorded", channel=channel.name, error=str(exc))
                    count("DeliveriesNotRecorded", len(delivered))
                    return
                self._sleep(BACKOFF_S * 2 ** (attempt - 1))

    def _routed(self, channel: str, kind: str) -> bool:
        """A channel without a route gets everything; one with a route gets what it names, or `*`."""
        wanted = self._routes.get(channel)
        return wanted is None or "*" in wanted or kind in wanted

    def _send_with_retries(self, channel: Channel, notifications: list[Notification]) -> set[str]:
        """Send, then send again what failed, with backoff; the ids still undelivered."""
        pending = notifications
        for attempt in range(1, self._attempts + 1):
            failed = set(self._send_once(channel, pending))
            if not failed:
                return set()
            logger.warning("notification channel failed", channel=channel.name, attempt=attempt, failed=len(failed))
            pending = [n for n in pending if n.id in failed]
            if attempt < self._attempts:
                self._sleep(BACKOFF_S * 2 ** (attempt - 1))
        return {n.id for n in pending}

    def _send_once(self, channel: Channel, notifications: list[Notification]) -> list[str]:
        send_batch = getattr(channel, "send_batch", None)
        if send_batch is not None and len(notifications) > 1:
            try:
                return list(send_batch(notifications))
            except (GuardianError, OSError) as exc:
                logger.warning("notification batch failed", channel=channel.name, error=str(exc))
                return [n.id for n in notifications]
        failed = []
        for notification in notifications:
            try:
                channel.send(notification)
            except (GuardianError, OSError) as exc:
                logger.warning(
                    "notification not delivered", channel=channel.name, notification_id=notification.id, error=str(exc)
                )
                failed.append(notification.id)
        return failed


def _takes(channel: Channel, notification: Notification) -> bool:
    accepts: Callable[[Notification], bool] | None = getattr(channel, "accepts", None)
    return accepts is None or accepts(notification)
