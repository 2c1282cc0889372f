"""`make run`'s program as a new user meets it: its banner says how to point `tfguardian` at it, and it starts again
at once on the ports it just left."""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

from local_stack.emulator import free_port

ROOT = Path(__file__).resolve().parents[2]
TIME_WAIT = "06"  # the state's code in /proc/net/tcp


def start(tmp_path: Path, aws_port: int, api_port: int) -> subprocess.Popen[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("GUARDIAN_", "TFGUARDIAN_"))}
    return subprocess.Popen(
        [sys.executable, "-m", "local_stack"],
        cwd=ROOT,
        env={**environment, "GUARDIAN_NOTIFY_FILE": str(tmp_path / "notifications.jsonl"),
             "GUARDIAN_AWS_PORT": str(aws_port), "GUARDIAN_API_PORT": str(api_port),
             "GUARDIAN_PAGE_PORT": str(free_port())},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def until_ready(program: subprocess.Popen[str]) -> str:
    assert program.stdout is not None
    seen = []
    for line in program.stdout:
        seen.append(line)
        if "tfstate-guardian ready" in line:
            return "".join(seen)
    raise AssertionError(f"never ready:\n{''.join(seen)}")


def stop(program: subprocess.Popen[str]) -> str:
    program.send_signal(signal.SIGTERM)
    output = program.communicate(timeout=30)[0]
    assert program.returncode == 0 and "Traceback" not in output, output
    return output


def in_time_wait(port: int) -> bool:
    """Whether a connection of 127.0.0.1:`port` waits out TIME_WAIT, which keeps a plain bind from the port."""
    rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return any(int(row.split()[1].split(":")[1], 16) == port and row.split()[3] == TIME_WAIT for row in rows)


def served_and_closed_by_the_server(port: int) -> bytes:
    """A request whose connection the server closes first, as it does after each answer: its end of the connection
    then waits out TIME_WAIT on `port`."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        answer = b""
        while chunk := connection.recv(65536):  # to the server's end of the stream
            answer += chunk
    return answer


def test_the_banner_says_how_to_point_tfguardian_at_this_stack(tmp_path: Path) -> None:
    aws_port, api_port = free_port(), free_port()
    program = start(tmp_path, aws_port, api_port)
    try:
        banner = until_ready(program)
        export = re.search(r"^\s*export TFGUARDIAN_ENDPOINT=(\S+)$", banner, re.MULTILINE)
        command = re.search(r"^\s*(\S+tfguardian) states", banner, re.MULTILINE)
        assert export and command, banner
        assert export.group(1) == f"http://127.0.0.1:{api_port}"
        script = shlex.split(command.group(1))[0]
        assert Path(script).is_absolute() and os.access(script, os.X_OK), script
        environment = {k: v for k, v in os.environ.items() if not k.startswith(("GUARDIAN_", "TFGUARDIAN_"))}
        pointed = subprocess.run(
            [script, "states"], env={**environment, "TFGUARDIAN_ENDPOINT": export.group(1)},
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        by_port = subprocess.run(
            [script, "--json", "states"], env={**environment, "GUARDIAN_API_PORT": str(api_port)},
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    finally:
        stop(program)
    assert pointed.returncode == 0 and pointed.stdout.strip() == "(none)", pointed.stderr
    assert by_port.returncode == 0 and '"states": []' in by_port.stdout, by_port.stderr


def test_it_starts_again_at_once_on_the_ports_it_left(tmp_path: Path) -> None:
    aws_port, api_port = free_port(), free_port()
    first = start(tmp_path, aws_port, api_port)
    try:
        until_ready(first)
        assert b" 200 OK" in served_and_closed_by_the_server(api_port)
    finally:
        stop(first)
    assert in_time_wait(api_port)  # what used to make the next start say the port is in use
    again = start(tmp_path, aws_port, api_port)
    try:
        banner = until_ready(again)
        with urllib.request.urlopen(f"http://127.0.0.1:{api_port}/health", timeout=10) as response:
            assert response.status == 200
    finally:
        stop(again)
    assert "already in use" not in banner  # it would have said so, and never been ready
