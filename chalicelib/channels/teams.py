"""`TeamsChannel`: a Microsoft Teams incoming webhook (a channel's webhook or a Workflows "when a Teams webhook
request is received" flow), posting an Adaptive Card; its URL is a secret.

The request is the one Microsoft documents for an Adaptive Card through an incoming webhook: a JSON object with
`"type": "message"` and one attachment whose `contentType` is `application/vnd.microsoft.card.adaptive` and whose
`content` is the card (`"type": "AdaptiveCard"`, version 1.2). The card says what the Slack message says: the
severity (the container's colour and a heading), the summary, the facts, the first addresses of each list with
exact counts, what to do with its commands, and an `Action.OpenUrl` to the state's page when `GUARDIAN_PAGE_URL`
is set.

Text from outside goes only into `TextRun`s of `RichTextBlock`s, which Adaptive Cards never read as Markdown, and
through `adaptive_card_text` (`domain/text.py`); `TextBlock`s, whose text is Markdown, hold only our own words.
A request is at most `TEAMS_MAX_BYTES`: Microsoft documents a 28 KB message limit, taken here as 28,000 bytes of
body; the lists are trimmed to fit (`payload_budget.fit`). A key of a thousand characters appears in the card a
dozen times (the state, each command, the page link): when even empty lists do not fit, the card gives less rather
than a command cut short, first only the `tfguardian` command, then no command (it says where they are) and no
link, and only then are its texts cut. Teams' legacy connectors answer some failures with a 200 whose body says
`Microsoft Teams endpoint returned HTTP error …`: that is a failure too, retried like a 5xx.
"""

from __future__ import annotations

import json
from typing import Any

from chalicelib.adapters.secrets import SecretValue
from chalicelib.channels.http import post_json
from chalicelib.domain.briefs import SIGNS, Brief, brief
from chalicelib.domain.notifications import Notification
from chalicelib.domain.payload_budget import fit
from chalicelib.domain.text import adaptive_card_text
from chalicelib.errors import ChannelDeliveryError

ADAPTIVE_CARD = "application/vnd.microsoft.card.adaptive"
CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
CARD_VERSION = "1.2"  # RichTextBlock and TextRun, and the container styles used here, are 1.2
TEAMS_MAX_BYTES = 28_000
_REFUSED_IN_BODY = b"returned HTTP error"
FULL, SHORT, BARE = "full", "short", "bare"  # every command and the link; the tfguardian command; no command
_DETAILS = (FULL, SHORT, BARE)
# The container's style and the heading's colour for each severity.
_LOOK = {"info": ("accent", "Accent"), "warning": ("warning", "Warning"), "critical": ("attention", "Attention")}


class TeamsChannel:
    """Posts each notification as an Adaptive Card."""

    name = "teams"

    def __init__(self, webhook_url: SecretValue, *, page_url: str | None = None) -> None:
        self._webhook_url = webhook_url
        self._page_url = page_url

    def send(self, notification: Notification) -> None:
        body = teams_body(notification, page_url=self._page_url)
        answer = post_json(self._webhook_url.get(), body, {}, "the Teams webhook")
        if _REFUSED_IN_BODY in answer:
            raise ChannelDeliveryError("the Teams webhook refused the message in its answer")


def teams_body(notification: Notification, *, page_url: str | None = None) -> bytes:
    """The request body: a message with one Adaptive Card, within `TEAMS_MAX_BYTES`."""
    data = notification.to_dict()
    for detail in _DETAILS:

        def encode(candidate: dict[str, Any], detail: str = detail) -> bytes:
            about = brief(candidate, page_url=page_url if detail != BARE else None)
            return json.dumps(teams_message(about, detail=detail), separators=(",", ":")).encode()

        body = encode(fit(data, TEAMS_MAX_BYTES, lambda candidate: len(encode(candidate)), cut_strings=False))
        if len(body) <= TEAMS_MAX_BYTES:
            return body
    # No command and no link is left to be wrong: the texts of the card may be cut now.
    return encode(fit(data, TEAMS_MAX_BYTES, lambda candidate: len(encode(candidate))))


def teams_message(about: Brief, *, detail: str = FULL) -> dict[str, Any]:
    """The incoming webhook's message for a brief; `detail` says which commands it shows (all, one, none)."""
    style, colour = _LOOK.get(about.severity, ("default", "Default"))
    heading = {"type": "TextBlock", "text": about.heading, "weight": "Bolder", "size": "Large", "color": colour,
               "wrap": True}  # fmt: skip
    body: list[dict[str, Any]] = [
        {"type": "Container", "style": style, "items": [heading, _line(_run(about.summary, weight="Bolder"))]}
    ]
    body += [_line(_run(f"{fact.label}: ", weight="Bolder"), _run(fact.value, code=fact.code)) for fact in about.facts]
    for kind in about.changes:
        body.append(_line(_run(f"{kind.label} ", weight="Bolder"), _run(kind.tally), separator=True))
        for name, sign in SIGNS:
            body += [_line(_run(f"{sign} "), _run(address, code=True), spacing="None") for address in kind.top[name]]
            if kind.more(name):
                body.append(_line(_run(f"{sign} …and {kind.more(name):,} more", italic=True), spacing="None"))
    if about.remedy is not None:
        remedy = about.remedy
        body.append({"type": "TextBlock", "text": "What to do", "weight": "Bolder", "separator": True, "wrap": True})
        body.append(_line(_run(remedy.what)))
        if detail == BARE:
            body.append(_line(_run("The commands are too long to show here: see the email or the state's page.")))
        else:
            body.append(_line(_run(remedy.command, code=True)))
        if detail == FULL:
            body += [_line(_run("Through the API (IAM-signed, to the API's URL): ", isSubtle=True)),
                     _line(_run(remedy.api_call, code=True))]  # fmt: skip
            if remedy.by_hand:
                body += [_line(_run("By hand: ", isSubtle=True)), _line(_run(remedy.by_hand, code=True))]
    footer = f"{about.type} · {about.severity} · {about.occurred_at} · notification {about.id}"
    body.append(_line(_run(footer, isSubtle=True, size="Small"), separator=True))
    card: dict[str, Any] = {"$schema": CARD_SCHEMA, "type": "AdaptiveCard", "version": CARD_VERSION, "body": body,
                            "msteams": {"width": "Full"}}  # fmt: skip
    if about.page_url:
        card["actions"] = [{"type": "Action.OpenUrl", "title": "Open the state's page", "url": about.page_url}]
    return {"type": "message", "attachments": [{"contentType": ADAPTIVE_CARD, "contentUrl": None, "content": card}]}


def _run(text: str, *, code: bool = False, **style: Any) -> dict[str, Any]:
    run: dict[str, Any] = {"type": "TextRun", "text": adaptive_card_text(text), **style}
    if code:
        run["fontType"] = "Monospace"
    return run


def _line(*runs: dict[str, Any], separator: bool = False, spacing: str | None = None) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "RichTextBlock", "inlines": list(runs)}
    if separator:
        block["separator"] = True
    if spacing:
        block["spacing"] = spacing
    return block
