"""moto's costs that AWS does not have, taken away in the emulator's server (`local_stack/moto_server.py`, which the
tests, `make run` and `make bench` start); each is listed in the README's emulator notes. Every one answers as moto
answers, only sooner.

- moto's ListObjectVersions deep-copies every version of the bucket to list them, each copy re-reading and rewriting
  the version's whole bytes: a listing costs the bucket's size in time and memory (half a second and a gigabyte for
  a few 50 MB versions), where S3 answers in milliseconds. Here a listing's copy shares the version's bytes, which
  the listing only reads; nothing else in moto's S3 deep-copies a version.
- moto's TransactWriteItems deep-copies the whole table once per action, to put it back if the transaction fails:
  a transaction costs the table's size, and a test suite that fills the table slows down with every test. Here a
  transaction keeps a copy of only the items its actions name, and a failed one puts exactly those back (or removes
  those it added), as the whole copy would have.
- moto's work for every request: it lists its package's directories and tries each backend's URL patterns in turn
  to find which service a request is for, under a lock every request shares; lists the response class's methods
  with `inspect`; and searches every answer for a `<RequestId>` element with a regular expression tried at each
  character (a millisecond for an item of 20 kB). Here the service is found once per host, the methods once per
  class, and only an answer that holds the element is searched.
- moto's update expressions: it deep-copies the parsed expression, builds each validator's map of node types once
  per node, and counts an update's clauses again at every level of the expression (the square of its actions:
  most of the record's transaction on the write path). Here the tree is copied node by node, the maps once per
  validator, and each node's clauses counted once.
- moto's DynamoDB answers: its serializer looks up each of an attribute value's ten members by name, through several
  spellings, for every attribute of every item (most of a GetItem of a large item). Here a value is written as it
  is held, base64 for binary, as moto's serializer writes it.
"""

from __future__ import annotations

import copy
from typing import Any

from moto.core import responses
from moto.core.responses import BaseResponse
from moto.core.serialize import BaseJSONSerializer
from moto.core.utils import method_names_from_class
from moto.dynamodb.exceptions import MockValidationException, TooManyClauses
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import Item
from moto.dynamodb.models.table import Table
from moto.dynamodb.parsing import validators
from moto.dynamodb.parsing.ast_nodes import (  # type: ignore[attr-defined]  # moto leaves the module untyped
    DepthFirstTraverser,
    Expression,
    Node,
    UpdateExpressionAddClause,
    UpdateExpressionFunction,
    UpdateExpressionRemoveClause,
    UpdateExpressionSetClause,
)
from moto.moto_server.werkzeug_app import DomainDispatcherApplication
from moto.s3.models import FakeKey
from moto.utilities.aws_headers import gen_amzn_requestid_long


def install() -> None:
    """Take the costs away, in this process's moto."""
    FakeKey.__deepcopy__ = _listing_copy  # type: ignore[attr-defined]
    Table.__deepcopy__ = _no_table_copy  # type: ignore[attr-defined]
    DynamoDBBackend.transact_write_items = _transact_write_items  # type: ignore[method-assign]
    DomainDispatcherApplication.get_backend_for_host = _backend_for_host  # type: ignore[method-assign]
    responses.method_names_from_class = _method_names  # type: ignore[attr-defined]  # as moto's module names it
    BaseResponse._enrich_response = staticmethod(_enrich_response)  # type: ignore[method-assign]
    validators.deepcopy = _expression_copy  # type: ignore[attr-defined,assignment]
    DepthFirstTraverser.nodes_to_be_processed = _nodes_to_be_processed
    DepthFirstTraverser.process = _process
    validators.ActionCountValidator.verify_action_counts = _verify_action_counts  # type: ignore[method-assign]
    BaseJSONSerializer._serialize_type_structure = _json_structure  # type: ignore[method-assign]


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


_moto_backend_for_host = DomainDispatcherApplication.get_backend_for_host
_BACKEND_FOR_HOST: dict[str | None, Any] = {}


def _backend_for_host(self: DomainDispatcherApplication, host: str | None) -> Any:
    """moto's backend for a host, found once per host: moto lists its package's directories and tries each
    backend's URL patterns in turn for every request, under a lock all requests share."""
    if host not in _BACKEND_FOR_HOST:
        _BACKEND_FOR_HOST[host] = _moto_backend_for_host(self, host)
    return _BACKEND_FOR_HOST[host]


class _NotPlain(Exception):
    pass


_IMMUTABLE = (str, int, float, bool, bytes, type(None))


def _expression_copy(expression: Any, memo: Any = None) -> Any:
    """A copy of a parsed expression as `copy.deepcopy` makes it, node by node: the validator copies the tree
    before it changes it, and deepcopy's general walk costs more than the rest of an update."""
    if not isinstance(expression, Node) or expression.parent is not None:
        return copy.deepcopy(expression, memo)
    try:
        return _node_copy(expression, None)
    except _NotPlain:
        return copy.deepcopy(expression, memo)


def _node_copy(node: Node, parent: Node | None) -> Node:
    copied = object.__new__(type(node))
    state = dict(node.__dict__)
    for name, value in state.items():
        if name == "parent":
            state[name] = parent
        elif name == "children" and isinstance(value, list):
            state[name] = [
                _node_copy(child, copied) if isinstance(child, Node) else _immutable(child) for child in value
            ]
        else:
            _immutable(value)
    copied.__dict__ = state
    return copied


