"""Issue 12, point 11: text from outside lands escaped: in Slack mrkdwn, on the console, in the CLI's output."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from datetime import UTC, datetime

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters

from local_stack.emulator import free_port
from tests.support.events import state_bytes
from tests.support.receiver import receiver, slack_controls, slack_problems

HOSTILE_WHO = "<!channel> <@U0123ABCD> <https://evil.example/login|click here> & `rm -rf`@ci"
ESC_KEY = "cli/\x1b[2J\x1b]0;owned\x07\x9b31m/terraform.tfstate"
# XML 1.0 has no C0 controls, so S3 (and moto) cannot list a key with ESC without `EncodingType=url`: a state key
# here carries the C1 CSI, DEL and a bidi override, which it can; the lock table's keys carry ESC.
C1_KEY = "cli/\x9b2J\x7f\u202eevil/terraform.tfstate"
ESC_WHO = "evil\x1b[31m\x1b]8;;https://evil.example\x07click\x1b]8;;\x07@host\u202e"


def lock_info(bucket: str, key: str, who: str) -> str:
    created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "123Z"
    return json.dumps(
        {"ID": "0b7a5f1e-aaaa-bbbb-cccc-000000000001", "Operation": "OperationTypeApply", "Info": "", "Who": who,
         "Version": "1.11.4", "Created": created, "Path": f"{bucket}/{key}"},
        separators=(",", ":"),
    )  # fmt: skip


def put_lock(aws: boto3.session.Session, lock_table: str, bucket: str, key: str, who: str) -> None:
    aws.client("dynamodb").put_item(
        TableName=lock_table,
        Item={"LockID": {"S": f"{bucket}/{key}"}, "Info": {"S": lock_info(bucket, key, who)}},
    )


@pytest.fixture(autouse=True)
def fresh_parameters() -> None:
    parameters.clear_caches()  # type: ignore[no-untyped-call]


def test_a_who_that_would_ping_everyone_reaches_slack_escaped(aws, stack_with) -> None:
    with receiver(kind="slack") as slack:
        aws.client("ssm").put_parameter(Name="/guardian/slack", Value=slack.url, Type="SecureString")
        local = stack_with(extra_env={"GUARDIAN_SLACK_WEBHOOK_SECRET": "ssm:/guardian/slack"})
        key = "team`a`/<b>&c/terraform.tfstate"
        put_lock(aws, local.resources.lock_table, local.resources.state_bucket, key, HOSTILE_WHO)
        local.pump()
    assert slack.refused == []
    (request,) = slack.requests
    message = json.loads(request.body)
    assert slack_problems(message) == []
    assert slack_controls(message) == []  # no mention, no channel ping, no link
    assert "&lt;!channel&gt; &lt;@U0123ABCD&gt; &lt;https://evil.example/login|click here&gt; &amp;" in message["text"]
    (facts,) = [block["fields"] for block in message["blocks"] if block.get("block_id") == "facts"]
    (location,) = [fact["text"] for fact in facts if fact["text"].startswith("*State*")]  # after `Backend`
    assert "`s3://" in location and location.count("`") == 2  # the key's backticks cannot close the code span
    assert "&lt;b&gt;&amp;c" in location


def test_the_console_shows_control_characters_as_escapes(aws, stack_with) -> None:
    console = io.StringIO()
    local = stack_with(console=console)
    put_lock(aws, local.resources.lock_table, local.resources.state_bucket, ESC_KEY, ESC_WHO)
    local.pump()
    written = console.getvalue()
    assert "lock.acquired" in written
    assert not any(char in written for char in "\x1b\x07\x9b\u202e")
    assert "evil\\x1b[31m\\x1b]8;;https://evil.example\\x07click" in written and "\\u202e" in written
    assert "cli/\\x1b[2J\\x1b]0;owned\\x07\\x9b31m" in written
    assert all(line.startswith(("  ", "1", "0", "2")) for line in written.splitlines())  # two lines, nothing else


def tfguardian(endpoint: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "guardian_cli", "--endpoint", endpoint, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_cli_prints_keys_who_and_addresses_with_control_characters_escaped(aws, stack_with) -> None:
    local = stack_with(api_port=free_port())
    bucket = local.resources.state_bucket
    s3 = aws.client("s3")
    s3.put_object(Bucket=bucket, Key=C1_KEY, Body=state_bytes("state_tf1.11.4_first_apply_serial1.json"))
    key = "cli/terraform.tfstate"
    first = s3.put_object(Bucket=bucket, Key=key, Body=state_bytes("state_tf1.11.4_first_apply_serial1.json"))
    state = json.loads(state_bytes("state_tf1.11.4_first_apply_serial1.json"))
    state["serial"] = 2
    state["resources"][0]["name"] = "probe\x1b[8m"  # hidden text, were it not escaped
    second = s3.put_object(Bucket=bucket, Key=key, Body=(json.dumps(state, indent=2) + "\n").encode())
    put_lock(aws, local.resources.lock_table, bucket, key, ESC_WHO)
    local.pump()

    outputs = {
        "states": tfguardian(local.api_url, "states"),
        "locks": tfguardian(local.api_url, "locks"),
        "diff": tfguardian(local.api_url, "diff", key, first["VersionId"], second["VersionId"]),
        "refusal": tfguardian(local.api_url, "unlock", ESC_KEY, "not-the-lock-id"),
    }
    for name, result in outputs.items():
        printed = result.stdout + result.stderr
        assert not any(char in printed for char in "\x1b\x07\x9b\x7f\u202e"), f"{name} printed a control character"
    assert outputs["states"].returncode == 0 and "cli/\\x9b2J\\x7f\\u202eevil/" in outputs["states"].stdout
    assert "evil\\x1b[31m" in outputs["locks"].stdout and "\\u202e" in outputs["locks"].stdout
    assert "terraform_data.probe\\x1b[8m" in outputs["diff"].stdout
    assert outputs["refusal"].returncode == 3 and "refused" in outputs["refusal"].stderr
    # Scripts get JSON, where every control character is a JSON escape.
    as_json = tfguardian(local.api_url, "--json", "states")
    assert "\x9b" not in as_json.stdout and C1_KEY in [s["key"] for s in json.loads(as_json.stdout)["states"]]
