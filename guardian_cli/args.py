"""`tfguardian`'s command line: global options before or after each command, the commands, the endpoint to call."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from urllib.parse import urlsplit

from guardian_cli.client import ACT_AS_HEADER, is_local
from guardian_cli.exit_codes import exit_codes_help
from guardian_cli.ui_server import add_arguments as add_ui_arguments

DESCRIPTION = """\
The tfstate-guardian command, over the guardian's REST API: states, history,
events, versions, diff, rollback, locks, unlock and repair-digest. It signs each
request with SigV4 from your usual AWS credentials (API Gateway with IAM
authorization), or calls the local stack (`make run`) unsigned. Tables for
people, --json for scripts. Global options go before or after the command."""
LOCAL_API_PORT = 8055  # `make run`'s default GUARDIAN_API_PORT
MAX_PAGE = 1000


def _global_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """The options every command takes, before or after it; after it, only what is given overrides."""

    def default(value: object) -> object:
        return argparse.SUPPRESS if suppress else value

    parser.add_argument("--endpoint", metavar="URL", default=default(None),
                        help="the API's base URL (default $TFGUARDIAN_ENDPOINT, else the local stack: "
                        f"http://127.0.0.1:$GUARDIAN_API_PORT, port {LOCAL_API_PORT} unless set)")  # fmt: skip
    parser.add_argument("--profile", default=default(os.environ.get("AWS_PROFILE") or None),
                        help="AWS profile to sign with (default $AWS_PROFILE, else the usual credentials)")  # fmt: skip
    parser.add_argument("--region", default=default(os.environ.get("AWS_REGION") or None),
                        help="region to sign for (default $AWS_REGION, else the profile's)")  # fmt: skip
    parser.add_argument("--backend", metavar="NAME", default=default(os.environ.get("TFGUARDIAN_BACKEND") or None),
                        help="the backend of the state (needed when the guardian watches several); for states, "
                        "locks and events, only that backend's (default $TFGUARDIAN_BACKEND)")  # fmt: skip
    parser.add_argument("--json", action="store_true", default=default(False),
                        help="print the API's JSON answer; failures as JSON on stderr")  # fmt: skip
    parser.add_argument("--act-as", metavar="ARN", default=default(os.environ.get("TFGUARDIAN_ACT_AS") or None),
                        help=f"local stack only: act as this IAM principal (sends {ACT_AS_HEADER}, which the local "
                        "stack honours and a deployed API ignores; default $TFGUARDIAN_ACT_AS)")  # fmt: skip


def _page_size(raw: str) -> int:
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to {MAX_PAGE}, not {raw!r}")
    return int(raw)


def _serial(raw: str) -> int:
    if not raw.isdigit():
        raise argparse.ArgumentTypeError(f"must be a serial, a whole number such as 41, not {raw!r}")
    return int(raw)


def _paging(command: argparse.ArgumentParser) -> None:
    command.add_argument("--limit", type=_page_size, help=f"at most this many per page, 1 to {MAX_PAGE} (default 100)")
    command.add_argument("--next", help="the page the previous answer's `next` names")
    command.add_argument("--all", action="store_true", help="every page, one after the other")


def parser() -> argparse.ArgumentParser:
    """The command line: global options before or after each command; the exit codes in the help."""
    top = argparse.ArgumentParser(
        prog="tfguardian",
        description=DESCRIPTION,
        epilog=exit_codes_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _global_options(top, suppress=False)
    common = argparse.ArgumentParser(add_help=False)
    _global_options(common, suppress=True)
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        return commands.add_parser(
            name, help=help_text, description=help_text, epilog=exit_codes_help(), parents=[common],
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )  # fmt: skip

    states = command("states", "the fleet: each state's latest version, writer and lock holder")
    states.add_argument("--prefix", default="", help="only the keys under this path prefix")
    _paging(states)
    versions = command("versions", "a state's versions, newest first")
    versions.add_argument("key")
    versions.add_argument("--address", help="only the versions that added, changed or removed this resource")
    _paging(versions)
    history = command("history", "a state's versions with who wrote each and what it changed")
    history.add_argument("key")
    _paging(history)
    events = command("events", "the audit trail, newest first")
    events.add_argument("--key", help="one state's events")
    events.add_argument("--prefix", help="states whose keys start with this")
    events.add_argument("--type", help="e.g. state.changed, lock.force_released")
    events.add_argument("--actor", help="a lock holder (Who), an S3 principal or an API caller")
    events.add_argument("--since", help="RFC3339 time, e.g. 2026-11-26T11:00:00Z")
    events.add_argument("--until", help="RFC3339 time")
    _paging(events)
    diff = command("diff", "resource and output changes between two versions, each a version id or a serial")
    diff.add_argument("key")
    diff.add_argument("from_version", metavar="FROM", help="a version id, or a serial (the newest version with it)")
    diff.add_argument("to_version", metavar="TO", help="a version id, or a serial (the newest version with it)")
    rollback = command("rollback", "restore an earlier version (shows the diff, asks first)")
    rollback.add_argument("key")
    target = rollback.add_mutually_exclusive_group(required=True)
    target.add_argument("--version-id", help="the version to restore")
    target.add_argument("--serial", type=_serial, help="the newest version with this serial")
    target.add_argument("--as-of", metavar="TIME", help="the version current at this RFC3339 time")
    rollback.add_argument("--reason", default="", help="said in the state.restored notification")
    rollback.add_argument("--allow-lineage-change", action="store_true")
    rollback.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    command("locks", "held locks with the reaper's verdict")
    unlock = command("unlock", "verified force-unlock: the lock ID must match")
    unlock.add_argument("key")
    unlock.add_argument("lock_id")
    unlock.add_argument("--reason", default="", help="said in the lock.force_released notification")
    repair = command("repair-digest", "set the digest to the MD5 of the current bytes")
    repair.add_argument("key")
    add_ui_arguments(command("ui", "serve the status page on 127.0.0.1, its API calls signed with your credentials"))
    return top


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """The arguments, with the endpoint resolved; a usage error exits 2 naming what is wrong."""
    command_line = parser()
    args = command_line.parse_args(argv)
    try:
        args.endpoint = endpoint(args.endpoint, os.environ)
    except ValueError as exc:
        command_line.error(str(exc))
    if args.act_as:
        if not is_local(args.endpoint):
            command_line.error(
                "--act-as (or TFGUARDIAN_ACT_AS) works only with the local stack (an endpoint on 127.0.0.1 or "
                "localhost): a deployed API knows who you are from your AWS credentials"
            )
        if not args.act_as.startswith("arn:") or not args.act_as.isprintable():
            command_line.error("--act-as takes an IAM principal ARN, e.g. arn:aws:iam::123456789012:role/deployer")
    return args


def endpoint(given: str | None, environ: Mapping[str, str]) -> str:
    """The API's base URL: `--endpoint`, else TFGUARDIAN_ENDPOINT, else the local stack on GUARDIAN_API_PORT."""
    if given:
        url, source = given, "--endpoint"
    elif environ.get("TFGUARDIAN_ENDPOINT"):
        url, source = environ["TFGUARDIAN_ENDPOINT"], "TFGUARDIAN_ENDPOINT"
    else:
        port = environ.get("GUARDIAN_API_PORT", "").strip() or str(LOCAL_API_PORT)
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"GUARDIAN_API_PORT must be a port number between 1 and 65535, not {port!r}")
        return f"http://127.0.0.1:{int(port)}"
    if not _is_http_url(url):
        raise ValueError(
            f"{source} must be an http:// or https:// URL such as "
            f"https://abc123.execute-api.eu-west-1.amazonaws.com/api/, not {url!r}"
        )
    return url


def _is_http_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)
