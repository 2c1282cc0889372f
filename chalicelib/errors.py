"""The guardian's error hierarchy: every error raised on purpose derives from `GuardianError`."""

from __future__ import annotations


class GuardianError(Exception):
    """Base class of every error the guardian raises on purpose."""


class SettingsError(GuardianError):
    """A setting is missing or invalid."""


class NotAStateError(GuardianError):
    """An object is not a Terraform or OpenTofu state."""


class StateTooLargeError(NotAStateError):
    """A state object is larger than the configured maximum."""


class CorruptIndexError(GuardianError):
    """A stored state index cannot be decoded: it is ignored, and the state read instead."""


class ObjectNotFoundError(GuardianError):
    """An S3 object or object version does not exist."""


class TransientAwsError(GuardianError):
    """An AWS call failed in a way that a retry may fix (throttling, 5xx, network)."""


class AwsRequestError(GuardianError):
    """An AWS call was refused for a reason a retry will not fix (permissions, bad request)."""


class ChannelDeliveryError(GuardianError):
    """One or more notification channels failed to deliver."""


class MalformedEventError(GuardianError):
    """An event record lacks a field that every record of its source has."""


class InvalidRequestError(GuardianError):
    """An API request is malformed or asks for something impossible."""


class NotAllowedError(GuardianError):
    """The caller may not take this action, or not on this key; `rule` names the setting or rule that refused."""

    def __init__(self, message: str, rule: str | None = None) -> None:
        super().__init__(message)
        self.rule = rule


class StateLockedError(GuardianError):
    """The state is locked by someone else; `holder` says by whom."""

    def __init__(self, message: str, holder: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.holder = holder


class LineageChangeError(GuardianError):
    """A rollback would change the state's lineage and that was not allowed."""


class LostRaceError(GuardianError):
    """Someone else changed the state or its lock while the guardian was working on it."""


class IdempotencyConflictError(GuardianError):
    """An `Idempotency-Key` was reused for another request, or its first request still runs."""


# The one table from error to HTTP status; the API never picks a status from a message.
HTTP_STATUS: dict[type[GuardianError], tuple[int, str]] = {
    InvalidRequestError: (400, "invalid_request"),
    NotAllowedError: (403, "not_allowed"),
    ObjectNotFoundError: (404, "not_found"),
    StateLockedError: (409, "locked"),
    LineageChangeError: (409, "lineage_change"),
    LostRaceError: (409, "lost_race"),
    IdempotencyConflictError: (409, "idempotency_conflict"),
    StateTooLargeError: (413, "too_large"),
    NotAStateError: (422, "not_a_state"),
    MalformedEventError: (422, "malformed"),
    TransientAwsError: (503, "try_again"),
    AwsRequestError: (502, "aws_refused"),
    ChannelDeliveryError: (502, "delivery_failed"),
}


def http_status(error: GuardianError) -> tuple[int, str]:
    """The status code and error code for an error: the entry of its nearest class, else 500."""
    for cls in type(error).__mro__:
        if cls in HTTP_STATUS:
            return HTTP_STATUS[cls]
    return 500, "internal"
