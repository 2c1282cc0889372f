"""`tfguardian`'s exit codes: one table, printed by `--help` and copied in the README (a test keeps them equal)."""

from __future__ import annotations

import textwrap
from enum import IntEnum

from guardian_cli.errors import (
    CliError,
    DeclinedError,
    FailedError,
    NotFoundError,
    RefusedError,
    UnreachableError,
)


class ExitCode(IntEnum):
    OK = 0
    DECLINED = 1
    USAGE = 2  # as argparse exits
    REFUSED = 3
    NOT_FOUND = 4
    UNREACHABLE = 5
    FAILED = 6
    INTERRUPTED = 130  # 128 + SIGINT, as a shell reports Ctrl-C


MEANINGS: dict[ExitCode, str] = {
    ExitCode.OK: "done",
    ExitCode.DECLINED: "nothing changed: the confirmation was answered no, or could not be asked (standard input "
    "closed; pass --yes)",
    ExitCode.USAGE: "the command line is wrong: an unknown command or option, a missing or malformed argument "
    "(the message names it)",
    ExitCode.REFUSED: "the guardian refused: HTTP 4xx other than 404 (invalid request, not allowed, locked, "
    "lineage change, not a state)",
    ExitCode.NOT_FOUND: "no such state, version or serial (HTTP 404)",
    ExitCode.UNREACHABLE: "cannot reach the API or sign the request: network, TLS, timeout, AWS credentials or profile",
    ExitCode.FAILED: "the API failed (HTTP 5xx), redirected, or answered with something that is not its JSON",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C)",
}

# The one table from failure to exit code.
EXIT_CODE: dict[type[CliError], ExitCode] = {
    DeclinedError: ExitCode.DECLINED,
    RefusedError: ExitCode.REFUSED,
    NotFoundError: ExitCode.NOT_FOUND,
    UnreachableError: ExitCode.UNREACHABLE,
    FailedError: ExitCode.FAILED,
}


def exit_code_of(error: CliError) -> ExitCode:
    """The exit code of a failure: the entry of its nearest class."""
    for cls in type(error).__mro__:
        if cls in EXIT_CODE:
            return EXIT_CODE[cls]
    return ExitCode.FAILED


def exit_codes_help(width: int = 79) -> str:
    """The exit codes as `--help` prints them after the commands."""
    lines = ["exit codes:"]
    for code, meaning in MEANINGS.items():
        lines += textwrap.wrap(meaning, width, initial_indent=f"  {code:<4} ", subsequent_indent=" " * 7)
    return "\n".join(lines)
