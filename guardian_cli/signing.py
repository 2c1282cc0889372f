"""SigV4 for the guardian's API (service `execute-api`), with credentials and region resolved as the AWS CLI
resolves them: the one signer of `tfguardian`'s calls and of the calls `tfguardian ui` forwards."""

from __future__ import annotations

from typing import Any


class SigningError(Exception):
    """No AWS credentials, an unknown profile, no region, or credentials that cannot sign (an expired login)."""


class Signer:
    """Signs requests with one set of credentials for one region."""

    def __init__(self, credentials: Any, region: str) -> None:
        self._credentials = credentials
        self.region = region

    @classmethod
    def resolve(cls, profile: str | None, region: str | None, *, default_region: str | None = None) -> Signer:
        """From `profile` (or $AWS_PROFILE, the default chain) and `region` (or the profile's, or $AWS_REGION, else
        `default_region`)."""
        try:
            import botocore.exceptions  # noqa: PLC0415 - only a deployed API needs credentials
            import botocore.session  # noqa: PLC0415
        except ImportError:
            raise SigningError("signing for a deployed API needs botocore: pip install botocore") from None
        try:
            session = botocore.session.Session(profile=profile or None)
            credentials = session.get_credentials()
            chosen = region or session.get_config_variable("region") or default_region
            if credentials is not None:
                credentials.get_frozen_credentials()  # an expired SSO login or a failing process fails here
        except botocore.exceptions.ProfileNotFound as exc:
            raise SigningError(
                f"the AWS profile {exc.kwargs.get('profile')!r} is not in your AWS config: "
                "pick another with --profile or AWS_PROFILE (`aws configure list-profiles` lists them)"
            ) from None
        except botocore.exceptions.BotoCoreError as exc:
            raise SigningError(f"cannot load your AWS credentials: {exc}") from None
        if credentials is None:
            raise SigningError(
                "no AWS credentials found to sign the API calls with: run `aws configure` or `aws sso login`, "
                "or pass --profile"
            )
        if not chosen:
            raise SigningError("no AWS region to sign for: pass --region, set AWS_REGION, or give the profile one")
        return cls(credentials, chosen)

    def headers(self, method: str, url: str, body: bytes | None, headers: dict[str, str]) -> dict[str, str]:
        """`headers` with the request's SigV4 signature added."""
        from botocore.auth import SigV4Auth  # noqa: PLC0415
        from botocore.awsrequest import AWSRequest  # noqa: PLC0415
        from botocore.exceptions import BotoCoreError  # noqa: PLC0415

        request = AWSRequest(method=method, url=url, data=body, headers=headers)
        try:
            # Frozen: a refresh between reading the key and the secret cannot mix two credentials.
            SigV4Auth(self._credentials.get_frozen_credentials(), "execute-api", self.region).add_auth(request)
        except BotoCoreError as exc:  # an SSO login that expired since, a credential_process that fails now
            raise SigningError(f"cannot sign the request with your AWS credentials: {exc}") from None
        return dict(request.headers.items())
