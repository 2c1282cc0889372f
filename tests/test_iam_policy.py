"""Every AWS call the guardian made in this run is allowed by the hand-written policy, and nothing more is wild."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from chalicelib.services.notifier import LEASE_S
from local_stack.stack import StackOptions
from tests.conftest import AWS_CALLS

POLICIES = sorted((Path(__file__).resolve().parents[1] / ".chalice").glob("policy-*.json"))
LOCAL = StackOptions(notify_file=Path(), work_dir=Path(), log=None)  # type: ignore[arg-type]
ROLES = {LOCAL.lock_table: "LockTable", LOCAL.guardian_table: "GuardianTable"}
TRANSACT = {"Put": "dynamodb:PutItem", "Update": "dynamodb:UpdateItem", "Delete": "dynamodb:DeleteItem",
            "ConditionCheck": "dynamodb:ConditionCheckItem"}  # fmt: skip


def needed(service: str, operation: str, params: dict[str, Any]) -> list[tuple[str, str]]:
    """(statement Sid, IAM action) for one call."""
    versioned = bool(params.get("VersionId"))
    if service == "s3":
        return [
            {
                "GetObject": ("StateBucketObjects", "s3:GetObjectVersion" if versioned else "s3:GetObject"),
                "HeadObject": ("StateBucketObjects", "s3:GetObjectVersion" if versioned else "s3:GetObject"),
                "PutObject": ("StateBucketObjects", "s3:PutObject"),
                "DeleteObject": ("StateBucketObjects", "s3:DeleteObjectVersion" if versioned else "s3:DeleteObject"),
                "ListObjectVersions": ("StateBucket", "s3:ListBucketVersions"),
                "ListObjectsV2": ("StateBucket", "s3:ListBucket"),
            }[operation]
        ]
    if service == "dynamodb" and operation == "TransactWriteItems":
        return [
            (ROLES[action[kind]["TableName"]], TRANSACT[kind]) for action in params["TransactItems"] for kind in action
        ]
    if service == "dynamodb" and operation == "BatchWriteItem":
        return [(ROLES[table], "dynamodb:BatchWriteItem") for table in params["RequestItems"]]
    if service == "dynamodb":
        return [(ROLES[params["TableName"]], f"dynamodb:{operation}")]
    if service == "sns":
        return [("NotifyTopic", "sns:Publish")]
    if service == "events" and operation == "PutEvents":
        return [("NotifyEventBus", "events:PutEvents")]
    raise AssertionError(f"no policy mapping for {service}:{operation}: add one here and to the policy")


def missing_actions(policy: dict[str, Any], stage: str) -> list[str]:
    """What the calls of this run needed that the policy does not allow."""
    statements = {s["Sid"]: s for s in policy["Statement"]}
    # A channel the stage does not configure is never called there; each one it does is checked below.
    unconfigured = CHANNEL_ACTIONS - {action for action, _ in channel_grants(stage_environment(stage))}
    return sorted(
        {
            f"{sid} {action} (for {service}:{operation})"
            for service, operation, params in AWS_CALLS
            for sid, action in needed(service, operation, params)
            if action not in unconfigured and action not in statements.get(sid, {}).get("Action", [])
        }
    )


@pytest.mark.last
@pytest.mark.parametrize("path", POLICIES, ids=lambda p: p.name)
def test_every_call_of_this_run_is_allowed(path: Path) -> None:
    if len(AWS_CALLS) < 100:
        pytest.skip("run the whole suite: this checks the calls it made")
    assert missing_actions(json.loads(path.read_text()), path.stem.removeprefix("policy-")) == []


@pytest.mark.last
@pytest.mark.parametrize("path", POLICIES, ids=lambda p: p.name)
def test_removing_any_action_the_run_used_fails_the_check(path: Path) -> None:
    if len(AWS_CALLS) < 100:
        pytest.skip("run the whole suite: this checks the calls it made")
    stage = path.stem.removeprefix("policy-")
    policy = json.loads(path.read_text())
    used = {pair for call in AWS_CALLS for pair in needed(*call)}
    unconfigured = CHANNEL_ACTIONS - {action for action, _ in channel_grants(stage_environment(stage))}
    for sid, action in sorted(used):
        if action in unconfigured:
            continue
        narrowed = copy.deepcopy(policy)
        for statement in narrowed["Statement"]:
            if statement["Sid"] == sid:
                statement["Action"] = [a for a in statement["Action"] if a != action]
        assert missing_actions(narrowed, stage), f"removing {action} from {sid} went unnoticed"


@pytest.mark.parametrize("path", POLICIES, ids=lambda p: p.name)
def test_no_wildcards_beyond_the_buckets_objects(path: Path) -> None:
    for statement in json.loads(path.read_text())["Statement"]:
        assert all("*" not in action for action in statement["Action"]), statement["Sid"]
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        for resource in resources:
            if statement["Sid"] == "StateBucketObjects":
                assert resource.endswith("/*") and "*" not in resource[:-2]
            elif statement["Sid"] == "Logs":
                # Lambda names its log streams itself: a stream wildcard under each function's own group.
                assert resource.endswith(":*") and "*" not in resource[:-2]
            else:
                assert "*" not in resource, statement["Sid"]


CONFIG = json.loads((Path(__file__).resolve().parents[1] / ".chalice" / "config.json").read_text())
STAGES = sorted(CONFIG["stages"])
# Every action a notification channel needs; a statement with one of them must belong to a configured channel.
CHANNEL_ACTIONS = {
    "sns:Publish",
    "events:PutEvents",
    "ssm:GetParameter",
    "secretsmanager:GetSecretValue",
    "kms:Decrypt",
}


def stage_environment(stage: str) -> dict[str, str]:
    return {**CONFIG.get("environment_variables", {}), **CONFIG["stages"][stage].get("environment_variables", {})}


def channel_grants(env: dict[str, str]) -> set[tuple[str, str]]:
    """(action, resource) for each channel the stage configures, on exactly the resource it names."""
    _, _, _, region, account, _ = env["GUARDIAN_LOCK_TABLE_STREAM_ARN"].split(":", 5)
    grants = set()
    if topic := env.get("GUARDIAN_NOTIFY_TOPIC_ARN"):
        grants.add(("sns:Publish", topic))
    if bus := env.get("GUARDIAN_NOTIFY_EVENT_BUS"):
        grants.add(
            (
                "events:PutEvents",
                bus if bus.startswith("arn:") else f"arn:aws:events:{region}:{account}:event-bus/{bus}",
            )
        )
    for setting in ("GUARDIAN_SLACK_WEBHOOK_SECRET", "GUARDIAN_WEBHOOK_SECRET"):
        store, _, name = env.get(setting, "").partition(":")
        if store == "ssm":
            # A SecureString under the default aws/ssm key needs no kms:Decrypt in the role's policy: that key's
            # policy lets every principal of the account decrypt through SSM. A customer managed key would.
            grants.add(("ssm:GetParameter", f"arn:aws:ssm:{region}:{account}:parameter/{name.lstrip('/')}"))
        elif store == "secretsmanager":
            # Secrets Manager appends six random characters to a secret's ARN: only the full ARN names it exactly.
            assert name.startswith("arn:"), f"{setting} must be secretsmanager:<the secret's full ARN>"
            grants.add(("secretsmanager:GetSecretValue", name))
    return grants


def policy_channel_grants(path: Path) -> set[tuple[str, str]]:
    grants = set()
    for statement in json.loads(path.read_text())["Statement"]:
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        grants |= {(a, r) for a in statement["Action"] if a in CHANNEL_ACTIONS for r in resources}
    return grants


@pytest.mark.parametrize("stage", STAGES)
def test_each_configured_channel_and_no_other_is_allowed_on_exactly_its_resource(stage: str) -> None:
    policy = Path(__file__).resolve().parents[1] / ".chalice" / f"policy-{stage}.json"
    assert policy_channel_grants(policy) == channel_grants(stage_environment(stage))


def test_the_channel_mapping_sees_every_channel() -> None:
    env = {
        "GUARDIAN_LOCK_TABLE_STREAM_ARN": "arn:aws:dynamodb:eu-west-1:111122223333:table/t/stream/s",
        "GUARDIAN_NOTIFY_EVENT_BUS": "bus",
        "GUARDIAN_SLACK_WEBHOOK_SECRET": "ssm:/team/slack",
        "GUARDIAN_WEBHOOK_SECRET": "secretsmanager:arn:aws:secretsmanager:eu-west-1:111122223333:secret:hook-AbCdEf",
    }
    assert channel_grants(env) == {
        ("events:PutEvents", "arn:aws:events:eu-west-1:111122223333:event-bus/bus"),
        ("ssm:GetParameter", "arn:aws:ssm:eu-west-1:111122223333:parameter/team/slack"),
        ("secretsmanager:GetSecretValue", "arn:aws:secretsmanager:eu-west-1:111122223333:secret:hook-AbCdEf"),
    }


@pytest.mark.parametrize("stage", STAGES)
def test_each_stage_deploys_its_hand_written_policy(stage: str) -> None:
    stage_config = CONFIG["stages"][stage]
    assert stage_config.get("autogen_policy", CONFIG.get("autogen_policy")) is False
    assert stage_config.get("iam_policy_file") == f"policy-{stage}.json"


def test_no_function_outlives_a_delivery_lease() -> None:
    """A Lambda still delivering after its claim's lease ran out could deliver twice alongside a retry."""
    places = [CONFIG, *CONFIG["stages"].values()]
    timeouts = [place.get("lambda_timeout", 60) for place in places]  # Chalice's default is 60 s
    timeouts += [
        function.get("lambda_timeout", 0) for place in places for function in place.get("lambda_functions", {}).values()
    ]
    assert max(timeouts) < LEASE_S
