import hashlib
import json
import random
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest

from bench.generate_state import generate_state, state_bytes
from chalicelib.domain.state import parse_state_header
from chalicelib.domain.state_index import StateDiff, compare_for_rollback, index_state, resource_address
from chalicelib.errors import NotAStateError
from tests.support.events import EVENTS
from tests.support.events import state_bytes as captured


def chunked(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize("path", sorted((EVENTS / "states").glob("state_*.json")), ids=lambda p: p.name)
def test_captured_states_index_like_their_header(path) -> None:
    data = path.read_bytes()
    index = index_state([data])
    assert index.header == parse_state_header(data, complete=True)
    assert index.size == len(data)
    assert set(index.outputs) == set(json.loads(data)["outputs"])


def test_addresses_are_terraforms_own() -> None:
    index = index_state([captured("state_tf1.11.4_after_state_push_fake_aws_resources.json")])
    assert sorted(index.resources) == ["aws_instance.web[0]", "aws_s3_bucket.logs", "terraform_data.probe"]
    state = {
        "version": 4,
        "serial": 1,
        "lineage": "L",
        "outputs": {},
        "resources": [
            {"module": "module.net", "mode": "managed", "type": "aws_subnet", "name": "a", "instances": [
                {"index_key": "eu-west-1a", "attributes": {}}, {"index_key": 'we"ird', "attributes": {}}]},
            {"mode": "data", "type": "aws_ami", "name": "ubuntu", "instances": [{"attributes": {}}]},
            {"module": 'module.x["k"]', "mode": "managed", "type": "null_resource", "name": "n", "instances": [
                {"index_key": 3, "attributes": {}}]},
        ],
    }  # fmt: skip
    assert sorted(index_state([json.dumps(state).encode()]).resources) == [
        "data.aws_ami.ubuntu",
        'module.net.aws_subnet.a["eu-west-1a"]',
        'module.net.aws_subnet.a["we\\"ird"]',
        'module.x["k"].null_resource.n[3]',
    ]


@pytest.mark.parametrize("size", [1, 7, 4096, 1 << 20])
def test_chunk_boundaries_do_not_matter(size: int) -> None:
    data = state_bytes(generate_state(60, seed=3))
    assert index_state(chunked(data, size)) == index_state([data])


def test_diff_tells_added_changed_and_removed() -> None:
    before = generate_state(30, seed=1)
    after = json.loads(json.dumps(before))
    after["serial"] += 1
    removed = after["resources"].pop(0)
    after["resources"][0]["instances"][0]["attributes"]["ami"] = "ami-new"
    after["resources"].append(
        {"mode": "managed", "type": "aws_eip", "name": "ip", "instances": [{"attributes": {"id": "x"}}]}
    )
    after["outputs"]["endpoint"]["value"] = "changed"
    after["outputs"]["new"] = {"value": 1, "type": "number"}
    del after["outputs"]["db_password"]

    diff = StateDiff.between(index_state([state_bytes(before)]), index_state([state_bytes(after)]))
    first = after["resources"][0]
    key = first["instances"][0].get("index_key")
    expected = resource_address(first.get("module"), first["mode"], first["type"], first["name"])
    expected += "" if key is None else f"[{json.dumps(key)}]"
    assert diff.resources_added == ["aws_eip.ip"]
    assert diff.resources_changed == [expected]
    assert len(diff.resources_removed) == len(removed["instances"])
    assert (diff.outputs_added, diff.outputs_changed, diff.outputs_removed) == (["new"], ["endpoint"], ["db_password"])


def test_identical_states_differ_in_nothing() -> None:
    data = state_bytes(generate_state(40, seed=2))
    compact = json.dumps(json.loads(data), separators=(",", ":")).encode()
    assert StateDiff.between(index_state([data]), index_state([data])) == StateDiff([], [], [], [], [], [])
    # In two layouts, the digests of the attributes are only comparable once both are decoded.
    with pytest.raises(ValueError, match="cannot be compared"):
        StateDiff.between(index_state([data]), index_state([compact]))
    diff = StateDiff.between(index_state([data], decoded=True), index_state([compact]))
    assert diff == StateDiff([], [], [], [], [], [])


def terraform_layout(state: dict) -> bytes:
    return (json.dumps(state, indent=2) + "\n").encode()


def awkward_state() -> dict:
    """Every kind of instance address, in the member order Terraform writes."""
    return {
        "version": 4,
        "terraform_version": "1.11.4",
        "serial": 3,
        "lineage": "L",
        "outputs": {"o": {"value": "x", "type": "string"}},
        "resources": [
            {"module": 'module.x["k\\"]', "mode": "managed", "type": "null_resource", "name": "n",
             "provider": 'provider["registry.terraform.io/hashicorp/null"]', "instances": [
                {"index_key": 'we"ird<&>', "schema_version": 0, "attributes": {"id": "1"}},
                {"index_key": "caf\u00e9", "status": "tainted", "schema_version": 0, "attributes": {"id": "2"}},
                {"index_key": -3, "deposed": "00000001", "schema_version": 0, "attributes": {}},
                {"index_key": 4, "schema_version": 0, "attributes_flat": {"id": "4"}},
            ]},
            {"mode": "data", "type": "aws_ami", "name": "ubuntu", "each": "map", "provider": "p",
             "instances": []},
            {"mode": "managed", "type": "aws_eip", "name": "ip", "provider": "p", "instances": [
                {"schema_version": 1, "attributes": {"id": "e", "tags": {"a": [1, 2.5, None, True]}},
                 "sensitive_attributes": [[{"type": "get_attr", "value": "id"}]], "private": "bnVsbA==",
                 "dependencies": ["module.x.null_resource.n"], "identity_schema_version": 0}]},
        ],
        "check_results": [{"object_kind": "resource", "config_addr": "aws_eip.ip", "status": "pass",
                           "objects": [{"object_addr": "aws_eip.ip", "status": "pass"}]}],
    }  # fmt: skip


def test_terraform_layout_indexes_like_the_decoded_state() -> None:
    data = terraform_layout(awkward_state())
    layout, decoded = index_state(chunked(data, 7)), index_state([data], decoded=True)
    assert (layout.resource_digests, decoded.resource_digests) == ("terraform-layout", "decoded")
    assert layout.resources.keys() == decoded.resources.keys()
    assert sorted(layout.resources) == sorted([
        "aws_eip.ip",
        'module.x["k\\"].null_resource.n[-3] (deposed 00000001)',
        'module.x["k\\"].null_resource.n[4]',
        'module.x["k\\"].null_resource.n["café"]',
        'module.x["k\\"].null_resource.n["we\\"ird<&>"]',
    ])  # fmt: skip
    assert (layout.header, layout.outputs, layout.md5) == (decoded.header, decoded.outputs, decoded.md5)


@pytest.mark.parametrize(
    "change",
    [
        lambda s: s["resources"][0]["instances"][0]["attributes"].update(id="changed"),
        lambda s: s["resources"][0]["instances"][1].pop("status"),
        lambda s: s["resources"][0]["instances"][3]["attributes_flat"].update(id="changed"),
        lambda s: s["resources"][2]["instances"][0]["attributes"]["tags"]["a"].append(3),
    ],
)
def test_terraform_layout_finds_the_changes_decoding_finds(change) -> None:
    before = awkward_state()
    after = json.loads(json.dumps(before))
    change(after)
    in_layout = StateDiff.between(index_state([terraform_layout(before)]), index_state([terraform_layout(after)]))
    decoded = StateDiff.between(
        index_state([terraform_layout(before)], decoded=True), index_state([terraform_layout(after)], decoded=True)
    )
    assert in_layout == decoded and len(in_layout.resources_changed) == 1


def test_what_is_not_digested_does_not_count_as_a_change() -> None:
    before = awkward_state()
    after = json.loads(json.dumps(before))
    after["resources"][2]["instances"][0]["dependencies"] = []
    after["resources"][2]["instances"][0]["private"] = "other"
    diff = StateDiff.between(index_state([terraform_layout(before)]), index_state([terraform_layout(after)]))
    assert diff.resources_changed == []


@pytest.mark.parametrize(
    "reorder",
    [
        # index_key after the attributes: the head alone would miss it
        lambda i: {"schema_version": 0, "attributes": i["attributes"], "index_key": i.get("index_key", 0)},
        # a multi-line member before the attributes
        lambda i: {"index_key": i.get("index_key", 0), "meta": {"a": 1}, "attributes": i["attributes"]},
    ],
)
def test_indentation_without_terraforms_order_is_decoded(reorder) -> None:
    state = awkward_state()
    eip = state["resources"][2]["instances"][0]
    state["resources"][2]["instances"][0] = reorder(eip)
    data = terraform_layout(state)
    index = index_state(lambda: chunked(data, 64))
    assert index.resource_digests == "decoded"
    assert "aws_eip.ip[0]" in index.resources


def test_encrypted_state_gives_header_only() -> None:
    data = json.dumps(
        {"serial": 2, "lineage": "L", "meta": {}, "encrypted_data": "QUJD" * 100, "encryption_version": "v0"}
    ).encode()
    index = index_state(chunked(data, 50))
    assert index.header.encrypted and index.header.serial == 2
    assert index.resources == {} and index.outputs == {}


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"   ",
        b"not json",
        b"[]",
        b'{"version": 4, "serial": 1, "lineage": "L", "resources": [}',
        b'{"version": 4, "serial": 1, "lineage": "L", "resources": {}}',
        b'{"version": 4, "serial": 1, "lineage": "L", "resources": [1]}',
        b'{"version": 4, "serial": 1, "lineage": "L", "resources": [{"mode": "managed"}]}',
        b'{"version": 4, "serial": 1, "lineage": "L", "outputs": []}',
        b'{"version": 4, "serial": 1, "lineage": "L"} trailing',
        b'{"version": 4, "serial": 1, "lineage": "L"',
        b'{"version": 5, "serial": 1, "lineage": "L"}',
        b"\x89PNG\r\n\x1a\n\x00\x00",
    ],
)
def test_what_is_not_a_state_is_refused(data: bytes) -> None:
    with pytest.raises(NotAStateError):
        index_state(chunked(data, 5) or [b""])


