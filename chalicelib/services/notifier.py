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


class DeliveryLedger(Protocol):
    """Remembers which notification reached which channel."""

    def claim_delivery(self, notification_id: str, channel: str, *, now: float, lease_s: float) -> bool: ...

    def complete_delivery(self, notification_id: str, channel: str) -> None: ...

    def release_delivery(self, notification_id: str, channel: str) -> None: ...


class Notifier:
    """Fans a notification out to its channels, exactly once per channel however often it is asked."""

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
        """Deliver to every channel not yet delivered to; raise `ChannelDeliveryError` if any still failed.

        Channels that succeeded are recorded, so the retry that the error causes delivers only to the others.
        """
        failed: list[str] = []
        for channel in self.channels:
            if not self._routed(channel.name, notification.type.value):
                continue
            if not self._ledger.claim_delivery(notification.id, channel.name, now=self._clock(), lease_s=LEASE_S):
                logger.info("notification already delivered", channel=channel.name, notification_id=notification.id)
                continue
            if self._send_with_retries(channel, notification):
                self._ledger.complete_delivery(notification.id, channel.name)
                metrics.add_metric(name="NotificationsDelivered", unit=MetricUnit.Count, value=1)
            else:
                self._ledger.release_delivery(notification.id, channel.name)
                failed.append(channel.name)
                metrics.add_metric(name="ChannelFailures", unit=MetricUnit.Count, value=1)
        if failed:
            raise ChannelDeliveryError(f"delivery of {notification.id} failed on {', '.join(failed)}")
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

    def _send_with_retries(self, channel: Channel, notification: Notification) -> bool:
        for attempt in range(1, self._attempts + 1):
            try:
                channel.send(notification)
                return True
            except (GuardianError, OSError) as exc:
                logger.warning(
                    "notification channel failed",
                    channel=channel.name,
                    notification_id=notification.id,
                    attempt=attempt,
                    error=str(exc),
                )
                if attempt < self._attempts:
                    self._sleep(BACKOFF_S * 2 ** (attempt - 1))
        return False
