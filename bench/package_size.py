"""Deployment package size and cold-start import time, measured on the package `python -m deploy.package` builds.

The import figures run the app the way Lambda does: from the unpacked package, in a fresh interpreter that
cannot write bytecode (Lambda's task directory is read-only), with the stage's settings and no network.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

from deploy.package import DEPLOYMENT_ZIP, package, stage_environment
from deploy.stage_config import load_stage

if TYPE_CHECKING:
    from bench.figures import Figure

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / ".chalice" / "config.json"
STAGE = "dev"
MAX_ZIP_BYTES = 2 * 1000 * 1000
MAX_IMPORT_RATIO = 1.3
RUNS = 10
COMMAND = ".venv/bin/python -m bench.package_size"
APP_IMPORT = "import app"
FRAMEWORK_IMPORT = "import chalice.app\nfrom aws_lambda_powertools import Logger, Metrics"
# Modules whose presence after the import means an AWS client could have been made at import time.
AWS_CLIENT_MODULES = ("boto3", "botocore.session", "botocore.client")
_TIMED_IMPORT = """
import json, sys, time
start = time.perf_counter()
{statement}
elapsed = time.perf_counter() - start
print(json.dumps({{"seconds": elapsed, "aws_modules": [m for m in {aws_modules!r} if m in sys.modules]}}))
"""


def package_figures() -> list[Figure]:
    """The package's size, its import time against the framework's, and whether the import reaches for AWS."""
    from bench.figures import Figure  # noqa: PLC0415

    with tempfile.TemporaryDirectory(prefix="guardian-bench-") as scratch:
        work = Path(scratch)
        shipped = package(STAGE, work / "shipped", config=CONFIG).parent / DEPLOYMENT_ZIP
        plain = package(STAGE, work / "plain", config=CONFIG, precompile=False).parent / DEPLOYMENT_ZIP
        environment = stage_environment(load_stage(CONFIG, STAGE))
        shipped_dir, plain_dir = _unpack(shipped, work / "shipped-task"), _unpack(plain, work / "plain-task")
        app_s, framework_s, aws_modules = _best_imports(shipped_dir, environment)
        plain_app_s, _, _ = _best_imports(plain_dir, environment)
        size, plain_size = shipped.stat().st_size, plain.stat().st_size
    ratio = app_s / framework_s
    return [
        Figure(
            "deployment.zip, zipped (bytecode for the cold-start modules included)",
            f"{size / 1e6:.2f} MB (Chalice's own package: {plain_size / 1e6:.2f} MB)",
            None,
            "≤ 2 MB",
            size <= MAX_ZIP_BYTES,
            COMMAND,
        ),
        Figure(
            "import of app.py vs chalice.app + Powertools Logger and Metrics, from the package",
            f"{app_s * 1000:.0f} ms vs {framework_s * 1000:.0f} ms (best of {RUNS})",
            ratio,
            f"≤ {MAX_IMPORT_RATIO}×",
            ratio <= MAX_IMPORT_RATIO,
            COMMAND,
        ),
        Figure(
            "AWS SDK session or client modules imported by importing app.py",
            ", ".join(aws_modules) or "none",
            None,
            "none",
            not aws_modules,
            COMMAND,
        ),
        Figure(
            "import of app.py, package with bytecode vs as Chalice builds it",
            f"{app_s * 1000:.0f} ms vs {plain_app_s * 1000:.0f} ms",
            app_s / plain_app_s,
            "—",
            None,
            COMMAND,
        ),
    ]


def _unpack(deployment: Path, task_root: Path) -> Path:
    with zipfile.ZipFile(deployment) as archive:
        archive.extractall(task_root)
    return task_root


def _best_imports(task_root: Path, environment: dict[str, str]) -> tuple[float, float, list[str]]:
    """Best of RUNS fresh imports of the app and of the framework alone, alternated so drift hits both alike."""
    app_times, framework_times, aws_modules = [], [], set()
    for _ in range(RUNS):
        seconds, found = _timed_import(task_root, environment, APP_IMPORT)
        app_times.append(seconds)
        aws_modules.update(found)
        framework_times.append(_timed_import(task_root, environment, FRAMEWORK_IMPORT)[0])
    return min(app_times), min(framework_times), sorted(aws_modules)


def _timed_import(task_root: Path, environment: dict[str, str], statement: str) -> tuple[float, list[str]]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(task_root),
        "AWS_DEFAULT_REGION": "us-east-1",
        # Nothing at import may reach the network; if something tried, this keeps it from waiting on IMDS.
        "AWS_EC2_METADATA_DISABLED": "true",
        **environment,
    }
    script = _TIMED_IMPORT.format(statement=statement, aws_modules=AWS_CLIENT_MODULES)
    result = subprocess.run(
        [sys.executable, "-s", "-B", "-c", script],
        cwd=task_root,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    measured = json.loads(result.stdout.splitlines()[-1])
    return float(measured["seconds"]), list(measured["aws_modules"])


if __name__ == "__main__":
    for figure in package_figures():
        print(figure)
