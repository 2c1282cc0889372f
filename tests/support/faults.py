"""Faults in the guardian's own AWS clients: throttling, 5xx, dropped connections, delays, and a killed Lambda.

`inject_faults(container, Fault(...), ...)` hooks botocore's `before-send` event of the container's clients, so
a faulty call never reaches the emulator and a delayed one does, late. Everything above the wire (botocore's
retries, the adapters' error translation, the services, the Lambda-like retries of the local stack) runs as it
would against AWS. The clients of the tests and of the local event sources are left alone.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any, cast
from unittest import mock

import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import EndpointConnectionError
from botocore.retries.standard import ExponentialBackoff

from chalicelib.composition import Container

# The kinds of fault, as AWS answers them.
THROTTLE = "throttle"  # 400 ThrottlingException (S3: 503 SlowDown)
SERVER_ERROR = "5xx"  # 500 InternalError / InternalServerError / InternalFailure
CONNECTION = "connection"  # the connection fails before an answer: botocore's EndpointConnectionError
DELAY = "delay"  # the call goes through, `delay_s` late

# botocore's service ids (hyphenized), as in `before-send.<service>.<Operation>`.
_PROTOCOL = {"s3": "rest-xml", "dynamodb": "json", "eventbridge": "json", "sns": "query"}


class LambdaKilled(BaseException):
    """The Lambda running the guardian is gone: no `except Exception`, and no later AWS call, gets past it."""


@dataclass(frozen=True)
class Fault:
    """Which calls fail, and how: the first `first` matching calls, else each with probability `rate`."""

    service: str  # s3, dynamodb, sns, eventbridge
    operation: str = "*"  # e.g. PutObject; * for every operation of the service
    kind: str = THROTTLE
    first: int | None = None
    rate: float = 1.0
    delay_s: float = 0.2
    body_contains: bytes | None = None  # only requests whose body holds these bytes, e.g. b"-md5"

    def matches(self, service: str, operation: str, body: bytes) -> bool:
        if self.service != service or self.operation not in ("*", operation):
            return False
        return self.body_contains is None or self.body_contains in body


class FaultInjector:
    """Decides, call by call, whether a fault applies; remembers what it did."""

    def __init__(self, faults: tuple[Fault, ...], seed: int) -> None:
        self._faults = faults
        self._random = random.Random(seed)
        self._seen: Counter[Fault] = Counter()
        self._lock = threading.Lock()
        self.active = True
        self.killed = False
        self.injected: list[tuple[str, str, str]] = []  # (service, operation, kind)
        self.calls: Counter[tuple[str, str]] = Counter()  # every call that reached the hook

    def stop(self) -> None:
        """The outage is over: every later call goes through untouched."""
        self.active = False

    def kill(self) -> None:
        """The Lambda is killed: every later call of its clients raises `LambdaKilled`."""
        self.killed = True

    def before_send(self, request: Any, event_name: str, **kwargs: Any) -> AWSResponse | None:
        _, service, operation = event_name.split(".", 2)
        if self.killed:
            raise LambdaKilled(f"{service}.{operation} after the Lambda was killed")
        with self._lock:
            self.calls[(service, operation)] += 1
            fault = self._choose(service, operation, _body(request)) if self.active else None
            if fault is not None:
                self.injected.append((service, operation, fault.kind))
        if fault is None:
            return None
        if fault.kind == DELAY:
            time.sleep(fault.delay_s)
            return None
        if fault.kind == CONNECTION:
            raise EndpointConnectionError(endpoint_url=request.url)
        return _error_response(request.url, service, fault.kind)

    def _choose(self, service: str, operation: str, body: bytes) -> Fault | None:
        for fault in self._faults:
            if not fault.matches(service, operation, body):
                continue
            self._seen[fault] += 1
            if fault.first is not None:
                if self._seen[fault] <= fault.first:
                    return fault
            elif self._random.random() < fault.rate:
                return fault
        return None

    def count(self, service: str, operation: str = "*", kind: str | None = None) -> int:
        """How many faults were injected into matching calls."""
        return sum(
            1 for s, o, k in self.injected if s == service and operation in ("*", o) and (kind is None or k == kind)
        )


@contextmanager
def inject_faults(
    container: Container, *faults: Fault, seed: int = 0, backoff_scale: float = 0.01
) -> Iterator[FaultInjector]:
    """Inject `faults` into the clients of `container` (its S3, DynamoDB, SNS and EventBridge clients).

    botocore's retry backoff is scaled by `backoff_scale`, so that a test does not sleep for seconds; which
    errors are retried, how often, and the retry quota stay botocore's own.
    """
    injector = FaultInjector(faults, seed)
    clients = [container.s3, container.dynamodb, container.sns, container.events]
    real_delay = ExponentialBackoff.delay_amount

    def scaled_delay(self: ExponentialBackoff, context: Any) -> float:
        return float(real_delay(self, context)) * backoff_scale

    with ExitStack() as stack:
        stack.enter_context(mock.patch.object(ExponentialBackoff, "delay_amount", scaled_delay))
        for client in clients:
            unique_id = f"tests-faults-{id(injector)}"
            client.meta.events.register("before-send", cast(Any, injector.before_send), unique_id=unique_id)
            stack.callback(client.meta.events.unregister, "before-send", unique_id=unique_id)
        yield injector


def kill_after(monkeypatch: pytest.MonkeyPatch, injector: FaultInjector, target: object, method: str) -> None:
    """Make `target.method` do its work, then kill the Lambda: it and every later AWS call raise `LambdaKilled`."""
    real = getattr(target, method)

    def then_killed(*args: Any, **kwargs: Any) -> Any:
        real(*args, **kwargs)
        injector.kill()
        raise LambdaKilled(f"killed right after {method}")

    monkeypatch.setattr(target, method, then_killed)


def _body(request: Any) -> bytes:
    body = request.body
    if isinstance(body, str):
        return body.encode()
    if isinstance(body, bytes | bytearray):
        return bytes(body)
    if hasattr(body, "getvalue"):  # botocore hands S3 bodies over as BytesIO
        return bytes(body.getvalue())
    return b""  # another stream: matched by service and operation only


def _error_response(url: str, service: str, kind: str) -> AWSResponse:
    throttled = kind == THROTTLE
    protocol = _PROTOCOL[service]
    if protocol == "rest-xml":  # S3 throttles with 503 SlowDown
        code, status = ("SlowDown", 503) if throttled else ("InternalError", 500)
        body = f"<Error><Code>{code}</Code><Message>injected</Message></Error>".encode()
        headers = {"content-type": "application/xml"}
    elif protocol == "query":
        code, status = ("Throttling", 400) if throttled else ("InternalError", 500)
        body = (
            f"<ErrorResponse><Error><Type>{'Sender' if throttled else 'Receiver'}</Type><Code>{code}</Code>"
            "<Message>injected</Message></Error><RequestId>injected</RequestId></ErrorResponse>"
        ).encode()
        headers = {"content-type": "text/xml"}
    else:
        if service == "dynamodb":
            code = "ThrottlingException" if throttled else "InternalServerError"
            error_type = f"com.amazonaws.dynamodb.v20120810#{code}"
        else:
            code = error_type = "ThrottlingException" if throttled else "InternalException"
        status = 400 if throttled else 500
        body = json.dumps({"__type": error_type, "message": "injected"}).encode()
        headers = {"content-type": "application/x-amz-json-1.1", "x-amzn-errortype": code}
    return AWSResponse(url, status, cast(Any, headers), _Raw(body))


class _Raw:
    """The part of urllib3's response that botocore reads from an error answer."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, *_: Any, **__: Any) -> Iterator[bytes]:
        yield self._body