def test_no_value_survives_in_the_index() -> None:
    index = index_state([state_bytes(generate_state(20, secret="planted-secret-value"))])
    assert "planted-secret-value" not in repr(index)


@pytest.mark.parametrize("cut", [0.3, 0.6, 0.9, 0.99])
def test_a_truncated_terraform_layout_is_not_a_state(cut: float) -> None:
    data = terraform_layout(awkward_state())
    with pytest.raises(NotAStateError):
        index_state(chunked(data[: int(len(data) * cut)], 50))


def compact(state: dict) -> bytes:
    return json.dumps(state, separators=(",", ":")).encode()


@pytest.mark.parametrize("target_layout", [terraform_layout, compact], ids=["target-terraform", "target-compact"])
@pytest.mark.parametrize("current_layout", [terraform_layout, compact], ids=["current-terraform", "current-compact"])
def test_a_rollback_comparison_finds_what_a_whole_diff_finds(target_layout, current_layout) -> None:
    target = generate_state(60, seed=7)
    current = json.loads(json.dumps(target))
    current["serial"] += 3
    current["resources"][2]["instances"][0]["attributes"]["ami"] = "ami-newer"
    current["resources"].pop(5)
    current["outputs"]["endpoint"]["value"] = "elsewhere"
    target_bytes, current_bytes = target_layout(target), current_layout(current)
    whole = StateDiff.between(index_state([current_bytes], decoded=True), index_state([target_bytes], decoded=True))
    comparison = compare_for_rollback(target_bytes, lambda: chunked(current_bytes, 1000))
    assert comparison.diff == whole and len(whole.resources_changed) == 1 and whole.resources_added
    assert comparison.current is not None
    assert (comparison.current.serial, comparison.target.serial) == (current["serial"], target["serial"])


