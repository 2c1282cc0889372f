"""Terraform's digest check: the `-md5` item must equal the MD5 of the state's bytes, or every client fails."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class DigestSuspect:
    """A state whose current bytes did not match its digest when last looked at."""

    state_path: str
    version_id: str
    first_seen: datetime

    def due(self, now: datetime, grace: timedelta) -> bool:
        """Whether the mismatch has outlived Terraform's own write window and deserves another look."""
        return now - self.first_seen >= grace


@dataclass(frozen=True)
class DigestIntent:
    """A digest about to be written for bytes about to be put: if the writer dies between the two writes, the
    digest check finishes the second, so that Terraform does not fail on a digest nobody will fix."""

    state_path: str
    digest: str
    recorded_at: datetime

    def due(self, now: datetime, grace: timedelta) -> bool:
        """Whether its writer had time enough to finish by itself."""
        return now - self.recorded_at >= grace


def digest_matches(stored: str | None, calculated: str) -> bool:
    """No digest item (lockfile-only backends) means there is nothing to match."""
    return stored is None or stored.lower() == calculated.lower()
