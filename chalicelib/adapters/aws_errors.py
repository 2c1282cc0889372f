"""Translation of botocore errors into the guardian's own error types."""

from __future__ import annotations

from collections.abc import Callable

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.errors import AwsRequestError, GuardianError, ObjectNotFoundError, TransientAwsError

# S3 answers a read of a delete marker's version id with 405 MethodNotAllowed: there is nothing to read there.
_NOT_FOUND_CODES = frozenset(
    {"NoSuchKey", "NoSuchVersion", "404", "NotFound", "ResourceNotFoundException", "MethodNotAllowed"}
)
_TRANSIENT_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestLimitExceeded",
        "SlowDown",
        "ProvisionedThroughputExceededException",
        "RequestThrottled",
        "InternalError",
        "InternalFailure",
        "ServiceUnavailable",
        "RequestTimeout",
    }
)


def translate(exc: ClientError | BotoCoreError, action: str) -> GuardianError:
    """The guardian error for a failed AWS call; `action` says what was attempted, for the message."""
    if not isinstance(exc, ClientError):
        return TransientAwsError(f"{action}: {exc}")
    code = str(exc.response.get("Error", {}).get("Code", ""))
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    message = f"{action}: {code or status}"
    if code in _NOT_FOUND_CODES or status == 404:
        return ObjectNotFoundError(message)
    if code in _TRANSIENT_CODES or status >= 500 or status == 429:
        return TransientAwsError(message)
    return AwsRequestError(message)


def conditional_write(write: Callable[[], object], action: str) -> bool:
    """Make a conditional write: True if it was made, False if its condition did not hold."""
    try:
        write()
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
            return False
        raise translate(exc, action) from exc
    except BotoCoreError as exc:
        raise translate(exc, action) from exc
    return True
