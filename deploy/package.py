"""`python -m deploy.package --stage STAGE OUTDIR`: the guardian as Terraform configuration that Terraform 1.x applies.

Runs `chalice package --pkg-format terraform`, which writes `chalice.tf.json` and `deployment.zip` into OUTDIR, then
adds what Chalice's output lacks: the override files of `deploy/terraform/` (Terraform and AWS provider versions),
stage-unique names for the schedule rules, everything `python -m deploy harden` sets up (`deploy.terraform_resources`:
each backend's subscription, the dead-letter queues, the alarms and the dashboard, with harden's very settings), and
compiled bytecode for every module a cold start imports.
Then `cd OUTDIR && terraform init && terraform apply`. Files already in OUTDIR (`.terraform/`, a backend file, a
local state) are left alone.
"""

from __future__ import annotations

import argparse
import json
import os
import py_compile
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from deploy.errors import DeployError
from deploy.stage_config import DEFAULT_CONFIG, StageConfig, load_stage
from deploy.terraform_resources import EVENT_SOURCES_FILE, MONITORING_FILE, event_sources, monitoring

OVERRIDES = Path(__file__).resolve().parent / "terraform"
TEMPLATE = "chalice.tf.json"
DEPLOYMENT_ZIP = "deployment.zip"
RULE_NAMES_OVERRIDE = "schedule_rule_names_override.tf.json"
# What `harden` owns: Chalice's output must not subscribe a handler itself, or the two would fight over it.
HARDENED_KINDS = (
    "aws_lambda_event_source_mapping",
    "aws_s3_bucket_notification",
    "aws_lambda_function_event_invoke_config",
)
# Where Lambda unpacks the deployment package: tracebacks name the files there.
LAMBDA_TASK_ROOT = "/var/task"
# Imports every module a cold start or a first invocation needs, and prints the files they came from.
_LIST_COLD_START_MODULES = """
import importlib, pkgutil, sys
import app, chalicelib
for module in pkgutil.walk_packages(chalicelib.__path__, "chalicelib."):
    importlib.import_module(module.name)
for module in list(sys.modules.values()):
    print(getattr(module, "__file__", None) or "")
"""

EXIT_PACKAGED = 0
EXIT_FAILED = 1


class PackagingError(DeployError):
    """Chalice could not package the app, or its output is not what the guardian's Terraform needs."""


def package(
    stage_name: str,
    outdir: Path,
    *,
    config: Path = DEFAULT_CONFIG,
    precompile: bool = True,
    say: Callable[[str], None] = lambda line: None,
) -> Path:
    """Write the stage's Terraform configuration and deployment package into `outdir`; the template's path."""
    stage = load_stage(config, stage_name)
    project = config.resolve().parent.parent
    outdir = outdir.resolve()
    _chalice_package(stage, project, outdir)
    template = json.loads((outdir / TEMPLATE).read_text(encoding="utf-8"))
    _check_nothing_hardened(template)
    for override in sorted(OVERRIDES.glob("*_override.tf.json")):
        shutil.copyfile(override, outdir / override.name)
        say(f"added {override.name}")
    _write_rule_names(stage, template, outdir / RULE_NAMES_OVERRIDE)
    say(f"added {RULE_NAMES_OVERRIDE}")
    for name, document in ((EVENT_SOURCES_FILE, event_sources(stage)), (MONITORING_FILE, monitoring(stage))):
        (outdir / name).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        say(f"added {name}")
    if precompile:
        compiled = _precompile(outdir / DEPLOYMENT_ZIP, _runtimes(template), stage_environment(stage))
        say(f"compiled {compiled} modules into {DEPLOYMENT_ZIP}" if compiled else "left the bytecode out: see above")
    return outdir / TEMPLATE


def stage_environment(stage: StageConfig) -> dict[str, str]:
    """The environment variables the stage's functions run with, as `.chalice/config.json` sets them."""
    config = json.loads(stage.path.read_text(encoding="utf-8"))
    return {
        **config.get("environment_variables", {}),
        **config["stages"][stage.stage].get("environment_variables", {}),
    }


def _chalice_package(stage: StageConfig, project: Path, outdir: Path) -> None:
    chalice = Path(sys.executable).parent / "chalice"
    command = [str(chalice if chalice.exists() else "chalice")]
    command += ["package", "--pkg-format", "terraform", "--stage", stage.stage, str(outdir)]
    env = dict(os.environ)
    # Chalice's botocore session wants a region (it reads only AWS_DEFAULT_REGION), though the template takes
    # the region from the AWS provider at apply time.
    if not env.get("AWS_DEFAULT_REGION"):
        env["AWS_DEFAULT_REGION"] = env.get("AWS_REGION") or "us-east-1"
    result = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise PackagingError(f"chalice package failed: {(result.stderr or result.stdout).strip()}")


