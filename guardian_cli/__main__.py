"""`tfguardian`: parse the command line, run the command, and end every failure as a message and an exit code.

Text from the API (keys, `Who`, addresses, messages) is printed with control characters shown as escapes, so it
cannot steer the terminal. No user error ends in a traceback: each has its exit code (`tfguardian --help`).
"""

from __future__ import annotations

import json
import os
import sys
from typing import TextIO

from guardian_cli.args import parse
from guardian_cli.client import Api
from guardian_cli.commands import COMMANDS
from guardian_cli.errors import CliError, FailedError, NotFoundError, RefusedError
from guardian_cli.exit_codes import ExitCode, exit_code_of
from guardian_cli.output import terminal_safe


def main(argv: list[str] | None = None) -> int:
    for stream in (sys.stdout, sys.stderr):
        _never_fail_to_encode(stream)
    json_errors = False
    try:
        args = parse(argv)
        json_errors = args.json
        api = Api(args.endpoint, region=args.region, profile=args.profile, act_as=args.act_as, backend=args.backend)
        try:
            COMMANDS[args.command](api, args)
        except (KeyError, TypeError, AttributeError) as exc:  # JSON of another shape: another service, another API
            raise FailedError(
                f"the answer is not what the guardian's API answers ({type(exc).__name__}: {exc}): is the endpoint "
                "right?"
            ) from None
        sys.stdout.flush()
    except CliError as exc:
        _report(exc, json_errors=json_errors)
        return exit_code_of(exc)
    except KeyboardInterrupt:
        print("\ntfguardian: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
    except BrokenPipeError:  # `tfguardian states | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing left to flush at exit
        return ExitCode.OK
    return ExitCode.OK


def _report(error: CliError, *, json_errors: bool) -> None:
    if json_errors:
        print(json.dumps(error.as_json()), file=sys.stderr)
        return
    message = terminal_safe(str(error))
    if isinstance(error, RefusedError):
        print(f"refused: {message}{_refusal_details(error)}", file=sys.stderr)
    elif isinstance(error, NotFoundError):
        print(f"not found: {message}", file=sys.stderr)
    elif isinstance(error, FailedError):
        print(f"tfguardian: failed: {message}", file=sys.stderr)
    else:
        print(f"tfguardian: {message}", file=sys.stderr)


def _refusal_details(error: RefusedError) -> str:
    """What the guardian's refusal adds to its message: the rule that refused, the lock's holder."""
    body = error.body or {}
    details = []
    if isinstance(body.get("rule"), str):
        details.append(f"rule: {body['rule']}")
    lock = body.get("lock")
    if isinstance(lock, dict) and lock.get("who"):
        details.append(f"held by {lock['who']}, {lock.get('operation')}, lock ID {lock.get('id')}")
    return terminal_safe(f" ({'; '.join(details)})") if details else ""


def _never_fail_to_encode(stream: TextIO) -> None:
    """A character the terminal's encoding lacks is printed escaped, never raised."""
    reconfigure = getattr(stream, "reconfigure", None)
    if reconfigure is not None:
        reconfigure(errors="backslashreplace")


if __name__ == "__main__":
    sys.exit(main())
