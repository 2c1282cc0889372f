"""Invokes the app's Chalice handlers locally the way Lambda does: raw event, context, retries."""

from __future__ import annotations

import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, TextIO

from chalice.app import DynamoDBEventConfig, S3EventConfig, ScheduledEventConfig

from chalicelib.services.notifier import LAMBDA_TIMEOUT_S


@dataclass
class LocalLambdaContext:
    """The parts of Lambda's context object that handlers and Powertools read."""

    function_name: str
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = ""
    log_group_name: str = ""
    log_stream_name: str = ""
    timeout_s: float = LAMBDA_TIMEOUT_S  # as deployed: every function's `lambda_timeout`
    started: float = field(default_factory=time.monotonic)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.started + self.timeout_s - time.monotonic()) * 1000))


Handler = Callable[[dict[str, Any], Any], Any]


@dataclass(frozen=True)
class AppHandlers:
    """The event handlers an app declares, found the way Chalice deploys them."""

    s3: list[tuple[str, Handler]]
    dynamodb: list[tuple[str, Handler]]
    scheduled: list[tuple[str, Handler]]

    @classmethod
    def of(cls, module: ModuleType) -> AppHandlers:
        app = module.app
        s3, dynamodb, scheduled = [], [], []
        for source in app.event_sources:
            handler = getattr(module, source.name)
            if isinstance(source, S3EventConfig):
                s3.append((source.name, handler))
            elif isinstance(source, DynamoDBEventConfig):
                dynamodb.append((source.name, handler))
            elif isinstance(source, ScheduledEventConfig):
                scheduled.append((source.name, handler))
        return cls(s3=s3, dynamodb=dynamodb, scheduled=scheduled)


def invoke(name: str, handler: Handler, event: dict[str, Any], errors: TextIO) -> bool:
    """Run one invocation; True if it succeeded. A failure is written to `errors` with its traceback."""
    try:
        handler(event, LocalLambdaContext(function_name=f"tfstate-guardian-local-{name}"))
    except Exception:  # noqa: BLE001 - a failed invocation is reported and retried, as Lambda would
        errors.write(f"handler {name} failed:\n{traceback.format_exc()}\n")
        errors.flush()
        return False
    return True
