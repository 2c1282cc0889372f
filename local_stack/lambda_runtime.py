"""Invokes the app's Chalice handlers locally the way Lambda does: raw event, context, retries."""

from __future__ import annotations

import time
import traceback
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, TextIO

from chalice.app import ScheduledEventConfig

from chalicelib.services.fan_out import share_event
from chalicelib.services.notifier import LAMBDA_TIMEOUT_S

FUNCTION_PREFIX = "tfstate-guardian-local-"  # as Chalice names a stage's functions: <app>-<stage>-<handler>


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
S3_HANDLER = "on_state_object_event"  # S3 notifications and EventBridge's S3 events
STREAM_HANDLER = "on_lock_table_change"


@dataclass(frozen=True)
class AppHandlers:
    """The event handlers an app declares, found the way Chalice deploys them."""

    s3: list[tuple[str, Handler]]
    dynamodb: list[tuple[str, Handler]]
    scheduled: list[tuple[str, Handler]]

    @classmethod
    def of(cls, module: ModuleType) -> AppHandlers:
        """The schedules from the app's event sources; the S3 and stream handlers by name (`harden` subscribes them)."""
        app = module.app
        scheduled = [
            (source.name, getattr(module, source.name))
            for source in app.event_sources
            if isinstance(source, ScheduledEventConfig)
        ]
        functions = {function.name: getattr(module, function.name) for function in app.pure_lambda_functions}
        s3 = [(name, functions[name]) for name in (S3_HANDLER,) if name in functions]
        dynamodb = [(name, functions[name]) for name in (STREAM_HANDLER,) if name in functions]
        return cls(s3=s3, dynamodb=dynamodb, scheduled=scheduled)


def invoke(name: str, handler: Handler, event: dict[str, Any], errors: TextIO) -> bool:
    """Run one invocation; True if it succeeded. A failure is written to `errors` with its traceback."""
    try:
        handler(event, LocalLambdaContext(function_name=f"{FUNCTION_PREFIX}{name}"))
    except Exception:  # noqa: BLE001 - a failed invocation is reported and retried, as Lambda would
        errors.write(f"handler {name} failed:\n{traceback.format_exc()}\n")
        errors.flush()
        return False
    return True


class LocalFanOut:
    """A scheduled function's invocation per batch of backends, run here at once (Lambda queues them)."""

    def __init__(self, handlers: AppHandlers, errors: TextIO) -> None:
        self._scheduled = dict(handlers.scheduled)
        self._errors = errors
        self.function = ""

    def dispatch(self, event: Mapping[str, Any], batches: list[list[str]]) -> None:
        name = self.function.removeprefix(FUNCTION_PREFIX)
        handler = self._scheduled[name]
        for names in batches:
            invoke(name, handler, share_event(event, names), self._errors)