def _immutable(value: Any) -> Any:
    if not isinstance(value, _IMMUTABLE):
        raise _NotPlain
    return value


_moto_enrich_response = BaseResponse._enrich_response
_REQUEST_ID = "<RequestId>"


def _enrich_response(headers: dict[str, str], body: Any) -> tuple[dict[str, str], Any]:
    """moto's, without its search for a `<RequestId>` element through every answer that has none: a regular
    expression with a look-behind, tried at each character of the body (a millisecond for an item of 20 kB)."""
    if isinstance(body, str) and _REQUEST_ID in body:
        return _moto_enrich_response(headers, body)
    if "status" in headers:
        headers["status"] = str(headers["status"])
    gen_amzn_requestid_long(headers)
    return headers, body


_METHOD_NAMES: dict[object, list[str]] = {}


def _method_names(clazz: object) -> list[str]:
    """The functions of a response class, listed once per class (moto lists them with `inspect` per request)."""
    if clazz not in _METHOD_NAMES:
        _METHOD_NAMES[clazz] = method_names_from_class(clazz)
    return _METHOD_NAMES[clazz]


def _processing(self: Any) -> tuple[dict[type, Any], tuple[type, ...]]:
    """A traverser's map of node types to processors, and those types, made once per traverser instead of once per
    node."""
    cached = self.__dict__.get("_emulator_processing")
    if cached is None:
        processing = self._processing_map()
        cached = self.__dict__["_emulator_processing"] = (processing, tuple(processing))
    return cached  # type: ignore[no-any-return]


def _nodes_to_be_processed(self: Any) -> tuple[type, ...]:
    return _processing(self)[1]


def _process(self: Any, node: Any) -> Any:
    for class_key, processor in _processing(self)[0].items():
        if isinstance(node, class_key):
            return processor(node)
    return None


def _verify_action_counts(self: validators.ActionCountValidator, node: Any) -> Any:
    """moto's check that an update has at most one clause of each kind, counting each node's clauses once: moto
    lists them again at every level of the expression, which costs the square of its actions."""
    counted: dict[tuple[int, type], int] = self.__dict__.setdefault("_emulator_counted", {})
    for kind, name in ((UpdateExpressionAddClause, "ADD"), (UpdateExpressionRemoveClause, "REMOVE"),
                       (UpdateExpressionSetClause, "SET")):  # fmt: skip
        if _clauses(node, kind, counted) > 1:
            raise TooManyClauses(name)
    return node


def _clauses(node: Node, kind: type, counted: dict[tuple[int, type], int]) -> int:
    """How many clauses of `kind` `Node.find_clauses` finds under `node`, remembered per node (children are
    counted before their parents, so each node's count is made once)."""
    key = (id(node), kind)
    if key not in counted:
        counted[key] = sum(
            1 if type(child) is kind else _clauses(child, kind, counted)
            for child in node.children or []
            if type(child) is kind or isinstance(child, (Expression, UpdateExpressionFunction))
        )
    return counted[key]


_moto_json_structure = BaseJSONSerializer._serialize_type_structure


def _json_structure(self: BaseJSONSerializer, serialized: Any, value: Any, shape: Any, key: str) -> None:
    """moto's JSON serialization of a structure, but a DynamoDB attribute value (DynamoDB's shape, or its streams')
    written as it is held: moto's serializer looks up each of its ten members by name, through several spellings,
    for every attribute of every item (most of a GetItem of a large item, and of a Query's page)."""
    if key and shape.name == "AttributeValue" and "NULL" in shape.members and isinstance(value, dict):
        wire = _attribute_value(self, value)
        if wire is not None:
            self._default_serialize(serialized, wire, shape, key)
            return
    _moto_json_structure(self, serialized, value, shape, key)


def _attribute_value(self: BaseJSONSerializer, value: dict[str, Any]) -> dict[str, Any] | None:
    """`value` ({"S": ...}, {"M": {...}}, ...) in DynamoDB's JSON, as moto's serializer writes it; None for a value
    of a shape not met here, which moto's serializer is left to write."""
    if len(value) != 1:
        return None
    ((kind, held),) = value.items()
    if kind in ("S", "N") and isinstance(held, str):
        return value
    if kind in ("SS", "NS") and isinstance(held, list) and all(isinstance(item, str) for item in held):
        return value
    if kind in ("NULL", "BOOL") and isinstance(held, bool):
        return value
    if kind == "B" and isinstance(held, (bytes, str)):
        return {kind: self._base64(held)}
    if kind == "BS" and isinstance(held, list) and all(isinstance(item, (bytes, str)) for item in held):
        return {kind: [self._base64(item) for item in held]}
    if kind == "M" and isinstance(held, dict):
        members = {name: _attribute_value(self, member) if isinstance(member, dict) else None
                   for name, member in held.items()}  # fmt: skip
        return None if None in members.values() else {kind: members}
    if kind == "L" and isinstance(held, list):
        items = [_attribute_value(self, item) if isinstance(item, dict) else None for item in held]
        return None if None in items else {kind: items}
    return None
