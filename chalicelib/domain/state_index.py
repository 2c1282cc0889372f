"""A state read in one streaming pass: its header, and a digest per resource instance address and output name.

The bytes are read incrementally, one top-level member, one resource and one output at a time, so memory stays
near the size of one resource, or a chunk of an output, rather than of the whole state. Values are reduced to
digests at once: no attribute or output value outlives the pass.

Terraform and OpenTofu write a state with Go's `json.MarshalIndent` (two spaces, map keys sorted), so equal
values are equal bytes. In that layout a resource's instances are found by their indentation and each
instance's attributes are digested as the exact text Terraform wrote, without decoding them: that is what
keeps a diff within a small multiple of reading the bytes. A state in any other layout (compact JSON, a
hand-made file) is decoded with the standard library's C JSON scanner and its attributes digested as values.
The two kinds of digest are not comparable with each other: see `StateIndex.comparable_with`.

Outputs are never decoded, in any layout: each is digested as its JSON text without the whitespace outside
strings, streaming. In Terraform's layout an output ends at a fixed indentation; in any other, a regular
expression scans strings and brackets (at C speed, a few hundred tokens per match) to find its end. An indented
and a compact writing of the same output give the same digest.

A state in formats 1 to 3 (Terraform 0.11 and older: `modules`, each with a `path`, and resources keyed by
`type.name.index`) is indexed as Terraform upgrades it to format 4: addresses in today's form, deposed instances
numbered in order, the root module's outputs as the outputs.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import json.scanner
import re
from collections.abc import Callable, Container, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from chalicelib.domain.state import (
    SNIFF_CHARS,
    TERRAFORM_STATE_FORMAT,
    TOO_DEEP,
    StateHeader,
    header_from_fields,
    state_format,
    unreadable_reason,
)
from chalicelib.errors import NotAStateError

_WHITESPACE = " \t\n\r"
_NOT_WHITESPACE = re.compile(r"[^ \t\n\r]")
_COMPACT_AT = 1 << 18  # drop consumed text once this much has piled up
_ENCRYPTED_MARKERS = frozenset({"encryption_version", "encrypted_data"})
MAX_DEPTH = 10_000  # Go's JSON decoder refuses deeper nesting, and so Terraform

TERRAFORM_LAYOUT = "terraform-layout"  # attributes digested as the text Terraform wrote
DECODED = "decoded"  # attributes digested as decoded values

# Terraform's layout, by indentation: a resource is an object at depth 2, an instance one at depth 4. No string
# holds a raw newline, so a newline and an exact indentation can only be structure.
_LAYOUT_START = '{\n  "'
_RESOURCES_START = ' [\n    {\n      "'
_RESOURCE_START = "\n    {\n"
_RESOURCE_END = "\n    }"
_BETWEEN_RESOURCES = "\n    },\n    {\n"
_RESOURCES_END = "\n    }\n  ]"
_RESOURCE_FIRST_LINE = ('      "mode": ', '      "module": ')
_NEXT_INSTANCE = ",\n        {\n"
_INSTANCE_END = "\n        }"
_INSTANCES_END = "\n      ]"
_MULTILINE_VALUE_END = "\n          }"
_STRING = r'"[^"\\\n]*(?:\\.[^"\\\n]*)*"'
_SINGLE_LINE_MEMBERS = r'(?:{indent}"[a-z_]+": (?:[^\n{{\[][^\n]*|\[\]|\{{\}}),\n)*'
# A resource's members (inside its braces) up to its first instance's, in Terraform's order; other single-line
# members are let through, so that a member added by a later Terraform does not matter.
_RESOURCE_HEAD = re.compile(
    r'(?:      "module": (' + _STRING + r"),\n)?"
    r'      "mode": "([a-z]+)",\n'
    r'      "type": "([^"\\\n]+)",\n'
    r'      "name": "([^"\\\n]+)",\n'
    + _SINGLE_LINE_MEMBERS.format(indent="      ")
    + r'      "instances": \[(?:\]\Z|(?=\n        \{\n))'
)
# An instance's members up to the value of its attributes.
_INSTANCE_HEAD = re.compile(
    r'\n        \{\n(?:          "index_key": (-?\d+|' + _STRING + r"),\n)?"
    r'(?:          "status": "([a-z]+)",\n)?'
    r'(?:          "deposed": "([0-9a-zA-Z]+)",\n)?'
    + _SINGLE_LINE_MEMBERS.format(indent="          ")
    + r'          "attributes(?:_flat)?": '
)
# What must not follow the attributes, or `_INSTANCE_HEAD` would have missed it.
_LATE_MEMBER = re.compile(r'\n          "(?:index_key|status|deposed|attributes|attributes_flat)": ')
# Outputs in Terraform's layout: the object at depth 1, each output an object at depth 2.
_OUTPUTS_START = ' {\n    "'
_OUTPUT_LAYOUT = ('{\n      "', "\n    }")  # how an output's value begins and ends
_AFTER_OUTPUT = (',\n    "', "\n  }")

# JSON text scanned without decoding it. A string's characters after its opening quote:
_STRING_BODY = re.compile(r'(?:[^"\\\x00-\x1f]++|\\.)*+')
# Up to 256 tokens (whole strings, or runs of numbers, literals and punctuation), then the bracket that follows.
_RUN = re.compile(r'(?:[-+.0-9eEtrufalsn:, \t\n\r]{1,65536}+|"(?:[^"\\\x00-\x1f]++|\\.)*+"){0,256}+([\[\]{}])?')
_LITERAL = re.compile(r"[-+.0-9eE]++|true|false|null")
_STRING_OR_WHITESPACE = re.compile(r'("(?:[^"\\]++|\\.)*+")|[ \t\n\r]++')
_INDENTATION = re.compile(r"\n *")
_FLUSH_AT = 1 << 16  # characters of an output digested at a time
_OPENER = {"]": "[", "}": "{"}


class _NotTheLayout(Exception):
    """The resources are not in Terraform's layout after all: index the state decoded."""


