"""`tfguardian ui`: the status page on 127.0.0.1, its API calls forwarded to the guardian and signed with SigV4.

The page (`guardian_cli/page/`) is static: HTML, CSS and one script, served with a strict Content-Security-Policy.
It calls `/api/<route>` on this server, which forwards the call to the guardian's REST API: signed with the user's
AWS credentials (service `execute-api`) for a deployed API, so that IAM stays its only door; unsigned for the local
stack, with `X-Guardian-Act-As` passed on when one is set. Only loopback is bound, a request must name a loopback
host (a page of another site cannot reach this one through DNS rebinding), and a write must come from the page
itself (its `Origin`). `tfguardian ui` also makes a token for each run, in the link it prints: the page keeps it
and sends it with every API call, so another program or user on the machine cannot call the API through this server
with your credentials. (The local stack's page needs none: its API has no IAM, and answers anyone on 127.0.0.1.)
"""

from __future__ import annotations

import argparse
import hmac
import json
import secrets
import sys
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from guardian_cli.client import ACT_AS_HEADER, OPENER, is_local
from guardian_cli.signing import Signer, SigningError

HOST = "127.0.0.1"
DEFAULT_PORT = 8056
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")  # the host names a request to this server may give
TOKEN_HEADER = "X-Guardian-Page-Token"  # noqa: S105 - a header's name: the run's token, from the printed link
MAX_BODY_BYTES = 64 * 1024
MAX_IDEMPOTENCY_KEY = 200
UPSTREAM_TIMEOUT_S = 120  # a rollback of a large state takes a while
# What the page calls, and how: nothing else is forwarded (no reap, no digest repair from the page).
ROUTES = {
    "health": ("GET",),
    "states": ("GET",),
    "states/versions": ("GET",),
    "states/diff": ("GET",),
    "events": ("GET",),
    "locks": ("GET", "DELETE"),
    "rollback": ("POST",),
}
PAGE_FILES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/page.css": ("page.css", "text/css; charset=utf-8"),
    "/page.js": ("page.js", "text/javascript; charset=utf-8"),
}
# No inline script or style, nothing from elsewhere, no framing, no form posts: the page's own three files only.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class UiSetupError(Exception):
    """The page server cannot start as asked."""


class ListenError(UiSetupError):
    """The port cannot be listened on (another program has it)."""


