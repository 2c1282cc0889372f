"""The one Powertools Logger and Metrics of the guardian, attached to every handler by middleware."""

from __future__ import annotations

import json
import sys

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.functions import is_metrics_disabled
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import AmazonCloudWatchEMFProvider

SERVICE = "tfstate-guardian"
METRICS_NAMESPACE = "TfstateGuardian"

logger = Logger(service=SERVICE)
metrics = Metrics(namespace=METRICS_NAMESPACE, service=SERVICE)


def count(name: str, value: float = 1, **dimensions: str | None) -> None:
    """Count `name` under `[service]` and, given dimensions, also under `[service, *dimensions]`.

    `metrics` puts one dimension set on everything it flushes, so a count with dimensions goes out at once as an EMF
    record of its own that carries both sets: the service-wide figure, and the one an alarm per channel, backend or
    notification type watches. One without dimensions joins `metrics`, which the middleware flushes. A dimension
    given as None or empty is left out (its alarm cannot see the count; the service-wide one still can).
    """
    named = {dimension: str(given) for dimension, given in dimensions.items() if given}
    if not named:
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
        return
    if is_metrics_disabled():
        return
    record = AmazonCloudWatchEMFProvider(
        namespace=METRICS_NAMESPACE, service=SERVICE, metric_set={}, dimension_set={}, metadata_set={}
    )
    record.add_metric(name=name, unit=MetricUnit.Count, value=value)
    record.add_dimensions(service=SERVICE, **named)
    emit(record.serialize_metric_set())


def emit(record: object) -> None:
    """Write one EMF record where Lambda sends it to CloudWatch (stdout, one line), as Powertools writes its own."""
    sys.stdout.write(json.dumps(record, separators=(",", ":")) + "\n")
