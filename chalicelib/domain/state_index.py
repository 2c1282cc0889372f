"""A state read in one streaming pass: its header, and a digest per resource instance address and output name.

The bytes are read incrementally, one top-level member, one resource and one output at a time, so memory stays
near the size of one resource, or a chunk of an output, rather than of the whole state. Values are reduced to
digests at once: no attribute or output value outlives the pass. Given a function that opens the bytes, a second
thread reads them ahead and a third computes their MD5 (where it is wanted: see `index_state`) while the first
works on what came before: socket reads and MD5 let go of the GIL.

Terraform and OpenTofu write a state with Go's `json.MarshalIndent` (two spaces, map keys sorted), so equal
values are equal bytes. In that layout a resource's instances are found by their indentation, in the bytes as
read, and each instance's attributes are digested as the exact bytes Terraform wrote, without decoding them:
that is what keeps a diff within a small multiple of reading the bytes. A resource written exactly as in another
version's index (`like`, kept in memory or stored, see `index_codec`) costs no more than the digest of its bytes.
A state in any other layout (compact JSON, a hand-made file) is decoded with the standard library's C JSON
scanner and its attributes digested as canonical JSON. The two kinds of digest are not comparable with each
other: see `StateIndex.comparable_with`.

Outputs are never decoded, in any layout: each is digested as its JSON text without the whitespace outside
strings, streaming. In Terraform's layout an output ends at a fixed indentation; in any other, a regular
expression scans strings and brackets (at C speed, a few hundred tokens per match) to find its end. An indented
and a compact writing of the same output give the same digest.

A state in formats 1 to 3 (Terraform 0.11 and older: `modules`, each with a `path`, and resources keyed by
`type.name.index`) is indexed as Terraform upgrades it to format 4: addresses in today's form, deposed instances
numbered in order, the root module's outputs as the outputs.

Every digest is of 8 bytes, the same in every process and every Python, so that an index can be stored and compared
with one computed later (see `DIGEST_SIZE`).
"""

from __future__ import annotations

import codecs
import contextvars
import hashlib
import json
import json.scanner
import operator
import queue
import re
import struct
import threading
import weakref
from array import array
from collections.abc import Callable, Container, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from itertools import accumulate, chain, compress
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
_READ_AHEAD_CHUNKS = 2  # chunks a reading thread may hold before the indexing catches up
_DECODED_AT_A_TIME = 1 << 18  # bytes of a chunk turned into text at a time

TERRAFORM_LAYOUT = "terraform-layout"  # attributes digested as the bytes Terraform wrote
DECODED = "decoded"  # attributes digested as decoded values

# Digests of resources and instances: SHA-256 cut to its first 8 bytes, the same in every process and every
# Python. SHA-256 rather than BLAKE2b for speed: where the CPU has SHA instructions (x86 SHA-NI since AMD Zen and
# Intel Ice Lake, the ARMv8 crypto extensions of Graviton) it digests about 1.6 GB/s against BLAKE2b's 0.8, and
# a write digests every byte of its resources; without them it is about half as fast as BLAKE2b.
# Why 8 bytes: a digest is only ever compared with the one it may replace (an instance's or an output's, before
# and after a write: a change goes unseen with odds of 2^-64) or looked up among one version's resources (a
# changed resource taken for another one: R/2^64 for R resources, about 2^-49 for 30,000). A fleet that wrote
# 10^10 changed resources a year would expect one miss in some 50,000 years. Wider digests would take more room
# than all the addresses (they do not compress). Someone who can write the state could search for two texts of
# one resource that collide (about 2^32 hashes) and write them one after the other: the second write is still
# announced, with its writer, but not that resource's change. Outputs are digested with BLAKE2b of 8 bytes
# (`_TextDigest`), a stream of pieces rather than one text.
DIGEST_SIZE = 8
_HASH = hashlib.sha256  # a partial with `usedforsecurity` costs a third more per call
_DIGESTS = struct.Struct(">Q")  # a digest as the int a mapping holds


def _digest(data: bytes) -> bytes:
    return _HASH(data).digest()[:DIGEST_SIZE]


def _digests(texts: Iterable[bytes]) -> list[bytes]:
    """`_digest` of each text, without a Python frame per text (a comprehension is the quickest loop)."""
    return [_HASH(text).digest()[:DIGEST_SIZE] for text in texts]


# Terraform's layout, by indentation: a resource is an object at depth 2, an instance one at depth 4. No string
# holds a raw newline, so a newline and an exact indentation can only be structure.
_LAYOUT_START = '{\n  "'
_RESOURCES_START = ' [\n    {\n      "'
_RESOURCES_END = b"\n    }\n  ]"
# How each resource begins ("mode", or "module" before it): resources are cut apart where this follows their
# separator, found faster than the separator alone would be, whose last byte is a line break.
_RESOURCE_LEAD = b'      "mod'
_FIRST_RESOURCE = b"\n    {\n" + _RESOURCE_LEAD
_RESOURCE_CUT = b"\n    },\n    {\n" + _RESOURCE_LEAD
_SEAM = len(_RESOURCE_CUT) - 1  # what a cut, or the array's end, may hold of each of two chunks
_NEXT_INSTANCE = b",\n        {\n"
_INSTANCE_END = b"\n        }"
_INSTANCES_END = b"\n      ]"
_MULTILINE_VALUE_END = b"\n          }"
_STRING = r'"[^"\\\n]*(?:\\.[^"\\\n]*)*"'
_SINGLE_LINE_MEMBERS = r'(?:{indent}"[a-z_]+": (?:[^\n{{\[][^\n]*|\[\]|\{{\}}),\n)*'
# A resource's members (inside its braces) up to its first instance's, in Terraform's order; other single-line
# members are let through, so that a member added by a later Terraform does not matter.
_RESOURCE_HEAD = re.compile(
    (
        r'(?:      "module": (' + _STRING + r"),\n)?"
        r'      "mode": "([a-z]+)",\n'
        r'      "type": "([^"\\\n]+)",\n'
        r'      "name": "([^"\\\n]+)",\n'
        + _SINGLE_LINE_MEMBERS.format(indent="      ")
        + r'      "instances": \[(?:\]\Z|(?=\n        \{\n))'
    ).encode()
)
# An instance's members up to the value of its attributes.
_INSTANCE_HEAD = re.compile(
    (
        r'\n        \{\n(?:          "index_key": (-?\d+|' + _STRING + r"),\n)?"
        r'(?:          "status": "([a-z]+)",\n)?'
        r'(?:          "deposed": "([0-9a-zA-Z]+)",\n)?'
        + _SINGLE_LINE_MEMBERS.format(indent="          ")
        + r'          "attributes(?:_flat)?": '
    ).encode()
)
# What must not follow the attributes, or `_INSTANCE_HEAD` would have missed it.
_LATE_MEMBER = re.compile(rb'\n          "(?:index_key|status|deposed|attributes|attributes_flat)": ')
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

