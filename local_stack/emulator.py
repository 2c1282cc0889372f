"""The AWS emulator: a moto server in a child process, listening on 127.0.0.1 over HTTP."""

from __future__ import annotations

import contextlib
import ctypes
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

HOST = "127.0.0.1"


class PortInUseError(RuntimeError):
    """The port asked for is already taken by another program."""


class EmulatorStartError(RuntimeError):
    """The moto server did not come up."""


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def check_port_free(port: int, setting: str) -> None:
    """Raise `PortInUseError` with a message naming the setting that moves the port.

    Probed as the servers bind (`SO_REUSEADDR`, which both the moto server and Chalice's set): the connections of a
    stack just stopped, left in TIME_WAIT, do not hold the port, while any program listening on it still does.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            raise PortInUseError(
                f"port {port} on {HOST} is already in use; stop what uses it or set {setting} to another port"
            ) from None


def _die_with_parent() -> None:
    # Linux: the emulator gets SIGTERM when the process that started it dies, even by SIGKILL.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class MotoServer:
    """A moto server process on 127.0.0.1:`port`."""

    def __init__(self, port: int, log_path: Path | None = None) -> None:
        self.port = port
        self.endpoint = f"http://{HOST}:{port}"
        self._log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 30.0) -> None:
        log = self._log_path.open("ab") if self._log_path else subprocess.DEVNULL
        self._process = subprocess.Popen(
            [sys.executable, "-m", "local_stack.moto_server", "-H", HOST, "-p", str(self.port)],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,  # noqa: PLW1509
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise EmulatorStartError(f"moto server exited with code {self._process.returncode}")
            try:
                with urllib.request.urlopen(f"{self.endpoint}/moto-api/data.json", timeout=1):
                    return
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        self.stop()
        raise EmulatorStartError(f"moto server did not answer on {self.endpoint} within {timeout_s:.0f} s")

    def reset(self) -> None:
        """Forget every resource, as a fresh emulator would."""
        request = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10):
            pass

    def stop(self) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
