"""`SlackChannel`: a Slack incoming webhook, with Block Kit formatting; its URL is a secret.

Every piece of text from outside (summary, key, workspace, addresses) is escaped for mrkdwn (`domain/text.py`):
a `Who` of `<!channel>` shows as typed and pings nobody. A message stays within Block Kit's limits: three blocks
at most (of 50), one context element (of 10), at most 3,000 characters in each section and context text and in
the `text` fallback (Slack truncates that at 40,000 and recommends 4,000). The addresses a `state.changed` lists
are trimmed to fit their section (`payload_budget.fit`), with the exact counts and how many more there are.
"""

from __future__ import annotations

import json
from typing import Any

from chalicelib.adapters.secrets import SecretValue
from chalicelib.channels.http import post_json
from chalicelib.domain.notifications import Notification
from chalicelib.domain.payload_budget import fit
from chalicelib.domain.text import escape_mrkdwn, mrkdwn_code

_EMOJI = {"info": ":information_source:", "warning": ":warning:", "critical": ":rotating_light:"}
SECTION_TEXT_CHARS = 3000  # Block Kit: the text of a section block, and of a text object in a context block
_CHANGE_KINDS = (("resources", "Resources"), ("outputs", "Outputs"))
_SIGNS = (("added", "+"), ("changed", "~"), ("removed", "-"))


class SlackChannel:
    """Posts each notification as a short Block Kit message."""

    name = "slack"

    def __init__(self, webhook_url: SecretValue) -> None:
        self._webhook_url = webhook_url

    def send(self, notification: Notification) -> None:
        body = json.dumps(slack_message(notification)).encode()
        post_json(self._webhook_url.get(), body, {}, "the Slack webhook")


def slack_message(notification: Notification) -> dict[str, Any]:
    data = notification.to_dict()
    emoji = _EMOJI[data["severity"]]
    headline = f"{emoji} {escape_mrkdwn(data['summary'], SECTION_TEXT_CHARS - len(emoji) - 1)}"
    facts = [f"*{data['type']}* · {data['severity']}", mrkdwn_code(f"s3://{data['bucket']}/{data['key']}")]
    if data["workspace"] != "default":
        facts.append(f"workspace {mrkdwn_code(data['workspace'])}")
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": headline}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": _cut(" · ".join(facts))}]},
    ]
    changes = changes_text(fit(data, SECTION_TEXT_CHARS, lambda candidate: len(changes_text(candidate))))
    if changes:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _cut(changes)}})
    return {"text": headline, "blocks": blocks}


def changes_text(data: dict[str, Any]) -> str:
    """The addresses and output names a notification lists, one per line, with exact counts; '' if none."""
    details = data.get("details") or {}
    parts: list[str] = []
    for kind, label in _CHANGE_KINDS:
        changes = details.get(kind)
        if not isinstance(changes, dict) or not any(changes.get(name) for name, _ in _SIGNS):
            continue
        counts = changes.get("counts") or {name: len(changes.get(name) or []) for name, _ in _SIGNS}
        lines = [f"*{label}* " + " ".join(f"{sign}{counts.get(name, 0):,}" for name, sign in _SIGNS)]
        for name, sign in _SIGNS:
            listed = changes.get(name) or []
            lines += [f"{sign} {mrkdwn_code(address)}" for address in listed]
            more = counts.get(name, len(listed)) - len(listed)
            if more > 0:
                lines.append(f"{sign} _…and {more:,} more_")
        parts.append("\n".join(lines))
    return "\n".join(parts)


def _cut(text: str) -> str:
    # Our own text around escaped pieces: a last guard, never reached with bounded notifications.
    return text if len(text) <= SECTION_TEXT_CHARS else text[: SECTION_TEXT_CHARS - 1] + "…"
