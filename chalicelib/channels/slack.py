"""`SlackChannel`: a Slack incoming webhook, with Block Kit formatting; its URL is a secret."""

from __future__ import annotations

import json
from typing import Any

from chalicelib.adapters.secrets import SecretValue
from chalicelib.channels.http import post_json
from chalicelib.domain.notifications import Notification

_EMOJI = {"info": ":information_source:", "warning": ":warning:", "critical": ":rotating_light:"}


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
    facts = [f"*{data['type']}* · {data['severity']}", f"`s3://{data['bucket']}/{data['key']}`"]
    if data["workspace"] != "default":
        facts.append(f"workspace `{data['workspace']}`")
    return {
        "text": f"{_EMOJI[data['severity']]} {data['summary']}",
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"{_EMOJI[data['severity']]} {data['summary']}"}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(facts)}]},
        ],
    }
