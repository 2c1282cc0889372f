"""`tfguardian`'s failures, each a message and its exit code, never a traceback: over real HTTP to a stand-in API."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from local_stack.emulator import free_port

DEPLOYED = "https://abcdef1234.execute-api.eu-west-1.amazonaws.com/api/"
PLAN = {
    "key": "a/terraform.tfstate",
    "dry_run": True,
    "from_version_id": "v1",
    "target_serial": 1,
    "serial": {"before": 2, "after": 3},
    "diff": {"resources": {"added": [], "changed": ["x.y"], "removed": []}, "outputs": {}},
}


@dataclass
class StandIn:
    """An HTTP server on 127.0.0.1 answering every request with one status, body and content type."""

    url: str
    status: int = 200
    body: bytes = b"{}"
    content_type: str = "application/json"
    paths: list[str] = field(default_factory=list)


@contextmanager
def stand_in(status: int = 200, body: bytes = b"{}", content_type: str = "application/json") -> Iterator[StandIn]:
    state = StandIn("", status, body, content_type)

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            state.paths.append(self.path)
            self.send_response(state.status)
            self.send_header("Content-Type", state.content_type)
            self.send_header("Content-Length", str(len(state.body)))
            self.end_headers()
            self.wfile.write(state.body)

        do_GET = do_POST = do_DELETE = _answer

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def environment(**extra: str) -> dict[str, str]:
    kept = {k: v for k, v in os.environ.items() if not k.startswith(("TFGUARDIAN_", "GUARDIAN_", "AWS_"))}
    # No credential lookup may leave the machine: no instance metadata, no config of the person running the tests.
    return {**kept, "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull, **extra}  # fmt: skip


def tfguardian(*args: str, stdin: str = "", **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "guardian_cli", *args],
        input=stdin, capture_output=True, text=True, timeout=60, check=False, env=environment(**env),
    )  # fmt: skip


def no_traceback(run: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in run.stderr + run.stdout and 'File "' not in run.stderr


def test_an_unknown_aws_profile_is_named() -> None:
    for run in (
        tfguardian("--endpoint", DEPLOYED, "states", AWS_PROFILE="no-such-profile"),
        tfguardian("states", "--profile", "no-such-profile", "--endpoint", DEPLOYED),
    ):
        assert run.returncode == 5, run.stderr
        assert "the AWS profile 'no-such-profile'" in run.stderr and "ProfileNotFound" not in run.stderr
        no_traceback(run)


def test_no_credentials_to_sign_with() -> None:
    run = tfguardian("--endpoint", DEPLOYED, "states", "--json")
    assert run.returncode == 5
    assert json.loads(run.stderr)["error"] == "unreachable" and "no AWS credentials" in run.stderr
    no_traceback(run)


def test_an_endpoint_nothing_listens_on() -> None:
    port = free_port()
    run = tfguardian("--endpoint", f"http://127.0.0.1:{port}", "states")
    assert run.returncode == 5 and f"cannot reach http://127.0.0.1:{port}" in run.stderr
    no_traceback(run)


def test_the_local_default_follows_guardian_api_port() -> None:
    with stand_in(body=b'{"states": [], "next": null}') as api:
        port = api.url.rsplit(":", 1)[1]
        run = tfguardian("states", GUARDIAN_API_PORT=port)
        overridden = tfguardian("states", GUARDIAN_API_PORT="1", TFGUARDIAN_ENDPOINT=api.url)
    assert run.returncode == 0 and run.stdout.strip() == "(none)", run.stderr
    assert overridden.returncode == 0 and api.paths == ["/states", "/states"]
    bad = tfguardian("states", GUARDIAN_API_PORT="eighty")
    assert bad.returncode == 2 and "GUARDIAN_API_PORT must be a port number" in bad.stderr and "'eighty'" in bad.stderr


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["diff", "a/terraform.tfstate", "1"], "TO"),
        (["rollback", "a/terraform.tfstate", "--serial", "x"], "argument --serial"),
        (["states", "--limit", "0"], "argument --limit"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["--endpoint", "ftp://example.com", "states"], "--endpoint must be an http:// or https:// URL"),
        (["rollback", "a/terraform.tfstate"], "one of the arguments --version-id --serial --as-of is required"),
        ([], "COMMAND"),
    ],
)
def test_a_wrong_command_line_names_what_is_wrong(args: list[str], named: str) -> None:
    run = tfguardian(*args)
    assert run.returncode == 2 and named in run.stderr, run.stderr
    no_traceback(run)


@pytest.mark.parametrize(
    ("status", "body", "content_type"),
    [
        (200, b"<html>not the API</html>", "text/html"),
        (200, b"[1, 2, 3]", "application/json"),
        (200, b'{"states": "not a list"}', "application/json"),
        (200, b'{"states": [42]}', "application/json"),
        (404, b"<html>Not Found</html>", "text/html"),
        (500, b'{"message": "Internal server error"}', "application/json"),
        (502, b"Bad Gateway", "text/plain"),
    ],
)
def test_an_answer_that_is_not_the_apis_json(status: int, body: bytes, content_type: str) -> None:
    with stand_in(status, body, content_type) as api:
        run = tfguardian("--endpoint", api.url, "states")
    assert run.returncode == 6, run.stderr
    assert run.stderr.startswith("tfguardian: failed:") and run.stdout == ""
    no_traceback(run)


def test_refusals_and_not_found_from_the_api() -> None:
    refusal = json.dumps(
        {"error": "not_allowed", "message": "caller may not roll back", "rule": "GUARDIAN_API_CALLERS"}
    )
    with stand_in(403, refusal.encode()) as api:
        refused = tfguardian("--endpoint", api.url, "repair-digest", "a/terraform.tfstate")
        as_json = tfguardian("--endpoint", api.url, "repair-digest", "a/terraform.tfstate", "--json")
    with stand_in(403, b'{"message": "Missing Authentication Token"}') as gateway:
        gateway_refused = tfguardian("--endpoint", gateway.url, "states")
    with stand_in(404, b'{"error": "not_found", "message": "there is no state at a/terraform.tfstate"}') as api:
        missing = tfguardian("--endpoint", api.url, "versions", "a/terraform.tfstate")
    assert refused.returncode == 3
    assert refused.stderr == "refused: caller may not roll back (rule: GUARDIAN_API_CALLERS)\n"
    assert as_json.returncode == 3 and json.loads(as_json.stderr)["rule"] == "GUARDIAN_API_CALLERS"
    assert gateway_refused.returncode == 3 and "Missing Authentication Token" in gateway_refused.stderr
    assert missing.returncode == 4 and missing.stderr == "not found: there is no state at a/terraform.tfstate\n"


def test_ctrl_c_at_the_question_exits_130_without_a_traceback() -> None:
    with stand_in(body=json.dumps(PLAN).encode()) as api:
        process = subprocess.Popen(
            [sys.executable, "-m", "guardian_cli", "--endpoint", api.url, "rollback", "a/terraform.tfstate",
             "--serial", "1"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=environment(),
        )  # fmt: skip
        assert process.stderr is not None
        asked = b""
        deadline = time.monotonic() + 30
        while b"[y/N]" not in asked and time.monotonic() < deadline:
            asked += os.read(process.stderr.fileno(), 1024)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=30)
    assert b"Roll a/terraform.tfstate back to serial 1 (version v1)? [y/N]" in asked
    assert process.returncode == 130 and b"interrupted" in stderr
    assert b"Traceback" not in stderr and b"KeyboardInterrupt" not in stderr
    assert api.paths == ["/rollback"]  # the dry run only: nothing was rolled back
    assert b"restoring serial 1 (version v1)" in stdout
