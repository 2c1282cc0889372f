"""Issue 15, point 8: reading a lock holder's host and private address from `Who`, and what "gone" changes."""

import json
from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.domain.holders import PrivateHost, host_of, private_host_of
from chalicelib.domain.locks import LockInfo
from chalicelib.domain.staleness import HeldLock, ReaperPolicy, StaleRecord, Verdict, judge
from chalicelib.errors import SettingsError
from chalicelib.settings import LivenessChecks, Settings


@pytest.mark.parametrize(
    ("who", "expected"),
    [
        ("ci@ip-10-1-2-3", PrivateHost("10.1.2.3", None)),
        ("ci@ip-10-1-2-3.eu-west-1.compute.internal", PrivateHost("10.1.2.3", "eu-west-1")),
        ("ci@ip-10-1-2-3.ec2.internal", PrivateHost("10.1.2.3", "us-east-1")),
        ("root@ip-172-31-255-254.us-gov-west-1.compute.internal", PrivateHost("172.31.255.254", "us-gov-west-1")),
        ("runner@ip-192-168-0-1.ap-southeast-2.compute.internal", PrivateHost("192.168.0.1", "ap-southeast-2")),
        ("a@b@ip-10-0-0-1", PrivateHost("10.0.0.1", None)),  # the host is what follows the last @
        ("ci@ip-172-15-0-1", None),  # just below 172.16/12: public
        ("ci@ip-172-32-0-1", None),  # just above it
        ("ci@ip-8-8-8-8", None),  # public
        ("ci@ip-100-64-0-1", None),  # shared address space, not RFC 1918
        ("ci@ip-169-254-0-1", None),  # link-local
        ("ci@ip-127-0-0-1", None),  # loopback
        ("ci@ip-10-1-2-256", None),  # not an address
        ("ci@ip-10-01-2-3", None),  # a leading zero: ambiguous, refused
        ("ci@ip-10-1-2", None),
        ("ci@ip-10-1-2-3-4", None),
        ("ci@ip-10-1-2-3.example.com", None),  # not EC2's DNS suffix
        ("ci@ip-10-1-2-3.eu-west-1.compute.internal.evil.com", None),
        ("ci@IP-10-1-2-3", None),  # EC2 names hosts in lower case
        ("ci@my-ip-10-1-2-3", None),
        ("ci@ip-10-1-2-3 ", None),
        ("ci@ip-10-1-2-3\n", None),
        ("ip-10-1-2-3", None),  # no user@: not Terraform's Who
        ("ci@", None),
        ("", None),
    ],
)
def test_a_private_address_is_read_from_an_aws_host_name_only(who: str, expected: PrivateHost | None) -> None:
    assert private_host_of(who) == expected


@pytest.mark.parametrize(
    ("who", "host"),
    [("ci@runner-7", "runner-7"), ("a@b@c", "c"), ("runner-7", None), ("ci@", None), ("ci@run ner", None)],
)
def test_the_host_is_what_follows_the_last_at(who: str, host: str | None) -> None:
    assert host_of(who) == host


CREATED = datetime(2026, 11, 26, 8, 0, 0, tzinfo=UTC)
PATH = "tfstate/prod/app/terraform.tfstate"


def held() -> HeldLock:
    raw = json.dumps(
        {"ID": "id-1", "Operation": "OperationTypeApply", "Info": "", "Who": "ci@ip-10-1-2-3", "Version": "1.11.4",
         "Created": "2026-11-26T08:00:00.123456789Z", "Path": PATH},
        separators=(",", ":"),
    )  # fmt: skip
    return HeldLock(state_path=PATH, source="dynamodb", raw=raw, lock=LockInfo.parse(raw))


POLICY = ReaperPolicy(ttl=timedelta(hours=2), grace=timedelta(minutes=15), gone_grace=timedelta(minutes=1))
FIRST = CREATED + timedelta(hours=3)


def test_gone_shortens_the_grace_and_nothing_else() -> None:
    lock = held()
    record = StaleRecord("id-1", lock.fingerprint, FIRST, warned=True)
    gone = ("eni",)
    # Still a warning first: never a release on the run that first finds it stale, gone or not.
    first = judge(lock, now=FIRST, policy=POLICY, last_state_write=None, record=None, gone_by=gone)
    assert (first.verdict, first.evidence["gone_by"], first.gone_by) == (Verdict.STALE, ["eni"], gone)
    assert POLICY.grace_for(first.gone_by) == timedelta(minutes=1)
    later = FIRST + timedelta(minutes=2)
    released = judge(lock, now=later, policy=POLICY, last_state_write=None, record=record, gone_by=gone)
    assert (released.verdict, released.evidence["grace_s"]) == (Verdict.RELEASE, 60)
    unknown = judge(lock, now=later, policy=POLICY, last_state_write=None, record=record)
    assert (unknown.verdict, unknown.evidence["grace_s"]) == (Verdict.WAITING, 900)
    # Younger than its TTL, or alive by another check, gone changes nothing.
    fresh = judge(
        lock, now=CREATED + timedelta(hours=1), policy=POLICY, last_state_write=None, record=None, gone_by=gone
    )
    assert fresh.verdict is Verdict.FRESH
    alive = judge(
        lock, now=later, policy=POLICY, last_state_write=None, record=record, alive_by_check=True, gone_by=gone
    )
    assert alive.verdict is Verdict.ALIVE
    # A recent write of the state is proof of life whatever a check says.
    wrote = judge(lock, now=later, policy=POLICY, last_state_write=later, record=record, gone_by=gone)
    assert wrote.verdict is Verdict.ALIVE


