"""A rollback as Terraform accepts it: the target's bytes with the next serial, nothing else changed."""

from __future__ import annotations

import codecs
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from chalicelib.domain.state import SNIFF_CHARS, HeaderIncomplete, parse_state_header, unreadable_reason
from chalicelib.domain.state_index import value_end
from chalicelib.errors import InvalidRequestError, NotAStateError

MAX_REASON = 500


@dataclass(frozen=True)
class RollbackRequest:
    """What `POST /rollback` asks for; exactly one of `version_id`, `serial`, `as_of` names the target."""

    key: str
    version_id: str | None
    serial: int | None
    as_of: datetime | None
    dry_run: bool
    reason: str
    allow_lineage_change: bool

    @classmethod
    def parse(cls, body: Any) -> RollbackRequest:
        if not isinstance(body, dict):
            raise InvalidRequestError("the body must be a JSON object")
        unknown = set(body) - {"key", "version_id", "serial", "as_of", "dry_run", "reason", "allow_lineage_change"}
        if unknown:
            raise InvalidRequestError(f"unknown fields: {', '.join(sorted(unknown))}")
        key = body.get("key")
        if not isinstance(key, str) or not valid_key(key):
            raise InvalidRequestError("key must be the state's object key")
        targets = [name for name in ("version_id", "serial", "as_of") if body.get(name) is not None]
        if len(targets) != 1:
            raise InvalidRequestError("give exactly one of version_id, serial and as_of")
        version_id, serial, as_of = body.get("version_id"), body.get("serial"), body.get("as_of")
        if version_id is not None and (not isinstance(version_id, str) or not version_id or len(version_id) > 1024):
            raise InvalidRequestError("version_id must be an S3 version id")
        if serial is not None and (not isinstance(serial, int) or isinstance(serial, bool) or serial < 0):
            raise InvalidRequestError("serial must be a non-negative integer")
        moment = None
        if as_of is not None:
            try:
                moment = datetime.fromisoformat(str(as_of).replace("Z", "+00:00"))
            except ValueError:
                raise InvalidRequestError("as_of must be an RFC3339 time, e.g. 2026-11-26T11:00:00Z") from None
            if moment.tzinfo is None:
                raise InvalidRequestError("as_of must name its time zone, e.g. 2026-11-26T11:00:00Z")
        flags = {
            name: body.get(name, default) for name, default in (("dry_run", False), ("allow_lineage_change", False))
        }
        if not all(isinstance(value, bool) for value in flags.values()):
            raise InvalidRequestError("dry_run and allow_lineage_change must be true or false")
        reason = body.get("reason", "")
        if not isinstance(reason, str) or len(reason) > MAX_REASON:
            raise InvalidRequestError(f"reason must be text of at most {MAX_REASON} characters")
        return cls(
            key=key,
            version_id=version_id,
            serial=serial,
            as_of=moment,
            dry_run=flags["dry_run"],
            reason=reason,
            allow_lineage_change=flags["allow_lineage_change"],
        )


def valid_key(key: str) -> bool:
    """An S3 key a state can have: 1 to 1024 characters, none of them a control character."""
    return 0 < len(key) <= 1024 and key.isprintable()


_HEAD_BYTES = 64 * 1024


def with_serial(state: bytes, serial: int) -> bytes:
    """The same bytes with the top-level `serial` replaced: every other byte, and so every value, stays as it was.

    A state without one (Terraform reads that as serial 0) gets one as its first member.
    """
    # Terraform writes the serial third, so the head of the state is nearly always enough to find it.
    try:
        head = codecs.getincrementaldecoder("utf-8")().decode(state[:_HEAD_BYTES], final=len(state) <= _HEAD_BYTES)
        try:
            start, end, found = _serial_span(head, complete=len(state) <= _HEAD_BYTES)
        except _NeedMore:
            head = state.decode("utf-8")
            start, end, found = _serial_span(head, complete=True)
    except UnicodeDecodeError:
        raise NotAStateError("not UTF-8 text") from None
    value = str(serial)
    if not found:  # written before the first member, indented as it is
        indentation = head[head.rindex("{", 0, start) + 1 : start]
        value = f'"serial": {serial}' + ("," if head[start] != "}" else "") + indentation
    start_byte, end_byte = len(head[:start].encode()), len(head[:end].encode())
    view = memoryview(state)  # one copy of a state that may be tens of megabytes, not three
    return b"".join((view[:start_byte], value.encode(), view[end_byte:]))


def likely_serial_after(target: bytes, replaced: bytes | None) -> int | None:
    """The serial the restored state will get, read from the heads alone; None if they do not tell."""
    if replaced is None:
        return None
    try:
        target_header = parse_state_header(target[:_HEAD_BYTES], complete=len(target) <= _HEAD_BYTES)
        replaced_header = parse_state_header(replaced[:_HEAD_BYTES], complete=len(replaced) <= _HEAD_BYTES)
    except (NotAStateError, HeaderIncomplete):
        return None
    return None if target_header.encrypted else replaced_header.serial + 1


def restored_with_digest(target: bytes, serial: int | None) -> tuple[bytes, str]:
    """The bytes to write, the target's with `serial` (None: byte for byte), and their MD5."""
    restored = target if serial is None else with_serial(target, serial)
    return restored, hashlib.md5(restored, usedforsecurity=False).hexdigest()


class _NeedMore(Exception):
    """The text given ends before the serial could be found."""


def _serial_span(text: str, *, complete: bool) -> tuple[int, int, bool]:
    """Where the value of the top-level `serial` starts and ends in `text`, and True; for a state without one,
    where its first member starts (twice), and False."""
    pos = _skip(text, 0)
    if not text.startswith("{", pos):
        raise NotAStateError(unreadable_reason(text[:SNIFF_CHARS], whole=complete))
    first = pos = _skip(text, pos + 1)
    while pos < len(text) and text[pos] != "}":
        key, start, value, end = _member(text, pos, complete=complete)
        if end >= len(text) and not complete:  # a number may go on past the end of the text
            raise _NeedMore
        if key == "serial":
            if not isinstance(value, int) or isinstance(value, bool):
                raise NotAStateError("serial is not an integer")
            return start, end, True
        pos = _skip(text, end)
        if pos < len(text) and text[pos] == ",":
            pos = _skip(text, pos + 1)
    if not complete:
        raise _NeedMore
    if pos >= len(text):
        raise NotAStateError("the JSON ends too early")
    return first, first, False


_DECODER = json.JSONDecoder()


def _member(text: str, pos: int, *, complete: bool) -> tuple[object, int, object, int]:
    """The member at `pos`: its key, where its value starts, the value (None for an array or object, which is
    skipped undecoded unless it is the serial) and where it ends."""
    try:
        key, pos = _DECODER.raw_decode(text, pos)
        pos = _skip(text, pos)
        if text[pos] != ":":
            raise NotAStateError("malformed JSON")
        start = _skip(text, pos + 1)
        if key != "serial" and text[start] in "[{":
            return key, start, None, value_end(text, start)  # never decoded: it may be all the resources
        value, end = _DECODER.raw_decode(text, start)
    except (json.JSONDecodeError, IndexError, RecursionError, NotAStateError) as exc:  # RecursionError: per level
        if not complete:
            raise _NeedMore from None
        raise (exc if isinstance(exc, NotAStateError) else NotAStateError("not valid JSON")) from None
    return key, start, value, end


def _skip(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\n\r":
        pos += 1
    return pos