@dataclass(frozen=True)
class StateIndex:
    """What a diff needs of one state version: addresses and names with a digest of their values."""

    header: StateHeader
    size: int
    md5: str  # empty when a rollback comparison reads the state: it needs none
    resources: dict[str, int]
    outputs: dict[str, int]
    resource_digests: str = DECODED  # TERRAFORM_LAYOUT or DECODED
    # In Terraform's layout, the instance addresses of each resource by a digest of the resource's whole text:
    # a resource written the same in another version needs no second look.
    # (Addresses joined by newlines: strings are not tracked by the garbage collector, tuples would be.)
    resource_texts: dict[int, str] = field(default_factory=dict, repr=False)

    def comparable_with(self, other: StateIndex | None) -> bool:
        """Whether resource digests of the two can be compared; if not, index the other one `decoded` too."""
        return (
            other is None or not (self.resources and other.resources) or other.resource_digests == self.resource_digests
        )


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
        if not after.comparable_with(before):
            raise ValueError("resource digests of a Terraform-layout index and a decoded one cannot be compared")
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


ChunkSource = Callable[[], Iterable[bytes]] | Sequence[bytes]


def chunks_of(data: bytes, size: int = 1 << 20) -> Callable[[], Iterator[bytes]]:
    """Bytes in memory as chunks: indexing reads at most one chunk ahead, whatever the size of the state."""
    view = memoryview(data)
    return lambda: (bytes(view[start : start + size]) for start in range(0, len(data), size))


def index_state(chunks: ChunkSource, *, decoded: bool = False, like: StateIndex | None = None) -> StateIndex:
    """Index a state from its bytes, given in chunks; raises `NotAStateError` for anything else.

    `chunks` is a list, or a function that opens the bytes again: a state that looks like Terraform's layout at
    first and turns out not to be is read a second time, decoded. `decoded` digests attributes as values even in
    Terraform's layout, to compare with a state in another one. `like`, another version's index, lends the
    entries of each resource written exactly as it was there.
    """
    if not decoded:
        try:
            return _index(chunks() if callable(chunks) else chunks, decoded=False, like=like)
        except _NotTheLayout:
            pass
    return _index(chunks() if callable(chunks) else chunks, decoded=True, like=None)


def state_header(chunks: ChunkSource) -> StateHeader:
    """The header of a state whose first bytes did not tell it, from all its bytes, given in chunks.

    Every top-level member is read, but only scalars are decoded: memory stays near one chunk.
    """
    try:
        reader = _StreamingObjectReader(chunks() if callable(chunks) else chunks, md5=False)
        scalars: dict[str, object] = {}
        keys: set[str] = set()
        for key in reader.members():
            keys.add(key)
            if reader.peek() in "[{":
                reader.skip()
            else:
                scalars[key] = reader.value()
        return header_from_fields(scalars, encrypted=bool(keys & _ENCRYPTED_MARKERS))
    except RecursionError:  # Python's JSON decoder recurses once per level of nesting
        raise NotAStateError(TOO_DEEP) from None


