"""What `tfguardian` prints for people: tables in words, diffs under headings, text from outside made harmless."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

# The twin of chalicelib.domain.text.terminal_safe (the command is installed without chalicelib; a test keeps the
# two equal): C0 with ESC, DEL, C1, line and paragraph separators and bidi controls are shown as escapes.
_TERMINAL_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2028\u2029\u2066-\u2069]")
NOTHING = "—"  # an empty cell: unknown, not recorded, or none


def terminal_safe(text: str) -> str:
    """`text` with every character that could move the cursor, change colours or reorder the line escaped."""
    return _TERMINAL_UNSAFE.sub(_escape_char, text)


def _escape_char(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def duration(seconds: float) -> str:
    """`42s`, `7m 05s`, `3h 02m` or `2d 04h`."""
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m {whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h {whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d {whole % 86400 // 3600:02d}h"


def cell(value: object) -> str:
    """A value as a person reads it: yes / no for booleans, a dash for nothing, text with control characters shown."""
    if value is None or value == "":
        return NOTHING
    if isinstance(value, bool):
        return "yes" if value else "no"
    return terminal_safe(str(value))


def table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> str:
    """`rows` under the headings of `columns` (field, heading), aligned; `(none)` for no rows."""
    if not rows:
        return "(none)"
    cells = [[cell(row.get(field)) for field, _ in columns] for row in rows]
    headings = [heading.upper() for _, heading in columns]
    widths = [max(len(heading), *(len(line[i]) for line in cells)) for i, heading in enumerate(headings)]
    lines = [headings, *cells]
    return "\n".join("  ".join(value.ljust(widths[i]) for i, value in enumerate(line)).rstrip() for line in lines)


_KINDS = (("resources", "resources"), ("outputs", "outputs"))
_CHANGES = (("added", "+"), ("changed", "~"), ("removed", "-"))


def show_diff(diff: dict[str, Any]) -> str:
    """Resources, then outputs, each under headings for what was added, changed and removed."""
    lines: list[str] = []
    for kind, title in _KINDS:
        changes = diff.get(kind) or {}
        counts = ", ".join(f"{len(changes.get(name) or [])} {name}" for name, _ in _CHANGES)
        lines.append(f"{title.capitalize()}: {counts}")
        for name, sign in _CHANGES:
            names = changes.get(name) or []
            if names:
                lines.append(f"  {name}:")
                lines += [f"    {sign} {terminal_safe(str(address))}" for address in names]
    return "\n".join(lines)


def changes(version: dict[str, Any]) -> str | None:
    """A version's resource changes against its predecessor, as `+1 ~0 -2`."""
    counted = (version.get("changes") or {}).get("resources")
    return f"+{counted['added']} ~{counted['changed']} -{counted['removed']}" if counted else None
