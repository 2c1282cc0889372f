import json

import pytest

from chalicelib.domain.state import HeaderIncomplete, StateHeader, parse_state_header
from chalicelib.errors import NotAStateError
from tests.support.events import state_bytes

CAPTURED = [
    ("state_tf1.11.4_first_apply_serial1.json", 1, "1.11.4"),
    ("state_tf1.11.4_second_apply_serial2.json", 2, "1.11.4"),
    ("state_tf1.11.4_check_results_and_sensitive_output.json", None, "1.11.4"),
    ("state_tf1.0.3_first_apply_serial0.json", 0, "1.0.3"),
    ("state_tf1.0.3_serial2.json", 2, "1.0.3"),
    ("state_tf1.0.3_workspace_new_empty_serial0.json", 0, "1.0.3"),
]


@pytest.mark.parametrize(("name", "serial", "terraform_version"), CAPTURED)
def test_captured_states_give_their_header(name: str, serial: int | None, terraform_version: str) -> None:
    data = state_bytes(name)
    document = json.loads(data)
    header = parse_state_header(data, complete=True)
    assert header == StateHeader(
        serial=document["serial"], lineage=document["lineage"], terraform_version=terraform_version, encrypted=False
    )
    if serial is not None:
        assert header.serial == serial


@pytest.mark.parametrize(("name", "serial", "terraform_version"), CAPTURED)
def test_every_prefix_gives_the_full_header_or_asks_for_more(
    name: str, serial: int | None, terraform_version: str
) -> None:
    data = state_bytes(name)
    full = parse_state_header(data, complete=True)
    # Once the "outputs" key is in the prefix, the header is known.
    enough = data.index(b'"outputs"') + len(b'"outputs"')
    for cut in range(len(data)):
        try:
            header = parse_state_header(data[:cut], complete=False)
        except HeaderIncomplete:
            assert cut < enough, f"prefix of {cut} bytes should have answered"
            continue
        assert header == full, f"prefix of {cut} bytes"


def test_a_number_cut_short_is_not_taken_for_the_serial() -> None:
    data = (
        b'{\n  "version": 4,\n  "terraform_version": "1.11.4",\n  "serial": 123,\n  "lineage": "x",\n  "outputs": {}}'
    )
    cut = data.index(b"123") + 2
    with pytest.raises(HeaderIncomplete):
        parse_state_header(data[:cut], complete=False)


LINEAGE = "b2f6a3c0-0000-4000-8000-000000000001"


def test_opentofu_encrypted_state_is_recognised_without_parsing_its_payload() -> None:
    encrypted = {
        "serial": 7,
        "lineage": LINEAGE,
        "meta": {"key_provider.pbkdf2.main": "eyJzYWx0Ijoi"},
        "encrypted_data": "AAAA" * 2000,
        "encryption_version": "v0",
    }
    data = json.dumps(encrypted).encode()
    header = parse_state_header(data, complete=True)
    assert header == StateHeader(serial=7, lineage=LINEAGE, terraform_version=None, encrypted=True)
    # The "encrypted_data" key tells a prefix that this is an encrypted state...
    assert parse_state_header(data[:200], complete=False) == header
    # ...but a prefix that ends before it cannot tell an encrypted state from a plain one yet.
    with pytest.raises(HeaderIncomplete):
        parse_state_header(data[: data.index(b'"meta"')], complete=False)


def test_encrypted_state_with_marker_first_is_answered_from_a_prefix() -> None:
    data = json.dumps(
        {"encryption_version": "v0", "serial": 3, "lineage": "abc", "meta": {}, "encrypted_data": "A" * 9000}
    ).encode()
    assert parse_state_header(data[:300], complete=False).encrypted


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not json",
        b"[1, 2]",
        b"{}",
        b'{"version": 0, "serial": 1, "lineage": "x"}',
        b'{"version": 5, "serial": 1, "lineage": "x"}',
        b'{"version": 4.0, "serial": 1, "lineage": "x"}',
        b'{"version": "4", "serial": 1, "lineage": "x"}',
        b'{"version": 4, "serial": -1, "lineage": "x"}',
        b'{"version": 4, "serial": true, "lineage": "x"}',
        b'{"version": 4, "serial": "1", "lineage": "x"}',
        b'{"version": 4, "serial": 1, "lineage": 7}',
        b'{"version": 4, "serial": 1, "lineage": "x"',
        b"\xff\xfe\x00garbage",
    ],
)
def test_what_is_not_a_state_is_refused(data: bytes) -> None:
    with pytest.raises(NotAStateError):
        parse_state_header(data, complete=True)


@pytest.mark.parametrize(
    ("data", "serial", "lineage"),
    [
        # Terraform 0.11 and older: format 3 (and 1 and 2, which have no lineage); Terraform upgrades them as it reads
        (b'{"version": 3, "terraform_version": "0.11.14", "serial": 4, "lineage": "x", "modules": []}', 4, "x"),
        (b'{"version": 2, "serial": 4, "lineage": "x", "modules": []}', 4, "x"),
        (b'{"version": 1, "serial": 2, "modules": []}', 2, None),
        # Go reads a missing (or null) serial as 0 and a missing or empty lineage as ""
        (b'{"version": 4, "serial": 1, "lineage": "", "outputs": {}}', 1, None),
        (b'{"version": 4, "serial": 1, "outputs": {}}', 1, None),
        (b'{"version": 4, "outputs": {}, "resources": []}', 0, None),
        (b'{"version": 4, "serial": null, "lineage": null}', 0, None),
    ],
)
def test_what_terraform_reads_as_a_state_is_one(data: bytes, serial: int, lineage: str | None) -> None:
    header = parse_state_header(data, complete=True)
    assert (header.serial, header.lineage) == (serial, lineage)
    body = next((key for key in (b'"modules"', b'"outputs"') if key in data), None)
    if body is not None:  # a prefix up to the body's first key tells the header
        assert parse_state_header(data[: data.index(body) + len(body)], complete=False) == header


def test_a_missing_lineage_is_no_lineage_change() -> None:
    known = StateHeader(serial=1, lineage="a", terraform_version=None, encrypted=False)
    assert known.lineage_differs(StateHeader(serial=2, lineage="b", terraform_version=None, encrypted=False))
    unknown = StateHeader(serial=2, lineage=None, terraform_version=None, encrypted=False)
    assert not known.lineage_differs(unknown) and not unknown.lineage_differs(known)


def test_a_prefix_that_is_not_an_object_is_refused_at_once() -> None:
    with pytest.raises(NotAStateError):
        parse_state_header(b'["version", 4, "serial", 1, "lineage", "abc", "outputs"]', complete=False)