@dataclass(frozen=True)
class Comparison:
    """What a rollback needs of the current version and its target: both headers and the diff between them."""

    current: StateHeader | None  # None when there is no current version, or it is not a readable state
    target: StateHeader
    diff: StateDiff


class _Sieve:
    """Sets resources aside by the digest of their text instead of walking them.

    Without `known`, every resource is kept for later; with the digests another version kept, a resource
    written exactly as there is only noted as shared, and any other is walked at once.
    """

    def __init__(self, known: Container[int] | None = None) -> None:
        self.known = known
        self.kept: dict[int, str] = {}
        self.shared: set[int] = set()

    def take(self, block: str, into: dict[str, int]) -> None:
        for text in _resource_texts(block):
            digest = hash(text)
            if self.known is None:
                self.kept[digest] = text
            elif digest in self.known:
                self.shared.add(digest)
            else:
                _index_resource_text(text, into)


def compare_for_rollback(target: bytes, current: ChunkSource | None) -> Comparison:
    """The target's and the current version's headers, and the diff from the current version to the target.

    Raises `NotAStateError` if the target is not a state; a current version that is not one counts as none. The
    target is read as a whole; of its resources, those written byte for byte as in the current version (which
    Terraform reads today) are compared by their text's digest alone, and every other one is parsed, which is what
    makes a rollback of a large state cheap.
    """
    try:
        return _compare_for_rollback(target, current)
    except RecursionError:  # a target nested too deeply; the current version's own depth is caught apart
        raise NotAStateError(TOO_DEEP) from None


def _compare_for_rollback(target: bytes, current: ChunkSource | None) -> Comparison:
    try:
        target_sieve = _Sieve()
        target_index = _index(chunks_of(target)(), decoded=False, like=None, sieve=target_sieve)
        current_index = None
        if current is not None:
            current_sieve = _Sieve(known=target_sieve.kept)
            try:
                current_index = _index(current() if callable(current) else current, decoded=False, like=None,
                                       sieve=current_sieve)  # fmt: skip
            except NotAStateError:
                current_index = None  # restoring is how a team recovers from a bad write
            if current_index is not None and current_index.resource_digests != TERRAFORM_LAYOUT:
                raise _NotTheLayout
            for digest, text in target_sieve.kept.items():
                if current_index is None or digest not in current_sieve.shared:
                    _index_resource_text(text, target_index.resources)
        else:
            for text in target_sieve.kept.values():
                _index_resource_text(text, target_index.resources)
        if target_index.resource_digests != TERRAFORM_LAYOUT:
            raise _NotTheLayout
    except _NotTheLayout:  # one of them is not in Terraform's layout: both are decoded whole
        target_index = index_state(chunks_of(target), decoded=True)
        current_index = _readable(current, decoded=True)
    return Comparison(
        current=current_index.header if current_index else None,
        target=target_index.header,
        diff=StateDiff.between(current_index, target_index),
    )


def _readable(chunks: ChunkSource | None, *, decoded: bool) -> StateIndex | None:
    if chunks is None:
        return None
    try:
        return index_state(chunks, decoded=decoded)
    except NotAStateError:
        return None


def _index(
    chunks: Iterable[bytes], *, decoded: bool, like: StateIndex | None, sieve: _Sieve | None = None
) -> StateIndex:
    """`_index_members`, with a state nested deeper than Python decodes refused as any other non-state."""
    try:
        return _index_members(chunks, decoded=decoded, like=like, sieve=sieve)
    except RecursionError:  # Python's JSON decoder recurses once per level of nesting
        raise NotAStateError(TOO_DEEP) from None