# A resource's line in `ResourceColumns`: its base address and each instance's suffix, separated by tabs. A line
# whose parts hold a tab, a line break or a NUL (a hand-made state's strings may) is a NUL and their JSON instead.
_ESCAPED = "\x00"
# Where `ResourceColumns` cuts its fingerprints into runs for a diff: after each whose last byte is below 32.
_RUN_ENDS = bytes(0 if value < 32 else 1 for value in range(256))
_U32 = "I" if array("I").itemsize == 4 else "L"  # offsets held as unsigned 32-bit integers


class _NotTheLayout(Exception):
    """The resources are not in Terraform's layout after all: index the state decoded."""


class ResourceColumns(Mapping[str, int]):
    """A state's resource instances, resource by resource in the order the state lists them, as a few columns.

    Per resource: an 8-byte fingerprint and a line (its base address and each instance's suffix, tab-separated,
    then a line break, in UTF-8); per instance an 8-byte digest. In Terraform's layout a resource's fingerprint
    is the digest of its exact text, so another version that writes it alike borrows its entries from here
    without parsing it; in any other layout it is a digest of its entries. As a mapping it is `{address:
    digest}`, built on first use: lending, diffing (`compare`), storing and counting never need it. Its length
    counts the instances listed (a state lists each address once).
    """

    __slots__ = ("__weakref__", "_borrowed", "_dict", "_lent", "_runs", "digests", "fingerprints", "instance_starts",
                 "line_starts", "lines")  # fmt: skip

    def __init__(
        self, fingerprints: bytes, lines: bytes, line_starts: array[int], instance_starts: array[int], digests: bytes
    ) -> None:
        resources = len(line_starts) - 1
        if not (
            resources >= 0
            and len(fingerprints) == DIGEST_SIZE * resources
            and len(instance_starts) == resources + 1
            and line_starts[0] == 0
            and line_starts[-1] == len(lines)
            and instance_starts[0] == 0
            and DIGEST_SIZE * instance_starts[-1] == len(digests)
        ):
            raise ValueError("inconsistent resource columns")
        self.fingerprints = fingerprints
        self.lines = lines
        self.line_starts = line_starts  # where each resource's line starts in `lines`, and where the last ends
        self.instance_starts = instance_starts  # the same, in instances
        self.digests = digests
        self._dict: dict[str, int] | None = None
        self._lent: dict[bytes, int] | None = None
        self._runs: tuple[list[bytes], list[int], frozenset[bytes]] | None = None
        self._borrowed: _Borrowing | None = None

    @classmethod
    def empty(cls) -> ResourceColumns:
        return cls(b"", b"", array(_U32, [0]), array(_U32, [0]), b"")

    @classmethod
    def from_mapping(cls, resources: Mapping[str, int]) -> ResourceColumns:
        """Columns of any `{address: digest}`, each address a resource of its own; `ValueError` if a digest is not an
        8-byte unsigned integer."""
        if isinstance(resources, ResourceColumns):
            return resources
        builder = _ColumnsBuilder()
        for address, value in resources.items():
            try:
                builder.add(address, [""], [_DIGESTS.pack(value)])
            except struct.error:
                raise ValueError("a resource digest is not an 8-byte unsigned integer") from None
        return builder.build()

    @property
    def resource_count(self) -> int:
        return len(self.line_starts) - 1

    def __len__(self) -> int:
        return self.instance_starts[-1]

    def __getitem__(self, address: str) -> int:
        return self._mapping()[address]

    def __iter__(self) -> Iterator[str]:
        return iter(self._mapping())

    def __contains__(self, address: object) -> bool:
        return address in self._mapping()

    def __repr__(self) -> str:
        return f"ResourceColumns({self.resource_count} resources, {len(self)} instances)"

    def _mapping(self) -> dict[str, int]:
        if self._dict is None:
            values = struct.unpack(f">{len(self)}Q", self.digests)
            text = self.lines.decode("utf-8", "surrogatepass")
            addresses: list[str] = []
            extend = addresses.extend
            escaped = _ESCAPED in text
            for line in text.split("\n")[:-1]:  # every line ends with a line break
                base, *suffixes = _line_fields(line) if escaped else line.split("\t")
                extend(map(base.__add__, suffixes))
            self._dict = dict(zip(addresses, values, strict=True))
        return self._dict

    def entries(self, position: int) -> list[tuple[str, int]]:
        """The addresses and digests of one resource's instances."""
        line = self.lines[self.line_starts[position] : self.line_starts[position + 1] - 1]
        base, *suffixes = _line_fields(line.decode("utf-8", "surrogatepass"))
        first, end = self.instance_starts[position], self.instance_starts[position + 1]
        values = struct.unpack_from(f">{end - first}Q", self.digests, DIGEST_SIZE * first)
        return list(zip(map(base.__add__, suffixes), values, strict=True))

    def fingerprint(self, position: int) -> bytes:
        return self.fingerprints[DIGEST_SIZE * position : DIGEST_SIZE * (position + 1)]

    def lent(self) -> dict[bytes, int]:
        """Each fingerprint's position: what a version written alike borrows."""
        if self._lent is None:
            fingerprints = struct.unpack(f"{DIGEST_SIZE}s" * self.resource_count, self.fingerprints)
            self._lent = dict(zip(fingerprints, range(self.resource_count), strict=True))
        return self._lent

    def runs(self) -> tuple[list[bytes], list[int], frozenset[bytes]]:
        """The fingerprints cut into runs of about eight resources: each run's fingerprints, where in `fingerprints`
        each run starts (then where the last ends), and the set of runs.

        A run ends after each fingerprint whose last byte is below 32: where runs end depends only on the
        resources around, so two versions share every run that no change touches, wherever it moved.
        """
        if self._runs is None:
            marks = self.fingerprints[DIGEST_SIZE - 1 :: DIGEST_SIZE].translate(_RUN_ENDS)
            ends = list(accumulate(map(DIGEST_SIZE.__add__, map(DIGEST_SIZE.__mul__, map(len, marks.split(b"\x00"))))))
            ends[-1] -= DIGEST_SIZE  # after the last mark the resources run to the end, without one
            if len(ends) > 1 and ends[-1] == ends[-2]:
                ends.pop()
            starts = [0, *ends]
            keys = list(map(self.fingerprints.__getitem__, map(slice, starts, ends)))
            self._runs = keys, starts, frozenset(keys)
        return self._runs

    def compare(self, new: ResourceColumns) -> tuple[list[str], list[str], list[str]]:
        """Addresses added, changed and removed from this version to `new` (of the same kind), sorted.

        Only the resources whose fingerprints differ are read. When `new` was built borrowing from this version,
        they are the resources it parsed and those of this version it borrowed none of; otherwise runs both
        versions have are skipped whole, then the resources of the other runs that the other version has too,
        wherever they stand. (A version whose fingerprints repeat is compared by runs: its lending names only one
        of each.)
        """
        if self.fingerprints == new.fingerprints:
            return [], [], []
        borrowed = new._borrowed
        if borrowed is not None and borrowed.lender() is self and len(self.lent()) == self.resource_count:
            gone, came = borrowed.unborrowed(self.resource_count), borrowed.parsed
        else:
            old_runs, new_runs = _unshared(self, new), _unshared(new, self)
            gone = sorted(map(old_runs.__getitem__, old_runs.keys() - new_runs.keys()))
            came = sorted(map(new_runs.__getitem__, new_runs.keys() - old_runs.keys()))
        return _compare(dict(chain.from_iterable(map(self.entries, gone))),
                        dict(chain.from_iterable(map(new.entries, came))))  # fmt: skip


