"""A tiny Chalice app with a scheduled job, to check that the local stack runs scheduled jobs."""

from __future__ import annotations

from typing import Any

from chalice.app import Chalice, Rate

app = Chalice(app_name="scheduled-probe", configure_logs=False)
calls: list[dict[str, Any]] = []


@app.schedule(Rate(5, unit=Rate.MINUTES))
def every_five_minutes(event: Any) -> None:
    calls.append(event.to_dict())
