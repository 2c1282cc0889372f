"""`tfguardian`'s global options (`--act-as`, `--endpoint`, `--json`) before or after the command, over real HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.support.receiver import receiver

PRINCIPAL = "arn:aws:iam::123456789012:role/team-a-deployer"
STATES = b'{"states": [{"key": "a/terraform.tfstate", "workspace": "default", "serial": 3}]}'


def tfguardian(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("TFGUARDIAN_")}
    return subprocess.run(
        [sys.executable, "-m", "guardian_cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**environment, **(env or {})},
    )


def test_act_as_sends_the_header_to_the_local_stack_before_or_after_the_command() -> None:
    with receiver() as api:
        api.answer = STATES
        endpoint = api.url.removesuffix("/hook")
        runs = [
            tfguardian("--endpoint", endpoint, "--act-as", PRINCIPAL, "states"),
            tfguardian("states", "--act-as", PRINCIPAL, "--endpoint", endpoint, "--json"),
            tfguardian("states", env={"TFGUARDIAN_ACT_AS": PRINCIPAL, "TFGUARDIAN_ENDPOINT": endpoint}),
            tfguardian("--endpoint", endpoint, "states"),
        ]
    assert [run.returncode for run in runs] == [0, 0, 0, 0], [run.stderr for run in runs]
    assert [request.headers.get("X-Guardian-Act-As") for request in api.requests] == [PRINCIPAL] * 3 + [None]
    assert "a/terraform.tfstate" in runs[0].stdout and "SERIAL" in runs[0].stdout
    assert json.loads(runs[1].stdout) == json.loads(STATES)  # --json after the command


def test_act_as_is_refused_for_any_endpoint_but_the_local_stack() -> None:
    deployed = "https://abcdef1234.execute-api.eu-west-1.amazonaws.com/api/"
    for run in (
        tfguardian("--endpoint", deployed, "--act-as", PRINCIPAL, "states"),
        tfguardian("states", "--endpoint", deployed, env={"TFGUARDIAN_ACT_AS": PRINCIPAL}),
    ):
        assert run.returncode == 2
        assert "--act-as" in run.stderr and "local stack" in run.stderr and "127.0.0.1" in run.stderr


def test_act_as_takes_an_arn() -> None:
    with receiver() as api:
        run = tfguardian("--endpoint", api.url.removesuffix("/hook"), "--act-as", "team-a", "states")
    assert run.returncode == 2 and "IAM principal ARN" in run.stderr
    assert api.requests == []


def test_act_as_is_in_the_help() -> None:
    for run in (tfguardian("--help"), tfguardian("states", "--help")):
        assert run.returncode == 0 and "--act-as ARN" in run.stdout and "TFGUARDIAN_ACT_AS" in run.stdout


def test_a_refusal_from_the_api_is_printed_with_control_characters_escaped() -> None:
    with receiver() as api:
        api.answer_status = 409
        api.answer = json.dumps(
            {"error": "locked", "message": "locked by evil\x1b[2J\x1b]0;owned\x07 (apply)"}
        ).encode()
        run = tfguardian("--endpoint", api.url.removesuffix("/hook"), "states")
    assert run.returncode == 3
    assert "\x1b" not in run.stderr and "\x07" not in run.stderr
    assert "refused: locked by evil\\x1b[2J\\x1b]0;owned\\x07 (apply)" in run.stderr


def test_the_cli_does_not_follow_a_redirect() -> None:
    with receiver() as elsewhere, receiver() as api:
        elsewhere.answer = STATES
        api.redirect_to = elsewhere.url.removesuffix("/hook") + "/states"
        run = tfguardian("--endpoint", api.url.removesuffix("/hook"), "--act-as", PRINCIPAL, "states")
    assert run.returncode == 6 and "redirect (HTTP 302)" in run.stderr and "not followed" in run.stderr
    assert len(api.redirected) == 1 and elsewhere.requests == []
