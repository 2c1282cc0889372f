"""Running `tfguardian` as a person does: a process of its own, against the local stack's REST API."""

from __future__ import annotations

import subprocess
import sys

from local_stack.stack import LocalStack


def tfguardian(local: LocalStack, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """The command with `--endpoint` the local stack's API, its output captured."""
    assert local.api_url is not None
    return subprocess.run(
        [sys.executable, "-m", "guardian_cli", "--endpoint", local.api_url, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
