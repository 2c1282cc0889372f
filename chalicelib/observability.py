"""The one Powertools Logger and Metrics of the guardian, attached to every handler by middleware."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics

SERVICE = "tfstate-guardian"
METRICS_NAMESPACE = "TfstateGuardian"

logger = Logger(service=SERVICE)
metrics = Metrics(namespace=METRICS_NAMESPACE, service=SERVICE)
