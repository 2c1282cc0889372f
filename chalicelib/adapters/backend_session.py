"""The boto3 session for a backend's bucket and lock table: its region, and its account's role if it names one."""

from __future__ import annotations

from typing import TYPE_CHECKING

import boto3
import botocore.session
from botocore.credentials import AssumeRoleCredentialFetcher, Credentials, DeferredRefreshableCredentials

if TYPE_CHECKING:
    from boto3.session import Session

SESSION_NAME = "tfstate-guardian"


def backend_session(base: Session, *, role_arn: str | None, region: str | None) -> Session:
    """`base` itself when the backend is in the guardian's own account and region; else a session in the backend's
    region whose credentials come from assuming `role_arn` with `base`'s, refreshed before they expire."""
    if role_arn is None and region in (None, base.region_name):
        return base
    core = botocore.session.Session()
    credentials: Credentials | None
    if role_arn is not None:
        fetcher = AssumeRoleCredentialFetcher(
            client_creator=base._session.create_client,
            source_credentials=base.get_credentials(),
            role_arn=role_arn,
            extra_args={"RoleSessionName": SESSION_NAME},
        )
        credentials = DeferredRefreshableCredentials(method="assume-role", refresh_using=fetcher.fetch_credentials)
    else:
        credentials = base.get_credentials()
    # As botocore's own assume-role provider does: a session whose credentials are these, refreshed as they expire.
    setattr(core, "_credentials", credentials)  # noqa: B010
    return boto3.session.Session(botocore_session=core, region_name=region or base.region_name)
