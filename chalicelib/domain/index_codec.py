"""The stored form of a `StateIndex`: a few compact columns of addresses and digests, never a value.

One index is one byte string; integers are little-endian unless said otherwise:

    "TFGI", the format version (1 byte), flags (1 byte: encrypted, Terraform-layout digests, and whether the
    lineage, the Terraform version and the MD5 are there)
    the state's size (8 bytes); how many resources, instances and outputs (4 bytes each); the packed part's length
    the serial in decimal, the lineage and the Terraform version: each a 4-byte length and UTF-8
    the MD5 (16 bytes, when there)
    per resource its 8-byte fingerprint, per instance its 8-byte digest, per output its 8-byte digest (big-endian)
    the packed part, zlib-compressed: where each resource's line starts (4 bytes each, and where the last ends)
    and where its instances start (the same), all these integers as four planes of bytes (`_by_byte`), the
    length of the outputs' names (4 bytes), their names as a JSON array, then the resources' lines (their base
    address and each instance's suffix, tab-separated, in UTF-8)
    a CRC-32 of everything before it (4 bytes)

Digests are random bytes, which no compression shrinks: they are stored as they are, and the names are packed
apart. Lines follow the state's own order, where neighbours share most of their address (module, type), which is
what zlib is good at: addresses cost a byte or two each. A resource's line and its digests are found by the two
offset columns without unpacking the rest, so that two stored indexes diff by reading only the resources whose
fingerprints differ (`ResourceColumns.compare`). Any other format version is refused (`CorruptIndexError`): a
new one must not be read as this one.
"""

from __future__ import annotations

import json
import struct
import sys
import zlib
from array import array

from chalicelib.domain.state import StateHeader
from chalicelib.domain.state_index import DECODED, DIGEST_SIZE, TERRAFORM_LAYOUT, ResourceColumns, StateIndex
from chalicelib.errors import CorruptIndexError

MAGIC = b"TFGI"
FORMAT_VERSION = 1
# zlib's fastest level: its output is a fifth larger than the default's, in a fifth of the time; the addresses
# are a small part of an index either way.
COMPRESSION_LEVEL = 1

_ENCRYPTED, _LAYOUT, _LINEAGE, _TERRAFORM_VERSION, _MD5 = 1, 2, 4, 8, 16
_KNOWN_FLAGS = _ENCRYPTED | _LAYOUT | _LINEAGE | _TERRAFORM_VERSION | _MD5
_HEAD = struct.Struct("<4sBBQIIII")  # magic, version, flags, size, resources, instances, outputs, packed length
_LENGTH = struct.Struct("<I")
_CRC = struct.Struct("<I")
_U32 = "I" if array("I").itemsize == 4 else "L"
_MD5_BYTES = 16


def encode_index(index: StateIndex) -> bytes:
    """The stored form of an index; `ValueError` if a digest is not an 8-byte unsigned integer."""
    columns = index.columns or ResourceColumns.from_mapping(index.resources)
    header = index.header
    flags = (
        (_ENCRYPTED if header.encrypted else 0)
        | (_LAYOUT if index.resource_digests == TERRAFORM_LAYOUT else 0)
        | (_LINEAGE if header.lineage is not None else 0)
        | (_TERRAFORM_VERSION if header.terraform_version is not None else 0)
        | (_MD5 if index.md5 else 0)
    )
    names = json.dumps(list(index.outputs)).encode()  # ASCII: every character beyond is escaped
    try:
        output_digests = struct.pack(f">{len(index.outputs)}Q", *index.outputs.values())
    except struct.error:
        raise ValueError("an output digest is not an 8-byte unsigned integer") from None
    starts = _by_byte(_u32_bytes(columns.line_starts) + _u32_bytes(columns.instance_starts))
    packed = zlib.compress(b"".join((starts, _LENGTH.pack(len(names)), names, columns.lines)), COMPRESSION_LEVEL)
    parts = [
        _HEAD.pack(MAGIC, FORMAT_VERSION, flags, index.size, columns.resource_count, len(columns),
                   len(index.outputs), len(packed)),
        _text(str(header.serial)),
        _text(header.lineage or ""),
        _text(header.terraform_version or ""),
        bytes.fromhex(index.md5) if index.md5 else b"",
        columns.fingerprints,
        columns.digests,
        output_digests,
        packed,
    ]  # fmt: skip
    body = b"".join(parts)
    return body + _CRC.pack(zlib.crc32(body))


