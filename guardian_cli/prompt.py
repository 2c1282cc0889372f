"""Asking a person before a change: the question on stderr (stdout stays the answer's), the reply from stdin."""

from __future__ import annotations

import sys

from guardian_cli.errors import DeclinedError


def confirm(question: str) -> bool:
    """Whether the reply to `question` is yes; raises `DeclinedError` when no reply can be read (stdin closed)."""
    sys.stderr.write(f"{question} [y/N] ")
    sys.stderr.flush()
    try:
        reply = sys.stdin.readline() if sys.stdin is not None else ""
    except (OSError, ValueError):  # stdin closed under us, or not text
        reply = ""
    if not reply or not sys.stdin.isatty():  # a reply a person did not type ends no line on the terminal
        sys.stderr.write("\n")
    if not reply:
        raise DeclinedError(
            "no answer (standard input is closed): nothing changed; pass --yes to go ahead without asking"
        )
    return reply.strip().lower() in ("y", "yes")
