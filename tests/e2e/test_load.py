"""Load: real applies at once while the guardian delivers events and reaps with a TTL and grace of zero."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench.load import LOAD_ENV, run_load
from tests.support.terraform import Terraform, find_terraform_1_11

WORKSPACES, CONCURRENCY, APPLIES = 8, 4, 2


@pytest.fixture
def terraform_1_11() -> Terraform:
    found = find_terraform_1_11()
    if found is None:
        pytest.skip("Terraform 1.11 is not on PATH (or GUARDIAN_TERRAFORM_1_11)")
    return found


def test_every_write_is_notified_once_and_no_live_lock_is_released_under_load(
    terraform_1_11: Terraform, stack_with: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in LOAD_ENV.items():
        monkeypatch.setenv(name, value)  # the stack exports its settings: undo them after this test
    local = stack_with(extra_env=LOAD_ENV)
    result = run_load(WORKSPACES, CONCURRENCY, APPLIES, stack=local, terraform=terraform_1_11, work_dir=tmp_path)
    print(result.summary())  # the figures, for whoever runs it with -s; timings vary too much to assert on
    assert result.problems() == []
    assert result.applies == WORKSPACES * APPLIES
    # Each workspace's state was written once before the load (a seed apply or `workspace new`), then per apply.
    assert result.state_versions == WORKSPACES * (1 + APPLIES) == len(result.latencies_s)
    # The reaper ran while the applies held their locks, and judged each live lock it found alive (or fresh:
    # taken after the run began, so younger than even a zero TTL).
    assert result.verdicts.get("alive", 0) > 0, result.verdicts
    assert set(result.verdicts) <= {"alive", "fresh"}, result.verdicts
