"""The status page's server over real HTTP: its headers, the loopback and same-origin guards, the page's routes only,
unsigned calls to the local stack, SigV4-signed calls to a deployed API, and `make run` serving the page."""

from __future__ import annotations

import http.client
import json
import re
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from guardian_cli.signing import SigningError
from guardian_cli.ui_server import (
    CONTENT_SECURITY_POLICY,
    UiServer,
    Upstream,
    upstream_for,
)
from local_stack.emulator import free_port
from tests.integration.test_local_stack import read_until, start_program

ACCESS_KEY, SECRET_KEY = "AKIDPAGETEST", "page-test-secret-key"
SIGNATURE = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/\d{8}/(?P<region>[^/]+)/execute-api/aws4_request, "
    r"SignedHeaders=(?P<signed>[^,]+), Signature=(?P<signature>[0-9a-f]{64})"
)


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@contextmanager
def api_double(host: str = "127.0.0.1", answer: bytes = b'{"states": [], "next": null}') -> Iterator[Any]:
    """A stand-in for the guardian's API that records every request it gets."""
    seen: list[Seen] = []

    class Handler(BaseHTTPRequestHandler):
        def record(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            seen.append(Seen(self.command, self.path, dict(self.headers.items()), self.rfile.read(length)))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        do_GET = do_POST = do_DELETE = record

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer((host, 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_address[1]}/api/", seen
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def page_server(upstream: Upstream) -> Iterator[UiServer]:
    server = UiServer(upstream, 0)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def call(server: UiServer, method: str, path: str, headers: dict[str, str] | None = None, body: bytes | None = None,
         host: str | None = None) -> tuple[int, dict[str, str], bytes]:  # fmt: skip
    """One request with exactly these headers (a browser's Host and Origin included)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        sent = {"Host": f"127.0.0.1:{server.port}" if host is None else host, **(headers or {})}
        connection.request(method, path, body=body, headers=sent)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def same_origin(server: UiServer) -> dict[str, str]:
    return {"Origin": f"http://127.0.0.1:{server.port}", "Sec-Fetch-Site": "same-origin"}


def test_the_page_is_served_with_a_strict_policy_and_nothing_else_is() -> None:
    with api_double() as (endpoint, seen), page_server(Upstream(endpoint, None)) as server:
        status, headers, body = call(server, "GET", "/")
        assert status == 200 and headers["Content-Type"].startswith("text/html")
        assert headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
        assert "default-src 'none'" in CONTENT_SECURITY_POLICY and "unsafe" not in CONTENT_SECURITY_POLICY
        assert headers["X-Content-Type-Options"] == "nosniff" and headers["X-Frame-Options"] == "DENY"
        assert b'<script src="/page.js" defer></script>' in body and b"<style" not in body
        assert b"http://" not in body and b"https://" not in body  # no CDN, nothing from elsewhere
        assert call(server, "GET", "/page.js")[1]["Content-Type"].startswith("text/javascript")
        assert call(server, "GET", "/page.css")[1]["Content-Type"].startswith("text/css")
        assert call(server, "GET", "/favicon.ico")[0] == 204
        assert call(server, "GET", "/../pyproject.toml")[0] == 404
        assert call(server, "GET", "/guardian_cli/ui_server.py")[0] == 404
        assert seen == []


def test_the_page_never_inserts_markup_from_data() -> None:
    script = (Path(__file__).resolve().parents[2] / "guardian_cli" / "page" / "page.js").read_text()
    assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(|new Function", script)


@pytest.mark.parametrize("host", ["evil.example:{port}", "127.0.0.1.evil.example:{port}", "127.0.0.1:1", ""])
def test_a_request_that_names_another_host_is_refused(host: str) -> None:
    """DNS rebinding: a page of evil.example whose name now points at 127.0.0.1 still says evil.example."""
    with api_double() as (endpoint, seen), page_server(Upstream(endpoint, None)) as server:
        named = host.format(port=server.port)
        for method, path in (("GET", "/"), ("GET", "/api/states"), ("POST", "/api/rollback")):
            status, _, body = call(server, method, path, {**same_origin(server), "Origin": f"http://{named}"},
                                   b"{}", host=named)  # fmt: skip
            assert status == 403 and json.loads(body)["error"] == "not_allowed"
        assert seen == []
        assert call(server, "GET", "/api/states", host=f"localhost:{server.port}")[0] == 200


def test_a_write_from_anywhere_but_the_page_is_refused_and_never_forwarded() -> None:
    with api_double() as (endpoint, seen), page_server(Upstream(endpoint, None)) as server:
        json_body = {"Content-Type": "application/json"}
        for headers in (
            {},  # no Origin: not a browser's fetch from the page
            {"Origin": "http://evil.example"},
            {"Origin": f"http://127.0.0.1:{server.port}", "Sec-Fetch-Site": "cross-site"},
            {"Origin": "null"},
        ):
            for method, path in (("POST", "/api/rollback"), ("DELETE", "/api/locks?key=a&lock_id=b")):
                assert call(server, method, path, {**json_body, **headers}, b"{}")[0] == 403
        assert (
            call(server, "POST", "/api/rollback", {**same_origin(server), "Content-Type": "text/plain"}, b"{}")[0]
            == 415
        )  # a form post or a no-cors fetch cannot send JSON
        assert seen == []
        body = b'{"key": "a/terraform.tfstate", "serial": 1, "dry_run": true}'
        status, _, _ = call(
            server, "POST", "/api/rollback", {**same_origin(server), **json_body, "Idempotency-Key": "k-1"}, body
        )
        assert status == 200
        assert [(s.method, s.path, s.body, s.headers["Idempotency-Key"]) for s in seen] == [
            ("POST", "/api/rollback", body, "k-1")
        ]


def test_only_the_routes_the_page_calls_are_forwarded() -> None:
    with api_double() as (endpoint, seen), page_server(Upstream(endpoint, None)) as server:
        write = {**same_origin(server), "Content-Type": "application/json"}
        assert call(server, "POST", "/api/locks/reap", write, b'{"dry_run": false}')[0] == 404
        assert call(server, "POST", "/api/states/digest?key=a", write, b"{}")[0] == 404
        assert call(server, "DELETE", "/api/states", write)[0] == 404
        assert call(server, "GET", "/api/../health")[0] == 404
        assert call(server, "PUT", "/api/rollback", write, b"{}")[0] == 501
        assert call(server, "POST", "/api/rollback", write, b"x" * 70_000)[0] == 413
        assert seen == []


def test_the_local_stack_is_called_unsigned_with_the_act_as_header_and_a_clean_query() -> None:
    with api_double() as (endpoint, seen), page_server(Upstream(endpoint, None)) as server:
        headers = {"X-Guardian-Act-As": "arn:aws:iam::123456789012:role/reader", "Cookie": "a=b"}
        status, _, body = call(server, "GET", "/api/states?prefix=env%3A%2Fa+b&workspace=staging&limit=2", headers)
        assert status == 200 and json.loads(body) == {"states": [], "next": None}
        (request,) = seen
        assert request.path == "/api/states?prefix=env%3A%2Fa%20b&workspace=staging&limit=2"
        assert request.headers["X-Guardian-Act-As"] == "arn:aws:iam::123456789012:role/reader"
        assert "Authorization" not in request.headers and "Cookie" not in request.headers
        assert call(server, "GET", "/api/states", {"X-Guardian-Act-As": "root"})[0] == 400


@pytest.fixture
def aws_profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A profile `page-test` in AWS config files of the test's own, and nothing else to find credentials in."""
    config, credentials = tmp_path / "config", tmp_path / "credentials"
    config.write_text("[profile page-test]\nregion = eu-west-2\n")
    credentials.write_text(f"[page-test]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = {SECRET_KEY}\n")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_REGION",
                 "AWS_DEFAULT_REGION", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance metadata lookup: nothing leaves loopback
    return "page-test"


def aws_canonical_query(path: str) -> str:
    """The query as API Gateway canonicalises it for SigV4: decoded, each name and value encoded per RFC 3986,
    sorted."""
    pairs = parse_qsl(urlsplit(path).query, keep_blank_values=True)
    return "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(pairs))


def verify_signature(request: Seen, endpoint: str) -> re.Match[str]:
    """Check the request's SigV4 signature as API Gateway would, from what arrived."""
    match = SIGNATURE.fullmatch(request.headers["Authorization"])
    assert match, request.headers["Authorization"]
    lowered = {name.lower(): value for name, value in request.headers.items()}
    signed = {name: lowered[name] for name in match["signed"].split(";")}
    base = urlsplit(endpoint)
    rebuilt = AWSRequest(
        method=request.method, url=f"{base.scheme}://{base.netloc}{request.path}", data=request.body, headers=signed
    )
    rebuilt.context["timestamp"] = lowered["x-amz-date"]
    signer = SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "execute-api", match["region"])
    canonical = signer.canonical_request(rebuilt)
    assert canonical.split("\n")[2] == aws_canonical_query(request.path)
    assert signer.signature(signer.string_to_sign(rebuilt, canonical), rebuilt) == match["signature"]
    return match


def test_a_deployed_api_gets_every_call_signed_with_the_profiles_credentials(aws_profile: str) -> None:
    # 127.0.0.2 is loopback, but not the local stack's name: the page server treats it as a deployed API.
    with api_double(host="127.0.0.2") as (endpoint, seen):
        upstream = upstream_for(endpoint, profile=aws_profile, region=None, act_as=None)
        with page_server(upstream) as server:
            act_as = {"X-Guardian-Act-As": "arn:aws:iam::123456789012:role/admin"}
            assert call(server, "GET", "/api/states?prefix=env:/a%20b+c&workspace=x~y", act_as)[0] == 200
            body = b'{"key": "a/terraform.tfstate", "serial": 3, "dry_run": true}'
            headers = {**same_origin(server), "Content-Type": "application/json", "Idempotency-Key": "k-2"}
            assert call(server, "POST", "/api/rollback", headers, body)[0] == 200
            assert call(server, "DELETE", "/api/locks?key=a%2Fb&lock_id=1&reason=", same_origin(server))[0] == 200
        assert [request.method for request in seen] == ["GET", "POST", "DELETE"]
        for request in seen:
            match = verify_signature(request, endpoint)
            assert (match["key"], match["region"]) == (ACCESS_KEY, "eu-west-2")  # the profile's region
            assert "X-Guardian-Act-As" not in request.headers  # a deployed API knows the caller by the signature
        assert "idempotency-key" in SIGNATURE.fullmatch(seen[1].headers["Authorization"])["signed"]  # type: ignore[index]
        assert upstream_for(endpoint, profile=aws_profile, region="ap-south-1", act_as=None).signer.region == (  # type: ignore[union-attr]
            "ap-south-1"
        )


def test_credentials_that_cannot_sign_are_one_clear_message(aws_profile: str, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    deployed = "https://abc123.execute-api.eu-west-1.amazonaws.com/api/"
    with pytest.raises(SigningError, match="'nope' is not in your AWS config"):
        upstream_for(deployed, profile="nope", region=None, act_as=None)
    (tmp_path / "credentials").write_text("")
    with pytest.raises(SigningError, match="no AWS credentials found"):
        upstream_for(deployed, profile=None, region="eu-west-1", act_as=None)
    with pytest.raises(Exception, match="--act-as works only with the local stack"):
        upstream_for(deployed, profile=aws_profile, region=None, act_as="arn:aws:iam::1:role/x")


def test_an_api_that_is_down_or_answers_html_is_an_error_the_page_can_show() -> None:
    with page_server(Upstream(f"http://127.0.0.1:{free_port()}/", None)) as server:
        status, _, body = call(server, "GET", "/api/locks")
        assert status == 502 and json.loads(body)["error"] == "unreachable"
    with api_double(answer=b"<html>proxy</html>") as (endpoint, _), page_server(Upstream(endpoint, None)) as server:
        status, _, body = call(server, "GET", "/api/locks")
        assert json.loads(body) == {"error": "upstream", "message": "the API answered HTTP 200 without JSON"}


def test_make_run_serves_the_status_page_and_prints_its_address(tmp_path: Path) -> None:
    aws_port, api_port, page_port = free_port(), free_port(), free_port()
    program = start_program(
        tmp_path,
        GUARDIAN_AWS_PORT=str(aws_port),
        GUARDIAN_API_PORT=str(api_port),
        GUARDIAN_PAGE_PORT=str(page_port),
    )
    try:
        banner = read_until(program, "ready")
        assert f"Status page:          http://127.0.0.1:{page_port}/\n" in banner
        with urllib.request.urlopen(f"http://127.0.0.1:{page_port}/", timeout=10) as response:
            assert b"<title>tfstate-guardian</title>" in response.read()
        with urllib.request.urlopen(f"http://127.0.0.1:{page_port}/api/health", timeout=10) as response:
            assert json.load(response) == {"status": "ok"}
    finally:
        program.terminate()
        program.wait(timeout=30)


def test_tfguardian_ui_serves_until_interrupted_and_says_why_it_cannot_sign(aws_profile: str) -> None:
    port = free_port()
    with api_double() as (endpoint, seen):
        program = subprocess.Popen(
            [sys.executable, "-m", "guardian_cli", "ui", "--endpoint", endpoint, "--port", str(port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert program.stdout is not None
            line = program.stdout.readline()
            printed = re.match(
                rf"Status page: (http://127\.0\.0\.1:{port}/\?token=([\w-]{{32}}))  \(API (\S+), unsigned", line
            )
            assert printed and printed[3] == endpoint, line
            with urllib.request.urlopen(printed[1], timeout=10) as response:  # the page itself needs no token
                assert b"<html" in response.read()
            states = f"http://127.0.0.1:{port}/api/states"
            for token in (None, "not-" + printed[2][4:]):  # another program, or another run's page
                refused = urllib.request.Request(states, headers={"X-Guardian-Page-Token": token} if token else {})
                with pytest.raises(urllib.error.HTTPError) as answer:
                    urllib.request.urlopen(refused, timeout=10)
                assert answer.value.code == 401 and b"tfguardian ui" in answer.value.read()
            assert seen == []  # nothing forwarded without the run's token
            allowed = urllib.request.Request(states, headers={"X-Guardian-Page-Token": printed[2]})
            with urllib.request.urlopen(allowed, timeout=10) as response:
                assert json.load(response) == {"states": [], "next": None}
            assert [request.path for request in seen] == ["/api/states"]
        finally:
            program.send_signal(signal.SIGINT)
            _, errors = program.communicate(timeout=30)
        assert program.returncode == 0 and "Traceback" not in errors
    deployed = ["--endpoint", "https://abc123.execute-api.eu-west-1.amazonaws.com/api/", "--port", str(port)]
    for extra, said in ((["--profile", "nope"], "the AWS profile 'nope' is not in your AWS config"),
                        (["--profile", aws_profile, "--act-as", "arn:aws:iam::1:role/x"], "--act-as")):  # fmt: skip
        failed = subprocess.run(
            [sys.executable, "-m", "guardian_cli", "ui", *deployed, *extra],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert failed.returncode in (2, 5) and said in failed.stderr and "Traceback" not in failed.stderr
        assert failed.stdout == ""
    bad_port = subprocess.run(
        [sys.executable, "-m", "guardian_cli", "ui", "--port", "99999"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad_port.returncode == 2 and "--port" in bad_port.stderr and "'99999'" in bad_port.stderr
