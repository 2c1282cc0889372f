"""`tfguardian` against the local stack's REST API, as a person would run it."""

from __future__ import annotations

import json

import pytest

from local_stack.emulator import free_port
from local_stack.stack import LocalStack
from tests.support.cli import tfguardian
from tests.support.events import state_bytes

KEY = "cli/terraform.tfstate"
FIRST = "state_tf1.11.4_first_apply_serial1.json"
SECOND = "state_tf1.11.4_second_apply_serial2.json"


@pytest.fixture
def api(stack_with) -> LocalStack:
    return stack_with(api_port=free_port())  # type: ignore[no-any-return]


def two_versions(aws, api: LocalStack) -> tuple[str, str]:
    """Serials 1 and 2 of KEY, recorded by the guardian; their version ids."""
    assert api.resources is not None
    s3 = aws.client("s3")
    first = s3.put_object(Bucket=api.resources.state_bucket, Key=KEY, Body=state_bytes(FIRST))["VersionId"]
    second = s3.put_object(Bucket=api.resources.state_bucket, Key=KEY, Body=state_bytes(SECOND))["VersionId"]
    api.pump()
    return first, second


def test_a_person_lists_looks_and_rolls_back(aws, api: LocalStack) -> None:
    first, _ = two_versions(aws, api)

    states = tfguardian(api, "states")
    assert states.returncode == 0 and KEY in states.stdout and "SERIAL" in states.stdout
    versions = json.loads(tfguardian(api, "--json", "versions", KEY).stdout)
    assert [v["serial"] for v in versions["versions"]] == [2, 1]

    declined = tfguardian(api, "rollback", KEY, "--version-id", first, stdin="n\n")
    assert declined.returncode == 1 and "serial 2 → 3" in declined.stdout and "~ v" in declined.stdout
    assert f"restoring serial 1 (version {first})" in declined.stdout  # the target, by serial
    assert f"Roll {KEY} back to serial 1" in declined.stderr and "nothing changed" in declined.stderr
    assert len(json.loads(tfguardian(api, "--json", "versions", KEY).stdout)["versions"]) == 2  # nothing changed

    done = tfguardian(api, "rollback", KEY, "--serial", "1", "--yes", "--reason", "from the cli")
    assert done.returncode == 0, done.stderr
    assert f"rolled back {KEY}: restored serial 1 (version {first}) as new version" in done.stdout
    assert done.stdout.rstrip().endswith("serial 3")
    api.pump()  # the rollback's write, recorded as its event reaches the guardian
    assert json.loads(tfguardian(api, "--json", "versions", KEY).stdout)["versions"][0]["serial"] == 3


def test_the_guardians_own_lock_is_shown_as_the_guardians(aws, api: LocalStack) -> None:
    two_versions(aws, api)
    assert tfguardian(api, "rollback", KEY, "--serial", "1", "--yes").returncode == 0
    api.pump()
    acquired = [n["summary"] for n in notifications(api) if n["type"] == "lock.acquired"]
    assert acquired and all("(tfstate-guardian-rollback, tfstate-guardian 0.1.0)" in s for s in acquired), acquired
    assert not any("Terraform tfstate-guardian" in s for s in acquired)


def notifications(api: LocalStack) -> list[dict]:
    text = api.options.notify_file.read_text() if api.options.notify_file.exists() else ""
    return [json.loads(line) for line in text.splitlines()]


def test_diff_takes_serials_or_version_ids_and_heads_resources_and_outputs(aws, api: LocalStack) -> None:
    first, second = two_versions(aws, api)
    by_serial = tfguardian(api, "diff", KEY, "1", "2")
    by_id = tfguardian(api, "diff", KEY, first, second)
    mixed = tfguardian(api, "diff", KEY, first, "2", "--json")
    assert [run.returncode for run in (by_serial, by_id, mixed)] == [0, 0, 0], by_serial.stderr + by_id.stderr
    assert by_serial.stdout.split("\n", 1)[1] == by_id.stdout.split("\n", 1)[1]  # the same diff, under each heading
    assert f"version {first} (serial 1) → {second} (serial 2)" in by_serial.stdout
    lines = by_serial.stdout.splitlines()
    assert lines[1:] == [
        "Resources: 0 added, 1 changed, 0 removed",
        "  changed:",
        "    ~ terraform_data.probe",
        "Outputs: 0 added, 1 changed, 0 removed",
        "  changed:",
        "    ~ v",
    ]
    answer = json.loads(mixed.stdout)
    assert (answer["from"], answer["to"], answer["outputs"]["changed"]) == (first, second, ["v"])


def test_diff_names_the_argument_that_matches_no_version(aws, api: LocalStack) -> None:
    first, _ = two_versions(aws, api)
    no_serial = tfguardian(api, "diff", KEY, "1", "7")
    no_version = tfguardian(api, "diff", KEY, "not-a-version", first)
    no_state = tfguardian(api, "diff", "nothing/terraform.tfstate", "1", "2")
    assert [run.returncode for run in (no_serial, no_version, no_state)] == [4, 4, 4]
    assert f"not found: {KEY} has no version with serial 7 (TO)" in no_serial.stderr
    assert f"not found: {KEY} has no version not-a-version (FROM)" in no_version.stderr
    assert "not found: there is no state at nothing/terraform.tfstate" in no_state.stderr
    assert "NoSuchVersion" not in no_version.stderr
    for run in (no_serial, no_version, no_state):
        assert "Traceback" not in run.stderr and run.stdout == ""


