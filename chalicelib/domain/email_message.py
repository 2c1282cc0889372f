"""A notification as an email: a subject line (its backend and summary) and a plain-text body a person can act on.

The subject follows SNS's rule for a Publish `Subject`: ASCII, no line breaks or control characters, under 100
characters (`→` reads `->`; anything else outside ASCII becomes `?`). The body says what the Slack message says,
in plain text: the severity and what happened, the facts, the first `EMAIL_TOP_ADDRESSES` addresses of each list
with exact counts, what to do with the exact commands, and the state's page. Every piece of text from outside goes
through `plain_text` (`domain/text.py`): a key cannot start a line of its own or reorder what is shown.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from typing import Any

from chalicelib.domain.briefs import SIGNS, brief
from chalicelib.domain.text import plain_text

EMAIL_TOP_ADDRESSES = 50  # an email is read at leisure: more than a chat message lists
SUBJECT_CHARS = 99  # SNS: "less than 100 characters"
_INDENT = "    "


def email_subject(summary: str, backend: str | None = None) -> str:
    """The subject line: the summary, after the backend's name in brackets when it has one (so that a mailbox
    can sort a guardian's mail by backend), as SNS takes a subject."""
    text = f"[{backend}] {summary}" if backend else summary
    ascii_only = text.replace("→", "->").encode("ascii", "replace").decode("ascii")
    printable = "".join(char if unicodedata.category(char) != "Cc" else " " for char in ascii_only)
    flat = " ".join(printable.split()) or "tfstate-guardian notification"
    return flat if len(flat) <= SUBJECT_CHARS else flat[: SUBJECT_CHARS - 3] + "..."


def email_body(data: Mapping[str, Any], *, page_url: str | None = None) -> str:
    """The plain-text body of a notification (the contract's dict)."""
    about = brief(data, page_url=page_url, top=EMAIL_TOP_ADDRESSES)
    lines = [f"{about.severity.upper()}: {about.title}", plain_text(about.summary), ""]
    width = max(len(fact.label) for fact in about.facts) + 2 if about.facts else 0
    lines += [f"{fact.label:<{width}}{plain_text(fact.value)}" for fact in about.facts]
    if about.remedy is not None:
        remedy = about.remedy
        lines += ["", "WHAT TO DO", plain_text(remedy.what), _INDENT + plain_text(remedy.command)]
        lines += ["Through the API (IAM-signed, to the API's URL):", _INDENT + plain_text(remedy.api_call)]
        if remedy.by_hand:
            lines += ["By hand:", _INDENT + plain_text(remedy.by_hand)]
    for kind in about.changes:
        lines += ["", f"{kind.label.upper()} {kind.tally}"]
        for name, sign in SIGNS:
            lines += [f"{_INDENT}{sign} {plain_text(address)}" for address in kind.top[name]]
            if kind.more(name):
                lines.append(f"{_INDENT}{sign} ...and {kind.more(name):,} more")
    if about.page_url:
        lines += ["", f"The state's page: {about.page_url}"]
    footer = f"tfstate-guardian {about.type} ({about.severity}) at {about.occurred_at}, notification {about.id}"
    lines += ["", "--", footer]
    return "\n".join(lines) + "\n"