@dataclass(frozen=True)
class Upstream:
    """The guardian's REST API, and how to call it."""

    endpoint: str  # its base URL, e.g. https://abc123.execute-api.eu-west-1.amazonaws.com/api/
    signer: Signer | None  # None: the local stack, which has no IAM in front of it
    act_as: str | None = None  # the local stack's X-Guardian-Act-As when the page sets none

    def forward(
        self,
        method: str,
        route: str,
        *,
        query: str,
        body: bytes | None,
        idempotency_key: str | None,
        act_as: str | None,
    ) -> tuple[int, bytes]:
        """The API's status and JSON body for one call of the page."""
        # Re-encoded as SigV4 canonicalises a query (RFC 3986, spaces as %20), so the signature matches.
        pairs = parse_qsl(query, keep_blank_values=True)
        url = self.endpoint.rstrip("/") + "/" + route + ("?" + urlencode(pairs, quote_via=quote) if pairs else "")
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        if self.signer is not None:
            headers = self.signer.headers(method, url, body, headers)
        elif act_as or self.act_as:
            headers[ACT_AS_HEADER] = str(act_as or self.act_as)
        request = urllib.request.Request(url, data=body, method=method, headers=headers)  # noqa: S310
        try:
            with OPENER.open(request, timeout=UPSTREAM_TIMEOUT_S) as response:
                return response.status, _json_or_error(response.status, response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, _json_or_error(exc.code, exc.read())
        except OSError as exc:
            return HTTPStatus.BAD_GATEWAY, _error("unreachable", f"cannot reach the guardian's API: {exc}")


def _json_or_error(status: int, body: bytes) -> bytes:
    """The API's JSON as it is; anything else (a proxy's HTML page) as an error the page can show."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return _error("upstream", f"the API answered HTTP {status} without JSON")
    if status >= 400 and isinstance(parsed, dict) and "error" not in parsed:  # API Gateway's own refusals
        return _error("http_" + str(status), str(parsed.get("message") or parsed.get("Message") or f"HTTP {status}"))
    return body


def _error(code: str, message: str) -> bytes:
    return json.dumps({"error": code, "message": message}).encode()


class UiServer(ThreadingHTTPServer):
    """The page and its API forwarder on 127.0.0.1:`port` (0: a free port)."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, upstream: Upstream, port: int = DEFAULT_PORT, *, token: str | None = None) -> None:
        self.upstream = upstream
        self.token = token  # None: API calls need no token (the local stack's page)
        self.files = {path: (_page_file(name), kind) for path, (name, kind) in PAGE_FILES.items()}
        try:
            super().__init__((HOST, port), _Handler)
        except OSError as exc:
            raise ListenError(f"cannot listen on {HOST}:{port}: {exc.strerror or exc}") from None
        self.port = int(self.server_address[1])
        self.url = f"http://{HOST}:{self.port}/" + (f"?token={token}" if token else "")
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Serve in a background thread."""
        self._thread = threading.Thread(  # polled often: `stop` waits for the loop to notice its shutdown
            target=lambda: self.serve_forever(poll_interval=0.05), name="status-page", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)


def _page_file(name: str) -> bytes:
    return (resources.files("guardian_cli") / "page" / name).read_bytes()


class _Handler(BaseHTTPRequestHandler):
    server: UiServer
    protocol_version = "HTTP/1.1"
    server_version = "tfguardian-ui"
    sys_version = ""

    def do_GET(self) -> None:
        if not self._host_is_loopback():
            return
        path, _, query = self.path.partition("?")
        if path.startswith("/api/"):
            self._forward("GET", path, query)
            return
        if path == "/favicon.ico":  # asked for by every browser; the page has none
            self._send(HTTPStatus.NO_CONTENT, b"", "image/x-icon")
            return
        found = self.server.files.get(path)
        if found is None:
            self._send(HTTPStatus.NOT_FOUND, _error("not_found", "no such page"), "application/json")
            return
        self._send(HTTPStatus.OK, *found)

    def do_POST(self) -> None:
        self._write("POST")

    def do_DELETE(self) -> None:
        self._write("DELETE")

    def _write(self, method: str) -> None:
        if not self._host_is_loopback() or not self._same_origin():
            return
        path, _, query = self.path.partition("?")
        self._forward(method, path, query)

    def _forward(self, method: str, path: str, query: str) -> None:
        expected = self.server.token
        if expected is not None and not hmac.compare_digest(
            self.headers.get(TOKEN_HEADER, "").encode(), expected.encode()
        ):
            self._send(
                HTTPStatus.UNAUTHORIZED,
                _error("not_allowed", "open the page from the link `tfguardian ui` printed: it has this run's token"),
            )
            return
        route = path.removeprefix("/api/").strip("/")
        if method not in ROUTES.get(route, ()):
            self._send(HTTPStatus.NOT_FOUND, _error("not_found", f"the page does not call {method} {path}"))
            return
        length = self.headers.get("Content-Length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
            self._send(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, _error("too_large", "the request body is too large"))
            return
        body = self.rfile.read(int(length)) if length else None
        if method == "POST" and self.headers.get_content_type() != "application/json":
            self._send(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, _error("invalid_request", "send JSON"))
            return
        key = self.headers.get("Idempotency-Key")
        if key is not None and (len(key) > MAX_IDEMPOTENCY_KEY or not key.isprintable() or not key.isascii()):
            self._send(HTTPStatus.BAD_REQUEST, _error("invalid_request", "Idempotency-Key is not a key"))
            return
        act_as = self.headers.get(ACT_AS_HEADER)
        if act_as is not None and (not act_as.startswith("arn:") or not act_as.isprintable() or not act_as.isascii()):
            self._send(HTTPStatus.BAD_REQUEST, _error("invalid_request", f"{ACT_AS_HEADER} takes an IAM ARN"))
            return
        try:
            status, answer = self.server.upstream.forward(
                method, route, query=query, body=body, idempotency_key=key, act_as=act_as
            )
        except Exception as exc:  # noqa: BLE001 - e.g. credentials that expired and cannot refresh: say it, stay up
            status, answer = HTTPStatus.BAD_GATEWAY, _error("cannot_sign", f"cannot call the API: {exc}")
        self._send(status, answer)

    def _host_is_loopback(self) -> bool:
        """A DNS-rebinding guard: a page of another site reaches this server only under its own host name."""
        host = self.headers.get("Host", "")
        name, _, port = host.rpartition(":")
        if name.lower() in LOOPBACK_NAMES and port == str(self.server.port):
            return True
        self._send(HTTPStatus.FORBIDDEN, _error("not_allowed", "this server answers only to 127.0.0.1 or localhost"))
        return False

    def _same_origin(self) -> bool:
        """A write must come from this page: its Origin is this server, and the browser calls it same-origin."""
        origin = self.headers.get("Origin")
        site = self.headers.get("Sec-Fetch-Site")
        if origin == "http://" + self.headers.get("Host", "") and site in (None, "same-origin"):
            return True
        self._send(HTTPStatus.FORBIDDEN, _error("not_allowed", "a change is accepted only from the status page"))
        return False

    def _send(self, status: int, body: bytes, kind: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        for name, value in SECURITY_HEADERS.items():
            self.send_header(name, value)
        if status >= 400:  # a refused request's body may be unread: this connection cannot carry another
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the page's calls name states; nothing to print for each


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `tfguardian ui` beyond the global ones (`--endpoint`, `--profile`, `--region`, `--act-as`)."""
    parser.add_argument("--port", type=_port, default=DEFAULT_PORT, help=f"port on {HOST} (default {DEFAULT_PORT})")


def _port(text: str) -> int:
    """A port number from 1 to 65535 (a usage error, naming the value, otherwise)."""
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise argparse.ArgumentTypeError(f"a port number from 1 to 65535, not {text!r}")
    return int(text)


def upstream_for(endpoint: str, *, profile: str | None, region: str | None, act_as: str | None) -> Upstream:
    """Unsigned for the local stack (127.0.0.1 or localhost), signed with SigV4 for any other endpoint."""
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UiSetupError(f"the endpoint must be the API's URL (https://abc123.execute-api.…/api/), not {endpoint}")
    if is_local(endpoint):  # the local stack, unsigned, as `tfguardian` calls it
        return Upstream(endpoint, None, act_as)
    if act_as:
        raise UiSetupError("--act-as works only with the local stack: a deployed API knows you by your credentials")
    return Upstream(endpoint, Signer.resolve(profile, region))


def command(api: object, args: argparse.Namespace) -> None:
    """`tfguardian ui`: serve the page until Ctrl-C. Credentials that cannot sign fail as the other commands do."""
    from guardian_cli.errors import FailedError, UnreachableError  # noqa: PLC0415 - the local stack needs neither

    try:
        upstream = upstream_for(args.endpoint, profile=args.profile, region=args.region, act_as=args.act_as)
        server = UiServer(upstream, args.port, token=secrets.token_urlsafe(24))
    except SigningError as exc:
        raise UnreachableError(str(exc)) from None
    except UiSetupError as exc:
        raise FailedError(str(exc)) from None
    how = f"signed for {upstream.signer.region}" if upstream.signer else "unsigned: the local stack"
    print(f"Status page: {server.url}  (API {upstream.endpoint}, {how}; Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("tfguardian ui: stopped", file=sys.stderr)
    finally:
        server.server_close()