def _index_members(
    chunks: Iterable[bytes], *, decoded: bool, like: StateIndex | None, sieve: _Sieve | None
) -> StateIndex:
    reader = _StreamingObjectReader(chunks, md5=sieve is None)  # a rollback's comparison needs no digest
    scalars: dict[str, object] = {}
    resources: dict[str, int] = {}
    resource_texts: dict[int, str] = {}
    lender = like if like is not None and like.resource_digests == TERRAFORM_LAYOUT else None
    outputs: dict[str, int] = {}
    # Formats 1 to 3 keep both in modules: which of the two sets counts is known once the version is.
    legacy_resources: dict[str, int] = {}
    legacy_outputs: dict[str, int] = {}
    keys: set[str] = set()
    in_layout = not decoded and reader.starts_with(_LAYOUT_START)
    for key in reader.members():
        keys.add(key)
        if key == "resources" and not keys & _ENCRYPTED_MARKERS:
            if in_layout and reader.starts_with(_RESOURCES_START):
                take = _block_taker(resources, resource_texts, lender, sieve)
                for block in reader.resource_blocks():
                    take(block)
            elif _opens(reader, "[", "resources is not a list"):
                in_layout = in_layout and reader.starts_with("[]")
                for resource in reader.array_items():
                    _index_resource(resource, resources)
        elif key == "outputs" and not keys & _ENCRYPTED_MARKERS:
            _digest_outputs(reader, outputs, layout=in_layout)
        elif key == "modules" and not keys & _ENCRYPTED_MARKERS:
            _index_modules(reader, legacy_resources, legacy_outputs)
        elif reader.peek() in "[{":
            reader.skip()  # nothing a diff needs, and perhaps large
        else:
            scalars[key] = reader.value()
    encrypted = bool(keys & _ENCRYPTED_MARKERS)
    header = header_from_fields(scalars, encrypted=encrypted)
    if encrypted:
        resources, outputs = {}, {}
    elif state_format(scalars) != TERRAFORM_STATE_FORMAT:
        resources, outputs, in_layout = legacy_resources, legacy_outputs, False
    return StateIndex(
        header=header,
        size=reader.consumed_bytes,
        md5=reader.md5.hexdigest() if reader.md5 is not None else "",
        resources=resources,
        outputs=outputs,
        resource_digests=TERRAFORM_LAYOUT if in_layout else DECODED,
        resource_texts=resource_texts if in_layout else {},
    )


def _digest_outputs(reader: _StreamingObjectReader, into: dict[str, int], *, layout: bool) -> None:
    """A digest of each output's JSON text, one output at a time: no output is decoded, whatever its size."""
    layout = layout and reader.starts_with(_OUTPUTS_START)
    if not _opens(reader, "{", "outputs is not an object"):
        return
    for name in reader.object_members():
        into[name] = reader.digest(layout=_OUTPUT_LAYOUT if layout else None)
        # An end found by indentation must be followed by the next output or the end of the outputs.
        if layout and not any(reader.starts_with(after) for after in _AFTER_OUTPUT):
            raise _NotTheLayout


def _opens(reader: _StreamingObjectReader, opener: str, refusal: str) -> bool:
    """Whether an object or array (`opener`) comes next (True), or null, which Go reads as an empty one (False,
    consumed); `NotAStateError(refusal)` for anything else."""
    char = reader.peek()
    if char == opener:
        return True
    if char == "n" and reader.value() is None:
        return False
    raise NotAStateError(refusal)


def _index_modules(reader: _StreamingObjectReader, resources: dict[str, int], outputs: dict[str, int]) -> None:
    """The modules of a state in formats 1 to 3, one resource at a time, as Terraform upgrades them to format 4."""
    if not _opens(reader, "[", "modules is not a list"):
        return
    for _ in reader.array_positions():
        if reader.peek() != "{":
            raise NotAStateError("a module is not an object")
        path: Any = None
        module_resources: dict[str, int] = {}
        module_outputs: dict[str, int] = {}
        for key in reader.object_members():
            if key == "path":
                path = reader.value()
            elif key == "resources":
                if _opens(reader, "{", "a module's resources are not an object"):
                    for legacy_address in reader.object_members():
                        _index_legacy_resource(legacy_address, reader.value(), module_resources)
            elif key == "outputs":
                _digest_outputs(reader, module_outputs, layout=False)
            else:
                reader.skip()
        prefix = _module_prefix(path)  # the path may come last in a hand-made file
        resources.update((prefix + address, digest) for address, digest in module_resources.items())
        if not prefix:
            outputs.update(module_outputs)


def _module_prefix(path: Any) -> str:
    """`module.a.module.b.` for the module path `["root", "a", "b"]`; empty for the root module."""
    if path is None or path == []:  # some format 1 states have none: Terraform takes them for the root
        return ""
    if not (isinstance(path, list) and all(isinstance(step, str) and step for step in path) and path[0] == "root"):
        raise NotAStateError("a module's path is not a list of module names from root")
    return "".join(f"module.{name}." for name in path[1:])


