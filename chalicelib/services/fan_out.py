"""Scheduled jobs per backend: a schedule's invocation does the work itself when the backends fit one batch, and
otherwise hands each batch to an invocation of its own, so that no invocation's work grows with the backends."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from chalicelib.observability import count, logger

SHARE_DETAIL_TYPE = "tfstate-guardian backends share"


class FanOut(Protocol):
    """Starts one invocation of a function per batch of backends, without waiting for it."""

    function: str

    def dispatch(self, event: Mapping[str, Any], batches: list[list[str]]) -> None: ...


def share_event(event: Mapping[str, Any], names: list[str]) -> dict[str, Any]:
    """The schedule's event for one invocation's share: its `detail` names the backends (`{"backends": [...]}`)."""
    return {**event, "detail-type": SHARE_DETAIL_TYPE, "detail": {"backends": names}}


def run_per_backend(
    job: str,
    event: Mapping[str, Any],
    work: Mapping[str, Callable[[], object]],
    *,
    batch: int,
    fan_out: Callable[[], FanOut],
) -> None:
    """Run `job` on the backends the event's `detail` lists (an invocation's share), or on all of them (the
    schedule's own event).

    Every backend of the share is tried; if any failed, the invocation fails after the others ran, so that Lambda
    retries it (each job is idempotent).
    """
    detail = event.get("detail")
    names = detail.get("backends") if isinstance(detail, dict) else None
    if names is None:
        every = list(work)
        if len(every) > batch:
            batches = [every[start : start + batch] for start in range(0, len(every), batch)]
            fan_out().dispatch(event, batches)
            logger.info("scheduled job fanned out", job=job, backends=len(every), invocations=len(batches))
            return
        share = every
    elif isinstance(names, list) and all(isinstance(name, str) for name in names):
        share = list(names)
    else:
        raise ValueError(f'{job}: "backends" must be a list of backend names')
    failed: list[str] = []
    for name in share:
        run = work.get(name)
        if run is None:  # the deployment changed since the batch was sent
            logger.warning("scheduled job for an unknown backend skipped", job=job, backend=name)
            count("EventsSkipped")
            continue
        try:
            run()
        except Exception:  # noqa: BLE001 - the other backends still run; this invocation fails below
            logger.exception("scheduled job failed for a backend", job=job, backend=name)
            failed.append(name)
    if failed:
        raise RuntimeError(f"{job} failed for backends {', '.join(failed)}")
