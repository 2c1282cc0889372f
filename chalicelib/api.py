"""How every API route answers: the caller's authorization first, the one error table, `Idempotency-Key` on POST."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from typing import Any, Protocol

from chalicelib.errors import GuardianError, InvalidRequestError, http_status
from chalicelib.observability import logger
from chalicelib.services.notifier import LAMBDA_TIMEOUT_S

MAX_IDEMPOTENCY_KEY = 200
# A request killed mid-way leaves its key pending: a retry may take it over once the request cannot still be running.
REQUEST_LEASE_S = LAMBDA_TIMEOUT_S + 10


class RequestLedger(Protocol):
    def begin_request(
        self, scope: str, key: str, fingerprint: str, now: float, lease_s: float
    ) -> dict[str, Any] | None: ...

    def finish_request(self, scope: str, key: str, response: dict[str, Any]) -> None: ...

    def abandon_request(self, scope: str, key: str) -> None: ...


def answer(
    call: Callable[[], dict[str, Any]],
    *,
    authorize: Callable[[], None],
    method: str,
    path: str,
    caller: str,
    idempotency_key: str | None,
    fingerprint_of: Callable[[], Any],
    ledger: RequestLedger,
) -> tuple[int, dict[str, Any]]:
    """The status and JSON body for a route's work; a guardian error never becomes a 500.

    `authorize` runs before anything else, a replayed answer included. A POST with an `Idempotency-Key` runs once
    per caller: a retry of the same request gets the first answer, and the same key on another request is refused.
    """
    try:
        authorize()
        if method != "POST" or not idempotency_key:
            return 200, call()
        if len(idempotency_key) > MAX_IDEMPOTENCY_KEY:
            raise InvalidRequestError(f"Idempotency-Key must be at most {MAX_IDEMPOTENCY_KEY} characters")
        fingerprint = hashlib.sha256(json.dumps(fingerprint_of(), default=_text).encode()).hexdigest()
        scope = f"{path}#{caller}"  # one caller's key never answers another's request
        first = ledger.begin_request(scope, idempotency_key, fingerprint, time.time(), REQUEST_LEASE_S)
        if first is not None:
            return 200, first
        try:
            result = call()
        except BaseException:
            _abandon(ledger, scope, idempotency_key)
            raise
        try:
            ledger.finish_request(scope, idempotency_key, result)
        except GuardianError as exc:  # the work is done: a failure to remember its answer must not hide it
            logger.warning("answer of an idempotent request not kept", path=path, error=str(exc))
        return 200, result
    except GuardianError as exc:
        status, code = http_status(exc)
        body: dict[str, Any] = {"error": code, "message": str(exc)}
        holder = getattr(exc, "holder", None)
        if holder:
            body["lock"] = holder
        rule = getattr(exc, "rule", None)
        if rule:
            body["rule"] = rule
        return status, body


def _abandon(ledger: RequestLedger, scope: str, key: str) -> None:
    try:
        ledger.abandon_request(scope, key)
    except GuardianError as exc:  # its lease runs out by itself; the request's own error is the answer
        logger.warning("idempotency key not released", error=str(exc))


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)