@pytest.mark.parametrize(
    ("grace", "gone_grace", "wait"),
    [(15, None, 15), (15, 1, 1), (15, 0, 0), (1, 15, 1)],  # never longer than the grace itself
)
def test_the_grace_when_gone(grace: int, gone_grace: int | None, wait: int) -> None:
    policy = ReaperPolicy(
        grace=timedelta(minutes=grace), gone_grace=None if gone_grace is None else timedelta(minutes=gone_grace)
    )
    assert policy.grace_for(("eni",)) == timedelta(minutes=wait)
    assert policy.grace_for(()) == timedelta(minutes=grace)


REQUIRED = {
    "GUARDIAN_STATE_BUCKET": "b",
    "GUARDIAN_LOCK_TABLE": "t",
    "GUARDIAN_LOCK_TABLE_STREAM_ARN": "arn:aws:dynamodb:us-east-1:1:table/t/stream/s",
    "GUARDIAN_TABLE": "g",
}


def test_the_liveness_checks_are_off_unless_set() -> None:
    settings = Settings.from_env(REQUIRED)
    assert settings.liveness == LivenessChecks()
    assert settings.reaper.gone_grace is None


def test_the_liveness_settings() -> None:
    settings = Settings.from_env(
        {
            **REQUIRED,
            "GUARDIAN_LIVENESS_ENI": "true",
            "GUARDIAN_LIVENESS_ENI_REGION": "eu-west-1",
            "GUARDIAN_LIVENESS_GITHUB": "org:acme",
            "GUARDIAN_LIVENESS_GITHUB_TOKEN_SECRET": "ssm:/ci/github-token",
            "GUARDIAN_LIVENESS_GITHUB_API_URL": "https://github.example.com/api/v3/",
            "GUARDIAN_REAP_GONE_GRACE_S": "0",
        }
    )
    assert settings.liveness == LivenessChecks(
        True, "eu-west-1", "org:acme", "ssm:/ci/github-token", "https://github.example.com/api/v3"
    )
    assert settings.reaper.gone_grace == timedelta(0)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"GUARDIAN_LIVENESS_ENI_REGION": "eu-west-1"}, "GUARDIAN_LIVENESS_ENI_REGION"),  # without ENI
        ({"GUARDIAN_LIVENESS_ENI": "true", "GUARDIAN_LIVENESS_ENI_REGION": "Europe"}, "GUARDIAN_LIVENESS_ENI_REGION"),
        ({"GUARDIAN_LIVENESS_ENI": "maybe"}, "GUARDIAN_LIVENESS_ENI"),
        ({"GUARDIAN_LIVENESS_GITHUB": "acme/infra"}, "GUARDIAN_LIVENESS_GITHUB_TOKEN_SECRET"),
        ({"GUARDIAN_LIVENESS_GITHUB": "acme", "GUARDIAN_LIVENESS_GITHUB_TOKEN_SECRET": "ssm:/t"}, "GITHUB must"),
        ({"GUARDIAN_LIVENESS_GITHUB": "acme/../x", "GUARDIAN_LIVENESS_GITHUB_TOKEN_SECRET": "ssm:/t"}, "GITHUB must"),
        ({"GUARDIAN_LIVENESS_GITHUB": "team:acme", "GUARDIAN_LIVENESS_GITHUB_TOKEN_SECRET": "ssm:/t"}, "GITHUB must"),
        ({"GUARDIAN_LIVENESS_GITHUB_API_URL": "https://ghe.example.com/api/v3"}, "GUARDIAN_LIVENESS_GITHUB is not"),
        (
            {
                "GUARDIAN_LIVENESS_GITHUB": "org:acme",
                "GUARDIAN_LIVENESS_GITHUB_TOKEN_SECRET": "ssm:/t",
                "GUARDIAN_LIVENESS_GITHUB_API_URL": "http://ghe.example.com/api/v3",
            },
            "GUARDIAN_LIVENESS_GITHUB_API_URL",
        ),
        ({"GUARDIAN_REAP_GONE_GRACE_S": "-1"}, "GUARDIAN_REAP_GONE_GRACE_S"),
    ],
)
def test_a_bad_liveness_setting_fails_fast_naming_it(env: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        Settings.from_env({**REQUIRED, **env})