_LEGACY_INDEX = re.compile(r"-?[0-9]+")


def _legacy_address(key: str) -> str:
    """Terraform's address of an instance keyed as formats 1 to 3 key it: `aws_instance.web.1` is `aws_instance.web[1]`,
    `data.aws_ami.ubuntu` a data source."""
    parts = key.split(".")
    mode = ""
    if len(parts) > 2 and parts[0] == "data":
        mode, parts = "data.", parts[1:]
    if not 2 <= len(parts) <= 3 or not (parts[0] and parts[1]):
        raise NotAStateError("a resource's address is not type.name or type.name.index")
    address = f"{mode}{parts[0]}.{parts[1]}"
    if len(parts) == 3:
        if not _LEGACY_INDEX.fullmatch(parts[2]):
            raise NotAStateError("a resource's index is not a number")
        address += f"[{int(parts[2])}]"
    return address


def _index_legacy_resource(key: str, resource: Any, into: dict[str, int]) -> None:
    """One resource of a module in formats 1 to 3: its primary instance, and its deposed ones numbered as
    Terraform numbers them when it upgrades the state (`00000001`, `00000002`, ...)."""
    address = _legacy_address(key)
    if not isinstance(resource, dict):
        raise NotAStateError("a resource is not an object")
    if resource.get("primary") is not None:
        into[address] = _legacy_instance_digest(resource["primary"])
    deposed = resource.get("deposed") or []
    if not isinstance(deposed, list):
        raise NotAStateError("a resource's deposed instances are not a list")
    for number, instance in enumerate(deposed, 1):
        into[f"{address} (deposed {number:08x})"] = _legacy_instance_digest(instance)


def _legacy_instance_digest(instance: Any) -> int:
    """The digest the instance has once upgraded: its flat attributes with the id, keys sorted, and tainted."""
    if not isinstance(instance, dict):
        raise NotAStateError("a resource instance is not an object")
    attributes = instance.get("attributes")
    attributes = {} if attributes is None else attributes
    if not isinstance(attributes, dict):
        raise NotAStateError("a resource instance's attributes are not an object")
    if instance.get("id") and not attributes.get("id"):
        attributes = {**attributes, "id": instance["id"]}
    return _instance_digest(dict(sorted(attributes.items())), "tainted" if instance.get("tainted") is True else None)


def _instance_digest(attributes: Any, status: Any) -> int:
    return hash(repr(attributes) if status is None else repr((attributes, status)))


def _block_taker(
    into: dict[str, int], texts: dict[int, str], lender: StateIndex | None, sieve: _Sieve | None
) -> Callable[[str], None]:
    """What to do with each block of resources: set them aside through the sieve, or index them."""
    if sieve is not None:
        return lambda block: sieve.take(block, into)
    return lambda block: _index_resource_block(block, into, texts, lender)


def _resource_texts(block: str) -> list[str]:
    """Each resource of a block `resource_blocks` gives, inside its braces."""
    resources = block.split(_BETWEEN_RESOURCES)
    if not (resources[0].startswith(_RESOURCE_START) and resources[-1].endswith(_RESOURCE_END)):
        raise _NotTheLayout
    resources[0] = resources[0][len(_RESOURCE_START) :]
    resources[-1] = resources[-1][: -len(_RESOURCE_END)]
    return resources


def _index_resource_block(block: str, into: dict[str, int], texts: dict[int, str], lender: StateIndex | None) -> None:
    """Whole resources in Terraform's layout, as `resource_blocks` gives them; attributes digested as written."""
    lent_texts = lender.resource_texts if lender is not None else {}
    for text in _resource_texts(block):
        digest = hash(text)
        addresses = lent_texts.get(digest)
        if addresses is None:
            addresses = _index_resource_text(text, into)
        elif addresses:
            lent = lender.resources  # type: ignore[union-attr]  # lent_texts is empty without a lender
            for address in addresses.split("\n"):
                into[address] = lent[address]
        texts[digest] = addresses


