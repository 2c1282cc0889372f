"""What a state object is: its header (format, serial, lineage) read from the first bytes of the file."""

from __future__ import annotations

import json
from dataclasses import dataclass

from chalicelib.errors import NotAStateError

TERRAFORM_STATE_FORMAT = 4
# Top-level keys that come after the header in a plain state: once one is seen, the header is complete.
_PLAIN_BODY_KEYS = frozenset({"outputs", "resources", "check_results"})
_ENCRYPTED_MARKERS = frozenset({"encryption_version", "encrypted_data"})
_WHITESPACE = " \t\n\r"
TOO_DEEP = "JSON nested too deeply"


@dataclass(frozen=True)
class StateHeader:
    """The identity of one state version: never any attribute or output value."""

    serial: int
    lineage: str
    terraform_version: str | None
    encrypted: bool


class HeaderIncomplete(Exception):
    """The bytes read so far end before the header does; read more of the object."""


def parse_state_header(data: bytes, *, complete: bool) -> StateHeader:
    """Read the header of a state from its first bytes, or from all of them when `complete`.

    Raises `HeaderIncomplete` when a prefix does not reach the end of the header and
    `NotAStateError` when the bytes are not a Terraform or OpenTofu (encrypted) state.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if complete or len(data) - exc.start > 3:  # a prefix may cut one multi-byte character
            raise NotAStateError("not UTF-8 text") from None
        text = data[: exc.start].decode("utf-8")
    try:
        if complete:
            document = _whole_object(text)
            fields = {k: v for k, v in document.items() if not isinstance(v, (dict, list))}
            return header_from_fields(fields, encrypted=bool(document.keys() & _ENCRYPTED_MARKERS))
        fields, keys_seen, ended = _top_level_scalars(text)
    except RecursionError:  # Python's JSON decoder recurses once per level of nesting
        raise NotAStateError(TOO_DEEP) from None
    encrypted = bool(keys_seen & _ENCRYPTED_MARKERS)
    if not ended and not (keys_seen & _PLAIN_BODY_KEYS or (encrypted and {"serial", "lineage"} <= fields.keys())):
        raise HeaderIncomplete()
    return header_from_fields(fields, encrypted=encrypted)


def _whole_object(text: str) -> dict[str, object]:
    try:
        document = json.loads(text)
    except json.JSONDecodeError:
        raise NotAStateError("not valid JSON") from None
    if not isinstance(document, dict):
        raise NotAStateError("not a JSON object")
    return document


def header_from_fields(fields: dict[str, object], *, encrypted: bool) -> StateHeader:
    """The header from a state's top-level scalar members; raises `NotAStateError` if they are not a state's."""
    serial = fields.get("serial")
    lineage = fields.get("lineage")
    if not encrypted:
        version = fields.get("version")
        if version != TERRAFORM_STATE_FORMAT or isinstance(version, bool):
            raise NotAStateError(f"state format version is {version!r}, expected {TERRAFORM_STATE_FORMAT}")
    if not isinstance(serial, int) or isinstance(serial, bool) or serial < 0:
        raise NotAStateError("serial is missing or not a non-negative integer")
    if not isinstance(lineage, str) or not lineage:
        raise NotAStateError("lineage is missing or empty")
    terraform_version = fields.get("terraform_version")
    return StateHeader(
        serial=serial,
        lineage=lineage,
        terraform_version=terraform_version if isinstance(terraform_version, str) else None,
        encrypted=encrypted,
    )


def _top_level_scalars(text: str) -> tuple[dict[str, object], set[str], bool]:
    """Decode the top-level members of a JSON object prefix until the text runs out.

    Returns the scalar members decoded, every key seen (including one whose value was cut off),
    and whether the object's closing brace was reached.
    """
    decoder = json.JSONDecoder()
    pos = _skip(text, 0)
    if pos >= len(text):
        return {}, set(), False
    if not text.startswith("{", pos):
        raise NotAStateError("not a JSON object")
    pos = _skip(text, pos + 1)
    fields: dict[str, object] = {}
    keys_seen: set[str] = set()
    while pos < len(text):
        if text[pos] == "}":
            return fields, keys_seen, True
        try:
            key, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError:
            return fields, keys_seen, False
        if not isinstance(key, str):
            raise NotAStateError("not a JSON object")
        keys_seen.add(key)
        pos = _skip(text, pos)
        if pos >= len(text):
            break
        if text[pos] != ":":
            raise NotAStateError("malformed JSON")
        pos = _skip(text, pos + 1)
        try:
            value, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError:
            return fields, keys_seen, False
        pos = _skip(text, pos)
        if pos >= len(text):
            break  # a number at the very end may have been cut short
        if not isinstance(value, (dict, list)):
            fields[key] = value
        if pos < len(text) and text[pos] == ",":
            pos = _skip(text, pos + 1)
    return fields, keys_seen, False


def _skip(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in _WHITESPACE:
        pos += 1
    return pos