def _unshared(columns: ResourceColumns, other: ResourceColumns) -> dict[int, int]:
    """The resources in those of `columns`' runs that `other` does not have: their positions by fingerprint."""
    keys, starts, _ = columns.runs()
    others = other.runs()[2]
    runs = list(compress(range(len(keys)), map(operator.not_, map(others.__contains__, keys))))
    edges = map(starts.__getitem__, runs), map(starts.__getitem__, map((1).__add__, runs))
    positions = chain.from_iterable(map(range, *(map(DIGEST_SIZE.__rfloordiv__, edge) for edge in edges)))
    fingerprints = b"".join(map(keys.__getitem__, runs))
    return dict(zip(struct.unpack(f">{len(fingerprints) // DIGEST_SIZE}Q", fingerprints), positions, strict=True))


def _line_fields(line: str) -> list[str]:
    """A resource's base address and its instances' suffixes, from its line in `ResourceColumns`."""
    if line.startswith(_ESCAPED):
        fields = json.loads(line[1:])
        return [str(field) for field in fields]
    return line.split("\t")


def _line(base: str, suffixes: list[str]) -> bytes:
    """A resource's line in `ResourceColumns`, with its line break."""
    line = "\t".join([base, *suffixes])
    if line.count("\t") != len(suffixes) or "\n" in line or _ESCAPED in line:
        line = _ESCAPED + json.dumps([base, *suffixes])
    return (line + "\n").encode("utf-8", "surrogatepass")


@dataclass(frozen=True)
class _Borrowing:
    """What a version's columns took from another version's: the lender's resources it borrowed, as runs of
    positions `[first, last)`, and the positions of its own resources it parsed. The lender is held weakly, so that
    versions that each borrow from the one before (a backfill) do not keep each other alive."""

    lender: weakref.ref[ResourceColumns]
    runs: list[tuple[int, int]]
    parsed: list[int]

    def unborrowed(self, count: int) -> list[int]:
        """The lender's positions, of its `count` resources, that no run borrowed: in order."""
        left: list[int] = []
        covered = 0
        for first, last in sorted(self.runs):
            left.extend(range(covered, first))
            covered = max(covered, last)
        left.extend(range(covered, count))
        return left


