"""`SlackChannel`: a Slack incoming webhook, with Block Kit formatting; its URL is a secret.

A message says what happened and what to do: a header with the severity (an emoji and a word), the summary, the
facts (the state, its serial, the lock holder, who wrote it), the addresses added, changed and removed (the first
`TOP_ADDRESSES` of each, with exact counts and how many more), the exact restore or repair command with its REST
call and the same by hand (`domain/remedies.py`), and a link to the state's page when `GUARDIAN_PAGE_URL` is set.

Every piece of text from outside (summary, key, workspace, `Who`, addresses) is escaped for mrkdwn
(`domain/text.py`): a `Who` of `<!channel>` shows as typed and pings nobody. A message stays within Block Kit's
documented limits (docs.slack.dev, Block Kit reference): at most 50 blocks (it has 8 at most), a header's
plain text at most 150 characters (ours is our own words), at most 3,000 characters in a section's text and in a
context element, at most 10 fields of at most 2,000 characters in a section, at most 10 context elements, a
`block_id` of at most 255 characters, and the `text` fallback at most 3,000 (Slack truncates it at 40,000 and
recommends 4,000). The addresses are trimmed to fit their section (`payload_budget.fit`); a command too long to
show whole is not shown cut (that would be another command), but said to be too long.
"""

from __future__ import annotations

import json
from typing import Any

from chalicelib.adapters.secrets import SecretValue
from chalicelib.channels.http import post_json
from chalicelib.domain.briefs import SIGNS, Brief, Changes, brief, changes_of
from chalicelib.domain.notifications import Notification
from chalicelib.domain.payload_budget import fit
from chalicelib.domain.text import escape_mrkdwn, mrkdwn_code

_EMOJI = {"info": ":information_source:", "warning": ":warning:", "critical": ":rotating_light:"}
SECTION_TEXT_CHARS = 3000  # Block Kit: the text of a section block, and of a text object in a context block
FIELD_CHARS = 2000  # Block Kit: each of a section's fields
MAX_FIELDS = 10  # Block Kit: fields per section
HEADER_CHARS = 150  # Block Kit: a header block's plain text


class SlackChannel:
    """Posts each notification as a Block Kit message."""

    name = "slack"

    def __init__(self, webhook_url: SecretValue, *, page_url: str | None = None) -> None:
        self._webhook_url = webhook_url
        self._page_url = page_url

    def send(self, notification: Notification) -> None:
        body = json.dumps(slack_message(notification, page_url=self._page_url)).encode()
        post_json(self._webhook_url.get(), body, {}, "the Slack webhook")


def slack_message(notification: Notification, *, page_url: str | None = None) -> dict[str, Any]:
    """The Block Kit message of a notification; `page_url` is the status page's base URL, if any."""
    data = notification.to_dict()
    fitted = fit(data, SECTION_TEXT_CHARS, lambda candidate: len(changes_text(changes_of(candidate["details"]))))
    about = brief(fitted, page_url=page_url)
    emoji = _EMOJI.get(about.severity, ":grey_question:")
    summary = escape_mrkdwn(about.summary, SECTION_TEXT_CHARS - len(emoji) - 1)
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "block_id": "heading",
            "text": {"type": "plain_text", "text": _cut(f"{emoji} {about.heading}", HEADER_CHARS), "emoji": True},
        },
        _section("summary", summary),
        {"type": "section", "block_id": "facts", "fields": _fields(about)},
    ]
    changes = changes_text(about.changes)
    if changes:
        blocks.append(_section("changes", changes))
    blocks += _remedy_blocks(about)
    footer = f"*{about.type}* · {about.severity} · {about.occurred_at} · notification {mrkdwn_code(about.id)}"
    elements = [{"type": "mrkdwn", "text": _cut(footer)}]
    link = f"<{about.page_url.replace('&', '&amp;')}|Open the state's page>" if about.page_url else ""
    if link and len(link) <= SECTION_TEXT_CHARS:  # a link cut short would lead elsewhere: too long, it is left out
        elements.insert(0, {"type": "mrkdwn", "text": link})
    blocks.append({"type": "context", "block_id": "about", "elements": elements})
    return {"text": f"{emoji} {summary}", "blocks": blocks}


def changes_text(changes: list[Changes]) -> str:
    """The addresses and output names listed, one per line, with exact counts and how many more; '' if none."""
    parts = []
    for kind in changes:
        lines = [f"*{kind.label}* {kind.tally}"]
        for name, sign in SIGNS:
            lines += [f"{sign} {mrkdwn_code(address)}" for address in kind.top[name]]
            if kind.more(name):
                lines.append(f"{sign} _…and {kind.more(name):,} more_")
        parts.append("\n".join(lines))
    return "\n".join(parts)


def _fields(about: Brief) -> list[dict[str, str]]:
    fields = []
    for fact in about.facts[:MAX_FIELDS]:
        label = f"*{fact.label}*\n"
        room = FIELD_CHARS - len(label)
        value = mrkdwn_code(fact.value, room) if fact.code else escape_mrkdwn(fact.value, room)
        fields.append({"type": "mrkdwn", "text": label + value})
    return fields


def _remedy_blocks(about: Brief) -> list[dict[str, Any]]:
    remedy = about.remedy
    if remedy is None:
        return []
    ways = [("remedy", f"*What to do:* {escape_mrkdwn(remedy.what)}\n", remedy.command)]
    ways.append(("api", "*Through the API* (IAM-signed, to the API's URL):\n", remedy.api_call))
    if remedy.by_hand:
        ways.append(("by_hand", "*By hand:*\n", remedy.by_hand))
    return [_section(name, lead + _code_block(command, SECTION_TEXT_CHARS - len(lead))) for name, lead, command in ways]


def _code_block(command: str, room: int) -> str:
    """`command` as a code block to copy, or why it is not shown: a command cut short would be another command."""
    escaped = escape_mrkdwn(command)
    note = "\n_(each ˋ stands for a backtick: type it as one)_" if "`" in command else ""
    block = f"```{escaped}```{note}"
    return block if len(block) <= room else "_(too long to show here whole: see the email or the state's page)_"


def _section(block_id: str, text: str) -> dict[str, Any]:
    return {"type": "section", "block_id": block_id, "text": {"type": "mrkdwn", "text": _cut(text)}}


def _cut(text: str, limit: int = SECTION_TEXT_CHARS) -> str:
    # Our own text around escaped pieces: a last guard, never reached with bounded notifications.
    return text if len(text) <= limit else text[: limit - 1] + "…"
