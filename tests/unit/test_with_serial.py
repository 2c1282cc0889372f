import json

import pytest

from chalicelib.domain import rollback
from chalicelib.domain.rollback import with_serial
from chalicelib.errors import NotAStateError
from tests.support.events import state_bytes


def test_only_the_serial_changes() -> None:
    data = state_bytes("state_tf1.11.4_after_state_push_fake_aws_resources.json")
    restored = with_serial(data, 42)
    assert json.loads(restored) == {**json.loads(data), "serial": 42}
    assert restored.replace(b'"serial": 42', b'"serial": 5') == data


def test_a_serial_after_a_long_member_is_found_in_the_whole_text(monkeypatch) -> None:
    monkeypatch.setattr(rollback, "_HEAD_BYTES", 64)
    data = json.dumps({"version": 4, "lineage": "é" * 100, "serial": 7, "resources": []}).encode()
    assert json.loads(with_serial(data, 8))["serial"] == 8


@pytest.mark.parametrize("head_bytes", range(30, 45))
def test_a_head_that_ends_inside_the_serial_or_a_character_is_read_on(monkeypatch, head_bytes: int) -> None:
    monkeypatch.setattr(rollback, "_HEAD_BYTES", head_bytes)
    data = '{"lineage": "ééééé", "serial": 123456, "resources": []}'.encode()
    restored = with_serial(data, 9)
    assert restored == data.replace(b"123456", b"9")


@pytest.mark.parametrize("data", [b'{"serial": "7"}', b'{"serial": true}', b"[1]", b"\xff\xfe"])
def test_what_has_no_integer_serial_is_refused(data: bytes) -> None:
    with pytest.raises(NotAStateError):
        with_serial(data, 2)