class _ColumnsBuilder:
    """Collects a state's resources in order into `ResourceColumns`: parsed, or borrowed from `lender`."""

    def __init__(self, lender: ResourceColumns | None = None) -> None:
        self._lender = lender
        self._lent = lender.lent() if lender is not None and lender.resource_count else None
        self._fingerprints: list[bytes] = []
        self._sources: list[int] = []  # per resource: its position in the lender, or ~n for the n-th parsed one
        self._lines: list[bytes] = []
        self._digests: list[bytes] = []
        self._counts: list[int] = []

    def add_texts(self, texts: list[bytes]) -> None:
        """Resources in Terraform's layout as `resource_texts` gives them; `_NotTheLayout` if one is not.

        A resource the lender holds alike is borrowed: only its digest is computed.
        """
        fingerprints = _digests(texts)
        sources: list[int | None] = list(map(self._lent.get, fingerprints)) if self._lent else [None] * len(texts)
        if None in sources:
            missing = [position for position, source in enumerate(sources) if source is None]
            parsed = list(map(_parse_resource_text, map(_RESOURCE_LEAD.__add__, map(texts.__getitem__, missing))))
            digests = _digests(chain.from_iterable(values for _, values in parsed))  # all at once: one call
            start = 0
            for position, (line, values) in zip(missing, parsed, strict=True):
                end = start + len(values)
                sources[position] = self._parsed(line, b"".join(digests[start:end]), end - start)
                start = end
        self._fingerprints += fingerprints
        self._sources += sources  # type: ignore[arg-type]  # no None is left

    def add(self, base: str, suffixes: list[str], digests: list[bytes]) -> None:
        """A resource decoded, its fingerprint a digest of its entries."""
        line, joined = _line(base, suffixes), b"".join(digests)
        self._fingerprints.append(_digest(line + joined))
        self._sources.append(self._parsed(line, joined, len(suffixes)))

    def _parsed(self, line: bytes, digests: bytes, count: int) -> int:
        self._lines.append(line)
        self._digests.append(digests)
        self._counts.append(count)
        return ~(len(self._lines) - 1)

    def build(self) -> ResourceColumns:
        fingerprints = b"".join(self._fingerprints)
        if self._lender is None or len(self._lines) == len(self._sources):  # nothing borrowed
            return ResourceColumns(
                fingerprints,
                b"".join(self._lines),
                array(_U32, accumulate(map(len, self._lines), initial=0)),
                array(_U32, accumulate(self._counts, initial=0)),
                b"".join(self._digests),
            )
        return self._borrowed(fingerprints, self._lender)

    def _borrowed(self, fingerprints: bytes, lender: ResourceColumns) -> ResourceColumns:
        """The columns of resources some of which the lender holds: each run of its consecutive ones copied whole."""
        sources = self._sources
        lent_lines, lent_instances = lender.line_starts, lender.instance_starts
        lines: list[bytes] = []
        digests: list[bytes] = []
        line_starts, instance_starts = array(_U32, [0]), array(_U32, [0])
        runs: list[tuple[int, int]] = []
        parsed_at: list[int] = []
        # Where a run of the lender's consecutive resources breaks: at a jump, and around each parsed resource.
        jumps = map((1).__ne__, map(operator.sub, sources[1:], sources))
        breaks = [*compress(range(1, len(sources)), map(operator.or_, jumps, map((0).__gt__, sources))),
                  len(sources)]  # fmt: skip
        start = 0
        for end in breaks:
            first = sources[start]
            if first < 0:  # a parsed one is a run of its own
                parsed = ~first
                parsed_at.append(start)
                lines.append(self._lines[parsed])
                digests.append(self._digests[parsed])
                line_starts.append(line_starts[-1] + len(self._lines[parsed]))
                instance_starts.append(instance_starts[-1] + self._counts[parsed])
            else:
                last = first + end - start
                runs.append((first, last))
                lines.append(lender.lines[lent_lines[first] : lent_lines[last]])
                digests.append(lender.digests[DIGEST_SIZE * lent_instances[first] : DIGEST_SIZE * lent_instances[last]])
                # The lender's offsets, moved to where the run lands here.
                line_starts.extend(map((line_starts[-1] - lent_lines[first]).__add__, lent_lines[first + 1 : last + 1]))
                instance_starts.extend(
                    map((instance_starts[-1] - lent_instances[first]).__add__, lent_instances[first + 1 : last + 1])
                )
            start = end
        columns = ResourceColumns(fingerprints, b"".join(lines), line_starts, instance_starts, b"".join(digests))
        columns._borrowed = _Borrowing(weakref.ref(lender), runs, parsed_at)
        return columns


@dataclass(frozen=True)
class StateIndex:
    """What a diff needs of one state version: addresses and names with a digest of their values.

    `resources` is a `ResourceColumns` when the index was read or decoded (what lets a later version borrow from
    it and two versions diff fast), or any mapping, such as `{}` for a state that was not read.
    """

    header: StateHeader
    size: int
    md5: str  # empty when the read did not want it (see `index_state`): a rollback's comparison needs none
    resources: Mapping[str, int]
    outputs: Mapping[str, int]
    resource_digests: str = DECODED  # TERRAFORM_LAYOUT or DECODED

    @property
    def columns(self) -> ResourceColumns | None:
        return self.resources if isinstance(self.resources, ResourceColumns) else None

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
        if before is not None and before.columns is not None and after.columns is not None:
            resources = before.columns.compare(after.columns)
        else:
            resources = _compare(before.resources if before else {}, after.resources)
        return cls(*resources, *_compare(before.outputs if before else {}, after.outputs))


def _compare(old: Mapping[str, int], new: Mapping[str, int]) -> tuple[list[str], list[str], list[str]]:
    added = sorted(new.keys() - old.keys())
    removed = sorted(old.keys() - new.keys())
    changed = sorted(name for name in new.keys() & old.keys() if new[name] != old[name])
    return added, changed, removed


ChunkSource = Callable[[], Iterable[bytes]] | Sequence[bytes]


def chunks_of(data: bytes, size: int = 1 << 20) -> Callable[[], Iterator[bytes]]:
    """Bytes in memory as chunks: indexing reads at most one chunk ahead, whatever the size of the state."""
    view = memoryview(data)
    return lambda: (bytes(view[start : start + size]) for start in range(0, len(data), size))


Lender = StateIndex | Callable[[], StateIndex | None] | None
# Whether a read computes the MD5 of the bytes: or a function that tells, asked once the first chunk has come.
Md5Wanted = bool | Callable[[], bool]