def _index_resource_text(text: str, into: dict[str, int]) -> str:
    """One resource, inside its braces; the addresses of its instances, one per line."""
    resource = _RESOURCE_HEAD.match(text)
    if resource is None:
        raise _NotTheLayout
    module, mode, type_name, name = resource.groups()
    base = f"{type_name}.{name}" if mode == "managed" else f"data.{type_name}.{name}"
    if module is not None:
        base = f"{_decode_string(module)}.{base}"
    pos = resource.end()
    if pos == len(text):  # "instances": []
        return ""
    addresses: list[str] = []
    # Called once per resource and looping once per instance: names are bound locally for speed.
    match, find, startswith, late_member = _INSTANCE_HEAD.match, text.find, text.startswith, _LATE_MEMBER.search
    while True:
        instance = match(text, pos)
        if instance is None:
            raise _NotTheLayout
        index_key, status, deposed = instance.groups()
        start = instance.end()
        if startswith("{\n", start):
            end = find(_MULTILINE_VALUE_END, start) + len(_MULTILINE_VALUE_END)
        else:
            end = find("\n", start)
        pos = find(_INSTANCE_END, end)
        if pos < 0 or late_member(text, end, pos):
            raise _NotTheLayout
        address = base if index_key is None and deposed is None else _instance_address(base, index_key, deposed)
        # "tainted" changes what the next apply does
        into[address] = hash(text[start:end]) if status is None else hash((text[start:end], status))
        addresses.append(address)
        pos += len(_INSTANCE_END)
        if startswith(_NEXT_INSTANCE, pos):
            pos += 1
        elif pos + len(_INSTANCES_END) == len(text) and startswith(_INSTANCES_END, pos):
            return "\n".join(addresses)
        else:
            raise _NotTheLayout


def _instance_address(base: str, index_key: str | None, deposed: str | None) -> str:
    """An instance's address from its resource's and its index key and deposed key as written."""
    address = base
    if index_key is not None and (index_key[0] != '"' or ("\\" not in index_key and index_key.isprintable())):
        address = f"{base}[{index_key}]"
    elif index_key is not None:
        address = base + _index_suffix(_decode_token(index_key))
    if deposed is not None:
        address += f" (deposed {deposed})"
    return address


def _decode_token(token: str) -> Any:
    try:
        return json.loads(token)
    except json.JSONDecodeError:
        raise NotAStateError(f"malformed JSON: {token[:40]!r}") from None


def _decode_string(token: str) -> str:
    return token[1:-1] if "\\" not in token else str(_decode_token(token))


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
        into[address] = _instance_digest(attributes, status)


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


# The C scanner behind json.loads, without the wrapper that re-scans whitespace on each call.
_SCAN: Any = json.scanner.make_scanner(json.JSONDecoder())  # type: ignore[arg-type]


def value_end(text: str, start: int) -> int:
    """Where the JSON array or object at `start` of a text held whole ends, found without decoding it."""
    open_brackets: list[str] = []
    scan = start
    while True:
        found = _RUN.match(text, scan)
        end, bracket = (found.end(), found.group(1)) if found else (scan, None)
        if bracket is not None:
            scan = end
            if _closes_value(open_brackets, bracket):
                return scan
        elif end > scan:
            scan = end
        else:
            raise NotAStateError("not valid JSON" if end < len(text) else "the JSON ends too early")


def _closes_value(open_brackets: list[str], bracket: str) -> bool:
    """Take one bracket into the open ones; whether it closes the outermost."""
    if bracket in "[{":
        open_brackets.append(bracket)
        if len(open_brackets) > MAX_DEPTH:
            raise NotAStateError(TOO_DEEP)
        return False
    if not open_brackets or open_brackets.pop() != _OPENER[bracket]:
        raise NotAStateError("malformed JSON")
    return not open_brackets


class _TextDigest:
    """A digest of JSON text given in pieces, without the whitespace outside strings: an int, as `hash` gives."""

    __slots__ = ("_hash",)

    def __init__(self) -> None:
        self._hash = hashlib.blake2b(digest_size=8, usedforsecurity=False)

    def structure(self, text: str) -> None:
        """Text that begins and ends outside strings."""
        self._hash.update("".join(filter(None, _STRING_OR_WHITESPACE.split(text))).encode())

    def layout(self, text: str) -> None:
        """Text in Terraform's layout that begins and ends outside strings."""
        if '\\": ' in text:  # a key that ends in a backslash, or a string holding `": `: the careful way
            self.structure(text)
        else:  # the only whitespace outside strings: line breaks with their indentation, and a space after each key
            self._hash.update(_INDENTATION.sub("", text).replace('": ', '":').encode())

    def verbatim(self, text: str) -> None:
        """Part of a string, which keeps its every character."""
        self._hash.update(text.encode())

    def value(self) -> int:
        return int.from_bytes(self._hash.digest(), "big")


