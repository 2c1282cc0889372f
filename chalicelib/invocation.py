"""The running invocation's deadline: how long work may still wait before Lambda stops the function."""

from __future__ import annotations

import time
from contextvars import ContextVar

# Left for the work after a wait (delivering, recording, answering) and for Lambda's own shutdown.
MARGIN_S = 5.0

_deadline: ContextVar[float | None] = ContextVar("guardian_deadline", default=None)


def begin(remaining_ms: int | None) -> None:
    """Note the remaining time Lambda gives this invocation (its context's `get_remaining_time_in_millis()`)."""
    _deadline.set(None if remaining_ms is None else time.monotonic() + remaining_ms / 1000)


def end() -> None:
    _deadline.set(None)


def time_to_wait() -> float:
    """Seconds this invocation may still spend waiting; 0 outside an invocation, where nobody knows the limit."""
    deadline = _deadline.get()
    if deadline is None:
        return 0.0
    return max(0.0, deadline - time.monotonic() - MARGIN_S)
