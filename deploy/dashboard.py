"""The guardian's one CloudWatch dashboard, as plain data: the body `PutDashboard` takes (a JSON object).

A pure function of a stage and its region (no AWS call), shared by `harden` and the Terraform package. One row per
concern: each function's errors and throttles, the lock streams' iterator age and the dead-letter queues' depth,
channel failures per channel, and the guardian's own counts of what went wrong.
"""

from __future__ import annotations

from typing import Any, Final

from chalicelib.observability import METRICS_NAMESPACE, SERVICE
from deploy.alarms import CHANNEL_FAILURES, GUARDIAN_COUNTS, PERIOD_S, channel_names
from deploy.sources import FUNCTIONS, STREAM_HANDLER, dead_letter_queue_names
from deploy.stage_config import StageConfig

WIDTH: Final = 12  # two widgets a row, of the grid's 24 columns
HEIGHT: Final = 6


def dashboard_name(stage: StageConfig) -> str:
    return stage.prefix


def dashboard_body(stage: StageConfig, region: str) -> dict[str, Any]:
    """The dashboard of the stage, its metrics in `region` (the guardian's)."""
    functions = [stage.function_name(handler) for handler in FUNCTIONS]
    widgets = [
        _widget(
            "Errors per function", region, [["AWS/Lambda", "Errors", "FunctionName", name] for name in functions], "Sum"
        ),
        _widget(
            "Throttles per function",
            region,
            [["AWS/Lambda", "Throttles", "FunctionName", name] for name in functions],
            "Sum",
        ),
    ]
    if any(backend.lock_table for backend in stage.backends):
        stream = stage.function_name(STREAM_HANDLER)
        widgets.append(
            _widget(
                "Lock stream iterator age (ms)",
                region,
                [["AWS/Lambda", "IteratorAge", "FunctionName", stream]],
                "Maximum",
            )
        )
    widgets.append(
        _widget(
            "Dead-letter queue depth",
            region,
            [
                ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", queue]
                for queue in dead_letter_queue_names(stage)
            ],
            "Maximum",
        )
    )
    channels = channel_names(stage.backends)
    if channels:
        widgets.append(
            _widget(
                "Channel failures per channel",
                region,
                [[METRICS_NAMESPACE, CHANNEL_FAILURES, "service", SERVICE, "channel", channel] for channel in channels],
                "Sum",
            )
        )
    widgets.append(
        _widget(
            "Digest mismatches, unreadable states, skipped events",
            region,
            [[METRICS_NAMESPACE, metric, "service", SERVICE] for metric, _ in GUARDIAN_COUNTS],
            "Sum",
        )
    )
    for index, widget in enumerate(widgets):
        widget["x"], widget["y"] = (index % 2) * WIDTH, (index // 2) * HEIGHT
    return {"widgets": widgets}


def _widget(title: str, region: str, metrics: list[list[str]], stat: str) -> dict[str, Any]:
    return {
        "type": "metric",
        "width": WIDTH,
        "height": HEIGHT,
        "properties": {
            "title": title,
            "region": region,
            "view": "timeSeries",
            "stacked": False,
            "stat": stat,
            "period": PERIOD_S,
            "metrics": metrics,
        },
    }
