"""`WebhookChannel`: the contract's JSON posted to any HTTPS endpoint, signed so the receiver can verify it.

The signature is `X-Guardian-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">` with the shared
secret, and the timestamp (Unix seconds) is in `X-Guardian-Timestamp`; receivers should refuse old timestamps.

A body is at most `WEBHOOK_MAX_BYTES`, 256 KB (262,144 bytes, as SNS and EventBridge take): longer lists of names
are trimmed to fit (`payload_budget.fit`: `truncated: true`, exact `counts`). A redirect is never followed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable

from chalicelib.adapters.secrets import SecretValue
from chalicelib.channels.http import check_url, post_json
from chalicelib.domain.notifications import Notification
from chalicelib.domain.payload_budget import fit

WEBHOOK_MAX_BYTES = 262_144


def signature(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


class WebhookChannel:
    """Posts each notification to one URL."""

    name = "webhook"

    def __init__(self, url: str, secret: SecretValue, clock: Callable[[], float] = time.time) -> None:
        check_url(url, "GUARDIAN_WEBHOOK_URL")
        self._url = url
        self._secret = secret
        self._clock = clock

    def send(self, notification: Notification) -> None:
        body = webhook_body(notification)
        timestamp = str(int(self._clock()))
        headers = {
            "X-Guardian-Timestamp": timestamp,
            "X-Guardian-Signature": signature(self._secret.get(), timestamp, body),
            "X-Guardian-Event": notification.type.value,
            "X-Guardian-Delivery": notification.id,
        }
        post_json(self._url, body, headers, "the webhook")


def webhook_body(notification: Notification) -> bytes:
    """The contract's JSON, within `WEBHOOK_MAX_BYTES`."""

    def encode(data: dict[str, object]) -> bytes:
        return json.dumps(data, separators=(",", ":")).encode()

    return encode(fit(notification.to_dict(), WEBHOOK_MAX_BYTES, lambda data: len(encode(data))))
