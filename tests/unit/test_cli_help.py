"""`tfguardian --help` and the README say the same exit codes, and every failure maps to one of them."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from guardian_cli.args import parser
from guardian_cli.errors import CliError, DeclinedError, FailedError, NotFoundError, RefusedError, UnreachableError
from guardian_cli.exit_codes import MEANINGS, ExitCode, exit_code_of

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_exit_codes() -> dict[int, str]:
    section = README.read_text().split("## The command line", 1)[1].split("\n## ", 1)[0]
    table = section.split("| exit code | meaning |", 1)[1]
    return {int(code): meaning for code, meaning in re.findall(r"^\| `(\d+)` \| (.+) \|$", table, re.MULTILINE)}


def help_exit_codes(text: str) -> dict[int, str]:
    listed = text.split("exit codes:\n", 1)[1]
    codes: dict[int, str] = {}
    for line in listed.splitlines():
        if match := re.match(r"^  (\d+)\s+(.*)$", line):
            code = int(match.group(1))
            codes[code] = match.group(2)
        elif line.startswith("       ") and codes:
            codes[code] += " " + line.strip()
    return codes


def test_the_readme_and_the_help_list_the_same_exit_codes() -> None:
    in_help = help_exit_codes(parser().format_help())
    assert in_help == {int(code): meaning for code, meaning in MEANINGS.items()}
    assert readme_exit_codes() == in_help


def test_every_command_help_lists_them_too() -> None:
    top = parser()
    commands = next(action for action in top._actions if isinstance(action, argparse._SubParsersAction))
    for name, command in commands.choices.items():
        assert help_exit_codes(command.format_help()) == help_exit_codes(top.format_help()), name


def test_each_failure_has_its_own_documented_code() -> None:
    failures = [DeclinedError("x"), RefusedError("x"), NotFoundError("x"), UnreachableError("x"), FailedError("x")]
    codes = [exit_code_of(failure) for failure in failures]
    assert len(set(codes)) == len(codes) and all(code in MEANINGS for code in codes)
    assert (int(ExitCode.USAGE), int(ExitCode.OK)) == (2, 0)  # as argparse, as every shell
    assert exit_code_of(CliError("x")) == ExitCode.FAILED
