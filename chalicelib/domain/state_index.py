"""A state read in one streaming pass: its header, and a digest per resource instance address and output name.

The bytes are decoded incrementally with the standard library's C JSON decoder, one top-level member and
one resource at a time, so memory stays near the size of one resource rather than of the whole state.
Values are reduced to digests at once: no attribute or output value outlives the pass.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import json.scanner
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from chalicelib.domain.state import StateHeader, header_from_fields
from chalicelib.errors import NotAStateError

_WHITESPACE = " \t\n\r"
_NOT_WHITESPACE = re.compile(r"[^ \t\n\r]")
_COMPACT_AT = 1 << 20  # drop consumed text once this much has piled up
_ENCRYPTED_MARKERS = frozenset({"encryption_version", "encrypted_data"})


@dataclass(frozen=True)
class StateIndex:
    """What a diff needs of one state version: addresses and names with a digest of their values."""

    header: StateHeader
    size: int
    md5: str
    resources: dict[str, int]
    outputs: dict[str, int]


@dataclass(frozen=True)
class StateDiff:
    """Resource instance addresses and output names added, changed and removed, sorted."""

    resources_added: list[str]
    resources_changed: list[str]
    resources_removed: list[str]
    outputs_added: list[str]
    outputs_changed: list[str]
    outputs_removed: list[str]

    @classmethod
    def between(cls, before: StateIndex | None, after: StateIndex) -> StateDiff:
        old_resources = before.resources if before else {}
        old_outputs = before.outputs if before else {}
        return cls(
            *_compare(old_resources, after.resources),
            *_compare(old_outputs, after.outputs),
        )


def _compare(old: dict[str, int], new: dict[str, int]) -> tuple[list[str], list[str], list[str]]:
    added = sorted(new.keys() - old.keys())
    removed = sorted(old.keys() - new.keys())
    changed = sorted(name for name in new.keys() & old.keys() if new[name] != old[name])
    return added, changed, removed


def index_state(chunks: Iterable[bytes]) -> StateIndex:
    """Index a state from its bytes, given in chunks; raises `NotAStateError` for anything else."""
    reader = _StreamingObjectReader(chunks)
    scalars: dict[str, object] = {}
    resources: dict[str, int] = {}
    outputs: dict[str, int] = {}
    keys: set[str] = set()
    for key in reader.members():
        keys.add(key)
        if key == "resources" and not keys & _ENCRYPTED_MARKERS:
            for resource in reader.array_items():
                _index_resource(resource, resources)
        elif key == "outputs" and not keys & _ENCRYPTED_MARKERS:
            value = reader.value()
            if not isinstance(value, dict):
                raise NotAStateError("outputs is not an object")
            for name, output in value.items():
                outputs[name] = hash(repr(output))
        else:
            value = reader.value()
            if not isinstance(value, (dict, list)):
                scalars[key] = value
    encrypted = bool(keys & _ENCRYPTED_MARKERS)
    header = header_from_fields(scalars, encrypted=encrypted)
    if encrypted:
        resources, outputs = {}, {}
    return StateIndex(
        header=header, size=reader.consumed_bytes, md5=reader.md5.hexdigest(), resources=resources, outputs=outputs
    )


def _index_resource(resource: Any, into: dict[str, int]) -> None:
    if not isinstance(resource, dict):
        raise NotAStateError("a resource is not an object")
    try:
        base = resource_address(resource.get("module"), resource["mode"], resource["type"], resource["name"])
        instances = resource["instances"]
    except (KeyError, TypeError, ValueError) as exc:
        raise NotAStateError(f"a resource lacks {exc}") from None
    if not isinstance(instances, list):
        raise NotAStateError("a resource's instances are not a list")
    for instance in instances:
        if not isinstance(instance, dict):
            raise NotAStateError("a resource instance is not an object")
        address = base + _index_suffix(instance.get("index_key"))
        if instance.get("deposed"):
            address += f" (deposed {instance['deposed']})"
        attributes = instance.get("attributes", instance.get("attributes_flat"))
        status = instance.get("status")  # "tainted" changes what the next apply does
        into[address] = hash(repr(attributes) if status is None else repr((attributes, status)))


def resource_address(module: Any, mode: Any, type_name: Any, name: Any) -> str:
    """Terraform's own address, e.g. `module.net.aws_subnet.a` or `data.aws_ami.ubuntu`."""
    if not all(isinstance(part, str) and part for part in (mode, type_name, name)):
        raise ValueError("mode, type or name")
    address = f"{type_name}.{name}" if mode == "managed" else f"data.{type_name}.{name}"
    if module:
        if not isinstance(module, str):
            raise ValueError("module")
        address = f"{module}.{address}"
    return address


