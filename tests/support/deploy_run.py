"""`make deploy` run whole, in this process, against an emulator: each command of its recipe, its AWS calls recorded.

The recipe is read from the Makefile (`make -n deploy`), so the run is what a deployer's `make deploy STAGE=...`
runs: `python -m deploy prepare`, `chalice deploy`, `python -m deploy harden`. Each runs in this process (so every
AWS call it makes is seen, for the deployer policy's check) on a copy of the project, so that Chalice's record of
what it deployed (`.chalice/deployed/`) never touches the working tree.

Where the emulator cannot take what AWS takes, the harness works around it here, never in the product (each listed
in the README's emulator notes):

- moto's ImportRestApi reads `info.description` of the API document and fails (500) without one; Chalice's document
  has none. The harness adds an empty description to the ImportRestApi and PutRestApi requests Chalice sends.
- moto's ImportRestApi and PutRestApi take OpenAPI 3 documents only (BadRequestException "Only OpenAPI 3.x.x are
  currently supported"); Chalice sends Swagger 2.0, which API Gateway takes. The harness relabels the document
  `openapi: 3.0.1` in those requests: moto reads only its paths, methods, responses and integrations, whose shape
  Swagger 2.0 and OpenAPI 3 share.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.session import Session as BotocoreSession
from chalice.cli import cli as chalice_cli
from chalice.cli.factory import CLIFactory

from deploy.__main__ import main as deploy_main

ROOT = Path(__file__).resolve().parents[2]
# What the copy needs: the app Chalice packages, its config and policies, and Chalice's cache of built packages.
PROJECT_FILES = ("app.py", "requirements.txt", "chalicelib")


@dataclass(frozen=True)
class DeployerCall:
    """One AWS call a deploy command made: which command, the service and operation, and its parameters."""

    command: str  # prepare, chalice or harden
    service: str
    operation: str
    params: dict[str, Any]
    region: str


@dataclass
class CommandRun:
    """What one command of the recipe printed and returned."""

    command: str
    argv: list[str]
    exit_code: int
    output: str


@dataclass
class DeployRun:
    """One whole `make deploy`: each command's run, in order, and every AWS call."""

    commands: list[CommandRun] = field(default_factory=list)
    calls: list[DeployerCall] = field(default_factory=list)

    def output(self, command: str) -> str:
        return "\n".join(run.output for run in self.commands if run.command == command)


def recipe(target: str, stage: str) -> list[list[str]]:
    """The commands `make <target> STAGE=<stage>` runs, its prerequisites of installing taken as done."""
    result = subprocess.run(
        ["make", "-s", "-n", "-o", ".venv/.installed", "-o", ".venv/.installed-run", target, f"STAGE={stage}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return [shlex.split(line) for line in result.stdout.splitlines() if line.strip()]


def copy_project(target: Path) -> Path:
    """The app, its Chalice config and policies, and Chalice's package cache, copied to `target`."""
    target.mkdir(parents=True)
    for name in PROJECT_FILES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copyfile(source, target / name)
    chalice = target / ".chalice"
    chalice.mkdir()
    for path in (ROOT / ".chalice").glob("*.json"):
        shutil.copyfile(path, chalice / path.name)
    if (ROOT / ".chalice" / "deployments").is_dir():
        shutil.copytree(ROOT / ".chalice" / "deployments", chalice / "deployments")
    return target


def as_moto_takes_it(params: dict[str, Any], **_: Any) -> None:
    """Chalice's API document as moto takes it: with an `info.description`, labelled OpenAPI 3 (emulator notes)."""
    body = params.get("body")
    if body is None:
        return
    document = json.loads(body)
    document.setdefault("info", {}).setdefault("description", "")
    if document.pop("swagger", None) is not None:
        document["openapi"] = "3.0.1"
    params["body"] = json.dumps(document).encode() if isinstance(body, bytes) else json.dumps(document)


@contextlib.contextmanager
def emulated_account(endpoint: str, region: str) -> Iterator[None]:
    """The environment a deployer's shell has, pointed at the emulator; put back as it was afterwards."""
    saved = dict(os.environ)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_REGION"):
        os.environ.pop(name, None)
    os.environ.update(
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID="deployer",
        AWS_SECRET_ACCESS_KEY="deployer",
        AWS_DEFAULT_REGION=region,
    )
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


class DeployRunner:
    """Runs the recipe's commands in this process on a project copy, recording each AWS call they make."""

    def __init__(self, project: Path, endpoint: str, region: str) -> None:
        self.project = project
        self.endpoint = endpoint
        self.region = region

    def run(self, stage: str) -> DeployRun:
        run = DeployRun()
        with emulated_account(self.endpoint, self.region):
            for argv in recipe("deploy", stage):
                run.commands.append(self._run(argv, run))
                if run.commands[-1].exit_code != 0:
                    break
        return run

    def _run(self, argv: list[str], run: DeployRun) -> CommandRun:
        program = Path(argv[0]).name
        if program.startswith("python") and argv[1:3] == ["-m", "deploy"]:
            command = argv[3]
            session = boto3.session.Session()
            self._record(session._session, command, run)
            args = [*argv[3:], "--config", str(self.project / ".chalice" / "config.json")]
            output = io.StringIO()
            with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
                code = deploy_main(args, session=session)
            return CommandRun(command, argv, code, output.getvalue())
        if program == "chalice":
            return self._chalice(argv, run)
        raise AssertionError(f"the deploy recipe runs {argv}: teach the harness to run it in this process")

    def _chalice(self, argv: list[str], run: DeployRun) -> CommandRun:
        create = CLIFactory.create_botocore_session
        runner = self

        def recorded(factory: CLIFactory, *args: Any, **kwargs: Any) -> BotocoreSession:
            session = create(factory, *args, **kwargs)
            runner._record(session, "chalice", run)
            for operation in ("ImportRestApi", "PutRestApi"):
                session.register(f"before-parameter-build.api-gateway.{operation}", as_moto_takes_it)  # type: ignore[arg-type]
            return session

        output = io.StringIO()
        CLIFactory.create_botocore_session = recorded  # type: ignore[method-assign,assignment]
        cwd = Path.cwd()  # Chalice's command line changes to the project's directory, and stays there
        try:
            with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
                try:
                    chalice_cli.main(
                        args=["--project-dir", str(self.project), *argv[1:]], obj={}, standalone_mode=False
                    )
                    code = 0
                except SystemExit as exc:
                    code = int(exc.code or 0)
                except Exception as exc:
                    output.write(f"chalice failed: {exc!r}\n")
                    code = 2
        finally:
            CLIFactory.create_botocore_session = create  # type: ignore[method-assign]
            os.chdir(cwd)  # what this process starts later (an emulator: `python -m local_stack...`) runs from here
        return CommandRun("chalice", argv, code, output.getvalue())

    def _record(self, session: BotocoreSession, command: str, run: DeployRun) -> None:
        def record(model: Any, params: dict[str, Any], context: Any = None, **_: Any) -> None:
            kept = {name: value for name, value in params.items() if name not in ("Body", "ZipFile", "body")}
            region = (context or {}).get("client_region") or self.region
            run.calls.append(DeployerCall(command, model.service_model.service_name, model.name, kept, region))

        session.register("before-parameter-build", record)  # type: ignore[arg-type]
