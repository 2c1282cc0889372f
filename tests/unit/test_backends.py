"""The list of backends: each checked whole, its own settings over the shared ones, the deployment's never."""

import json

import pytest

from chalicelib.errors import SettingsError
from chalicelib.settings import backend_settings

ROLE = "arn:aws:iam::210987654321:role/g"
SHARED = {"GUARDIAN_TABLE": "guardian", "GUARDIAN_REAP_TTL_S": "7200", "GUARDIAN_INDEX_BUCKET": "indexes"}
THREE = [
    {
        "name": "prod",
        "bucket": "acme-tfstate-prod",
        "lock_table": "acme-locks",
        "settings": {"GUARDIAN_REAP_TTL_S": 600},
    },
    {"name": "staging", "bucket": "acme-tfstate-staging", "lock_table": "acme-locks"},
    {
        "name": "sandbox",
        "bucket": "acme-tfstate-sandbox",
        "events": "eventbridge",
        "region": "eu-west-1",
        "role_arn": "arn:aws:iam::210987654321:role/tfstate-guardian",
    },
]


def backends(entries: object, **env: str) -> list:
    return list(backend_settings({**SHARED, "GUARDIAN_BACKENDS": json.dumps(entries), **env}))


def test_each_backend_has_its_own_settings_over_the_shared_ones() -> None:
    prod, staging, sandbox = backends(THREE)
    assert [s.backend.name for s in (prod, staging, sandbox)] == ["prod", "staging", "sandbox"]
    assert prod.reaper.ttl.total_seconds() == 600 and staging.reaper.ttl.total_seconds() == 7200
    assert prod.lock_table == staging.lock_table == "acme-locks"  # one table, two buckets
    assert sandbox.lock_table is None and sandbox.backend.events == "eventbridge"
    assert sandbox.backend.account == "210987654321" and sandbox.backend.region == "eu-west-1"
    assert {s.guardian_table for s in (prod, staging, sandbox)} == {"guardian"}


def test_without_a_list_the_state_bucket_is_the_one_backend() -> None:
    (only,) = backend_settings({**SHARED, "GUARDIAN_STATE_BUCKET": "tfstate", "GUARDIAN_LOCK_TABLE": "locks"})
    assert (only.backend.name, only.state_bucket, only.lock_table, only.backend.events) == (
        "default",
        "tfstate",
        "locks",
        "s3",
    )


def test_the_list_may_live_in_a_file(tmp_path) -> None:
    path = tmp_path / "backends.json"
    path.write_text(json.dumps(THREE))
    assert len(backend_settings({**SHARED, "GUARDIAN_BACKENDS_FILE": str(path)})) == 3
    with pytest.raises(SettingsError, match="cannot read"):
        backend_settings({**SHARED, "GUARDIAN_BACKENDS_FILE": str(tmp_path / "missing.json")})


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ("not json", "not valid JSON"),
        ([], "at least one backend"),
        ([{"bucket": "acme-tfstate"}], r"\[0\]\.name"),
        ([{"name": "Prod!", "bucket": "acme-tfstate"}], r"\[0\]\.name"),
        ([{"name": "a", "bucket": "UPPER"}], r"\[0\]\.bucket"),
        ([{"name": "a", "bucket": "acme-tfstate", "events": "sqs"}], "events must be one of"),
        ([{"name": "a", "bucket": "acme-tfstate", "colour": "red"}], "unknown fields: colour"),
        ([{"name": "a", "bucket": "acme-tfstate", "role_arn": "arn:aws:iam::1:user/x"}], "role_arn"),
        (
            [{"name": "a", "bucket": "acme-tfstate", "account": "111122223333", "role_arn": ROLE}],
            "not of 111122223333",
        ),
        ([{"name": "a", "bucket": "acme-a"}, {"name": "a", "bucket": "acme-b"}], "name 'a' twice"),
        ([{"name": "a", "bucket": "acme-a"}, {"name": "b", "bucket": "acme-a"}], "bucket 'acme-a' twice"),
        ([{"name": "a", "bucket": "acme-a", "settings": {"GUARDIAN_TABLE": "x"}}], "cannot set GUARDIAN_TABLE"),
        ([{"name": "a", "bucket": "acme-a", "settings": {"PATH": "/"}}], "GUARDIAN_\\* settings only"),
        ([{"name": "a", "bucket": "acme-a", "settings": {"GUARDIAN_REAP_TTL_S": "soon"}}], "GUARDIAN_REAP_TTL_S"),
    ],
)
def test_a_bad_list_is_refused_with_where_and_why(entries: object, message: str) -> None:
    raw = entries if isinstance(entries, str) else json.dumps(entries)
    with pytest.raises(SettingsError, match=message):
        backend_settings({**SHARED, "GUARDIAN_BACKENDS": raw})


def test_a_list_and_a_lone_bucket_together_are_refused() -> None:
    with pytest.raises(SettingsError, match="GUARDIAN_STATE_BUCKET is set beside GUARDIAN_BACKENDS"):
        backends(THREE, GUARDIAN_STATE_BUCKET="acme-tfstate-prod")
