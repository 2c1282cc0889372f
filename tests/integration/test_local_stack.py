"""`make run`: the local stack as a program, its REST API, its scheduled jobs, and its clear errors."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import boto3

from local_stack.emulator import free_port
from tests.support import scheduled_app
from tests.support.events import state_bytes

ROOT = Path(__file__).resolve().parents[2]


def start_program(tmp_path: Path, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "local_stack"],
        cwd=ROOT,
        env={
            **os.environ,
            "GUARDIAN_NOTIFY_FILE": str(tmp_path / "notifications.jsonl"),
            "GUARDIAN_PAGE_PORT": str(free_port()),  # never the default: someone's `make run` may hold it
            **env,
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def read_until(process: subprocess.Popen[str], needle: str, timeout: float = 60) -> str:
    assert process.stdout is not None
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line and process.poll() is not None:
            break
        seen.append(line)
        if needle in line:
            return "".join(seen)
    raise AssertionError(f"never saw {needle!r}:\n{''.join(seen)}")


def test_program_comes_up_notifies_and_stops_on_sigterm(tmp_path: Path) -> None:
    aws_port, api_port = free_port(), free_port()
    program = start_program(tmp_path, GUARDIAN_AWS_PORT=str(aws_port), GUARDIAN_API_PORT=str(api_port))
    try:
        banner = read_until(program, "tfstate-guardian ready")
        assert f'endpoint                    = "http://127.0.0.1:{aws_port}"' in banner
        assert f's3       = "http://127.0.0.1:{aws_port}"' in banner
        with urllib.request.urlopen(f"http://127.0.0.1:{api_port}/health", timeout=10) as response:
            assert json.load(response) == {"status": "ok"}

        s3 = boto3.client(
            "s3",
            endpoint_url=f"http://127.0.0.1:{aws_port}",
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )
        s3.put_object(
            Bucket="tfstate-guardian-local",
            Key="demo/terraform.tfstate",
            Body=state_bytes("state_tf1.11.4_first_apply_serial1.json"),
        )
        console = read_until(program, "state.changed")
        assert "demo: created at serial 1" in console
        lines = (tmp_path / "notifications.jsonl").read_text().splitlines()
        assert [json.loads(line)["details"]["serial"]["after"] for line in lines] == [1]
    finally:
        program.send_signal(signal.SIGTERM)
        output = program.communicate(timeout=30)[0]
    assert program.returncode == 0, output
    assert "Traceback" not in output
    assert '"level"' not in console + output and '"_aws"' not in console + output  # logs and metrics go to the file
    for port in (aws_port, api_port):  # everything it started is gone
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", port)) != 0


def test_port_in_use_gives_a_clear_message(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        program = start_program(tmp_path, GUARDIAN_AWS_PORT=str(free_port()), GUARDIAN_API_PORT=str(port))
        output = program.communicate(timeout=60)[0]
    assert program.returncode == 2
    assert f"port {port} on 127.0.0.1 is already in use" in output and "GUARDIAN_API_PORT" in output
    assert "Traceback" not in output


def test_scheduled_jobs_run_with_a_scheduled_event(stack_with) -> None:
    stack = stack_with(app_module="tests.support.scheduled_app")
    scheduled_app.calls.clear()
    assert stack.run_scheduled() == 1
    (event,) = scheduled_app.calls
    assert event["detail-type"] == "Scheduled Event" and event["source"] == "aws.events"