def index_state(
    chunks: ChunkSource, *, decoded: bool = False, like: Lender = None, md5: Md5Wanted = True
) -> StateIndex:
    """Index a state from its bytes, given in chunks; raises `NotAStateError` for anything else.

    `chunks` is a list, or a function that opens the bytes again: a state that looks like Terraform's layout at
    first and turns out not to be is read a second time, decoded. A function's chunks are read ahead in a second
    thread. `decoded` digests attributes as values even in Terraform's layout, to compare with a state in
    another one. `like`, another version's index (in memory or stored), lends the entries of each resource
    written exactly as it was there; or a function that gives it (or None), called once the first bytes have
    come, so that fetching the one overlaps reading the other. One in Terraform's layout lends, a decoded one does not.
    `md5` says whether the index carries the MD5 of the bytes (`md5`, else empty): or it is a function that says
    so, asked once the first chunk has come, before the MD5 would start.
    """
    if not decoded:
        try:
            return _index(_opened(chunks), decoded=False, like=like, read_ahead=callable(chunks), md5=md5)
        except _NotTheLayout:
            pass
    return _index(_opened(chunks), decoded=True, like=None, read_ahead=callable(chunks), md5=md5)


def _opened(chunks: ChunkSource) -> Iterable[bytes]:
    return chunks() if callable(chunks) else chunks


def state_header(chunks: ChunkSource) -> StateHeader:
    """The header of a state whose first bytes did not tell it, from all its bytes, given in chunks.

    Every top-level member is read, but only scalars are decoded: memory stays near one chunk.
    """
    reader = _StreamingObjectReader(_opened(chunks), md5=False, read_ahead=callable(chunks))
    try:
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
    finally:
        reader.close()


@dataclass(frozen=True)
class Comparison:
    """What a rollback needs of the current version and its target: both headers and the diff between them."""

    current: StateHeader | None  # None when there is no current version, or it is not a readable state
    target: StateHeader
    diff: StateDiff


class _Sieve:
    """Sets resources aside by the digest of their text instead of walking them.

    Without `known`, every resource is kept for later; with the digests another version kept, a resource
    written exactly as there is only noted as shared, and any other is walked at once. The digests are Python's
    own `hash`, the fastest there is: they never leave the process.
    """

    def __init__(self, known: Container[int] | None = None) -> None:
        self.known = known
        self.kept: dict[int, bytes] = {}
        self.shared: set[int] = set()

    def take(self, texts: list[bytes], into: _ColumnsBuilder) -> None:
        if self.known is None:
            self.kept.update(zip(map(hash, texts), texts, strict=True))
            return
        walk = []
        for text in texts:
            digest = hash(text)
            if digest in self.known:
                self.shared.add(digest)
            else:
                walk.append(text)
        into.add_texts(walk)


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
    _check_utf8(target)  # the resources it shares with the current version are never decoded
    try:
        target_sieve = _Sieve()
        target_index = _index(chunks_of(target)(), decoded=False, like=None, sieve=target_sieve)
        current_index = None
        target_resources = _ColumnsBuilder()
        if current is not None:
            current_sieve = _Sieve(known=target_sieve.kept)
            try:
                current_index = _index(_opened(current), decoded=False, like=None, sieve=current_sieve,
                                       read_ahead=callable(current))  # fmt: skip
            except NotAStateError:
                current_index = None  # restoring is how a team recovers from a bad write
            if current_index is not None and current_index.resource_digests != TERRAFORM_LAYOUT:
                raise _NotTheLayout
            target_resources.add_texts(
                [text for digest, text in target_sieve.kept.items()
                 if current_index is None or digest not in current_sieve.shared]
            )  # fmt: skip
        else:
            target_resources.add_texts(list(target_sieve.kept.values()))
        if target_index.resource_digests != TERRAFORM_LAYOUT:
            raise _NotTheLayout
        target_index = replace(target_index, resources=target_resources.build())
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
    chunks: Iterable[bytes],
    *,
    decoded: bool,
    like: Lender,
    sieve: _Sieve | None = None,
    read_ahead: bool = False,
    md5: Md5Wanted = True,
) -> StateIndex:
    """`_index_members`, with a state nested deeper than Python decodes refused as any other non-state."""
    # A rollback's comparison needs no MD5.
    reader = _StreamingObjectReader(chunks, md5=md5 if sieve is None else False, read_ahead=read_ahead)
    try:
        return _index_members(reader, decoded=decoded, like=like, sieve=sieve)
    except RecursionError:  # Python's JSON decoder recurses once per level of nesting
        raise NotAStateError(TOO_DEEP) from None
    finally:
        reader.close()


def _index_members(reader: _StreamingObjectReader, *, decoded: bool, like: Lender, sieve: _Sieve | None) -> StateIndex:
    # The first bytes are read before `like` is asked for, even for a decoded read: whatever it waits for (requests
    # sent once the read is on its way) has been asked for by then.
    in_layout = reader.starts_with(_LAYOUT_START) and not decoded
    if callable(like):
        like = like()
    scalars: dict[str, object] = {}
    lender = like.columns if like is not None and like.resource_digests == TERRAFORM_LAYOUT else None
    resources = _ColumnsBuilder(lender)
    outputs: dict[str, int] = {}
    # Formats 1 to 3 keep both in modules: which of the two sets counts is known once the version is.
    legacy_resources = _ColumnsBuilder()
    legacy_outputs: dict[str, int] = {}
    keys: set[str] = set()
    for key in reader.members():
        keys.add(key)
        if key == "resources" and not keys & _ENCRYPTED_MARKERS:
            in_layout = _index_resources(reader, resources, sieve, layout=in_layout)
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
        columns, outputs = ResourceColumns.empty(), {}
    elif state_format(scalars) != TERRAFORM_STATE_FORMAT:
        columns, outputs, in_layout = legacy_resources.build(), legacy_outputs, False
    else:
        columns = resources.build()
    return StateIndex(
        header=header,
        size=reader.consumed_bytes,
        md5=reader.md5_hex(),
        resources=columns,
        outputs=outputs,
        resource_digests=TERRAFORM_LAYOUT if in_layout else DECODED,
    )


