"""The guardian's CloudWatch alarms, as plain data: `PutMetricAlarm` requests, each notifying one SNS topic.

Pure functions of a stage (no AWS call), shared by `harden` and the Terraform package. Every alarm fires on the first
bad period and says so again when it clears (`OKActions`); a period without data is not a breach (a quiet guardian
emits nothing).

The guardian's own metrics (namespace `TfstateGuardian`) are emitted with the dimension set `[service]` and again
with `[service, X]` (X: channel, backend, notification type); alarms use `[service]`, but `ChannelFailures`, which
alarms per channel on `[service, channel]`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from chalicelib.observability import METRICS_NAMESPACE, SERVICE
from chalicelib.settings import Settings
from deploy.sources import FUNCTIONS, STREAM_HANDLER, dead_letter_queue_names
from deploy.stage_config import StageConfig

PERIOD_S: Final = 300
# A stream batch waiting longer than this has been failing or throttled for a while.
ITERATOR_AGE_THRESHOLD_MS: Final = 5 * 60 * 1000
# The guardian's own counts that mean something went wrong, each alarming on the first one in a period.
GUARDIAN_COUNTS: Final = (
    ("DigestMismatches", "a state's digest does not match the lock table's (digest.mismatch)"),
    ("StatesUnreadable", "a state version could not be read or parsed (state.unreadable)"),
    ("EventsSkipped", "an S3 or EventBridge event, or a scheduled invocation's share, was skipped"),
)
CHANNEL_FAILURES: Final = "ChannelFailures"


def alarm_topic_name(stage: StageConfig) -> str:
    """The SNS topic every alarm notifies; `prepare` creates it, the operator subscribes to it."""
    return f"{stage.prefix}-alarms"


def alarm_prefix(stage: StageConfig) -> str:
    """What every alarm name of the stage starts with (the colon keeps `prod` from matching `prod-eu`'s)."""
    return f"{stage.prefix}: "


def channel_names(backends: Iterable[Settings]) -> list[str]:
    """The `name` of every notification channel a backend of the stage delivers to, as `composition.notifier` builds
    them (the names of the channel classes: `sns`, `eventbridge`, `slack`, `teams`, `pagerduty`, `webhook`, `file`,
    `console`)."""
    names: set[str] = set()
    for settings in backends:
        configured = {
            "sns": settings.notify_topic_arn,
            "eventbridge": settings.notify_event_bus,
            "slack": settings.slack_webhook_secret,
            "teams": settings.teams_webhook_secret,
            "pagerduty": settings.pagerduty_routing_key_secret,
            "webhook": settings.webhook_url and settings.webhook_secret,
            "file": settings.notify_file,
            "console": settings.notify_console,
        }
        names.update(name for name, value in configured.items() if value)
    return sorted(names)


def service_dimensions(**more: str) -> list[dict[str, str]]:
    """The dimensions of one of the guardian's own metrics: `[service]`, and more."""
    return [{"Name": "service", "Value": SERVICE}, *({"Name": name, "Value": value} for name, value in more.items())]


def alarm_definitions(stage: StageConfig, topic_arn: str) -> list[dict[str, Any]]:
    """Every alarm of the stage, as `PutMetricAlarm` keyword arguments, sorted by name."""
    prefix = alarm_prefix(stage)
    alarms: list[dict[str, Any]] = []
    for handler in FUNCTIONS:
        function = {"Name": "FunctionName", "Value": stage.function_name(handler)}
        for metric, what in (("Errors", "failed invocations"), ("Throttles", "throttled invocations")):
            alarms.append(
                _alarm(
                    f"{prefix}{handler} {metric.lower()}",
                    f"{handler}: {what}",
                    topic_arn,
                    namespace="AWS/Lambda",
                    metric=metric,
                    dimensions=[function],
                    statistic="Sum",
                    threshold=0,
                )
            )
    if any(backend.lock_table for backend in stage.backends):
        function = {"Name": "FunctionName", "Value": stage.function_name(STREAM_HANDLER)}
        alarms.append(
            _alarm(
                f"{prefix}{STREAM_HANDLER} iterator age",
                f"lock events wait more than {ITERATOR_AGE_THRESHOLD_MS // 60000} minutes in a stream",
                topic_arn,
                namespace="AWS/Lambda",
                metric="IteratorAge",
                dimensions=[function],
                statistic="Maximum",
                threshold=ITERATOR_AGE_THRESHOLD_MS,
            )
        )
    for queue in dead_letter_queue_names(stage):
        alarms.append(
            _alarm(
                f"{prefix}{queue} depth",
                f"events the guardian gave up on wait in {queue}: replay them",
                topic_arn,
                namespace="AWS/SQS",
                metric="ApproximateNumberOfMessagesVisible",
                dimensions=[{"Name": "QueueName", "Value": queue}],
                statistic="Maximum",
                threshold=0,
            )
        )
    for channel in channel_names(stage.backends):
        alarms.append(
            _alarm(
                f"{prefix}{channel} channel failures",
                f"notifications not delivered to the {channel} channel",
                topic_arn,
                namespace=METRICS_NAMESPACE,
                metric=CHANNEL_FAILURES,
                dimensions=service_dimensions(channel=channel),
                statistic="Sum",
                threshold=0,
            )
        )
    for metric, what in GUARDIAN_COUNTS:
        alarms.append(
            _alarm(
                f"{prefix}{metric}",
                what,
                topic_arn,
                namespace=METRICS_NAMESPACE,
                metric=metric,
                dimensions=service_dimensions(),
                statistic="Sum",
                threshold=0,
            )
        )
    return sorted(alarms, key=lambda alarm: str(alarm["AlarmName"]))


def _alarm(name: str, description: str, topic_arn: str, *, namespace: str, metric: str,
           dimensions: list[dict[str, str]], statistic: str, threshold: float) -> dict[str, Any]:  # fmt: skip
    return {
        "AlarmName": name,
        "AlarmDescription": description,
        "ActionsEnabled": True,
        "AlarmActions": [topic_arn],
        "OKActions": [topic_arn],
        "Namespace": namespace,
        "MetricName": metric,
        "Dimensions": dimensions,
        "Statistic": statistic,
        "Period": PERIOD_S,
        "EvaluationPeriods": 1,
        "DatapointsToAlarm": 1,
        "Threshold": float(threshold),
        "ComparisonOperator": "GreaterThanThreshold",
        "TreatMissingData": "notBreaching",
    }


def alarm_differences(found: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """The settings in which an existing alarm (as `DescribeAlarms` returns it) differs from `wanted`."""

    def normal(name: str, value: Any) -> Any:
        if name == "Dimensions":
            return sorted((item["Name"], item["Value"]) for item in value or [])
        if name == "Threshold":
            return float(value) if value is not None else None
        if isinstance(value, list):
            return sorted(value)
        return value

    return [name for name, value in wanted.items() if normal(name, found.get(name)) != normal(name, value)]
