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
