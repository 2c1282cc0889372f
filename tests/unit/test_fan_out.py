"""Scheduled jobs per backend: inline while the backends fit one batch, else one invocation per batch; an
invocation's share runs every backend it names even when one fails, and then fails for Lambda to retry."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from chalicelib.services.fan_out import SHARE_DETAIL_TYPE, run_per_backend, share_event

SCHEDULE = {"version": "0", "id": "e", "detail-type": "Scheduled Event", "source": "aws.events", "account": "1",
            "time": "2026-11-30T12:00:00Z", "region": "eu-west-1", "resources": ["arn:rule"], "detail": {}}  # fmt: skip


class Dispatched:
    """What a fan-out was asked to start: the events it would send."""

    function = "tfstate-guardian-prod-reap_stale_locks"

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def dispatch(self, event: Mapping[str, Any], batches: list[list[str]]) -> None:
        self.events += [share_event(event, names) for names in batches]


def jobs(names: list[str], ran: list[str], failing: frozenset[str] = frozenset()) -> dict[str, Any]:
    def job(name: str) -> Any:
        def run() -> None:
            ran.append(name)
            if name in failing:
                raise RuntimeError(f"{name} is down")

        return run

    return {name: job(name) for name in names}


def test_backends_that_fit_one_batch_run_in_the_schedules_own_invocation() -> None:
    ran: list[str] = []
    fan_out = Dispatched()
    run_per_backend("reap", SCHEDULE, jobs(["a", "b"], ran), batch=2, fan_out=lambda: fan_out)
    assert ran == ["a", "b"] and fan_out.events == []


def test_more_backends_than_a_batch_each_batch_its_own_invocation() -> None:
    ran: list[str] = []
    fan_out = Dispatched()
    run_per_backend("reap", SCHEDULE, jobs(["a", "b", "c"], ran), batch=2, fan_out=lambda: fan_out)
    assert ran == []  # the schedule's invocation only hands out the work
    assert [event["detail"] for event in fan_out.events] == [{"backends": ["a", "b"]}, {"backends": ["c"]}]
    # Each share is still an EventBridge-shaped event (Chalice's scheduled handler reads its fields).
    assert all(e["detail-type"] == SHARE_DETAIL_TYPE and e["source"] == "aws.events" for e in fan_out.events)
    ran.clear()
    for event in fan_out.events:
        run_per_backend("reap", event, jobs(["a", "b", "c"], ran), batch=2, fan_out=lambda: fan_out)
    assert ran == ["a", "b", "c"] and len(fan_out.events) == 2  # a share never fans out again


def test_a_failing_backend_does_not_stop_the_others_and_fails_the_invocation() -> None:
    ran: list[str] = []
    share = share_event(SCHEDULE, ["a", "b", "c"])
    with pytest.raises(RuntimeError, match="failed for backends b"):
        run_per_backend("reap", share, jobs(["a", "b", "c"], ran, frozenset({"b"})), batch=1, fan_out=Dispatched)
    assert ran == ["a", "b", "c"]


def test_a_share_naming_a_backend_no_longer_configured_skips_it() -> None:
    ran: list[str] = []
    run_per_backend("reap", share_event(SCHEDULE, ["gone", "a"]), jobs(["a"], ran), batch=1, fan_out=Dispatched)
    assert ran == ["a"]


def test_a_share_that_is_not_a_list_of_names_is_refused() -> None:
    with pytest.raises(ValueError, match="list of backend names"):
        run_per_backend("reap", {**SCHEDULE, "detail": {"backends": "a"}}, jobs(["a"], []), batch=1,
                        fan_out=Dispatched)  # fmt: skip