def test_a_rollback_comparison_without_a_readable_current_version_adds_everything() -> None:
    target = terraform_layout(awkward_state())
    for current in (None, lambda: [b"not a state"]):
        comparison = compare_for_rollback(target, current)
        assert comparison.current is None
        assert comparison.diff.resources_added == sorted(index_state([target]).resources)


def test_a_rollback_target_is_parsed_wherever_it_differs_from_the_current_version() -> None:
    state = awkward_state()
    data = terraform_layout(state)
    broken = data.replace(b'"mode": "managed",\n      "type": "aws_eip"', b'"mode": "managed",\n      "type": 7')
    assert broken != data
    with pytest.raises(NotAStateError):
        compare_for_rollback(broken, lambda: [data])


class SourceFailed(Exception):
    pass


def test_chunks_read_ahead_give_the_same_index_and_md5() -> None:
    data = state_bytes(generate_state(200, seed=5))
    for size in (1, 1000, 1 << 16):
        pieces = chunked(data, size)

        def opened(pieces: list[bytes] = pieces) -> Iterator[bytes]:
            return iter(pieces)

        index = index_state(opened)
        assert index == index_state([data]) and index.md5 == hashlib.md5(data).hexdigest() and index.size == len(data)


def test_an_error_of_the_reading_reaches_the_caller_and_nothing_keeps_reading() -> None:
    data = state_bytes(generate_state(200, seed=5))
    closed = []

    def failing() -> Iterator[bytes]:
        try:
            yield data[:5000]
            raise SourceFailed("connection reset")
        finally:
            closed.append(True)

    before = threading.active_count()
    with pytest.raises(SourceFailed, match="connection reset"):
        index_state(failing)
    assert closed == [True] and threading.active_count() == before


