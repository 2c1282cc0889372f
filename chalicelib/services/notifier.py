"""`Notifier`: delivers each notification once to every channel; one failing channel never stops the others."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from aws_lambda_powertools.metrics import MetricUnit

from chalicelib.domain.notifications import Notification
from chalicelib.errors import ChannelDeliveryError, GuardianError
from chalicelib.observability import logger, metrics

LEASE_S = 120.0  # a claimed delivery that was neither completed nor released may be retried after this
BACKOFF_S = 0.5


class Channel(Protocol):
    """Somewhere notifications go."""

    name: str

    def send(self, notification: Notification) -> None: ...


class BatchChannel(Channel, Protocol):
    """A channel that takes many notifications per request; it returns the ids it failed to deliver."""

    def send_batch(self, notifications: Sequence[Notification]) -> list[str]: ...


class DeliveryLedger(Protocol):
    """Remembers which notification reached which channel."""

    def claim_deliveries(
        self, notification_ids: list[str], channel: str, *, now: float, lease_s: float
    ) -> set[str]: ...

    def complete_deliveries(self, notification_ids: list[str], channel: str, *, now: float) -> None: ...

    def release_deliveries(self, notification_ids: list[str], channel: str) -> None: ...


class Notifier:
    """Fans notifications out to their channels, exactly once per channel however often it is asked."""

    def __init__(
        self,
        channels: Sequence[Channel],
        ledger: DeliveryLedger,
        *,
        attempts: int = 3,
        routes: Mapping[str, frozenset[str]] | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.channels = list(channels)
        self._ledger = ledger
        self._attempts = attempts
        self._routes = dict(routes or {})
        self._clock = clock
        self._sleep = sleep

    def notify(self, notification: Notification) -> None:
        self.notify_all([notification])

    def notify_all(self, notifications: Sequence[Notification]) -> None:
        """Deliver to every channel what it has not had yet; raise `ChannelDeliveryError` if any still failed.

        What was delivered is recorded, so the retry that the error causes delivers only what is missing.
        """
        failed: list[str] = []
        for channel in self.channels:
            wanted = {n.id: n for n in notifications if self._routed(channel.name, n.type.value)}
            if not wanted:
                continue
            claimed = self._ledger.claim_deliveries(list(wanted), channel.name, now=self._clock(), lease_s=LEASE_S)
            for skipped in wanted.keys() - claimed:
                logger.info("notification already delivered", channel=channel.name, notification_id=skipped)
            todo = [notification for notification_id, notification in wanted.items() if notification_id in claimed]
            if not todo:
                continue
            undelivered = self._send_with_retries(channel, todo)
            delivered = [n.id for n in todo if n.id not in undelivered]
            if delivered:
                self._ledger.complete_deliveries(delivered, channel.name, now=self._clock())
                metrics.add_metric(name="NotificationsDelivered", unit=MetricUnit.Count, value=len(delivered))
            if undelivered:
                self._ledger.release_deliveries(sorted(undelivered), channel.name)
                metrics.add_metric(name="ChannelFailures", unit=MetricUnit.Count, value=len(undelivered))
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
