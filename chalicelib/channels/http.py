"""Outbound HTTPS for the channels that post (Slack, Teams, PagerDuty, webhook) and the liveness check: no redirects.

A 3xx answer is a failure like a 5xx (retried, then reported): following it would send a signed notification, or
a lock holder's name, wherever the endpoint, or whoever took it over, points.
"""

from __future__ import annotations

import string
import urllib.error
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from chalicelib.errors import ChannelDeliveryError, SettingsError

if TYPE_CHECKING:
    import urllib.request
    from http.client import HTTPResponse

TIMEOUT_S = 5
ANSWER_MAX_BYTES = 64 * 1024  # what is read of an answer: a receiver's verdict, never a document
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
_opener: urllib.request.OpenerDirector | None = None


def check_url(url: str, what: str) -> None:
    """HTTPS only; plain HTTP is allowed to this machine alone, for the local stack and tests."""
    parts = urlsplit(url)
    if parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in _LOOPBACK):
        return
    raise SettingsError(f"{what} must be an https:// URL")


def check_url_template(template: str, placeholders: frozenset[str], what: str) -> None:
    """A URL with `{name}` placeholders: only `placeholders`, no format spec, none before the path; else an error."""
    try:
        fields = [parsed for parsed in string.Formatter().parse(template) if parsed[1] is not None]
    except ValueError as exc:
        raise SettingsError(
            f"{what} is not a valid URL template ({exc}); write a literal brace as {{{{ or }}}}"
        ) from None
    for _, name, spec, conversion in fields:
        if name not in placeholders or spec or conversion:
            known = ", ".join(f"{{{known}}}" for known in sorted(placeholders))
            raise SettingsError(f"{what} has the placeholder {{{name}}}: only {known} are allowed, as they are")
    first, second = (template.format_map(dict.fromkeys(placeholders, value)) for value in ("a", "b"))
    check_url(first, what)
    if urlsplit(first)[:2] != urlsplit(second)[:2]:
        raise SettingsError(f"{what} may have placeholders in its path and query only, not in its scheme or host")


def open_url(request: urllib.request.Request) -> HTTPResponse:
    """`urlopen` within `TIMEOUT_S` and without redirects: any answer but a 2xx raises `HTTPError`, a 3xx included."""
    return _no_redirect_opener().open(request, timeout=TIMEOUT_S)  # type: ignore[no-any-return]


def post_json(url: str, body: bytes, headers: dict[str, str], what: str) -> bytes:
    """POST `body`; the answer's body (its first `ANSWER_MAX_BYTES`), or `ChannelDeliveryError` for anything but a
    2xx answer within the timeout."""
    import urllib.request  # noqa: PLC0415 - the channels that post are built on first use

    check_url(url, what)
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked just above
        url, data=body, method="POST", headers={"Content-Type": "application/json", **headers}
    )
    try:
        with open_url(request) as response:
            status = response.status
            answer = response.read(ANSWER_MAX_BYTES)
    except urllib.error.HTTPError as exc:
        raise ChannelDeliveryError(f"{what} answered {exc.code}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ChannelDeliveryError(f"{what} could not be reached: {type(reason).__name__}") from None
    if not 200 <= status < 300:
        raise ChannelDeliveryError(f"{what} answered {status}")
    return answer


def _no_redirect_opener() -> urllib.request.OpenerDirector:
    global _opener  # built once per container, on first use
    if _opener is None:
        import urllib.request  # noqa: PLC0415

        class RefuseRedirects(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args: Any, **kwargs: Any) -> None:
                return None  # urllib then raises HTTPError with the 3xx status

        _opener = urllib.request.build_opener(RefuseRedirects())
    return _opener