def test_a_refusal_stops_the_reading_at_once() -> None:
    read = []

    def endless() -> Iterator[bytes]:
        yield b"not a state at all " * 10
        while True:
            read.append(1)
            yield b" " * 1000

    before = threading.active_count()
    with pytest.raises(NotAStateError):
        index_state(endless)
    assert threading.active_count() == before and len(read) < 100


def test_objects_after_the_resources_that_look_like_resources_are_not_taken_for_them() -> None:
    state = awkward_state()
    state["check_results"] = [
        {"module_addr": "module.x", "mode": "managed", "type": "t", "name": "n", "instances": []},
        {"module": "module.y", "mode": "managed", "type": "t", "name": "m", "instances": []},
    ]
    data = terraform_layout(state)
    for size in (1, 13, 1 << 20):
        index = index_state(chunked(data, size))
        assert sorted(index.resources) == sorted(index_state([data], decoded=True).resources)
        assert not any(address.startswith(("module.y", "t.")) for address in index.resources)


@pytest.mark.parametrize("seed", range(8))
def test_chunks_of_any_sizes_cut_resources_alike(seed: int) -> None:
    rng = random.Random(seed)
    state = awkward_state()
    state["resources"] += generate_state(60, seed=seed)["resources"]
    state["resources"][-1]["instances"][0]["attributes"]["big"] = "x" * rng.randint(1, 5000)  # larger than chunks
    data = terraform_layout(state)
    pieces, start = [], 0
    while start < len(data):
        size = rng.choice([1, 2, 9, 23, 24, 25, 100, 777, 3000])
        pieces.append(data[start : start + size])
        start += size
    whole = index_state([data])
    assert index_state(pieces) == whole and index_state(lambda: iter(pieces)) == whole
    assert whole.resource_digests == "terraform-layout"


def test_the_md5_is_computed_only_when_the_first_chunk_says_it_is_wanted() -> None:
    data = state_bytes(generate_state(200, seed=5))
    pieces = chunked(data, 1000)
    for source in (pieces, lambda: iter(pieces)):  # in order, and read ahead by a thread
        asked: list[int] = []

        def wanted(answer: bool, asked: list[int] = asked) -> Callable[[], bool]:
            def ask() -> bool:
                asked.append(1)
                return answer

            return ask

        assert index_state(source, md5=wanted(False)).md5 == "" and asked == [1]
        assert index_state(source, md5=wanted(True)).md5 == hashlib.md5(data).hexdigest() and asked == [1, 1]
        assert index_state(source, md5=False) == replace(index_state(source), md5="")
