"""What a Microsoft Teams incoming webhook checks of an Adaptive Card message, as Microsoft documents it.

Sources: learn.microsoft.com, Teams platform, "Create an Incoming Webhook" and "Send Adaptive Cards using an
Incoming Webhook" (`"type": "message"`, an `attachments` array of cards whose `contentType` is
`application/vnd.microsoft.card.adaptive` and whose `content` is the card; all native elements supported, of the
actions only `Action.OpenUrl`, `Action.ShowCard` and `Action.ToggleVisibility`; "The message size limit is
28 KB"), and the Adaptive Cards schema (adaptivecards.io: `type`, `version`, `body`; `RichTextBlock` and `TextRun`
since 1.2, and a `TextRun`'s text is never Markdown, while a `TextBlock`'s is).
"""

from __future__ import annotations

import re
from typing import Any

from tests.support.json_requests import json_object_problems

ADAPTIVE_CARD = "application/vnd.microsoft.card.adaptive"
MAX_BYTES = 28_000  # "28 KB", read strictly
_ELEMENTS = {"TextBlock", "RichTextBlock", "Container", "ColumnSet", "FactSet", "Image", "ImageSet", "ActionSet"}
_ACTIONS = {"Action.OpenUrl", "Action.ShowCard", "Action.ToggleVisibility"}
_SINCE = {"RichTextBlock": (1, 2), "ActionSet": (1, 2)}
# Markdown a TextBlock would render from text that is not ours: a link, emphasis, a list item.
_MARKDOWN = re.compile(r"\[[^\]]*\]\([^)]*\)|\*\*|(?:^|\n)\s*(?:[-*]|\d+\.)\s")


def teams_problems(content_type: str, body: bytes) -> list[str]:
    """How a request breaks the documented shape or size; [] if it does not."""
    problems, message = json_object_problems(content_type, body, MAX_BYTES)
    if message is None:
        return problems
    if message.get("type") != "message":
        return [*problems, 'not a JSON object with "type": "message"']
    attachments = message.get("attachments")
    if not isinstance(attachments, list) or not attachments:
        return [*problems, "no attachments"]
    for number, attachment in enumerate(attachments):
        problems += [f"attachment {number}: {problem}" for problem in _attachment_problems(attachment)]
    return problems


def cards(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [attachment["content"] for attachment in message["attachments"]]


def text_blocks(card: dict[str, Any]) -> list[str]:
    """The text of every TextBlock of a card: Teams renders it as Markdown."""
    return [element["text"] for element in _walk(card.get("body", [])) if element.get("type") == "TextBlock"]


def text_runs(card: dict[str, Any]) -> list[str]:
    """The text of every TextRun of a card: shown as it is."""
    return [
        run["text"]
        for element in _walk(card.get("body", []))
        if element.get("type") == "RichTextBlock"
        for run in element.get("inlines", [])
        if isinstance(run, dict)
    ]


def markdown_in(text: str) -> list[str]:
    return _MARKDOWN.findall(text)


def _attachment_problems(attachment: Any) -> list[str]:
    if not isinstance(attachment, dict) or attachment.get("contentType") != ADAPTIVE_CARD:
        return [f"contentType is not {ADAPTIVE_CARD}"]
    card = attachment.get("content")
    if not isinstance(card, dict) or card.get("type") != "AdaptiveCard":
        return ['content is not an object with "type": "AdaptiveCard"']
    version = re.fullmatch(r"(\d+)\.(\d+)", str(card.get("version", "")))
    if version is None:
        return [f"version {card.get('version')!r} is not like 1.2"]
    have = (int(version.group(1)), int(version.group(2)))
    body = card.get("body", [])
    if not isinstance(body, list):
        return ["body is not a list"]
    problems = []
    for element in _walk(body):
        kind = element.get("type")
        if kind not in _ELEMENTS:
            problems.append(f"unknown element {kind!r}")
        elif have < _SINCE.get(kind, (1, 0)):
            problems.append(f"{kind} needs version {'.'.join(map(str, _SINCE[kind]))}, the card says {have}")
        if kind == "TextBlock" and not isinstance(element.get("text"), str):
            problems.append("a TextBlock without text")
        if kind == "RichTextBlock":
            runs = element.get("inlines")
            if not isinstance(runs, list) or not all(
                isinstance(run, dict) and run.get("type") == "TextRun" and isinstance(run.get("text"), str)
                for run in runs
            ):
                problems.append("a RichTextBlock whose inlines are not TextRuns with text")
    for action in card.get("actions", []):
        if action.get("type") not in _ACTIONS:
            problems.append(f"action {action.get('type')!r} is not supported through an incoming webhook")
        elif action["type"] == "Action.OpenUrl" and not str(action.get("url", "")).startswith(("https://", "http://")):
            problems.append("an Action.OpenUrl without a URL")
    return problems


def _walk(elements: list[Any]) -> list[dict[str, Any]]:
    found = []
    for element in elements:
        if not isinstance(element, dict):
            continue
        found.append(element)
        found += _walk(element.get("items", []))
        for column in element.get("columns", []):
            found += _walk(column.get("items", []) if isinstance(column, dict) else [])
    return found