@pytest.mark.parametrize(
    "command",
    [["states"], ["versions", KEY], ["history", KEY], ["events"], ["diff", KEY, "1", "2"], ["locks"]],
    ids=lambda command: command[0],
)
def test_json_before_or_after_the_command(aws, api: LocalStack, command: list[str]) -> None:
    two_versions(aws, api)
    before = tfguardian(api, "--json", *command)
    after = tfguardian(api, *command, "--json")
    assert before.returncode == after.returncode == 0, before.stderr + after.stderr
    assert json.loads(before.stdout) == json.loads(after.stdout)


def test_under_json_the_question_and_the_plan_go_to_stderr(aws, api: LocalStack) -> None:
    first, _ = two_versions(aws, api)
    asked = tfguardian(api, "--json", "rollback", KEY, "--serial", "1", stdin="y\n")
    assert asked.returncode == 0, asked.stderr
    answer = json.loads(asked.stdout)  # stdout is the answer and nothing else
    assert answer["from_version_id"] == first and answer["target_serial"] == 1 and answer["serial"]["after"] == 3
    assert f"Roll {KEY} back to serial 1" in asked.stderr and "restoring serial 1" in asked.stderr


def test_a_closed_stdin_is_a_clear_no(aws, api: LocalStack) -> None:
    two_versions(aws, api)
    for run in (
        tfguardian(api, "rollback", KEY, "--serial", "1", stdin=""),
        tfguardian(api, "rollback", KEY, "--serial", "1", "--json", stdin=""),
    ):
        assert run.returncode == 1
        assert "standard input is closed" in run.stderr and "--yes" in run.stderr
        assert "Traceback" not in run.stderr and "EOFError" not in run.stderr
    assert json.loads(run.stderr.splitlines()[-1])["error"] == "declined"
    assert len(json.loads(tfguardian(api, "--json", "versions", KEY).stdout)["versions"]) == 2


def test_tables_speak_words(aws, api: LocalStack) -> None:
    two_versions(aws, api)
    printed = "".join(
        run.stdout
        for run in (
            tfguardian(api, "states"),
            tfguardian(api, "versions", KEY),
            tfguardian(api, "history", KEY),
            tfguardian(api, "events", "--key", KEY),
        )
    )
    for word in ("True", "False", "None"):
        assert word not in printed
    versions = tfguardian(api, "versions", KEY).stdout.splitlines()
    assert "CURRENT" in versions[0] and "RECORDED" in versions[0]
    assert versions[1].split()[-2:] == ["yes", "yes"] and versions[2].split()[-2:] == ["no", "yes"]
    assert "—" in versions[2]  # the first version changed nothing before it: a dash, not None


def test_each_failure_has_its_exit_code(aws, api: LocalStack) -> None:
    two_versions(aws, api)
    not_locked = tfguardian(api, "unlock", KEY, "no-such-lock")
    assert not_locked.returncode == 4 and f"not found: {KEY} is not locked" in not_locked.stderr
    missing = tfguardian(api, "--json", "rollback", "nothing.tfstate", "--serial", "1", "--yes")
    assert missing.returncode == 4 and json.loads(missing.stderr)["error"] == "not_found"
    no_serial = tfguardian(api, "rollback", KEY, "--serial", "9", "--yes")
    assert no_serial.returncode == 4 and f"(--serial 9 of {KEY})" in no_serial.stderr
    invalid = tfguardian(api, "events", "--since", "yesterday")
    assert invalid.returncode == 3 and "refused:" in invalid.stderr and "since" in invalid.stderr
    usage = tfguardian(api, "rollback", KEY, "--serial", "one")
    assert usage.returncode == 2 and "argument --serial" in usage.stderr
    for run in (not_locked, missing, no_serial, invalid, usage):
        assert "Traceback" not in run.stderr


def test_a_held_lock_refuses_naming_its_holder(aws, api: LocalStack) -> None:
    first, _ = two_versions(aws, api)
    assert api.resources is not None
    info = {"ID": "0d6b1a52-1c1e-4c77-a6a3-1f0e0a9c1a01", "Operation": "OperationTypeApply", "Info": "",
            "Who": "alice@laptop", "Version": "1.11.4", "Created": "2026-11-26T11:00:00.123456789Z",
            "Path": f"{api.resources.state_bucket}/{KEY}"}  # fmt: skip
    aws.client("dynamodb").put_item(
        TableName=api.resources.lock_table,
        Item={"LockID": {"S": info["Path"]}, "Info": {"S": json.dumps(info, separators=(",", ":"))}},
    )
    locked = tfguardian(api, "rollback", KEY, "--version-id", first, "--yes")
    assert locked.returncode == 3, locked.stderr
    assert "refused:" in locked.stderr and "held by alice@laptop, OperationTypeApply" in locked.stderr
