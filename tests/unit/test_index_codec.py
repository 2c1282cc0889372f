import hashlib
import json
import os
import random
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import pytest

from bench.generate_state import generate_state, state_bytes
from chalicelib.domain import state_index
from chalicelib.domain.index_codec import FORMAT_VERSION, decode_index, encode_index
from chalicelib.domain.state import StateHeader
from chalicelib.domain.state_index import (
    DECODED,
    TERRAFORM_LAYOUT,
    ResourceColumns,
    StateDiff,
    StateIndex,
    chunks_of,
    index_state,
)
from chalicelib.errors import CorruptIndexError
from tests.support.events import EVENTS
from tests.unit.test_state_index import awkward_state, compact, terraform_layout

ROOT = Path(__file__).resolve().parents[2]
CAPTURES = sorted((EVENTS / "states").glob("*.json"))
STATES = [path for path in CAPTURES if not path.name.startswith("tflock")]


def round_trip(index: StateIndex) -> StateIndex:
    decoded = decode_index(encode_index(index))
    assert decoded == index
    assert dict(decoded.resources) == dict(index.resources)
    assert (decoded.resource_digests, decoded.size, decoded.md5) == (index.resource_digests, index.size, index.md5)
    assert len(decoded.resources) == len(index.resources)
    return decoded


def weird_state() -> dict:
    """Addresses that hold what a line of the index separates with: a tab, a line break, a NUL."""
    state = awkward_state()
    state["resources"][0]["module"] = 'module.x["tab\there"]'
    state["resources"][0]["instances"][2]["deposed"] = "dep\nosed"
    state["resources"][2]["name"] = "nul\x00name"
    return state


@pytest.mark.parametrize("path", STATES, ids=lambda p: p.name)
def test_every_captured_state_survives_a_round_trip(path: Path) -> None:
    data = path.read_bytes()
    for decoded in (False, True):
        index = index_state([data], decoded=decoded)
        stored = round_trip(index)
        assert StateDiff.between(stored, index) == StateDiff([], [], [], [], [], [])


@pytest.mark.parametrize("layout", [terraform_layout, compact], ids=["terraform-layout", "compact"])
def test_every_address_form_survives_a_round_trip(layout) -> None:
    data = layout(awkward_state())
    index = index_state(chunks_of(data, 64))
    assert index.resource_digests == (TERRAFORM_LAYOUT if layout is terraform_layout else DECODED)
    stored = round_trip(index)
    assert sorted(stored.resources) == sorted(index_state([data], decoded=True).resources)
    assert 'module.x["k\\"].null_resource.n[-3] (deposed 00000001)' in stored.resources
    assert stored.outputs == index.outputs and stored.header == index.header


def test_addresses_that_hold_separators_survive_a_round_trip() -> None:
    index = index_state([compact(weird_state())])
    stored = round_trip(index)
    assert 'module.x["tab\there"].null_resource.n[-3] (deposed dep\nosed)' in stored.resources
    assert "aws_eip.nul\x00name" in stored.resources
    columns = stored.columns
    assert columns is not None
    entries = [address for position in range(columns.resource_count) for address, _ in columns.entries(position)]
    assert sorted(entries) == sorted(index.resources)


def test_encrypted_and_legacy_states_survive_a_round_trip() -> None:
    encrypted = json.dumps(
        {"serial": 9, "lineage": "L", "meta": {}, "encrypted_data": "QUJD", "encryption_version": "v0"}
    ).encode()
    stored = round_trip(index_state([encrypted]))
    assert stored.header.encrypted and stored.header.serial == 9 and not stored.resources
    legacy = round_trip(index_state([(EVENTS / "states" / "handmade_v3_tf0.11.14_modules.json").read_bytes()]))
    assert legacy.resource_digests == DECODED and legacy.resources


def test_an_index_built_by_hand_survives_a_round_trip() -> None:
    header = StateHeader(serial=2**70, lineage=None, terraform_version=None, encrypted=False)
    index = StateIndex(header=header, size=0, md5="", resources={"a.b": 1, "c.d[0]": 2**64 - 1}, outputs={"o": 0})
    stored = round_trip(index)
    assert stored.header.serial == 2**70 and stored.header.lineage is None
    with pytest.raises(ValueError, match="8-byte"):
        encode_index(StateIndex(header=header, size=0, md5="", resources={"a.b": -1}, outputs={}))


