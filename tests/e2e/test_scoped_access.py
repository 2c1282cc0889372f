"""Scopes against real Terraform locks: a caller's reap never touches or mentions another team's lock, the
operator's dry run is a ceiling, and a read-only caller is refused every write while Terraform holds its lock."""

from __future__ import annotations

import json
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from local_stack.backend_blocks import backend_block_legacy, backend_block_modern
from local_stack.emulator import free_port
from local_stack.stack import LocalStack
from tests.e2e.conftest import configuration
from tests.integration.test_access import ACCOUNT, DEPLOYER, READER, RULES, call, held
from tests.support.terraform import Terraform, TerraformDir

TEAM_A = "team-a/app/terraform.tfstate"
TEAM_B = "team-b/app/terraform.tfstate"


@pytest.fixture
def api(stack_with: Any, monkeypatch: pytest.MonkeyPatch) -> LocalStack:
    env = {
        "GUARDIAN_API_CALLERS": json.dumps(RULES),
        "GUARDIAN_REAP_DRY_RUN": "true",
        "GUARDIAN_REAP_TTL_S": "0",  # every lock is past its TTL at once
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return stack_with(api_port=free_port(), extra_env=env)  # type: ignore[no-any-return]


def directory(terraform: Terraform, api: LocalStack, path: Path, key: str) -> TerraformDir:
    assert api.resources is not None
    block = backend_block_modern if terraform.modern else backend_block_legacy
    tf = TerraformDir(terraform, path)
    tf.write("backend.tf", block(api.endpoint, api.resources, key=key))
    tf.write("main.tf", configuration(terraform))
    tf.init()
    return tf


def test_a_scoped_reap_leaves_another_teams_real_lock_held_and_unmentioned(
    aws, terraform: Terraform, api: LocalStack, tmp_path: Path
) -> None:
    team_a = directory(terraform, api, tmp_path / "a", TEAM_A)
    team_b = directory(terraform, api, tmp_path / "b", TEAM_B)
    team_a.apply()
    team_b.apply()
    with ExitStack() as locks:
        locks.enter_context(team_a.holding_lock("-var", "v=a", answer="no"))
        locks.enter_context(team_b.holding_lock("-var", "v=b", answer="no"))
        api.pump()

        status, body = call(api, "POST", "/locks/reap", act_as=DEPLOYER, body={"dry_run": False})
        assert status == 200 and body["dry_run"] is True and body["dry_run_by"] == "GUARDIAN_REAP_DRY_RUN"
        assert {item["key"] for item in body["locks"]} == {TEAM_A}
        assert all(item["action"].startswith("would-") or item["action"] == "none" for item in body["locks"])
        assert TEAM_B not in json.dumps(body)
        assert held(aws, api, TEAM_A) and held(aws, api, TEAM_B)

        status, body = call(api, "GET", "/locks", act_as=READER)
        assert status == 200 and {item["key"] for item in body["locks"]} == {TEAM_A}

        # Every write route, while a real Terraform run holds the lock: refused for the read-only caller.
        lock_id = body["locks"][0]["lock"]["id"]
        for method, path, request in [
            ("POST", "/rollback", {"key": TEAM_A, "serial": 1}),
            ("POST", f"/states/digest?key={TEAM_A}", None),
            ("DELETE", f"/locks?key={TEAM_A}&lock_id={lock_id}", None),
            ("POST", "/locks/reap", {"dry_run": False}),
        ]:
            status, refused = call(api, method, path, act_as=READER, body=request)
            assert (status, refused["error"]) == (403, "not_allowed"), path
            assert refused["rule"] == f"GUARDIAN_API_CALLERS[1] (arn:aws:iam::{ACCOUNT}:role/team-a-readers)"
        assert held(aws, api, TEAM_A)
