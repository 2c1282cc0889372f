"""The deploy commands' errors: each message is the one line the operator reads, with what to do."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from botocore.exceptions import BotoCoreError, ClientError


class DeployError(Exception):
    """A deploy command cannot go on."""


class StageConfigError(DeployError):
    """The stage's settings in `.chalice/config.json` are missing or invalid."""


class RefusedError(DeployError):
    """The account is in a state that the command must not change by itself."""


class NotDeployedError(DeployError):
    """What the command hardens has not been deployed yet."""


class AwsCallError(DeployError):
    """An AWS call failed (permissions, throttling, network, an unexpected answer)."""


def error_code(exc: ClientError) -> str:
    """The AWS error code of a failed call."""
    return str(exc.response.get("Error", {}).get("Code", ""))


def translated(exc: ClientError | BotoCoreError, what: str) -> AwsCallError:
    """An `AwsCallError` saying what could not be done, and AWS's reason."""
    if isinstance(exc, ClientError):
        message = exc.response.get("Error", {}).get("Message", "")
        return AwsCallError(f"could not {what}: {error_code(exc)}: {message}".rstrip(": "))
    return AwsCallError(f"could not {what}: {exc}")


@contextmanager
def aws_call(what: str) -> Iterator[None]:
    """Turn a failed AWS call into an `AwsCallError` saying what could not be done, and why."""
    try:
        yield
    except (ClientError, BotoCoreError) as exc:
        raise translated(exc, what) from exc
