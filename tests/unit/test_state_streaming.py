"""Indexing stays within a chunk of memory per output, whatever the outputs hold, in every layout."""

from __future__ import annotations

import json
import tracemalloc
from typing import Any

import pytest

from bench.generate_state import generate_state, state_bytes
from chalicelib.domain.state_index import StateDiff, chunks_of, compare_for_rollback, index_state
from chalicelib.errors import NotAStateError
from tests.support.secrets import leaks


def chunked(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def compact(state: dict[str, Any]) -> bytes:
    return json.dumps(state, separators=(",", ":")).encode()


def with_big_output(subnets: int = 60_000) -> dict[str, Any]:
    """A state most of whose bytes are one output (a map of objects, as a VPC module's outputs are)."""
    state = generate_state(20, seed=4)
    state["outputs"]["subnets"] = {
        "value": {
            f"subnet-{i}": {"id": f"subnet-{i:08x}", "cidr": f"10.{i % 256}.{i // 256 % 256}.0/24",
                            "tags": {"Name": f"private-{i}", "Secret": "PLANTED-OUTPUT-NESTED-27d0"}}
            for i in range(subnets)
        },
        "type": ["map", ["object", {"cidr": "string", "id": "string", "tags": ["map", "string"]}]],
    }  # fmt: skip
    return state


@pytest.mark.parametrize("layout", [state_bytes, compact], ids=["terraform-layout", "compact"])
def test_a_large_output_is_never_decoded_whole(layout) -> None:
    state = with_big_output()
    data = layout(state)
    output_bytes = len(json.dumps(state["outputs"]["subnets"]))
    assert output_bytes > 5_000_000
    del state
    tracemalloc.start()
    try:
        index = index_state(chunks_of(data, 1 << 18))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Decoding the output whole takes several times its size; streaming it takes about a chunk of the text.
    assert peak < output_bytes / 2, f"peak {peak} bytes for an output of {output_bytes}"
    assert "subnets" in index.outputs and leaks(repr(index)) == []


def awkward_outputs() -> dict[str, Any]:
    return {
        "plain": {"value": "x", "type": "string"},
        "sensitive": {"value": "PLANTED-OUTPUT-SENSITIVE-6c1e", "type": "string", "sensitive": True},
        "escapes": {"value": {'key \\": {': 'say \\": [x] and "quote": {', "back\\\\": "\\\\", "é\n\t": "\u2028"},
                    "type": "string"},
        "empty": {},
        "nested": {"value": [[[], {}], [{"a": [1, -2.5e3, True, False, None]}]], "type": ["list", "any"]},
        "long": {"value": "y" * 300_000 + '\\"' * 1000, "type": "string"},
        "number": {"value": 12345678901234567890, "type": "number"},
    }  # fmt: skip


@pytest.mark.parametrize("size", [1, 3, 64, 4096, 1 << 20])
def test_outputs_digest_alike_in_every_layout_and_chunking(size: int) -> None:
    state = generate_state(10, seed=5)
    state["outputs"] = awkward_outputs()
    layouts = [
        state_bytes(state),  # Terraform's
        compact(state),
        json.dumps(state, indent="\t").encode(),
        json.dumps(state, indent=1, separators=(" ,", " :  ")).encode(),
    ]
    reference = index_state([layouts[0]]).outputs
    assert sorted(reference) == sorted(state["outputs"])
    for data in layouts:
        if size < 64 and len(data) > 200_000:
            data = data.replace(b"y" * 300_000, b"y" * 300)  # noqa: PLW2901 - a byte at a time is slow
            assert index_state(chunked(data, size)).outputs.keys() == reference.keys()
            continue
        assert index_state(chunked(data, size)).outputs == reference


@pytest.mark.parametrize(
    "change",
    [
        lambda o: o["plain"].update(value="z"),
        lambda o: o["sensitive"].update(sensitive=False),
        lambda o: o["escapes"]["value"].update({'key \\": {': "other"}),
        lambda o: o["nested"]["value"][1][0]["a"].append(0),
        lambda o: o["long"].update(value="y" * 300_001),
        lambda o: o["number"].update(value=12345678901234567891),
    ],
)
def test_a_change_anywhere_in_an_output_is_a_change(change) -> None:
    state = generate_state(10, seed=5)
    state["outputs"] = awkward_outputs()
    after = json.loads(json.dumps(state))
    change(after["outputs"])
    for layout in (state_bytes, compact):
        diff = StateDiff.between(index_state([layout(state)]), index_state(chunked(layout(after), 1000)))
        assert len(diff.outputs_changed) == 1 and not diff.outputs_added and not diff.outputs_removed


def test_a_rewritten_layout_is_no_change() -> None:
    state = generate_state(10, seed=5)
    state["outputs"] = awkward_outputs()
    before, after = index_state([state_bytes(state)], decoded=True), index_state([compact(state)])
    assert StateDiff.between(before, after) == StateDiff([], [], [], [], [], [])


@pytest.mark.parametrize(
    "outputs",
    [
        b'{"o": {"value": [1, 2}}',  # brackets that do not match
        b'{"o": {"value": nope}}',
        b'{"o": {"value": "a\x01b"}}',  # a control character in a string
        b'{"o": {"value": "\\',
        b'{"o": {"value": [' + b"[" * 10_001 + b"]" * 10_001 + b"]}}",  # deeper than Terraform reads
        b'{"o": }',
        b"[]",
        b'"outputs"',
    ],
)
def test_outputs_terraform_would_not_read_are_refused(outputs: bytes) -> None:
    data = b'{"version": 4, "serial": 1, "lineage": "L", "outputs": ' + outputs + b', "resources": []}'
    for size in (3, 1 << 20):
        with pytest.raises(NotAStateError):
            index_state(chunked(data, size))


def test_an_output_ending_elsewhere_than_its_indentation_says_is_read_in_any_layout() -> None:
    # Terraform's indentation at the start, then not: the end found by indentation is checked, not trusted.
    data = state_bytes(generate_state(5, seed=6)).replace(
        b'"type": "string"\n    },', b'"type": "string", "x": {\n    }},', 1
    )
    index = index_state(lambda: chunked(data, 100))
    assert index.outputs.keys() == {"endpoint", "db_password"}
    assert index.outputs == index_state([compact(json.loads(data))]).outputs


def test_members_after_the_resources_keep_terraforms_layout() -> None:
    """A Terraform 1.11 state with several check results: arrays of objects at the resources' indentation."""
    state = generate_state(300, seed=7)
    state["check_results"] = [
        {"object_kind": "resource", "config_addr": f"aws_instance.r{i}", "status": "pass",
         "objects": [{"object_addr": f"aws_instance.r{i}", "status": "pass"}]}
        for i in range(3)
    ]  # fmt: skip
    data = state_bytes(state)
    decoded = index_state([data], decoded=True)
    for size in (*range(50, 3000, 97), 4096, 1 << 20):  # wherever a chunk ends, before or in the check results
        index = index_state(chunks_of(data, size))
        assert index.resource_digests == "terraform-layout"
        assert index.resources.keys() == decoded.resources.keys()
    comparison = compare_for_rollback(data, chunks_of(data))
    assert comparison.diff == StateDiff([], [], [], [], [], [])
