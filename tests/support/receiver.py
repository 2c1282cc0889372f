"""A webhook receiver on 127.0.0.1 that records what it is sent, and can be told to fail or to redirect.

As `kind="slack"` it checks each POST as a Slack incoming webhook does, against Block Kit's documented limits, and
answers 400 `invalid_blocks` to one that breaks them; as `kind="webhook"` it refuses (413) a body over the
guardian's documented webhook cap; as `kind="teams"` it checks an Adaptive Card message as a Teams incoming webhook
does (`teams_api.py`) and answers 200 `1`, or 400 (413 when too large); as `kind="pagerduty"` it checks an Events API
v2 event (`pagerduty_api.py`) and answers 202 or 400 with PagerDuty's JSON. A refused request is kept in `refused`,
with why, not in `requests`.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.pagerduty_api import accepted, pagerduty_problems, refused
from tests.support.teams_api import teams_problems

# Slack's limits (docs.slack.dev, Block Kit reference and chat.postMessage): 50 blocks per message, 3,000 characters
# in a section's text and in any text object, 10 elements in a context block, 10 fields of 2,000 characters in a
# section; the top-level `text` is truncated over 40,000 characters and best kept under 4,000.
SLACK_MAX_BLOCKS = 50
SLACK_TEXT_OBJECT_CHARS = 3000
SLACK_CONTEXT_ELEMENTS = 10
SLACK_SECTION_FIELDS = 10
SLACK_FIELD_CHARS = 2000
SLACK_FALLBACK_TEXT_CHARS = 4000
SLACK_HEADER_CHARS = 150  # a header block's plain_text
SLACK_BLOCK_ID_CHARS = 255
WEBHOOK_MAX_BYTES = 262_144  # the cap the README and chalicelib/channels/webhook.py state
# What Slack would turn into a mention, a channel or user link or a hyperlink: `<!…>`, `<@…>`, `<#…>`, `<http…>`.
_SLACK_CONTROL = re.compile(r"<[!@#][^>]*>|<(?:https?|mailto|tel|slack):[^>]*>")


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    url: str
    requests: list[Received] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # why each refused request was refused
    fail_next: int = 0
    fail_status: int = 503  # the answer while failing
    delay_s: float = 0.0  # how long each POST waits before it is answered
    answer: bytes = b"{}"  # the body of the answer to a GET
    answer_for: Callable[[str], bytes] | None = None  # the body of the answer to a GET, by its path, over `answer`
    answer_status: int = 200  # the status of the answer to a GET
    redirect_to: str | None = None  # answer every request with a redirect there
    redirect_status: int = 302
    redirected: list[str] = field(default_factory=list)  # the paths of the requests answered with a redirect
    refuse_in_body: bool = False  # teams: answer a refusal with a 200 whose body says it, as legacy connectors do
    post_answer: bytes | None = None  # the body of a 200 answer to an accepted POST, in place of the service's own


@contextmanager
def receiver(port: int = 0, kind: str | None = None) -> Iterator[Receiver]:
    """A receiver on `port` of 127.0.0.1 (0: a free one); `kind` "slack" or "webhook" checks what it is sent."""
    state = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if state.delay_s:
                time.sleep(state.delay_s)
            if self._redirected():
                return
            if state.fail_next:
                state.fail_next -= 1
                self.send_response(state.fail_status)
                self.end_headers()
                return
            problems = _problems(kind, self.headers.get("Content-Type", ""), body)
            if problems:
                state.refused.append("; ".join(problems))
                self._answer(*_refusal(kind, problems, state.refuse_in_body))
                return
            state.requests.append(Received(self.path, dict(self.headers.items()), body))
            if state.post_answer is not None:
                self._answer(200, state.post_answer)
            elif kind == "pagerduty":
                self._answer(202, accepted(json.loads(body)))
            elif kind == "teams":
                self._answer(200, b"1")
            else:
                self.send_response(200)
                self.end_headers()

        def _answer(self, status: int, answer: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def do_GET(self) -> None:
            if self._redirected():
                return
            state.requests.append(Received(self.path, dict(self.headers.items()), b""))
            self.send_response(state.answer_status)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(state.answer if state.answer_for is None else state.answer_for(self.path))

        def _redirected(self) -> bool:
            if state.redirect_to is None:
                return False
            state.redirected.append(self.path)
            self.send_response(state.redirect_status)
            self.send_header("Location", state.redirect_to)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return True

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def _refusal(kind: str | None, problems: list[str], in_body: bool) -> tuple[int, bytes]:
    if kind == "slack":
        return 400, b"invalid_blocks"
    if kind == "pagerduty":
        return 400, refused(problems)
    if kind == "teams":
        status = 413 if any("bytes is over" in problem for problem in problems) else 400
        if in_body:
            return 200, f"Microsoft Teams endpoint returned HTTP error {status}".encode()
        return status, b"Bad payload received by generic incoming webhook."
    return 413, b"payload too large"


def _problems(kind: str | None, content_type: str, body: bytes) -> list[str]:
    if kind == "teams":
        return teams_problems(content_type, body)
    if kind == "pagerduty":
        return pagerduty_problems(content_type, body)
    if kind == "webhook":
        return [f"body of {len(body)} bytes is over {WEBHOOK_MAX_BYTES}"] if len(body) > WEBHOOK_MAX_BYTES else []
    if kind == "slack":
        try:
            message = json.loads(body)
        except ValueError:
            return ["not JSON"]
        return slack_problems(message) if isinstance(message, dict) else ["not a JSON object"]
    return []


def slack_problems(message: dict[str, Any]) -> list[str]:
    """How `message` breaks Slack's documented limits for an incoming webhook's message; [] if it does not."""
    problems = []
    text = message.get("text")
    blocks = message.get("blocks", [])
    if not isinstance(text, str) or not text:
        problems.append("no text fallback")
    elif len(text) > SLACK_FALLBACK_TEXT_CHARS:
        problems.append(f"text of {len(text)} characters")
    if not isinstance(blocks, list) or len(blocks) > SLACK_MAX_BLOCKS:
        return [*problems, "blocks is not a list of at most 50"]
    block_ids = [block.get("block_id") for block in blocks if "block_id" in block]
    if len(block_ids) != len(set(block_ids)) or any(len(str(b)) > SLACK_BLOCK_ID_CHARS for b in block_ids):
        problems.append("block_ids are not unique strings of at most 255 characters")
    for number, block in enumerate(blocks):
        kind = block.get("type")
        texts = []
        if kind == "header":
            text = block.get("text")
            if not isinstance(text, dict) or text.get("type") != "plain_text":
                problems.append(f"block {number}: a header whose text is not plain_text")
            elif not 1 <= len(text.get("text", "")) <= SLACK_HEADER_CHARS:
                problems.append(f"block {number}: a header of {len(text.get('text', ''))} characters")
        elif kind == "section":
            texts = [block.get("text")] if "text" in block else []
            fields = block.get("fields", [])
            if len(fields) > SLACK_SECTION_FIELDS:
                problems.append(f"block {number}: {len(fields)} fields")
            problems += [
                f"block {number}: a field of {len(f.get('text', ''))} characters"
                for f in fields
                if len(f.get("text", "")) > SLACK_FIELD_CHARS
            ]
        elif kind == "context":
            texts = [element for element in block.get("elements", []) if element.get("type") != "image"]
            if not 1 <= len(block.get("elements", [])) <= SLACK_CONTEXT_ELEMENTS:
                problems.append(f"block {number}: {len(block.get('elements', []))} context elements")
        elif kind != "divider":
            problems.append(f"block {number}: unexpected type {kind!r}")
        for item in texts:
            if not isinstance(item, dict) or item.get("type") not in ("mrkdwn", "plain_text"):
                problems.append(f"block {number}: a text that is not a text object")
            elif not 1 <= len(item.get("text", "")) <= SLACK_TEXT_OBJECT_CHARS:
                problems.append(f"block {number}: a text of {len(item.get('text', ''))} characters")
    return problems


def slack_texts(message: dict[str, Any]) -> list[str]:
    """Every text of a message that Slack renders as mrkdwn: the fallback and each block's text objects."""
    texts = [message.get("text", "")]
    for block in message.get("blocks", []):
        objects = [block.get("text")] if "text" in block else []
        objects += block.get("fields", []) + block.get("elements", [])
        texts += [item["text"] for item in objects if isinstance(item, dict) and isinstance(item.get("text"), str)]
    return texts


def slack_controls(message: dict[str, Any]) -> list[str]:
    """Every mention or link Slack would make of the message's texts: each would ping or link someone."""
    return [control for text in slack_texts(message) for control in _SLACK_CONTROL.findall(text)]
