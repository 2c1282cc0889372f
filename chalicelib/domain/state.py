"""What a state object is: its header (format, serial, lineage) read from the first bytes of the file."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from chalicelib.errors import NotAStateError

TERRAFORM_STATE_FORMAT = 4
# Terraform reads formats 1 to 3 too, upgrading them to 4 as it reads (a state last written by 0.11 or older).
STATE_FORMATS = frozenset({1, 2, 3, TERRAFORM_STATE_FORMAT})
# Top-level keys that come after the header in a plain state: once one is seen, the header is complete.
_PLAIN_BODY_KEYS = frozenset({"outputs", "resources", "check_results", "modules", "remote", "backend"})
_ENCRYPTED_MARKERS = frozenset({"encryption_version", "encrypted_data"})
_WHITESPACE = " \t\n\r"
TOO_DEEP = "JSON nested too deeply"
# What a file holds when Git stored a symbolic link as a plain file, or Git LFS a pointer instead of the content.
SNIFF_CHARS = 4096
_LFS_POINTER = "version https://git-lfs.github.com/spec/"
_LINK_TARGET = re.compile(r"[^\s{}\[\]\"<>]*(?:/|\.tfstate)[^\s{}\[\]\"<>]*")


@dataclass(frozen=True)
class StateHeader:
    """The identity of one state version: never any attribute or output value."""

    serial: int
    lineage: str | None  # None when the state has none (Terraform reads a missing lineage as empty)
    terraform_version: str | None
    encrypted: bool

    def lineage_differs(self, other: StateHeader) -> bool:
        """Whether the two lineages are known and differ: a missing one is unknown, not a change."""
        return self.lineage is not None and other.lineage is not None and self.lineage != other.lineage


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
    start = text.lstrip(_WHITESPACE)
    if not start.startswith("{"):
        raise NotAStateError(unreadable_reason(text[:SNIFF_CHARS], whole=len(text) <= SNIFF_CHARS or not start))
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        too_early = exc.pos >= len(text.rstrip(_WHITESPACE)) or exc.msg.startswith("Unterminated string")
        raise NotAStateError("the JSON ends too early" if too_early else "not valid JSON") from None
    if not isinstance(document, dict):
        raise NotAStateError("not a JSON object")
    return document


def unreadable_reason(head: str, *, whole: bool) -> str:
    """Why text that does not start with a JSON object is not a state, said for the person who has to look.

    `head` is the start of the text (`SNIFF_CHARS` suffice), `whole` whether it is all of it.
    """
    text = head.strip(_WHITESPACE)
    if not text:
        if whole:
            return "the object is empty" if not head else "the object holds only whitespace"
        return "not a JSON object"
    if text.startswith(_LFS_POINTER):
        return "a Git LFS pointer, not the state it points to"
    if whole and _LINK_TARGET.fullmatch(text):
        return "a path, as Git writes a symbolic link where links are not supported: not the state it names"
    if text[0] in '["-0123456789' or text.startswith(("true", "false", "null")):
        return "not a JSON object"
    return "not valid JSON"


def header_from_fields(fields: dict[str, object], *, encrypted: bool) -> StateHeader:
    """The header from a state's top-level scalar members; raises `NotAStateError` if they are not a state's."""
    serial = fields.get("serial")
    lineage = fields.get("lineage")
    if not encrypted:
        state_format(fields)
        # Go reads what is missing (or null) as its zero value: serial 0, lineage "".
        serial = 0 if serial is None else serial
        lineage = None if lineage is None or lineage == "" else lineage
    elif not isinstance(lineage, str) or not lineage:
        raise NotAStateError("lineage is missing or empty")
    if not isinstance(serial, int) or isinstance(serial, bool) or serial < 0:
        raise NotAStateError("serial is missing or not a non-negative integer")
    if lineage is not None and not isinstance(lineage, str):
        raise NotAStateError("lineage is not a string")
    terraform_version = fields.get("terraform_version")
    return StateHeader(
        serial=serial,
        lineage=lineage,
        terraform_version=terraform_version if isinstance(terraform_version, str) else None,
        encrypted=encrypted,
    )


def state_format(fields: dict[str, object]) -> int:
    """The format version of a plain state from its top-level scalar members: 1 to 4, or `NotAStateError`."""
    version = fields.get("version")
    if version is None:
        raise NotAStateError("no state format version: a JSON object, but not a Terraform state")
    if not isinstance(version, int) or isinstance(version, bool) or version not in STATE_FORMATS:
        raise NotAStateError(f"state format version {version!r} is not one Terraform reads (1 to 4)")
    return version


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
        raise NotAStateError(unreadable_reason(text[:SNIFF_CHARS], whole=False))
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
