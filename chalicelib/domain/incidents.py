"""Which paging incident a notification opens or resolves: one incident per state and kind of breakage.

A critical notification opens (triggers) an incident; the notification that shows the breakage fixed resolves it.
The incident's key must be derivable from both, and the notification that fixes a state knows the state but not
the id of the notification that broke it. So the key is built from the state and the family of the breakage:

- `state`: the state itself is wrong or gone (`state.deleted`, `state.unreadable`, a critical `state.changed`);
- `digest`: Terraform's digest disagrees with the bytes (`digest.mismatch`).

`state.restored` (a rollback writes the bytes and their digest) resolves both families of its state;
`digest.repaired` resolves the `digest` family. A second breakage of the same state and family while its incident
is open joins that incident rather than opening another; once resolved, the next one opens a new incident. The key
is `tfstate-guardian/<family>/<first 32 hex digits of SHA-256 of "<bucket>/<key>">`: fixed length (PagerDuty takes
255 characters), and no text from outside in it. The opening notification's own id travels with the incident.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

STATE, DIGEST = "state", "digest"
_OPENS = {"state.deleted": STATE, "state.unreadable": STATE, "state.changed": STATE, "digest.mismatch": DIGEST}
_RESOLVES = {"state.restored": (STATE, DIGEST), "digest.repaired": (DIGEST,)}


@dataclass(frozen=True)
class IncidentAction:
    """Trigger or resolve the incident `dedup_key`."""

    action: str  # "trigger" or "resolve"
    dedup_key: str


def incident_key(bucket: str, key: str, family: str) -> str:
    """The incident of the state `bucket`/`key` for one family of breakage."""
    digest = hashlib.sha256(f"{bucket}/{key}".encode()).hexdigest()[:32]
    return f"tfstate-guardian/{family}/{digest}"


def incident_actions(data: Mapping[str, Any]) -> list[IncidentAction]:
    """What a notification (the contract's dict) does to incidents: [] for most, which page nobody."""
    kind, bucket, key = str(data["type"]), str(data["bucket"]), str(data["key"])
    if data.get("severity") == "critical":
        # A critical type not listed here opens an incident of its own family, which only a person resolves.
        return [IncidentAction("trigger", incident_key(bucket, key, _OPENS.get(kind, kind)))]
    return [IncidentAction("resolve", incident_key(bucket, key, family)) for family in _RESOLVES.get(kind, ())]
