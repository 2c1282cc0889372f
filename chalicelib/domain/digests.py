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


def digest_matches(stored: str | None, calculated: str) -> bool:
    """No digest item (lockfile-only backends) means there is nothing to match."""
    return stored is None or stored.lower() == calculated.lower()
