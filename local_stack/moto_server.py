"""The AWS emulator's server (`python -m local_stack.moto_server -H HOST -p PORT`): moto, with its costs that AWS
does not have taken away (`local_stack/moto_costs.py`, listed in the README's emulator notes), and one thing moto
does not do at all: it delivers nothing to an `email` or `email-json` subscription. Here such a subscription's
delivery goes to an SQS queue standing in for the mailbox, when it exists: `inbox-` and the address, every character
but letters, digits, - and _ made a - (`inbox-oncall-example-com` for `oncall@example.com`), so a test reads what
the mail would say: for `email`, `{"Subject": …, "Message": …}` with the message SNS picks for email (the `email`
key of a structured message, else `default`); for `email-json`, the JSON envelope SNS sends.
"""

from __future__ import annotations

import json
import re
from typing import Any

from moto.server import main
from moto.sns.models import Subscription
from moto.sqs.exceptions import QueueDoesNotExist
from moto.sqs.models import sqs_backends

from local_stack import moto_costs

_moto_publish = Subscription.publish
_EMAIL_PROTOCOLS = ("email", "email-json")


def inbox_queue_name(address: str) -> str:
    """The SQS queue that stands in for the mailbox of an email subscription to `address`."""
    return "inbox-" + re.sub(r"[^A-Za-z0-9_-]", "-", address)[:74]


def _publish_to_inbox(self: Subscription, message: str, message_id: str, **options: Any) -> None:
    if self.protocol not in _EMAIL_PROTOCOLS:
        _moto_publish(self, message, message_id, **options)
        return
    subject, attributes = options.get("subject"), options.get("message_attributes")
    if self._filter_policy_matcher is not None and not self._filter_policy_matcher.matches(attributes, message):
        return
    if options.get("message_structure") == "json":
        message = self._parse_message_structure(message, self.protocol)
    backend = sqs_backends[self.account_id][self.topic.sns_backend.region_name]
    name = inbox_queue_name(self.endpoint)
    try:
        backend.get_queue(name)
    except QueueDoesNotExist:
        return  # as moto: the mail goes nowhere
    if self.protocol == "email":
        body = {"Subject": subject, "Message": message}
    else:
        body = self.get_post_data(message, message_id, subject, message_attributes=attributes)
    backend.send_message(name, json.dumps(body))


Subscription.publish = _publish_to_inbox  # type: ignore[method-assign,assignment]
moto_costs.install()

if __name__ == "__main__":
    main()
