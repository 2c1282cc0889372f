"""Posting JSON over HTTPS, for the Slack and webhook channels."""

from __future__ import annotations

import urllib.error
import urllib.request
from urllib.parse import urlsplit

from chalicelib.errors import ChannelDeliveryError, SettingsError

TIMEOUT_S = 5
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


def check_url(url: str, what: str) -> None:
    """HTTPS only; plain HTTP is allowed to this machine alone, for the local stack and tests."""
    parts = urlsplit(url)
    if parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in _LOOPBACK):
        return
    raise SettingsError(f"{what} must be an https:// URL")


def post_json(url: str, body: bytes, headers: dict[str, str], what: str) -> None:
    """POST `body`; raise `ChannelDeliveryError` for anything but a 2xx answer within the timeout."""
    check_url(url, what)
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked just above
        url, data=body, method="POST", headers={"Content-Type": "application/json", **headers}
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:  # noqa: S310
            status = response.status
    except urllib.error.HTTPError as exc:
        raise ChannelDeliveryError(f"{what} answered {exc.code}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ChannelDeliveryError(f"{what} could not be reached: {type(reason).__name__}") from None
    if not 200 <= status < 300:
        raise ChannelDeliveryError(f"{what} answered {status}")
