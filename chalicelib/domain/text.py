"""Text from outside (keys, `Who`, `Info`, `Operation`, principals, reasons), bounded and escaped for where it lands.

Every function here is pure and total: any string in, a safe string out.

- `bound` cuts a string to a number of characters, with a visible `…`; the notification contract bounds its
  free-text fields with it (`SUMMARY_CHARS`, `KEY_CHARS`, `FIELD_CHARS`, `REASON_CHARS`).
- `escape_mrkdwn` and `mrkdwn_code` are for Slack mrkdwn: `&`, `<` and `>` become `&amp;`, `&lt;` and `&gt;` as
  Slack documents, so `<!channel>`, `<@U123>` or `<https://evil|click>` never ping or link anyone; a backtick
  becomes the look-alike U+02CB (modifier letter grave accent), so a key cannot open or close a code span.
- `escape_html` is for HTML text and attribute values.
- `terminal_safe` is for a terminal: control characters (C0 including ESC, DEL, C1), line and paragraph
  separators and bidirectional overrides are shown as `\\x1b`-style escapes, so nothing printed can move the
  cursor, change colours or reorder what is shown.
- `plain_text` is for plain-text messages (an email body, a PagerDuty summary): as on a terminal, so a key cannot
  start a line of its own (a fake "run this" line) or reorder what is shown.
- `adaptive_card_text` is for the text runs of a Teams Adaptive Card, which show no Markdown: as plain text, and
  `{{` cannot open one of the card's `{{DATE(…)}}` / `{{TIME(…)}}` functions.
"""

from __future__ import annotations

import html
import re

ELLIPSIS = "…"
SUMMARY_CHARS = 1024  # a notification's `summary`
KEY_CHARS = 1024  # a state key (S3 allows 1,024 bytes, so a real key is never cut)
FIELD_CHARS = 256  # `Who`, `Operation`, `Version`, a lock's ID and `Created`, `principal`, `caller`
REASON_CHARS = 1024  # a `reason` given to the API

_MRKDWN = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "`": "\u02cb"}
# C0 (with TAB, LF, CR and ESC), DEL, C1, the Arabic letter mark, LRM/RLM, the bidi embeddings and overrides,
# the line and paragraph separators and the bidi isolates.
_TERMINAL_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2028\u2029\u2066-\u2069]")


def bound(text: str, limit: int) -> str:
    """`text` if it has at most `limit` characters, else its first `limit - 1` characters and `…`."""
    if len(text) <= limit:
        return text
    return text[: max(limit - 1, 0)] + ELLIPSIS if limit > 0 else ""


def escape_mrkdwn(text: str, limit: int | None = None) -> str:
    """`text` for Slack mrkdwn, at most `limit` characters once escaped (cut with `…`, never inside an entity)."""
    pieces = [_MRKDWN.get(char, char) for char in text]
    if limit is None or sum(map(len, pieces)) <= limit:
        return "".join(pieces)
    kept: list[str] = []
    used = len(ELLIPSIS)
    for piece in pieces:
        if used + len(piece) > limit:
            break
        kept.append(piece)
        used += len(piece)
    return "".join(kept) + ELLIPSIS if limit >= len(ELLIPSIS) else ""


def mrkdwn_code(text: str, limit: int | None = None) -> str:
    """`text` as a Slack inline code span, on one line; at most `limit` characters with its backticks."""
    flat = " ".join(text.splitlines()) if "\n" in text or "\r" in text else text
    inner = escape_mrkdwn(flat, None if limit is None else max(limit - 2, 0))
    return f"`{inner}`"


def escape_html(text: str) -> str:
    """`text` for HTML, in element content or a quoted attribute value."""
    return html.escape(text, quote=True)


def terminal_safe(text: str) -> str:
    """`text` with every character that could steer a terminal shown as an escape (`\\x1b`, `\\u202e`)."""
    return _TERMINAL_UNSAFE.sub(_escape_char, text)


def plain_text(text: str) -> str:
    """`text` for a plain-text message: every character that could forge a line or reorder text shown escaped."""
    return terminal_safe(text)


def adaptive_card_text(text: str) -> str:
    """`text` for an Adaptive Card `TextRun` (never Markdown): plain text whose `{{` starts no date function."""
    return plain_text(text).replace("{{", "{\u200b{")


def _escape_char(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"
