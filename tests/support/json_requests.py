"""The envelope every JSON webhook the local receivers stand in for checks first: the content type, the size and a
JSON object."""

from __future__ import annotations

import json
from typing import Any


def json_object_problems(content_type: str, body: bytes, max_bytes: int) -> tuple[list[str], dict[str, Any] | None]:
    """How the request breaks the envelope (`[]` if it does not), and its JSON object when it has one."""
    problems = []
    if not content_type.startswith("application/json"):
        problems.append(f"Content-Type {content_type!r} is not application/json")
    if len(body) > max_bytes:
        return [*problems, f"body of {len(body)} bytes is over {max_bytes}"], None
    try:
        parsed = json.loads(body)
    except ValueError:
        return [*problems, "not JSON"], None
    if not isinstance(parsed, dict):
        return [*problems, "not a JSON object"], None
    return problems, parsed
