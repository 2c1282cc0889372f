"""The pure domain on input built to break it: clear errors, never a crash that Lambda would retry."""

from __future__ import annotations

import json

import pytest

from chalicelib.domain.lock_table import parse_lock_table_batch, parse_lock_table_record
from chalicelib.domain.locks import LockInfo
from chalicelib.domain.s3_events import parse_s3_record
from chalicelib.domain.state import parse_state_header
from chalicelib.domain.state_index import chunks_of, index_state
from chalicelib.errors import MalformedEventError, NotAStateError
from tests.support.events import captured_stream, state_bytes

DEEP = b"[" * 50_000 + b"]" * 50_000


def s3_record(key: object) -> dict[str, object]:
    return {
        "eventName": "ObjectCreated:Put",
        "eventTime": "2026-11-26T11:05:21.798Z",
        "s3": {"bucket": {"name": "tfstate"}, "object": {"key": key, "versionId": "v1"}},
    }


@pytest.mark.parametrize("complete", [True, False])
def test_a_header_nested_deeper_than_python_decodes_is_not_a_state(complete: bool) -> None:
    with pytest.raises(NotAStateError, match="nested too deeply"):
        parse_state_header(b'{"version": 4, "serial": 1, "lineage": "x", "deep": ' + DEEP + b"}", complete=complete)


@pytest.mark.parametrize("member", [b'"outputs": {', b'"resources": ['])
def test_a_state_nested_deeper_than_python_decodes_is_not_a_state(member: bytes) -> None:
    deep = member + (b'"deep": ' if member.endswith(b"{") else b"") + DEEP + b","
    state = state_bytes("state_tf1.11.4_first_apply_serial1.json").replace(member, deep, 1)
    with pytest.raises(NotAStateError, match="nested too deeply"):
        index_state(chunks_of(state, 4096))


def test_lock_info_nested_deeper_than_python_decodes_is_malformed() -> None:
    with pytest.raises(MalformedEventError):
        LockInfo.parse(DEEP.decode())


def test_a_stream_record_with_an_impossible_time_is_timed_by_the_handler() -> None:
    record = captured_stream("tf1.11.4_plan.json")["Records"][0]
    for epoch in (1e20, -1e20, True):
        odd = json.loads(json.dumps(record))
        odd["dynamodb"]["ApproximateCreationDateTime"] = epoch
        assert parse_lock_table_record(odd, "tf-locks").approximate_time is None


@pytest.mark.parametrize("event", [{}, {"Records": None}, {"Records": {"0": {}}}])
def test_a_stream_event_without_a_records_list_is_rejected_not_ignored(event: dict[str, object]) -> None:
    batch = parse_lock_table_batch(event, "tf-locks")
    assert batch.changes == [] and batch.rejected == ["stream event has no Records list"]


@pytest.mark.parametrize("key", [1234, ["app/terraform.tfstate"], None, "a" * 1020 + "%C3%A9.tfstate"])
def test_an_s3_key_that_names_no_object_is_malformed(key: object) -> None:
    with pytest.raises(MalformedEventError):
        parse_s3_record(s3_record(key))


def test_the_longest_s3_key_is_accepted() -> None:
    assert parse_s3_record(s3_record("a" * 1016 + ".tfstate")).key == "a" * 1016 + ".tfstate"
