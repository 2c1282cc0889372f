"""`tfguardian` against the local stack's REST API, as a person would run it."""

from __future__ import annotations

import json

import pytest

from local_stack.emulator import free_port
from local_stack.stack import LocalStack
from tests.support.cli import tfguardian
from tests.support.events import state_bytes

KEY = "cli/terraform.tfstate"


@pytest.fixture
def api(stack_with) -> LocalStack:
    return stack_with(api_port=free_port())  # type: ignore[no-any-return]


def test_a_person_lists_looks_and_rolls_back(aws, api: LocalStack) -> None:
    assert api.resources is not None
    s3 = aws.client("s3")
    first = s3.put_object(
        Bucket=api.resources.state_bucket, Key=KEY, Body=state_bytes("state_tf1.11.4_first_apply_serial1.json")
    )["VersionId"]
    s3.put_object(
        Bucket=api.resources.state_bucket, Key=KEY, Body=state_bytes("state_tf1.11.4_second_apply_serial2.json")
    )
    api.pump()

    states = tfguardian(api, "states")
    assert states.returncode == 0 and KEY in states.stdout and "SERIAL" in states.stdout
    versions = json.loads(tfguardian(api, "--json", "versions", KEY).stdout)
    assert [v["serial"] for v in versions["versions"]] == [2, 1]

    declined = tfguardian(api, "rollback", KEY, "--version-id", first, stdin="n\n")
    assert declined.returncode == 1 and "serial 2 → 3" in declined.stdout and "~ v" in declined.stdout
    assert len(json.loads(tfguardian(api, "--json", "versions", KEY).stdout)["versions"]) == 2  # nothing changed

    done = tfguardian(api, "rollback", KEY, "--serial", "1", "--yes", "--reason", "from the cli")
    assert done.returncode == 0, done.stderr
    assert "rolled back" in done.stdout
    api.pump()  # the rollback's write, recorded as its event reaches the guardian
    assert json.loads(tfguardian(api, "--json", "versions", KEY).stdout)["versions"][0]["serial"] == 3


def test_refusals_exit_non_zero(aws, api: LocalStack) -> None:
    refused = tfguardian(api, "unlock", KEY, "no-such-lock")
    assert refused.returncode == 1 and "refused" in refused.stderr
    missing = tfguardian(api, "--json", "rollback", "nothing.tfstate", "--serial", "1", "--yes")
    assert missing.returncode == 1 and json.loads(missing.stderr)["error"] == "not_found"
