"""The history's pure parts: version order, recorded changes, audit entries, page tokens."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from chalicelib.domain import notifications
from chalicelib.domain.history import (
    MAX_RECORDED_CHANGES_BYTES,
    VersionKind,
    VersionRecord,
    audit_event_of,
    decode_token,
    encode_token,
    recorded_changes,
    version_order,
)
from chalicelib.domain.state_keys import StateKey
from chalicelib.errors import InvalidRequestError

WHEN = datetime(2026, 11, 30, 8, 0, 0, 123000, tzinfo=UTC)


def test_versions_order_by_second_then_serial_whatever_the_milliseconds() -> None:
    # An S3 event knows the millisecond, a listing the second: both give the same order.
    assert version_order(WHEN, 41, "v1") == version_order(WHEN.replace(microsecond=0), 41, "v1")
    earlier = version_order(WHEN, 41, "zzz")
    later = version_order(WHEN, 42, "aaa")  # two snapshots of one apply in one second
    unreadable = version_order(WHEN, None, "bbb")
    assert earlier < later < unreadable
    assert version_order(WHEN.replace(second=1), 1, "a") > unreadable


def test_recorded_changes_are_kept_until_they_would_not_fit_a_record() -> None:
    kept, overflow = recorded_changes(["a.b"], ["c.d"], ["e.f"])
    assert kept == {"+a.b", "~c.d", "-e.f"} and not overflow
    many = [f'module.m.aws_instance.x["{"k" * 80}-{n}"]' for n in range(2_000)]
    assert sum(len(a) for a in many) > MAX_RECORDED_CHANGES_BYTES
    kept, overflow = recorded_changes(many, [], [])
    assert kept == frozenset() and overflow


def test_a_record_says_whether_it_touched_an_address_or_that_only_its_index_can_tell() -> None:
    record = VersionRecord(
        bucket="b", key="k", workspace="default", version_id="v", kind=VersionKind.WRITTEN, written_at=WHEN,
        changed_addresses=frozenset({"-aws_s3_bucket.logs"}),
    )  # fmt: skip
    assert record.touches("aws_s3_bucket.logs") is True
    assert record.touches("aws_s3_bucket.data") is False
    overflowing = VersionRecord(
        bucket="b", key="k", workspace="default", version_id="v", kind=VersionKind.WRITTEN, written_at=WHEN,
        changed_addresses_overflow=True,
    )  # fmt: skip
    assert overflowing.touches("aws_s3_bucket.data") is None


def test_an_audit_entry_names_the_lock_holder_the_principal_and_the_caller() -> None:
    repaired = notifications.digest_repaired(
        bucket="b", state_key=StateKey.parse("prod/terraform.tfstate", ("env:",)), version_id="v9",
        stored_before="0" * 32, calculated="f" * 32, occurred_at=WHEN, caller="arn:aws:iam::1:user/alice",
    )  # fmt: skip
    event = audit_event_of(repaired)
    assert (event.type, event.caller, event.version_id, event.who) == (
        "digest.repaired", "arn:aws:iam::1:user/alice", "v9", None,
    )  # fmt: skip
    assert event.actors == ("arn:aws:iam::1:user/alice",)


def test_a_token_is_opaque_and_refused_for_another_listing() -> None:
    token = encode_token({"for": "versions#b/k", "sk": "2026-11-30T08:00:00Z#000000000041#v1"})
    assert decode_token(token, expect="versions#b/k")["sk"].endswith("#v1")
    for bad, listing in ((token, "versions#b/other"), ("not-a-token", "versions#b/k"), ("", "versions#b/k")):
        with pytest.raises(InvalidRequestError):
            decode_token(bad, expect=listing)
