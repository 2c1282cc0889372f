"""`Notifier`: delivers each notification to every configured channel, one failure not stopping the rest."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from aws_lambda_powertools.metrics import MetricUnit

from chalicelib.domain.notifications import Notification
from chalicelib.errors import ChannelDeliveryError, GuardianError
from chalicelib.observability import logger, metrics


class Channel(Protocol):
    """Somewhere notifications go."""

    name: str

    def send(self, notification: Notification) -> None: ...


class Notifier:
    """Fans a notification out to its channels."""

    def __init__(self, channels: Sequence[Channel]) -> None:
        self.channels = list(channels)

    def notify(self, notification: Notification) -> None:
        """Send to every channel; raise `ChannelDeliveryError` after trying them all if any failed."""
        failed: list[str] = []
        for channel in self.channels:
            try:
                channel.send(notification)
            except (GuardianError, OSError) as exc:
                failed.append(channel.name)
                logger.warning(
                    "notification channel failed",
                    channel=channel.name,
                    notification_id=notification.id,
                    notification_type=notification.type.value,
                    error=str(exc),
                )
                metrics.add_metric(name="ChannelFailures", unit=MetricUnit.Count, value=1)
        if failed:
            raise ChannelDeliveryError(f"delivery failed on {', '.join(failed)}")
        logger.info(
            "notification sent",
            notification_id=notification.id,
            notification_type=notification.type.value,
            severity=notification.severity.value,
            bucket=notification.bucket,
            key=notification.key,
        )
        metrics.add_metric(name="NotificationsSent", unit=MetricUnit.Count, value=1)