def _check_nothing_hardened(template: dict[str, Any]) -> None:
    resources = template.get("resource", {})
    found = sorted(f"{kind}.{name}" for kind in HARDENED_KINDS for name in resources.get(kind, {}))
    if found:
        raise PackagingError(
            f"chalice package subscribed a handler itself ({', '.join(found)}): app.py's S3 and stream handlers must "
            "be plain @app.lambda_function functions, which the guardian's own Terraform files subscribe"
        )


def _write_rule_names(stage: StageConfig, template: dict[str, object], path: Path) -> None:
    """Name each schedule rule `<app>-<stage>-<rule>`, as `chalice deploy` does.

    Chalice's Terraform output names a rule after its handler only, so a second stage in the same account and
    region would silently take over the first stage's rules and their targets.
    """
    resources = template.get("resource")
    rules = resources.get("aws_cloudwatch_event_rule", {}) if isinstance(resources, dict) else {}
    override = {
        "resource": {
            "aws_cloudwatch_event_rule": {
                rule: {"name": f"{stage.app_name}-{stage.stage}-{rule}"} for rule in sorted(rules)
            }
        }
    }
    path.write_text(json.dumps(override, indent=2) + "\n", encoding="utf-8")


def _runtimes(template: dict[str, object]) -> set[str]:
    resources = template.get("resource")
    functions = resources.get("aws_lambda_function", {}) if isinstance(resources, dict) else {}
    return {str(function.get("runtime")) for function in functions.values()}


def _precompile(deployment: Path, runtimes: set[str], environment: dict[str, str]) -> int:
    """Add unchecked-hash bytecode for the modules a cold start imports; how many.

    Lambda unpacks the package read-only, so without it every cold start compiles those modules from source.
    Unchecked-hash `.pyc` files are used without comparing them to the sources' timestamps, which the unpacking
    does not keep. Only the modules on the import path are compiled, to keep the package small.
    """
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    if runtimes != {version}:
        sys.stderr.write(f"package: bytecode left out: the functions run {sorted(runtimes)}, this is {version}\n")
        return 0
    with tempfile.TemporaryDirectory(prefix="guardian-package-") as scratch:
        root = Path(scratch)
        with zipfile.ZipFile(deployment) as archive:
            archive.extractall(root)
        sources = _cold_start_sources(root, environment)
        compiled: dict[str, bytes] = {}
        for source in sources:
            relative = source.relative_to(root).as_posix()
            target = py_compile.compile(
                str(source),
                dfile=f"{LAMBDA_TASK_ROOT}/{relative}",
                invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
                doraise=True,
            )
            if target is None:  # only without doraise
                raise PackagingError(f"could not compile {relative}")
            compiled[Path(target).relative_to(root).as_posix()] = Path(target).read_bytes()
        _rewrite_with(deployment, compiled)
    return len(compiled)


def _cold_start_sources(root: Path, environment: dict[str, str]) -> list[Path]:
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(root), "AWS_DEFAULT_REGION": "us-east-1"}
    env.update(environment)
    result = subprocess.run(
        [sys.executable, "-s", "-B", "-c", _LIST_COLD_START_MODULES],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise PackagingError(f"the packaged app does not import: {result.stderr.strip().splitlines()[-1:]}")
    files = {Path(line) for line in result.stdout.splitlines() if line.endswith(".py")}
    return sorted(path for path in files if path.is_relative_to(root))


def _rewrite_with(deployment: Path, extra: dict[str, bytes]) -> None:
    partial = deployment.with_suffix(".zip.partial")
    with zipfile.ZipFile(deployment) as source, zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as target:
        for entry in source.infolist():
            if entry.filename not in extra:
                target.writestr(entry, source.read(entry))
        for name, data in sorted(extra.items()):
            # A fixed timestamp keeps the zip, and so Terraform's source_code_hash, the same for the same code.
            entry = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            entry.external_attr = 0o644 << 16
            target.writestr(entry, data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
    partial.replace(deployment)


def _print(line: str) -> None:
    sys.stdout.write(line + "\n")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m deploy.package", description=__doc__.splitlines()[0])
    parser.add_argument("--stage", required=True, help="a stage of the Chalice config, e.g. dev or prod")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="the Chalice config to read")
    parser.add_argument("--no-bytecode", action="store_true", help="leave compiled bytecode out of the package")
    parser.add_argument("outdir", type=Path, help="where to write chalice.tf.json, deployment.zip and overrides")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Package one stage; the exit code."""
    args = _parser().parse_args(argv)
    try:
        template = package(
            args.stage,
            args.outdir,
            config=args.config,
            precompile=not args.no_bytecode,
            say=_print,
        )
    except DeployError as exc:
        sys.stderr.write(f"package: error: {exc}\n")
        return EXIT_FAILED
    _print(f"packaged: cd {template.parent} && terraform init && terraform apply")
    return EXIT_PACKAGED


if __name__ == "__main__":
    sys.exit(main())
