"""`Api`: one call to the guardian's REST API, signed with SigV4 for a deployed API, its failures as `CliError`s."""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlencode, urlsplit

from guardian_cli.errors import FailedError, NotFoundError, RefusedError, UnreachableError
from guardian_cli.signing import Signer, SigningError

LOCAL = ("127.0.0.1", "localhost")
ACT_AS_HEADER = "X-Guardian-Act-As"  # honoured by the local stack only; a deployed API ignores it
TIMEOUT_S = 120  # a rollback of a large state takes tens of seconds


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is an error: following it would carry the signature and any act-as header elsewhere."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


OPENER = urllib.request.build_opener(_RefuseRedirects())  # the CLI's and the page server's


def is_local(endpoint: str) -> bool:
    """Whether `endpoint` is the local stack, which is called unsigned."""
    return urlsplit(endpoint).hostname in LOCAL


class Api:
    """The guardian's REST API at `endpoint`; `profile` and `region` pick the credentials that sign for it."""

    def __init__(
        self,
        endpoint: str,
        *,
        region: str | None = None,
        profile: str | None = None,
        act_as: str | None = None,
        backend: str | None = None,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.backend = backend  # sent as `backend=` on every call: a state's backend, or the one fleet answers cover
        self.region = region
        self.profile = profile
        self.act_as = act_as
        self._signer: Signer | None = None

    def call(self, method: str, path: str, query: dict[str, str] | None = None, body: Any = None,
             headers: dict[str, str] | None = None) -> dict[str, Any]:  # fmt: skip
        """The answer's JSON object; raises `RefusedError`, `NotFoundError`, `UnreachableError` or `FailedError`."""
        if self.backend:
            query = {**(query or {}), "backend": self.backend}
        url = self.endpoint + path + (("?" + urlencode(query)) if query else "")
        data = json.dumps(body).encode() if body is not None else None
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        if not is_local(url):
            all_headers = self._signed(method, url, data, all_headers)
        elif self.act_as:
            all_headers[ACT_AS_HEADER] = self.act_as
        request = urllib.request.Request(url, data=data, method=method, headers=all_headers)  # noqa: S310
        try:
            with OPENER.open(request, timeout=TIMEOUT_S) as response:
                return _answer(response.status, response.read())
        except urllib.error.HTTPError as exc:
            with exc:
                raise _failure(exc.code, exc.read(), exc.headers.get("Location")) from None
        except urllib.error.URLError as exc:
            raise UnreachableError(f"cannot reach {self.endpoint}: {exc.reason}") from None
        except (OSError, http.client.HTTPException) as exc:  # reset, timed out, cut short
            raise UnreachableError(f"cannot reach {self.endpoint}: {exc or type(exc).__name__}") from None

    def _signed(self, method: str, url: str, data: bytes | None, headers: dict[str, str]) -> dict[str, str]:
        """`headers` with a SigV4 signature from the AWS credentials of `profile` (or the usual chain)."""
        try:
            if self._signer is None:
                self._signer = Signer.resolve(self.profile, self.region, default_region="us-east-1")
            return self._signer.headers(method, url, data, headers)
        except SigningError as exc:
            raise UnreachableError(str(exc)) from None


def _answer(status: int, raw: bytes) -> dict[str, Any]:
    try:
        answer = json.loads(raw)
    except (ValueError, RecursionError):
        answer = None
    if not isinstance(answer, dict):
        raise FailedError(f"the answer (HTTP {status}) is not the guardian's JSON: is the endpoint right?")
    return answer


def _failure(status: int, raw: bytes, location: str | None) -> Exception:
    """The failure an HTTP error answer stands for."""
    if 300 <= status < 400:
        return FailedError(f"the API answered with a redirect (HTTP {status}) to {location}, which is not followed")
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        body = None
    # The guardian says {"error", "message"}; API Gateway itself {"message"} or {"Message"}.
    message = (body.get("message") or body.get("Message")) if isinstance(body, dict) else None
    if not isinstance(body, dict) or not isinstance(message, str):
        return FailedError(f"the answer (HTTP {status}) is not the guardian's JSON: is the endpoint right?")
    body = {"error": body.get("error") or f"http_{status}", **body, "message": message}
    if status == 404:
        return NotFoundError(message, body)
    if 400 <= status < 500:
        return RefusedError(message, body)
    return FailedError(f"the API failed (HTTP {status}): {message}", body)
