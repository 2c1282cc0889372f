"""The AWS emulator's server (`python -m local_stack.moto_server -H HOST -p PORT`): moto, with two of its costs that
AWS does not have taken away (both listed in the README's emulator notes).

- moto's ListObjectVersions deep-copies every version of the bucket to list them, each copy re-reading and rewriting
  the version's whole bytes: a listing costs the bucket's size in time and memory (half a second and a gigabyte for
  a few 50 MB versions), where S3 answers in milliseconds. Here a listing's copy shares the version's bytes, which
  the listing only reads; nothing else in moto's S3 deep-copies a version.
- moto's TransactWriteItems deep-copies the whole table once per action, to put it back if the transaction fails:
  a transaction costs the table's size, and a test suite that fills the table slows down with every test. Here a
  transaction keeps a copy of only the items its actions name, and a failed one puts exactly those back (or removes
  those it added), as the whole copy would have.

And one thing moto does not do at all: it delivers nothing to an `email` or `email-json` subscription. Here such a
subscription's delivery goes to an SQS queue standing in for the mailbox, when it exists: `inbox-` and the address,
every character but letters, digits, - and _ made a - (`inbox-oncall-example-com` for `oncall@example.com`), so a test
reads what the mail would say: for `email`, `{"Subject": …, "Message": …}` with the message SNS picks for email
(the `email` key of a structured message, else `default`); for `email-json`, the JSON envelope SNS sends.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from moto.dynamodb.exceptions import MockValidationException
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import Item
from moto.dynamodb.models.table import Table
from moto.s3.models import FakeKey
from moto.server import main
from moto.sns.models import Subscription
from moto.sqs.exceptions import QueueDoesNotExist
from moto.sqs.models import sqs_backends


class _SharedBytes:
    """A version's bytes as its listing copy holds them: read through, never closed by the copy's disposal."""

    def __init__(self, buffer: Any) -> None:
        self._buffer = buffer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._buffer, name)

    def close(self) -> None:
        pass


def _listing_copy(self: FakeKey, memo: dict[int, Any]) -> FakeKey:
    copied: FakeKey = object.__new__(type(self))
    copied.__dict__.update(self.__dict__)  # the same metadata and lock: a listing reads them, never writes them
    copied.__dict__.update(_value_buffer=_SharedBytes(self._value_buffer), multipart=None, disposed=True)
    return copied


def _no_table_copy(self: Table, memo: dict[int, Any]) -> Table:
    return self  # only moto's transaction copies a table; `_transact_write_items` keeps what it needs instead


_moto_transact_write_items = DynamoDBBackend.transact_write_items


def _transact_write_items(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
    """moto's transaction, a failure putting back each item its actions name as it was before."""
    kept: list[tuple[Table, Any, Any, Item | None]] = []
    for action in transact_items:
        op = next(iter(action.values()), None)
        if not isinstance(op, dict) or op.get("TableName") not in self.tables:
            continue
        table = self.tables[op["TableName"]]
        try:
            hash_key, range_key = self.get_keys_value(table, op.get("Item") or op.get("Key") or {})
        except MockValidationException:
            continue  # moto refuses the action, and so the transaction, before it changes anything
        kept.append((table, hash_key, range_key, copy.deepcopy(table.get_item(hash_key, range_key))))
    try:
        _moto_transact_write_items(self, transact_items)
    except Exception:
        for table, hash_key, range_key, item in reversed(kept):
            _put_back(table, hash_key, range_key, item)
        raise


def _put_back(table: Table, hash_key: Any, range_key: Any, item: Item | None) -> None:
    if range_key is None:
        if item is None:
            table.items.pop(hash_key, None)
        else:
            table.items[hash_key] = item  # type: ignore[assignment]
    elif item is None:
        table.items.get(hash_key, {}).pop(range_key, None)
    else:
        table.items[hash_key][range_key] = item


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
FakeKey.__deepcopy__ = _listing_copy  # type: ignore[attr-defined]
Table.__deepcopy__ = _no_table_copy  # type: ignore[attr-defined]
DynamoDBBackend.transact_write_items = _transact_write_items  # type: ignore[method-assign]

if __name__ == "__main__":
    main()
