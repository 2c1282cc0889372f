"""`make run`: start the whole guardian locally and print how to point Terraform at it."""

from __future__ import annotations

import os
import shlex
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from chalicelib.observability import logger as guardian_logger
from local_stack.backend_blocks import backend_block_legacy, backend_block_modern
from local_stack.emulator import EmulatorStartError, PortInUseError
from local_stack.stack import LocalBackend, LocalStack, StackOptions

DEFAULT_AWS_PORT = 5055
DEFAULT_API_PORT = 8055
DEFAULT_PAGE_PORT = 8056
WORK_DIR = Path(".local")
# Three backends, as a platform team's guardian watches them: two buckets sharing one lock table, and one whose states
# lock with `.tflock` lockfiles only and whose events come through EventBridge.
BACKENDS = (
    LocalBackend("main", "tfstate-guardian-local", "tfstate-guardian-locks"),
    LocalBackend("staging", "tfstate-guardian-local-staging", "tfstate-guardian-locks"),
    LocalBackend("lockfiles", "tfstate-guardian-local-lockfiles", None, events="eventbridge"),
)


def _port(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise SystemExit(f"{name} must be a port number between 1 and 65535, not {raw!r}")
    return int(raw)


def cli_instructions(api_url: str | None) -> str:
    """How to point `tfguardian` at this stack, in commands to paste: this interpreter's own script, by full path."""
    bin_dir = Path(sys.prefix) / "bin"
    script = bin_dir / "tfguardian"
    command = shlex.quote(str(script)) if script.exists() else f"{shlex.quote(sys.executable)} -m guardian_cli"
    activate = bin_dir / "activate"
    on_path = f"  (or `. {shlex.quote(str(activate))}`, then `tfguardian states`)" if activate.exists() else ""
    return f"""The tfguardian command, pointed at this stack (in each new shell):

  export TFGUARDIAN_ENDPOINT={api_url}
  {command} states{on_path}
"""


def _backends_table() -> str:
    """One line per backend: its bucket, how its states lock, how its events come."""
    lines = []
    for backend in BACKENDS:
        locking = f"lock table {backend.lock_table}" if backend.lock_table else "lockfiles only (use_lockfile = true)"
        events = "EventBridge" if backend.events == "eventbridge" else "S3 notifications"
        lines.append(f"  {backend.name:<10} s3://{backend.bucket}  ({locking}; events: {events})")
    return "\n".join(lines)


def main() -> int:
    aws_port = _port("GUARDIAN_AWS_PORT", DEFAULT_AWS_PORT)
    api_port = _port("GUARDIAN_API_PORT", DEFAULT_API_PORT)
    page_port = _port("GUARDIAN_PAGE_PORT", DEFAULT_PAGE_PORT)
    notify_file = Path(os.environ.get("GUARDIAN_NOTIFY_FILE") or WORK_DIR / "notifications.jsonl").resolve()
    WORK_DIR.mkdir(exist_ok=True)
    log_path = (WORK_DIR / "guardian.log").resolve()
    terminal = sys.stdout
    log = log_path.open("a", encoding="utf-8", buffering=1)
    # Handler logs and metrics go to the log file; the terminal keeps notifications and these messages.
    sys.stdout = log
    guardian_logger.registered_handler.setStream(log)  # type: ignore[attr-defined]
    stack = LocalStack(
        StackOptions(
            notify_file=notify_file,
            work_dir=WORK_DIR.resolve(),
            log=log,
            console=terminal,
            aws_port=aws_port,
            api_port=api_port,
            page_port=page_port,
            schedule_interval_s=float(os.environ.get("GUARDIAN_SCHEDULE_INTERVAL_S", "10")),
            backends=BACKENDS,
        )
    )
    stopping = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        stack.start()
    except (PortInUseError, EmulatorStartError) as exc:
        stack.stop()
        terminal.write(f"tfstate-guardian: {exc}\n")
        return 2
    except BaseException:
        stack.stop()
        raise
    stack.run_in_background()
    assert stack.resources is not None
    terminal.write(
        f"""
AWS emulator (moto):  {stack.endpoint}
Backends:
{_backends_table()}
REST API:             {stack.api_url}
Status page:          {stack.page_url}
Notifications:        this console, and JSON lines in {notify_file}
Guardian log:         {log_path}

Backend block for Terraform >= 1.6 (backend "main"; for the others, change bucket and lock settings):

{backend_block_modern(stack.endpoint, stack.resources)}
Backend block for Terraform 1.0 to 1.5 (backend "main"):

{backend_block_legacy(stack.endpoint, stack.resources)}
{cli_instructions(stack.api_url)}
tfstate-guardian ready (Ctrl-C to stop)
"""
    )
    terminal.flush()
    stopping.wait()
    terminal.write("tfstate-guardian stopping\n")
    stack.stop()
    terminal.write("tfstate-guardian stopped\n")
    terminal.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