def _index_resources(
    reader: _StreamingObjectReader, into: _ColumnsBuilder, sieve: _Sieve | None, *, layout: bool
) -> bool:
    """The resources array, in Terraform's layout if it is, else decoded; whether the layout held."""
    if layout and reader.starts_with(_RESOURCES_START):
        for texts in reader.resource_texts():
            if sieve is not None:
                sieve.take(texts, into)
            else:
                into.add_texts(texts)
        return True
    if _opens(reader, "[", "resources is not a list"):
        layout = layout and reader.starts_with("[]")
        for resource in reader.array_items():
            _index_resource(resource, into)
    return layout


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


def _index_modules(reader: _StreamingObjectReader, resources: _ColumnsBuilder, outputs: dict[str, int]) -> None:
    """The modules of a state in formats 1 to 3, one resource at a time, as Terraform upgrades them to format 4."""
    if not _opens(reader, "[", "modules is not a list"):
        return
    for _ in reader.array_positions():
        if reader.peek() != "{":
            raise NotAStateError("a module is not an object")
        path: Any = None
        module_resources: list[tuple[str, list[str], list[bytes]]] = []
        module_outputs: dict[str, int] = {}
        for key in reader.object_members():
            if key == "path":
                path = reader.value()
            elif key == "resources":
                if _opens(reader, "{", "a module's resources are not an object"):
                    for legacy_address in reader.object_members():
                        module_resources.append(_legacy_resource(legacy_address, reader.value()))
            elif key == "outputs":
                _digest_outputs(reader, module_outputs, layout=False)
            else:
                reader.skip()
        prefix = _module_prefix(path)  # the path may come last in a hand-made file
        for base, suffixes, digests in module_resources:
            resources.add(prefix + base, suffixes, digests)
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


def _legacy_resource(key: str, resource: Any) -> tuple[str, list[str], list[bytes]]:
    """One resource of a module in formats 1 to 3: its primary instance, and its deposed ones numbered as
    Terraform numbers them when it upgrades the state (`00000001`, `00000002`, ...)."""
    address = _legacy_address(key)
    if not isinstance(resource, dict):
        raise NotAStateError("a resource is not an object")
    suffixes: list[str] = []
    digests: list[bytes] = []
    if resource.get("primary") is not None:
        suffixes.append("")
        digests.append(_legacy_instance_digest(resource["primary"]))
    deposed = resource.get("deposed") or []
    if not isinstance(deposed, list):
        raise NotAStateError("a resource's deposed instances are not a list")
    for number, instance in enumerate(deposed, 1):
        suffixes.append(f" (deposed {number:08x})")
        digests.append(_legacy_instance_digest(instance))
    return address, suffixes, digests


def _legacy_instance_digest(instance: Any) -> bytes:
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


