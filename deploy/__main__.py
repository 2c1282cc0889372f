"""`python -m deploy prepare|harden|replay|backfill --stage STAGE`: ready the accounts, harden after deploying, replay.

`prepare`, `harden` and `replay` read the stage's settings from `.chalice/config.json`, use your usual AWS credentials
and region (and `AWS_ENDPOINT_URL`, for an emulator), change only what differs, print one line per change, and print
"nothing to change" (`replay`: "nothing to replay") when there is none. A refusal or an AWS error is one line on
stderr and a non-zero exit.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import boto3

from deploy.errors import DeployError
from deploy.harden import harden
from deploy.prepare import prepare
from deploy.replay import Invoker, replay
from deploy.stage_config import DEFAULT_CONFIG, StageConfig, load_stage

EXIT_READY = 0
EXIT_FAILED = 1  # refused, an AWS error, or something left for the operator to do
EXIT_USAGE = 2  # argparse's own


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m deploy", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (
        ("prepare", "bring the state bucket, lock table, guardian table, topic and secrets to a ready state"),
        ("harden", "after chalice deploy: subscribe the handlers to every backend, dead-letter queues, alarms"),
        ("replay", "invoke the guardian again with what its dead-letter queues kept (exactly once still holds)"),
        ("backfill", "record the versions the state bucket holds that the history lacks, to the end"),
    ):
        command = commands.add_parser(name, help=help_text, description=help_text)
        command.add_argument("--stage", required=True, help="a stage of the Chalice config, e.g. dev or prod")
        command.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="the Chalice config to read")
        if name == "backfill":
            command.add_argument("--restart", action="store_true", help="walk the whole bucket again")
        else:
            command.add_argument("--dry-run", action="store_true", help="show what would change, and change nothing")
    return parser


def backfill(stage: StageConfig, *, restart: bool, say: Callable[[str], None]) -> int:
    """Run the history's backfill to the end with the stage's settings and your credentials; progress is logged."""
    from chalicelib.composition import Container  # noqa: PLC0415 - the guardian's code only for this command

    for settings in stage.backends:
        progress = Container(settings).backfill.run(restart=restart)
        say(f"backfill of {settings.backend.name} done: {progress.recorded} versions recorded, "
            f"{progress.looked_at} looked at")  # fmt: skip
    return EXIT_READY


def main(argv: Sequence[str] | None = None, *, session: boto3.session.Session | None = None,
         invoker: Invoker | None = None) -> int:  # fmt: skip
    """Run one command; its exit code. `invoker` replaces `lambda:Invoke` for `replay` (tests)."""
    args = _parser().parse_args(argv)

    def say(line: str) -> None:
        sys.stdout.write(line + "\n")

    try:
        stage = load_stage(args.config, args.stage)
        session = session or boto3.session.Session()
        if not session.region_name:
            raise DeployError("no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION, or a profile's region)")
        if args.command == "prepare":
            ready = prepare(session, stage, dry_run=args.dry_run, say=say, environ=os.environ)
            return EXIT_READY if ready else EXIT_FAILED
        if args.command == "backfill":
            return backfill(stage, restart=args.restart, say=say)
        if args.command == "replay":
            tally = replay(session, stage, dry_run=args.dry_run, say=say, invoke=invoker)
            return EXIT_FAILED if tally.failed else EXIT_READY
        harden(session, stage, dry_run=args.dry_run, say=say)
    except DeployError as exc:
        sys.stderr.write(f"{args.command}: error: {exc}\n")
        return EXIT_FAILED
    return EXIT_READY


if __name__ == "__main__":
    sys.exit(main())
