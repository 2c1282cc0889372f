"""How every API route answers: the one error table, and `Idempotency-Key` on POST."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from typing import Any, Protocol

from chalicelib.errors import GuardianError, InvalidRequestError, http_status

MAX_IDEMPOTENCY_KEY = 200


class RequestLedger(Protocol):
    def begin_request(self, scope: str, key: str, fingerprint: str, now: float) -> dict[str, Any] | None: ...

    def finish_request(self, scope: str, key: str, response: dict[str, Any]) -> None: ...

    def abandon_request(self, scope: str, key: str) -> None: ...


def answer(
    call: Callable[[], dict[str, Any]],
    *,
    method: str,
    path: str,
    idempotency_key: str | None,
    fingerprint_of: Callable[[], Any],
    ledger: RequestLedger,
) -> tuple[int, dict[str, Any]]:
    """The status and JSON body for a route's work; a guardian error never becomes a 500.

    A POST with an `Idempotency-Key` runs once: a retry of the same request gets the first answer, and the same
    key on another request is refused.
    """
    try:
        if method != "POST" or not idempotency_key:
            return 200, call()
        if len(idempotency_key) > MAX_IDEMPOTENCY_KEY:
            raise InvalidRequestError(f"Idempotency-Key must be at most {MAX_IDEMPOTENCY_KEY} characters")
        fingerprint = hashlib.sha256(json.dumps(fingerprint_of(), default=_text).encode()).hexdigest()
        first = ledger.begin_request(path, idempotency_key, fingerprint, time.time())
        if first is not None:
            return 200, first
        try:
            result = call()
        except BaseException:
            ledger.abandon_request(path, idempotency_key)
            raise
        ledger.finish_request(path, idempotency_key, result)
        return 200, result
    except GuardianError as exc:
        status, code = http_status(exc)
        body: dict[str, Any] = {"error": code, "message": str(exc)}
        holder = getattr(exc, "holder", None)
        if holder:
            body["lock"] = holder
        return status, body


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)
