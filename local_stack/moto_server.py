"""The AWS emulator's server (`python -m local_stack.moto_server -H HOST -p PORT`): moto, with two of its costs that
AWS does not have taken away (both listed in the README's emulator notes).

- moto's ListObjectVersions deep-copies every version of the bucket to list them, each copy re-reading and rewriting
  the version's whole bytes: a listing costs the bucket's size in time and memory (half a second and a gigabyte for
  a few 50 MB versions), where S3 answers in milliseconds. Here a listing's copy shares the version's bytes, which
  the listing only reads; nothing else in moto's S3 deep-copies a version.
- moto's TransactWriteItems deep-copies the whole table once per action, to put it back if the transaction fails:
  a transaction costs the table's size, and a test suite that fills the table slows down with every test. Here the
  copy is of the table's partitions, sharing their items: a failed transaction still puts back every item its
  actions replaced or added (moto checks an action's condition before it changes an item, and the guardian's
  conditional actions are puts, or updates that come last).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from moto.dynamodb.models.table import Table
from moto.s3.models import FakeKey
from moto.server import main


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


def _transaction_copy(self: Table, memo: dict[int, Any]) -> Table:
    copied: Table = object.__new__(type(self))
    copied.__dict__.update(self.__dict__)
    copied.items = defaultdict(
        dict, {key: dict(items) if isinstance(items, dict) else items for key, items in self.items.items()}
    )
    return copied


FakeKey.__deepcopy__ = _listing_copy  # type: ignore[attr-defined]
Table.__deepcopy__ = _transaction_copy  # type: ignore[attr-defined]

if __name__ == "__main__":
    main()
