"""Every failure `tfguardian` reports: one hierarchy, each with the word a script reads in `--json` (`error`)."""

from __future__ import annotations

from typing import Any


class CliError(Exception):
    """Base class of every failure `tfguardian` reports, always as a message and never with a traceback."""

    error = "failed"  # the `error` of the JSON printed on stderr under `--json`

    def __init__(self, message: str, body: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.body = body  # the API's own error answer, printed as it is under `--json`

    def as_json(self) -> dict[str, Any]:
        return self.body if self.body is not None else {"error": self.error, "message": str(self)}


class DeclinedError(CliError):
    """The confirmation was answered no, or could not be asked: nothing was changed."""

    error = "declined"


class RefusedError(CliError):
    """The guardian refused the request (an HTTP 4xx other than 404)."""

    error = "refused"


class NotFoundError(CliError):
    """No such state, version or serial (an HTTP 404, or nothing listed matches)."""

    error = "not_found"


class UnreachableError(CliError):
    """The API cannot be reached, or the request cannot be signed (network, TLS, AWS credentials or profile)."""

    error = "unreachable"


class FailedError(CliError):
    """The API failed (an HTTP 5xx), redirected, or answered with something that is not its JSON."""

    error = "failed"
