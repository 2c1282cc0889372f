"""`make run` from a fresh copy of the working tree to its `ready` line: cold (a new venv, no pip cache) and warm.

The copy holds the files git tracks or would track (`git ls-files --cached --others --exclude-standard`), so it
measures the tree as it is, uncommitted changes included, and none of the tree's `.venv`. Each run gets free
ports, stops on SIGTERM as a person's Ctrl-C stops it, and must leave nothing listening.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from local_stack.emulator import free_port

if TYPE_CHECKING:
    from bench.figures import Figure

ROOT = Path(__file__).resolve().parent.parent
COMMAND = "make bench ONLY=start"
READY = "tfstate-guardian ready"
BEFORE_S = 46.0  # the cold start, when `make run` installed the whole development toolchain
BEFORE_MB = 648
COLD_BAR_S = BEFORE_S / 2
WARM_BAR_S = 10.0
TIMEOUT_S = 600.0
# What `make run` must not install: the test, lint, type-checking and benchmark tools.
DEV_ONLY = ("pytest", "ruff", "mypy", "schemathesis", "matplotlib", "mypy_boto3_s3", "hypothesis")


@dataclass
class Start:
    """One `make run`: seconds to `ready`, and whether it stopped cleanly."""

    seconds: float
    stopped_cleanly: bool
    output: str


def copy_tree(into: Path) -> None:
    """The working tree's tracked and untracked-but-not-ignored files, as a fresh clone with your changes."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.decode()  # fmt: skip
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():  # a tracked file deleted in the tree is not copied
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, into / name)


def make_run(tree: Path, environment: dict[str, str]) -> Start:
    """Time `make run` in `tree` to its `ready` line, then stop it with SIGTERM."""
    ports = {name: str(free_port()) for name in ("GUARDIAN_AWS_PORT", "GUARDIAN_API_PORT", "GUARDIAN_PAGE_PORT")}
    start = time.perf_counter()
    process = subprocess.Popen(
        ["make", "run"], cwd=tree, env={**environment, **ports}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, start_new_session=True,
    )  # fmt: skip
    assert process.stdout is not None
    seen: list[str] = []
    seconds = float("nan")
    try:
        for line in process.stdout:
            seen.append(line)
            if READY in line:
                seconds = time.perf_counter() - start
                break
            if time.perf_counter() - start > TIMEOUT_S:
                break
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            rest = process.communicate(timeout=60)[0]
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            rest = process.communicate()[0]
    output = "".join(seen) + rest
    return Start(seconds, "stopped" in rest and "Traceback" not in output, output)


def installed_mb(venv: Path) -> float:
    return sum(path.stat().st_size for path in venv.rglob("*") if path.is_file() and not path.is_symlink()) / 1e6


def dev_tools_in(venv: Path) -> list[str]:
    site = next(venv.glob("lib/python*/site-packages"))
    return [name for name in DEV_ONLY if (site / name).exists()]


def start_figures() -> list[Figure]:
    """Cold and warm `make run` to `ready`, what the cold one installed, and that it left out the dev tools."""
    from bench.figures import Figure  # noqa: PLC0415

    environment = {name: value for name, value in os.environ.items() if not name.startswith(("GUARDIAN_", "AWS_"))}
    environment.pop("VIRTUAL_ENV", None)
    environment["PYTHON"] = _base_python()
    with tempfile.TemporaryDirectory(prefix="guardian-start-") as scratch:
        tree = Path(scratch) / "tfstate-guardian"
        copy_tree(tree)
        cold = make_run(tree, {**environment, "PIP_NO_CACHE_DIR": "1"})
        warm = make_run(tree, environment)
        size, extra = installed_mb(tree / ".venv"), dev_tools_in(tree / ".venv")
    for run in (cold, warm):
        if run.seconds != run.seconds:  # NaN: it never got there
            print(run.output[-4000:], file=sys.stderr)
    return [
        Figure(
            "make run from a fresh copy to `ready`, cold: a new venv, no pip cache",
            f"{cold.seconds:.1f} s (was {BEFORE_S:.0f} s, installing the whole toolchain)",
            cold.seconds / BEFORE_S,
            f"≤ {COLD_BAR_S:.0f} s",
            cold.seconds <= COLD_BAR_S and cold.stopped_cleanly,
            COMMAND,
        ),
        Figure(
            "make run again in the same copy to `ready`, warm",
            f"{warm.seconds:.1f} s",
            None,
            f"≤ {WARM_BAR_S:.0f} s",
            warm.seconds <= WARM_BAR_S and warm.stopped_cleanly,
            COMMAND,
        ),
        Figure(
            "what make run installs into .venv, and the dev tools among it",
            f"{size:.0f} MB (was {BEFORE_MB} MB); dev tools: {', '.join(extra) or 'none'}",
            size / BEFORE_MB,
            "none of pytest, ruff, mypy, schemathesis, matplotlib, boto3-stubs",
            not extra,
            COMMAND,
        ),
    ]


def _base_python() -> str:
    """The interpreter the venv was made from, as `make` would find `python3` on a machine without this venv."""
    return str(Path(sys.base_prefix) / "bin" / "python3")


if __name__ == "__main__":
    for figure in start_figures():
        print(f"{figure.name}: {figure.value} (bar {figure.bar}: {'met' if figure.met else 'NOT met'})")