class _StreamingObjectReader:
    """Reads the members of one top-level JSON object from chunks of UTF-8, one value at a time."""

    def __init__(self, chunks: Iterable[bytes], *, md5: bool = True) -> None:
        self._chunks: Iterator[bytes] = iter(chunks)
        self._utf8 = codecs.getincrementaldecoder("utf-8")()
        self._text = ""
        self._pos = 0
        self._eof = False
        self.consumed_bytes = 0
        self.md5 = hashlib.md5(usedforsecurity=False) if md5 else None  # Terraform's digest of the exact bytes

    def members(self) -> Iterator[str]:
        """The keys of the top-level object, which must be all the text holds; the caller consumes each value."""
        self._open()
        yield from self.object_members()
        self._expect_end()

    def object_members(self) -> Iterator[str]:
        """The keys of the object that comes next; the caller consumes each value before asking for the next key."""
        self._expect("{")
        if self._peek() == "}":
            self._pos += 1
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
                return
            if separator != ",":
                raise NotAStateError("malformed JSON")

    def array_positions(self) -> Iterator[None]:
        """Steps through the array that comes next; the caller consumes each item before asking for the next."""
        self._expect("[")
        if self._peek() == "]":
            self._pos += 1
            return
        while True:
            yield None
            separator = self._peek()
            self._pos += 1
            if separator == "]":
                return
            if separator != ",":
                raise NotAStateError("malformed JSON")

    def peek(self) -> str:
        """The next character that is not whitespace; consumes only the whitespace."""
        return self._peek()

    def value(self) -> Any:
        return self._decode()

    def skip(self) -> None:
        """Consume the next value without decoding it."""
        self._scan_value(None)

    def digest(self, *, layout: tuple[str, str] | None = None) -> int:
        """A digest of the next value's JSON text without whitespace outside strings, consumed without decoding it.

        `layout`: how a value in Terraform's layout begins and the line that ends it; one that begins so is taken
        to end at that line.
        """
        digest = _TextDigest()
        self._peek()
        if layout is not None and self.starts_with(layout[0]):
            self._scan_through(layout[1], digest)
        else:
            self._scan_value(digest)
        return digest.value()

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

    def starts_with(self, prefix: str) -> bool:
        """Whether the text at the current position starts with `prefix`; consumes nothing."""
        while len(self._text) - self._pos < len(prefix) and not self._eof:
            self._read()
        return self._text.startswith(prefix, self._pos)

    def resource_blocks(self) -> Iterator[str]:
        """Whole resources of a `resources` array in Terraform's layout (see `_RESOURCES_START`), as read."""
        self._pos += 2  # " ["
        while True:
            # The end can only follow the last resource that begins in the text read so far...
            between = self._text.rfind(_BETWEEN_RESOURCES, self._pos)
            after = between + len(_BETWEEN_RESOURCES)
            if between >= 0 and len(self._text) - after < len(_RESOURCE_FIRST_LINE[1]) and not self._eof:
                self._read()  # too little to tell what begins there
                continue
            if between < 0 or self._text.startswith(_RESOURCE_FIRST_LINE, after):
                end = self._text.find(_RESOURCES_END, max(between, self._pos))
            else:  # ...unless what begins there is an object of a later member (`check_results`), as indented
                end, between = self._text.find(_RESOURCES_END, self._pos, between), -1
                if end < 0:
                    raise _NotTheLayout
            if end >= 0:
                block = self._text[self._pos : end + len(_RESOURCE_END)]
                self._pos = end + len(_RESOURCES_END)
                yield block
                return
            if between >= 0:
                block = self._text[self._pos : between + len(_RESOURCE_END)]
                self._pos = between + len(_RESOURCE_END) + 1  # at the next resource's start
                yield block
            if self._eof:
                raise NotAStateError("the JSON ends too early")
            self._read(at_least=len(self._text) - self._pos)

    def _open(self) -> None:
        """Read far enough to tell what the text is; `NotAStateError` with the reason if not a JSON object."""
        if len(self._text) - self._pos < SNIFF_CHARS and not self._eof:
            self._read(at_least=SNIFF_CHARS)
        head = self._text[self._pos : self._pos + SNIFF_CHARS]
        if head.lstrip(_WHITESPACE).startswith("{"):
            return
        if not head.strip(_WHITESPACE) and not self._eof and self._peek() == "{":  # much whitespace first
            return
        whole = self._eof and len(self._text) - self._pos <= SNIFF_CHARS
        raise NotAStateError(unreadable_reason(head, whole=whole))

    def _scan_through(self, end: str, digest: _TextDigest) -> None:
        """Consume text in Terraform's layout up to the first `end`, a line, feeding it to `digest` as it is read."""
        searched = self._pos
        while (found := self._text.find(end, searched)) < 0:
            if self._eof:
                raise NotAStateError("the JSON ends too early")
            cut = self._text.rfind("\n", self._pos)  # no string holds a line break
            if cut > self._pos:
                digest.layout(self._text[self._pos : cut])
                self._pos = cut
            again = max(0, len(self._text) - len(end) + 1 - self._pos)  # where `end` may begin, from `_pos`
            self._read()
            searched = self._pos + again
        stop = found + len(end)
        digest.layout(self._text[self._pos : stop])
        self._pos = stop

    def _scan_value(self, digest: _TextDigest | None) -> None:
        """Consume the next value without decoding it, feeding its text to `digest` if there is one."""
        if self._peek() not in "[{":
            self._scan_scalar(digest)
            return
        open_brackets: list[str] = []
        scan = self._pos
        while True:
            text = self._text
            found = _RUN.match(text, scan)  # never None: it may match nothing
            end, bracket = (found.end(), found.group(1)) if found else (scan, None)
            if bracket is not None:
                scan = end
                if _closes_value(open_brackets, bracket):
                    self._feed(digest, scan)
                    return
            elif end > scan:
                scan = end
            elif end < len(text) and text[end] == '"':  # a string that goes on past the text read so far
                self._feed(digest, end)
                self._scan_string(digest)
                scan = self._pos
            elif end < len(text):
                raise NotAStateError("not valid JSON")
            elif self._eof:
                raise NotAStateError("the JSON ends too early")
            else:
                self._feed(digest, end)
                self._read()
                scan = self._pos
            if scan - self._pos >= _FLUSH_AT:
                self._feed(digest, scan)

    def _scan_string(self, digest: _TextDigest | None) -> None:
        """Consume the string that starts here, however long, feeding it to `digest` as it is read."""
        scan = self._pos + 1
        while True:
            text = self._text
            found = _STRING_BODY.match(text, scan)
            end = found.end() if found else scan
            if end < len(text) and text[end] == '"':
                self._feed(digest, end + 1, verbatim=True)
                return
            if end < len(text) - 1 or (end == len(text) - 1 and text[end] != "\\"):
                raise NotAStateError("not valid JSON")  # a control character, or a backslash that escapes nothing
            if self._eof:
                raise NotAStateError("the JSON ends too early")
            self._feed(digest, end, verbatim=True)  # a backslash at the very end waits for what it escapes
            self._read()
            scan = self._pos

    def _scan_scalar(self, digest: _TextDigest | None) -> None:
        if self._text[self._pos] == '"':
            self._scan_string(digest)
            return
        while True:
            found = _LITERAL.match(self._text, self._pos)
            if found is not None and (found.end() < len(self._text) or self._eof):
                self._feed(digest, found.end())
                return
            if self._eof or (found is None and len(self._text) - self._pos > len("false")):
                raise NotAStateError("not valid JSON")
            self._read()  # a number or literal the text read so far cuts short

    def _feed(self, digest: _TextDigest | None, end: int, *, verbatim: bool = False) -> None:
        """Consume the text up to `end`, feeding it to `digest`: everything before `_pos` has been digested."""
        if digest is not None and end > self._pos:
            if verbatim:
                digest.verbatim(self._text[self._pos : end])
            else:
                digest.structure(self._text[self._pos : end])
        self._pos = end

    def _decode(self) -> Any:
        self._peek()
        while True:
            try:
                value, end = _SCAN(self._text, self._pos)
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
                if self.md5 is not None:
                    self.md5.update(chunk)
                part = self._utf8.decode(chunk)
                parts.append(part)
                added += len(part)
        except UnicodeDecodeError:
            raise NotAStateError("not UTF-8 text") from None
        self._text += "".join(parts)