def test_no_value_is_ever_stored() -> None:
    data = state_bytes(generate_state(50, secret="planted-secret-value"))
    for decoded in (False, True):
        encoded = encode_index(index_state([data], decoded=decoded))
        assert b"planted" not in encoded and b"planted" not in _packed(encoded)


def _packed(encoded: bytes) -> bytes:
    """The decompressed part of an index: where the names are."""
    index = decode_index(encoded)
    columns = index.columns
    assert columns is not None
    return columns.lines + json.dumps(list(index.outputs)).encode()


@pytest.mark.parametrize("size", [1_000, 10_000])
def test_the_index_of_a_generated_state_takes_at_most_five_percent_of_it(size: int) -> None:
    data = state_bytes(generate_state(size, seed=size))
    encoded = encode_index(index_state(chunks_of(data)))
    assert len(encoded) <= 0.05 * len(data)
    assert len(encoded) <= 0.03 * len(data)  # well below: digests are about 1.6%, addresses about 0.5%


def corrupted(encoded: bytes) -> list[bytes]:
    body = encoded[:-4]
    flipped = bytearray(encoded)
    flipped[len(encoded) // 2] ^= 0x01
    newer = bytearray(encoded)
    newer[4] = FORMAT_VERSION + 1
    flags = bytearray(body)
    flags[5] |= 0x80

    more_resources = bytearray(body)
    struct.pack_into("<I", more_resources, 14, struct.unpack_from("<I", body, 14)[0] + 1)

    def with_crc(data: bytes | bytearray) -> bytes:
        return bytes(data) + struct.pack("<I", zlib.crc32(data))

    return [
        b"",
        b"TFGI",
        os.urandom(200),
        b"{}" + encoded,
        bytes(flipped),
        encoded[:-1],
        encoded + b"\x00",
        bytes(newer),
        with_crc(bytes(flags)),
        with_crc(body[:-10]),  # a checksum that holds over parts that do not add up
        with_crc(more_resources),  # counts that do not match the columns
    ]


@pytest.mark.parametrize("case", range(11))
def test_what_is_not_an_index_is_refused(case: int) -> None:
    encoded = encode_index(index_state([terraform_layout(awkward_state())]))
    with pytest.raises(CorruptIndexError):
        decode_index(corrupted(encoded)[case])


def test_a_newer_format_is_refused_by_name() -> None:
    encoded = bytearray(encode_index(index_state([terraform_layout(awkward_state())])))
    encoded[4] = FORMAT_VERSION + 1
    with pytest.raises(CorruptIndexError, match=f"format {FORMAT_VERSION + 1}"):
        decode_index(bytes(encoded))


_PRINT_DIGESTS = """
import hashlib, sys
from bench.generate_state import generate_state, state_bytes
from chalicelib.domain.index_codec import encode_index
from chalicelib.domain.state_index import index_state
from tests.unit.test_state_index import awkward_state, compact, terraform_layout
for data in (state_bytes(generate_state(40, seed=4)), terraform_layout(awkward_state()), compact(awkward_state())):
    for decoded in (False, True):
        index = index_state([data], decoded=decoded)
        print(hashlib.sha256(encode_index(index)).hexdigest(), sorted(index.resources.items())[:3], index.outputs)
"""


def test_digests_are_the_same_in_every_process() -> None:
    def digests(seed: str) -> str:
        env = {**os.environ, "PYTHONHASHSEED": seed}
        return subprocess.run(
            [sys.executable, "-c", _PRINT_DIGESTS], cwd=ROOT, env=env, capture_output=True, text=True, check=True
        ).stdout

    first, second = digests("1"), digests("2")
    assert first == second and len(first.splitlines()) == 6
    # Fixed values: a digest that changes (another hash, other bytes digested) breaks every stored index.
    state = {
        "version": 4, "serial": 1, "lineage": "L", "outputs": {"o": {"value": "v", "type": "string"}},
        "resources": [{"mode": "managed", "type": "t", "name": "n", "provider": "p", "instances": [
            {"schema_version": 0, "attributes": {"id": "x"}},
            {"index_key": 1, "status": "tainted", "schema_version": 0, "attributes": {"id": "x"}},
        ]}],
    }  # fmt: skip
    layout, decoded = index_state([terraform_layout(state)]), index_state([compact(state)])
    as_written = b'{\n            "id": "x"\n          }'
    assert dict(layout.resources) == {
        "t.n": _sha256_8(as_written),
        "t.n[1]": _sha256_8(b"\x00tainted\x00" + as_written),
    }
    assert dict(decoded.resources) == {
        "t.n": _sha256_8(b'{"id":"x"}'), "t.n[1]": _sha256_8(b'\x00"tainted"\x00{"id":"x"}')
    }  # fmt: skip
    output = int.from_bytes(hashlib.blake2b(b'{"value":"v","type":"string"}', digest_size=8).digest(), "big")
    assert layout.outputs == decoded.outputs == {"o": output}


def _sha256_8(data: bytes) -> int:
    return int.from_bytes(hashlib.sha256(data).digest()[:8], "big")


def mutated(state: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """The next version of a generated state: attributes changed, resources removed, added, moved, instances
    added and removed, and a change that is not digested."""
    after: dict[str, Any] = json.loads(json.dumps(state))
    resources = after["resources"]
    for _ in range(rng.randint(0, 6)):
        resource = rng.choice(resources)
        if resource["instances"]:
            rng.choice(resource["instances"])["attributes"]["ami"] = f"ami-{rng.random()}"
    for _ in range(rng.randint(0, 3)):
        resources.pop(rng.randrange(len(resources)))
    for _ in range(rng.randint(0, 3)):
        resources.insert(rng.randrange(len(resources)), {
            "mode": "managed", "type": "aws_eip", "name": f"e{rng.random()}".replace(".", ""), "provider": "p",
            "instances": [{"schema_version": 0, "attributes": {"id": "x"}, "sensitive_attributes": []}],
        })  # fmt: skip
    if rng.random() < 0.5:
        resources.append(resources.pop(rng.randrange(len(resources))))  # written elsewhere, unchanged
    resource = rng.choice(resources)
    if rng.random() < 0.5 and resource["instances"]:
        resource["instances"].pop()
    if rng.random() < 0.5:
        rng.choice(resources)["instances"][0:0] = [{"index_key": 99, "schema_version": 0, "attributes": {"id": "n"}}]
    if rng.random() < 0.5:
        rng.choice(resources)["provider"] = 'provider["elsewhere"]'  # not digested: not a change
    return after


@pytest.mark.parametrize("seed", range(12))
def test_stored_indexes_diff_as_whole_mappings_do(seed: int) -> None:
    rng = random.Random(seed)
    state = generate_state(rng.randint(1, 400), seed=seed)
    before, after = state_bytes(state), state_bytes(mutated(state, rng))
    for decoded in (False, True):
        old, new = index_state([before], decoded=decoded), index_state([after], decoded=decoded)
        expected = StateDiff(*state_index._compare(dict(old.resources), dict(new.resources)), [], [], [])
        assert StateDiff.between(old, new) == expected
        assert StateDiff.between(decode_index(encode_index(old)), decode_index(encode_index(new))) == expected
        assert StateDiff.between(new, old) == StateDiff(
            expected.resources_removed, expected.resources_changed, expected.resources_added, [], [], []
        )
        for lender in (old, decode_index(encode_index(old))):  # what borrows is what is parsed
            lent = index_state(chunks_of(after, 1000), decoded=decoded, like=lender)
            assert dict(lent.resources) == dict(new.resources) and lent == new
            assert decode_index(encode_index(lent)) == new and StateDiff.between(lender, lent) == expected


def test_a_resource_written_first_and_the_rest_borrowed() -> None:
    state = generate_state(50, seed=2)
    later = json.loads(json.dumps(state))
    later["resources"].insert(0, {"mode": "managed", "type": "aws_eip", "name": "first", "provider": "p",
                                  "instances": [{"schema_version": 0, "attributes": {"id": "x"}}]})  # fmt: skip
    later["resources"].insert(9, later["resources"].pop(20))  # moved
    before, after = index_state([state_bytes(state)]), state_bytes(later)
    lent = index_state([after], like=decode_index(encode_index(before)))
    assert dict(lent.resources) == dict(index_state([after]).resources)
    assert StateDiff.between(before, lent).resources_added == ["aws_eip.first"]


def test_a_stored_index_lends_what_a_later_version_writes_alike(monkeypatch: pytest.MonkeyPatch) -> None:
    state = generate_state(300, seed=8)
    before = state_bytes(state)
    later = json.loads(json.dumps(state))
    later["serial"] += 1
    later["resources"][7]["instances"][0]["attributes"]["ami"] = "ami-new"
    later["resources"].pop(3)
    after = state_bytes(later)
    today = StateDiff.between(index_state([before]), index_state([after]))
    stored = decode_index(encode_index(index_state(chunks_of(before, 4096))))
    parsed: list[bytes] = []
    parse = state_index._parse_resource_text

    def counted(text: bytes) -> tuple[bytes, list[bytes]]:
        parsed.append(text)
        return parse(text)

    monkeypatch.setattr(state_index, "_parse_resource_text", counted)
    lent = index_state(chunks_of(after, 4096), like=stored)
    assert len(parsed) == 1  # only the changed resource is read; every other one is borrowed
    assert StateDiff.between(stored, lent) == today and len(today.resources_changed) == 1
    assert dict(lent.resources) == dict(index_state([after]).resources) and lent.md5 == index_state([after]).md5
    assert StateDiff.between(decode_index(encode_index(lent)), stored) == StateDiff.between(lent, stored)


@pytest.mark.parametrize("seed", range(6))
def test_a_version_that_borrowed_diffs_from_its_lender_by_what_it_borrowed(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(seed)
    state = generate_state(rng.randint(20, 300), seed=seed)
    before, after = state_bytes(state), state_bytes(mutated(state, rng))
    expected = StateDiff.between(index_state([before]), index_state([after]))
    lender = decode_index(encode_index(index_state([before])))
    lent = index_state(chunks_of(after, 1000), like=lender)
    kept = decode_index(encode_index(lender))  # the same version, but not the lender

    def walked(*_: object) -> None:
        raise AssertionError("the runs of two versions were walked")

    with monkeypatch.context() as patched:
        patched.setattr(state_index, "_unshared", walked)
        assert StateDiff.between(lender, lent) == expected
    assert StateDiff.between(kept, lent) == expected  # by runs
    del lender  # held weakly (a backfill's versions each borrow from the last): once gone, a diff walks the runs
    assert lent.columns is not None and lent.columns._borrowed is not None
    assert lent.columns._borrowed.lender() is None
    assert StateDiff.between(kept, lent) == expected


def test_a_lender_whose_resources_repeat_is_compared_by_runs() -> None:
    state = generate_state(20, seed=3)  # 7 resources
    repeated = json.loads(json.dumps(state))
    repeated["resources"].insert(3, json.loads(json.dumps(repeated["resources"][2])))  # written twice
    later = json.loads(json.dumps(state))
    later["resources"][5]["instances"][0]["attributes"]["ami"] = "ami-new"
    before, after = state_bytes(repeated), state_bytes(later)
    lender = index_state([before])
    lent = index_state([after], like=lender)
    expected = StateDiff(*state_index._compare(dict(lender.resources), dict(lent.resources)), [], [], [])
    assert expected.resources_changed and not expected.resources_removed
    assert StateDiff.between(lender, lent) == expected


def test_a_decoded_stored_index_lends_nothing_but_still_diffs() -> None:
    before = compact(awkward_state())
    changed = awkward_state()
    changed["resources"][2]["instances"][0]["attributes"]["id"] = "f"
    stored = decode_index(encode_index(index_state([before])))
    after = index_state([compact(changed)], like=stored)
    assert after.resource_digests == DECODED
    assert StateDiff.between(stored, after).resources_changed == ["aws_eip.ip"]


def test_columns_of_a_mapping_diff_with_any_other_columns() -> None:
    columns = index_state([state_bytes(generate_state(30, seed=1))]).columns
    assert columns is not None
    assert ResourceColumns.from_mapping(dict(columns)).compare(columns) == ([], [], [])
    changed = dict(columns)
    first = next(iter(changed))
    changed[first] += 1
    assert columns.compare(ResourceColumns.from_mapping(changed)) == ([], [first], [])