def _instance_digest(attributes: Any, status: Any) -> bytes:
    """The digest of decoded attributes: of their JSON, written the one way `json.dumps` writes it in every
    Python (members in their order, no whitespace, no escapes but JSON's own), and of a status."""
    text = json.dumps(attributes, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass")
    if status is None:
        return _digest(text)
    # JSON text never holds a NUL: a status before one cannot be mistaken for attributes
    return _digest(b"\x00" + json.dumps(status).encode() + b"\x00" + text)


def _parse_resource_text(text: bytes) -> tuple[bytes, list[bytes]]:
    """One resource in Terraform's layout, inside its braces: its line (see `ResourceColumns`) and, per instance,
    what its digest is of: its attributes as written (and its status)."""
    resource = _RESOURCE_HEAD.match(text)
    if resource is None:
        raise _NotTheLayout
    base = _resource_base(*resource.groups())
    pos = resource.end()
    if pos == len(text):  # "instances": []
        return _line(base, []), []
    suffixes: list[str] = []
    values: list[bytes] = []  # what each instance's digest is of
    # Called once per resource and looping once per instance: names are bound locally for speed.
    match, find, startswith, late_member = _INSTANCE_HEAD.match, text.find, text.startswith, _LATE_MEMBER.search
    while True:
        instance = match(text, pos)
        if instance is None:
            raise _NotTheLayout
        index_key, status, deposed = instance.groups()
        start = instance.end()
        if startswith(b"{\n", start):
            end = find(_MULTILINE_VALUE_END, start) + len(_MULTILINE_VALUE_END)
        else:
            end = find(b"\n", start)
        pos = find(_INSTANCE_END, end)
        if pos < 0 or late_member(text, end, pos):
            raise _NotTheLayout
        suffixes.append("" if index_key is None and deposed is None else _instance_suffix(index_key, deposed))
        # "tainted" changes what the next apply does; attributes never hold a NUL, so one sets the status apart
        values.append(text[start:end] if status is None else b"\x00" + status + b"\x00" + text[start:end])
        pos += len(_INSTANCE_END)
        if startswith(_NEXT_INSTANCE, pos):
            pos += 1
        elif pos + len(_INSTANCES_END) == len(text) and startswith(_INSTANCES_END, pos):
            return _line(base, suffixes), values
        else:
            raise _NotTheLayout


def _check_utf8(data: bytes) -> None:
    if not data.isascii():
        try:
            data.decode()
        except UnicodeDecodeError:
            raise NotAStateError("not UTF-8 text") from None


def _resource_base(module: bytes | None, mode: bytes, type_name: bytes, name: bytes) -> str:
    """A resource's address, from its members as written."""
    base = (type_name + b"." + name).decode()
    if mode != b"managed":
        base = "data." + base
    return base if module is None else _decode_string(module.decode()) + "." + base


def _instance_suffix(index_key: bytes | None, deposed: bytes | None) -> str:
    """What follows the resource's address in an instance's, from its index key and deposed key as written."""
    suffix = ""
    if index_key is not None:
        key = index_key.decode()
        if key[0] != '"' or ("\\" not in key and key.isprintable()):
            suffix = f"[{key}]"
        else:
            suffix = _index_suffix(_decode_token(key))
    if deposed is not None:
        suffix += f" (deposed {deposed.decode()})"
    return suffix


def _decode_token(token: str) -> Any:
    try:
        return json.loads(token)
    except json.JSONDecodeError:
        raise NotAStateError(f"malformed JSON: {token[:40]!r}") from None


def _decode_string(token: str) -> str:
    return token[1:-1] if "\\" not in token else str(_decode_token(token))


def _index_resource(resource: Any, into: _ColumnsBuilder) -> None:
    if not isinstance(resource, dict):
        raise NotAStateError("a resource is not an object")
    try:
        base = resource_address(resource.get("module"), resource["mode"], resource["type"], resource["name"])
        instances = resource["instances"]
    except (KeyError, TypeError, ValueError) as exc:
        raise NotAStateError(f"a resource lacks {exc}") from None
    if not isinstance(instances, list):
        raise NotAStateError("a resource's instances are not a list")
    suffixes: list[str] = []
    digests: list[bytes] = []
    for instance in instances:
        if not isinstance(instance, dict):
            raise NotAStateError("a resource instance is not an object")
        suffix = _index_suffix(instance.get("index_key"))
        if instance.get("deposed"):
            suffix += f" (deposed {instance['deposed']})"
        attributes = instance.get("attributes", instance.get("attributes_flat"))
        status = instance.get("status")  # "tainted" changes what the next apply does
        suffixes.append(suffix)
        digests.append(_instance_digest(attributes, status))
    into.add(base, suffixes, digests)


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

    def __init__(self, chunks: Iterable[bytes], *, md5: Md5Wanted = True, read_ahead: bool = False) -> None:
        self._chunks = _ReadAhead(chunks, md5=md5) if read_ahead else _InOrder(chunks, md5=md5)
        self._utf8 = codecs.getincrementaldecoder("utf-8")()
        self._undecoded = b""  # the bytes of the last chunk that are not text yet, from `_undecoded_pos`
        self._undecoded_pos = 0
        self._text = ""
        self._pos = 0
        self._eof = False

    @property
    def consumed_bytes(self) -> int:
        return self._chunks.consumed

    def md5_hex(self) -> str:
        """Terraform's digest of the exact bytes, once all are read; empty when not wanted."""
        return self._chunks.md5_hex()

    def close(self) -> None:
        """Stop reading: what was not read is never read."""
        self._chunks.close()

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

    def resource_texts(self) -> Iterator[list[bytes]]:
        """The resources of a `resources` array in Terraform's layout (see `_RESOURCES_START`), some at a time: each
        one inside its braces but for its first `_RESOURCE_LEAD`, as the bytes read.

        The bytes are not decoded here: a resource another version lends needs no more than its digest. Cut
        where a resource ends and the next begins, the bytes read so far give whole resources and the beginning
        of one, until the array's end follows the last.
        """
        self._pos += 2  # " ["
        data = self._leave_text()
        if len(data) < len(_FIRST_RESOURCE):
            data = self._read_bytes(data, len(_FIRST_RESOURCE))
        if not data.startswith(_FIRST_RESOURCE):
            raise _NotTheLayout
        texts = data[len(_FIRST_RESOURCE) :].split(_RESOURCE_CUT)
        ascii_only = data.isascii()
        while True:
            last = texts.pop()
            end = last.find(_RESOURCES_END)
            if end >= 0:
                texts.append(last[:end])
                self._enter_text(last, end + len(_RESOURCES_END))
            if not ascii_only:  # a whole resource ends and begins with ASCII: each is whole UTF-8
                for text in texts:
                    _check_utf8(text)
            if texts:
                yield texts
            if end >= 0:
                return
            texts, ascii_only = self._more_texts(last)

    def _more_texts(self, last: bytes) -> tuple[list[bytes], bool]:
        """`last`, the beginning of a resource, and the next chunks cut into resources as `resource_texts` cuts
        them, at least one chunk and until a resource or the array ends; and whether all of it is ASCII.

        A chunk is cut on its own, the cut bytes of the beginning then put before its first resource: the bytes
        are not copied once more, but where a chunk begins in the middle of a cut, or of the array's end.
        """
        parts, tail = [last], last[-_SEAM:]  # the last bytes of the parts, whatever their sizes
        while True:
            chunk = self._chunks.next()
            if chunk is None:
                self._eof = True
                raise NotAStateError("the JSON ends too early")
            seam = tail + chunk[:_SEAM]
            if _RESOURCE_CUT in seam or _RESOURCES_END in seam:
                joined = b"".join((*parts, chunk))
                return joined.split(_RESOURCE_CUT), joined.isascii()
            texts = chunk.split(_RESOURCE_CUT)
            if len(texts) > 1 or _RESOURCES_END in chunk:
                texts[0] = b"".join((*parts, texts[0]))
                return texts, chunk.isascii() and all(part.isascii() for part in parts)
            parts.append(chunk)  # within one resource larger than a chunk: joined once it ends
            tail = (tail + chunk[-_SEAM:])[-_SEAM:]

    def _leave_text(self) -> bytes:
        """The bytes not consumed yet, the text read ahead turned back into them: reading goes on in bytes."""
        pending, _ = self._utf8.getstate()
        self._utf8.reset()
        # Text decoded from UTF-8 encodes back to its bytes.
        data = self._text[self._pos :].encode() + pending + self._undecoded[self._undecoded_pos :]
        self._text, self._pos, self._undecoded, self._undecoded_pos = "", 0, b"", 0
        return data

    def _enter_text(self, data: bytes, pos: int) -> None:
        """Go on reading text from `data[pos:]`, then from the chunks that follow."""
        self._undecoded, self._undecoded_pos = data[pos:], 0
        self._text, self._pos = "", 0
        self._eof = False  # not all decoded yet: the chunks, once over, answer that again

    def _read_bytes(self, data: bytes, at_least: int) -> bytes:
        """`data` and at least `at_least` more bytes, unless the end comes first."""
        parts = [data]
        added = 0
        while added < at_least:
            chunk = self._chunks.next()
            if chunk is None:
                self._eof = True
                break
            parts.append(chunk)
            added += len(chunk)
        return b"".join(parts)

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
                if self._undecoded_pos >= len(self._undecoded):
                    chunk = self._chunks.next()
                    if chunk is None:
                        self._eof = True
                        parts.append(self._utf8.decode(b"", final=True))
                        break
                    self._undecoded, self._undecoded_pos = chunk, 0
                # A piece at a time: the resources are read as bytes, and are best never decoded.
                end = self._undecoded_pos + _DECODED_AT_A_TIME
                part = self._utf8.decode(self._undecoded[self._undecoded_pos : end])
                self._undecoded_pos = end
                parts.append(part)
                added += len(part)
        except UnicodeDecodeError:
            raise NotAStateError("not UTF-8 text") from None
        self._text += "".join(parts)


def _wanted(md5: Md5Wanted) -> bool:
    """Whether the MD5 is computed, asked once the first chunk has come (and with it, the object's headers)."""
    return md5() if callable(md5) else md5


class _InOrder:
    """Chunks as they come, with their MD5 if it is wanted."""

    def __init__(self, chunks: Iterable[bytes], *, md5: Md5Wanted) -> None:
        self._chunks = iter(chunks)
        self._md5_wanted: Md5Wanted | None = md5  # None once asked
        self._md5: Any = None  # a hashlib MD5, once the first chunk has said it is wanted
        self.consumed = 0

    def next(self) -> bytes | None:
        chunk = next(self._chunks, None)
        if chunk is not None:
            if self._md5_wanted is not None:
                if _wanted(self._md5_wanted):
                    self._md5 = hashlib.md5(usedforsecurity=False)
                self._md5_wanted = None
            self.consumed += len(chunk)
            if self._md5 is not None:
                self._md5.update(chunk)
        return chunk

    def md5_hex(self) -> str:
        return self._md5.hexdigest() if self._md5 is not None else ""

    def close(self) -> None:
        pass


class _ReadAhead:
    """Chunks read by a thread of their own while the caller works on earlier ones, and their MD5, if it is
    wanted, computed by a third: socket reads and MD5 let go of the GIL, so reading, digesting and indexing the
    bytes overlap.

    At most `_READ_AHEAD_CHUNKS` chunks wait for each. An error of the reading is raised where the chunk it cut
    short was due.
    """

    def __init__(self, chunks: Iterable[bytes], *, md5: Md5Wanted) -> None:
        self._md5_wanted: Md5Wanted | None = md5  # None once asked
        self._md5: _Md5Behind | None = None  # started by the reading thread at the first chunk, if wanted
        self.consumed = 0  # written by the reading thread only; complete once the end has been handed over
        self._queue: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=_READ_AHEAD_CHUNKS)
        self._stop = threading.Event()
        self._over = False
        # The thread's AWS calls belong to the invocation that asked for them (its logging and tracing context).
        self._thread = threading.Thread(
            target=contextvars.copy_context().run, args=(self._read, chunks), name="read-ahead", daemon=True
        )
        self._thread.start()

    def _read(self, chunks: Iterable[bytes]) -> None:
        source = iter(chunks)
        try:
            for chunk in source:
                if self._stop.is_set():
                    return
                if self._md5_wanted is not None:
                    if _wanted(self._md5_wanted):
                        self._md5 = _Md5Behind()
                    self._md5_wanted = None
                self.consumed += len(chunk)
                if self._md5 is not None:
                    self._md5.update(chunk)
                self._queue.put(chunk)
            self._queue.put(None)
        except BaseException as exc:  # noqa: BLE001 - handed over to the caller, who raises it
            self._queue.put(exc)
        finally:
            if self._md5 is not None:
                self._md5.end()
            close = getattr(source, "close", None)
            if close is not None:
                close()  # a generator reading an object closes its connection

    def next(self) -> bytes | None:
        if self._over:
            return None
        chunk = self._queue.get()
        if isinstance(chunk, BaseException):
            self._over = True
            raise chunk
        if chunk is None:
            self._over = True
        return chunk

    def md5_hex(self) -> str:
        """The MD5 of every chunk, once the last has been handed over."""
        return self._md5.hexdigest() if self._md5 is not None else ""

    def close(self) -> None:
        self._stop.set()
        while self._thread.is_alive():
            try:  # make room for a chunk the thread is handing over, so that it sees the stop
                while True:
                    self._queue.get_nowait()
            except queue.Empty:
                pass
            self._thread.join(timeout=0.05)
        if self._md5 is not None:
            self._md5.hexdigest()  # its thread is done too


class _Md5Behind:
    """An MD5 computed by a thread of its own from the chunks handed to it, in order."""

    def __init__(self) -> None:
        self._md5 = hashlib.md5(usedforsecurity=False)
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=_READ_AHEAD_CHUNKS)
        self._ended = False
        self._thread = threading.Thread(target=self._digest, name="md5", daemon=True)
        self._thread.start()

    def _digest(self) -> None:
        while (chunk := self._queue.get()) is not None:
            self._md5.update(chunk)

    def update(self, chunk: bytes) -> None:
        self._queue.put(chunk)

    def end(self) -> None:
        """No chunk follows; called once, by the thread that hands the chunks over."""
        if not self._ended:
            self._ended = True
            self._queue.put(None)

    def hexdigest(self) -> str:
        """Once `end` has been called: the MD5 of every chunk."""
        self._thread.join()
        return self._md5.hexdigest()
