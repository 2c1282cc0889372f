"""A backend in another account or region is reached with its role's credentials, in its region; one in the
guardian's own account and region shares the guardian's clients."""

from __future__ import annotations

import boto3

from chalicelib.adapters.backend_session import backend_session
from chalicelib.composition import Guardian
from chalicelib.settings import backend_settings

ROLE = "arn:aws:iam::210987654321:role/tfstate-guardian-access"


def identity_of(session: boto3.session.Session) -> str:
    """Who the session's credentials are, asked with a client of the test's own (the guardian never asks)."""
    credentials = session.get_credentials()
    assert credentials is not None
    frozen = credentials.get_frozen_credentials()
    sts = boto3.client("sts", region_name="us-east-1", aws_access_key_id=frozen.access_key,
                       aws_secret_access_key=frozen.secret_key, aws_session_token=frozen.token)  # fmt: skip
    return str(sts.get_caller_identity()["Arn"])


def test_a_backend_with_a_role_uses_credentials_of_that_role_in_its_region(aws: boto3.session.Session) -> None:
    session = backend_session(aws, role_arn=ROLE, region="eu-west-1")
    assert session is not aws and session.region_name == "eu-west-1"
    credentials, own = session.get_credentials(), aws.get_credentials()
    assert credentials is not None and own is not None
    assert credentials.get_frozen_credentials().access_key != own.access_key  # assumed: STS's
    assert identity_of(session).startswith("arn:aws:sts::210987654321:assumed-role/tfstate-guardian-access/")


def test_a_backend_in_the_guardians_own_account_and_region_shares_its_session(aws: boto3.session.Session) -> None:
    assert backend_session(aws, role_arn=None, region=None) is aws
    assert backend_session(aws, role_arn=None, region=aws.region_name) is aws
    elsewhere = backend_session(aws, role_arn=None, region="ap-southeast-2")
    assert elsewhere.region_name == "ap-southeast-2" and elsewhere.get_credentials() is not None


def test_each_backend_reaches_its_bucket_through_its_own_session(aws: boto3.session.Session) -> None:
    for bucket in ("tfg-session-own", "tfg-session-other"):
        aws.client("s3").create_bucket(Bucket=bucket)
    entries = (
        '[{"name": "own", "bucket": "tfg-session-own"},'
        f' {{"name": "other", "bucket": "tfg-session-other", "role_arn": "{ROLE}"}}]'
    )
    guardian = Guardian.of(backend_settings({"GUARDIAN_TABLE": "guardian", "GUARDIAN_BACKENDS": entries}))
    own, other = guardian.backends["own"], guardian.backends["other"]
    assert own.backend_s3 is own.s3  # one client for the guardian's own account
    assert other.backend_s3 is not other.s3 and other.s3 is own.s3  # the guardian's own resources stay shared
    other.backend_s3.put_object(Bucket="tfg-session-other", Key="k", Body=b"{}")
    assert aws.client("s3").get_object(Bucket="tfg-session-other", Key="k")["Body"].read() == b"{}"
    assert ":assumed-role/tfstate-guardian-access/tfstate-guardian" in identity_of(other._backend_session)
