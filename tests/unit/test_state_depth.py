"""A state nested deeper than Python decodes is refused like any other non-state, at every entry point."""

from __future__ import annotations

import json

import pytest

from bench.generate_state import generate_state, state_bytes
from chalicelib.domain.rollback import likely_serial_after, with_serial
from chalicelib.domain.state import TOO_DEEP
from chalicelib.domain.state_index import chunks_of, compare_for_rollback, index_state, state_header
from chalicelib.errors import NotAStateError

DEEP = b"[" * 50_000 + b"]" * 50_000


def deep_states() -> list[bytes]:
    """A deep value where each reader meets it: decoded resources, outputs, and another top-level member."""
    terraform = state_bytes(generate_state(20, seed=8))
    plain = json.dumps(generate_state(20, seed=8)).encode()
    return [
        terraform.replace(b'"resources": [', b'"resources": [' + DEEP + b",", 1),
        plain.replace(b'"resources": [', b'"resources": [' + DEEP + b",", 1),
        terraform.replace(b'"outputs": {', b'"outputs": {"deep": ' + DEEP + b",", 1),
        plain.replace(b'"lineage": ', b'"deep": ' + DEEP + b', "lineage": ', 1),
        json.dumps({"version": 3, "serial": 1, "lineage": "L", "modules": [{"path": ["root"], "resources": {
            "aws_instance.web": {"primary": {"id": "i", "attributes": {}}, "meta": "X"}}}]}).encode().replace(
                b'"X"', DEEP),
    ]  # fmt: skip


@pytest.mark.parametrize("target", deep_states(), ids=["layout-resources", "resources", "outputs", "member", "v3"])
def test_a_deep_rollback_target_is_not_a_state(target: bytes) -> None:
    current = state_bytes(generate_state(20, seed=8))
    with pytest.raises(NotAStateError, match=TOO_DEEP):
        compare_for_rollback(target, chunks_of(current))
    with pytest.raises(NotAStateError, match=TOO_DEEP):
        compare_for_rollback(target, None)


@pytest.mark.parametrize("current", deep_states(), ids=["layout-resources", "resources", "outputs", "member", "v3"])
def test_a_deep_current_version_does_not_block_a_rollback(current: bytes) -> None:
    target = state_bytes(generate_state(20, seed=8))
    for chunks in (chunks_of(current), lambda: [current]):
        comparison = compare_for_rollback(target, chunks)
        assert comparison.current is None  # unreadable, as a broken write is: restoring is how a team recovers
        assert comparison.diff.resources_added == sorted(index_state([target]).resources)


@pytest.mark.parametrize("data", deep_states(), ids=["layout-resources", "resources", "outputs", "member", "v3"])
def test_every_reader_refuses_a_deep_state(data: bytes) -> None:
    for read in (
        lambda: index_state([data]),
        lambda: index_state([data], decoded=True),
        lambda: state_header(chunks_of(data)),
    ):
        with pytest.raises(NotAStateError, match=TOO_DEEP):
            read()


def test_a_deep_member_before_the_serial_is_no_crash_when_restoring() -> None:
    data = b'{"deep": ' + DEEP + b', "version": 4, "serial": 1, "lineage": "L"}'
    with pytest.raises(NotAStateError):
        with_serial(data, 5)
    assert likely_serial_after(data, data) is None
