"""Loading the captured events and states in tests/events."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

EVENTS = Path(__file__).resolve().parent.parent / "events"


def load_event(relative: str) -> Any:
    return json.loads((EVENTS / relative).read_text())


def state_bytes(name: str) -> bytes:
    return (EVENTS / "states" / name).read_bytes()


def captured_stream(name: str, table_arn: str | None = None) -> dict[str, Any]:
    """A captured stream scenario as the Lambda event that would carry it."""
    records = load_event(f"stream/{name}")
    if table_arn is not None:
        records = [{**record, "eventSourceARN": table_arn} for record in records]
    return {"Records": records}