def _index_suffix(index_key: Any) -> str:
    if index_key is None:
        return ""
    if isinstance(index_key, int) and not isinstance(index_key, bool):
        return f"[{index_key}]"
    if isinstance(index_key, str):
        if '"' in index_key or "\\" in index_key or not index_key.isprintable():
            return f"[{json.dumps(index_key, ensure_ascii=False)}]"
        return f'["{index_key}"]'
    raise NotAStateError("a resource instance has an index_key that is neither a number nor a string")


class _StreamingObjectReader:
    """Reads the members of one top-level JSON object from chunks of UTF-8, one value at a time."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks: Iterator[bytes] = iter(chunks)
        self._utf8 = codecs.getincrementaldecoder("utf-8")()
        # The C scanner behind json.loads, without the wrapper that re-scans whitespace on each call.
        self._scan: Any = json.scanner.make_scanner(json.JSONDecoder())  # type: ignore[arg-type]
        self._text = ""
        self._pos = 0
        self._eof = False
        self.consumed_bytes = 0
        self.md5 = hashlib.md5(usedforsecurity=False)  # Terraform's digest of the exact bytes

    def members(self) -> Iterator[str]:
        self._expect("{")
        if self._peek() == "}":
            self._pos += 1
            self._expect_end()
            return
        while True:
            key = self._decode()
            if not isinstance(key, str):
                raise NotAStateError("not a JSON object")
            self._expect(":")
            yield key
            separator = self._peek()
            self._pos += 1
            if separator == "}":
                self._expect_end()
                return
            if separator != ",":
                raise NotAStateError("malformed JSON")

    def value(self) -> Any:
        return self._decode()

    def array_items(self) -> Iterator[Any]:
        self._expect("[")
        if self._peek() == "]":
            self._pos += 1
            return
        while True:
            yield self._decode()
            separator = self._peek()
            self._pos += 1
            if separator == "]":
                return
            if separator != ",":
                raise NotAStateError("malformed JSON")

    def _decode(self) -> Any:
        self._peek()
        while True:
            try:
                value, end = self._scan(self._text, self._pos)
            except (json.JSONDecodeError, StopIteration):
                if self._eof:
                    raise NotAStateError("not valid JSON") from None
                # At least double what is pending, so that a value spanning many chunks is retried
                # a logarithmic number of times.
                self._read(at_least=len(self._text) - self._pos)
                continue
            # A number that ends the text read so far may go on in the next chunk.
            if end == len(self._text) and not self._eof:
                self._read()
                continue
            self._pos = end
            return value

    def _peek(self) -> str:
        while True:
            found = _NOT_WHITESPACE.search(self._text, self._pos)
            if found is not None:
                self._pos = found.start()
                return self._text[self._pos]
            self._pos = len(self._text)
            if self._eof:
                raise NotAStateError("the JSON ends too early")
            self._read()

    def _expect(self, char: str) -> None:
        if self._peek() != char:
            raise NotAStateError("not a JSON object" if char == "{" else "malformed JSON")
        self._pos += 1

    def _expect_end(self) -> None:
        while True:
            rest = self._text[self._pos :].strip(_WHITESPACE)
            if rest:
                raise NotAStateError("data after the end of the JSON object")
            if self._eof:
                return
            self._read()

    def _read(self, at_least: int = 1) -> None:
        if self._pos > _COMPACT_AT:
            self._text = self._text[self._pos :]
            self._pos = 0
        parts: list[str] = []
        added = 0
        try:
            while added < at_least:
                chunk = next(self._chunks, None)
                if chunk is None:
                    self._eof = True
                    parts.append(self._utf8.decode(b"", final=True))
                    break
                self.consumed_bytes += len(chunk)
                self.md5.update(chunk)
                part = self._utf8.decode(chunk)
                parts.append(part)
                added += len(part)
        except UnicodeDecodeError:
            raise NotAStateError("not UTF-8 text") from None
        self._text += "".join(parts)
