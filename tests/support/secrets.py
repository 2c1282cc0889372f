"""Secret strings planted in test states: none may ever appear in a notification, a log line or a metric."""

from __future__ import annotations

from pathlib import Path

CORPUS = Path(__file__).resolve().parent.parent / "events" / "secrets"

PLANTED = (
    "s3cr3t",  # the sensitive output of a real Terraform 1.11 capture
    "s3cr3t-planted",  # the generator's default
    "planted-secret-value",
    "PLANTED-OUTPUT-SENSITIVE-6c1e",
    "PLANTED-OUTPUT-PLAIN-93af",
    "PLANTED-OUTPUT-NESTED-27d0",
    "PLANTED-ATTRIBUTE-PASSWORD-41b7",
    "PLANTED-ATTRIBUTE-TAG-0e55",
    "PLANTED-ATTRIBUTE-SECRET-STRING-d8a2",
    "UExBTlRFRC1QUklWQVRFLWJhc2U2NA==",
)


def leaks(text: str) -> list[str]:
    return [secret for secret in PLANTED if secret in text]