def decode_index(data: bytes) -> StateIndex:
    """The index `encode_index` stored; `CorruptIndexError` for anything else, or an index damaged since."""
    try:
        return _decode(memoryview(data))
    except CorruptIndexError:
        raise
    except (struct.error, ValueError, zlib.error, UnicodeDecodeError) as exc:
        raise CorruptIndexError(f"a stored index that cannot be decoded: {exc}") from None


def _decode(data: memoryview) -> StateIndex:
    if len(data) < _HEAD.size + _CRC.size or bytes(data[: len(MAGIC)]) != MAGIC:
        raise CorruptIndexError("not a stored state index")
    _, version, flags, size, resources, instances, outputs, packed_length = _HEAD.unpack_from(data)
    if version != FORMAT_VERSION:
        raise CorruptIndexError(f"a stored index of format {version}, which this guardian does not read")
    if flags & ~_KNOWN_FLAGS:
        raise CorruptIndexError("a stored index with flags this guardian does not know")
    if zlib.crc32(data[: -_CRC.size]) != _CRC.unpack_from(data, len(data) - _CRC.size)[0]:
        raise CorruptIndexError("a stored index damaged since it was written (checksum)")
    reader = _Reader(data, _HEAD.size)
    serial = reader.text()
    lineage = reader.text()
    terraform_version = reader.text()
    md5 = reader.take(_MD5_BYTES).hex() if flags & _MD5 else ""
    fingerprints = reader.take(DIGEST_SIZE * resources)
    digests = reader.take(DIGEST_SIZE * instances)
    output_digests = reader.take(DIGEST_SIZE * outputs)
    packed = zlib.decompress(reader.take(packed_length))
    if reader.pos != len(data) - _CRC.size or not serial.isdigit():
        raise CorruptIndexError("a stored index whose parts do not add up")
    starts_bytes = 4 * (resources + 1)
    starts = _by_value(packed[: 2 * starts_bytes])
    line_starts = _u32_array(starts[:starts_bytes])
    instance_starts = _u32_array(starts[starts_bytes:])
    (names_length,) = _LENGTH.unpack_from(packed, 2 * starts_bytes)
    names_start = 2 * starts_bytes + _LENGTH.size
    names = json.loads(packed[names_start : names_start + names_length])
    if not (isinstance(names, list) and len(names) == outputs and all(isinstance(name, str) for name in names)):
        raise CorruptIndexError("a stored index whose output names do not add up")
    columns = ResourceColumns(fingerprints, packed[names_start + names_length :], line_starts, instance_starts, digests)
    columns.runs()  # what a diff needs first, found while the other index of a diff is still being read
    return StateIndex(
        header=StateHeader(
            serial=int(serial),
            lineage=lineage if flags & _LINEAGE else None,
            terraform_version=terraform_version if flags & _TERRAFORM_VERSION else None,
            encrypted=bool(flags & _ENCRYPTED),
        ),
        size=size,
        md5=md5,
        resources=columns,
        outputs=dict(zip(names, struct.unpack(f">{outputs}Q", output_digests), strict=True)),
        resource_digests=TERRAFORM_LAYOUT if flags & _LAYOUT else DECODED,
    )


class _Reader:
    """Consecutive parts of a stored index."""

    def __init__(self, data: memoryview, pos: int) -> None:
        self._data = data
        self.pos = pos

    def take(self, length: int) -> bytes:
        if self.pos + length > len(self._data) - _CRC.size:
            raise CorruptIndexError("a stored index cut short")
        part = bytes(self._data[self.pos : self.pos + length])
        self.pos += length
        return part

    def text(self) -> str:
        (length,) = _LENGTH.unpack(self.take(_LENGTH.size))
        return self.take(length).decode("utf-8", "surrogatepass")


def _text(value: str) -> bytes:
    encoded = value.encode("utf-8", "surrogatepass")
    return _LENGTH.pack(len(encoded)) + encoded


def _u32_bytes(values: array[int]) -> bytes:
    if sys.byteorder == "little":
        return values.tobytes()
    swapped = array(_U32, values)
    swapped.byteswap()
    return swapped.tobytes()


def _by_byte(values: bytes) -> bytes:
    """4-byte integers as four planes, their lowest bytes first, then the next...: offsets that grow slowly make
    planes of repeated bytes, which zlib packs in half the room and time of the integers as they are."""
    return b"".join(values[plane::4] for plane in range(4))


def _by_value(planes: bytes) -> bytes:
    values = bytearray(len(planes))
    size = len(planes) // 4
    for plane in range(4):
        values[plane::4] = planes[plane * size : (plane + 1) * size]
    return bytes(values)


def _u32_array(data: bytes) -> array[int]:
    values = array(_U32)
    values.frombytes(data)
    if sys.byteorder != "little":
        values.byteswap()
    return values
