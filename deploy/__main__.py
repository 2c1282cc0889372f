"""`python -m deploy prepare|harden --stage STAGE`: ready an AWS account for `chalice deploy`, and harden after it.

Both commands read the stage's settings from `.chalice/config.json`, use your usual AWS credentials and region
(and `AWS_ENDPOINT_URL`, for an emulator), change only what differs, print one line per change, and print
"nothing to change" when there is none. A refusal or an AWS error is one line on stderr and a non-zero exit.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import boto3

from deploy.errors import DeployError
from deploy.harden import harden
from deploy.prepare import prepare
from deploy.stage_config import DEFAULT_CONFIG, load_stage

EXIT_READY = 0
EXIT_FAILED = 1  # refused, an AWS error, or something left for the operator to do
EXIT_USAGE = 2  # argparse's own


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m deploy", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (
        ("prepare", "bring the state bucket, lock table, guardian table, topic and secrets to a ready state"),
        ("harden", "after chalice deploy: dead-letter queue, retries and bisect on the lock stream's mapping"),
    ):
        command = commands.add_parser(name, help=help_text, description=help_text)
        command.add_argument("--stage", required=True, help="a stage of the Chalice config, e.g. dev or prod")
        command.add_argument("--dry-run", action="store_true", help="show what would change, and change nothing")
        command.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="the Chalice config to read")
    return parser


def main(argv: Sequence[str] | None = None, *, session: boto3.session.Session | None = None) -> int:
    """Run one command; its exit code."""
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
        harden(session, stage, dry_run=args.dry_run, say=say)
    except DeployError as exc:
        sys.stderr.write(f"{args.command}: error: {exc}\n")
        return EXIT_FAILED
    return EXIT_READY


if __name__ == "__main__":
    sys.exit(main())
