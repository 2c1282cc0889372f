"""Scopes: path prefixes, workspaces, caller rules matched as API Gateway passes callers, refusals naming the rule."""

from __future__ import annotations

import pytest

from chalicelib.domain.access import AccessPolicy, parse_caller_rules, principal_names, under
from chalicelib.errors import NotAllowedError, SettingsError
from chalicelib.settings import Settings

TEAM_A_ROLE = "arn:aws:sts::123456789012:assumed-role/team-a-deployer/ci-4711"
TEAM_A_READER = "arn:aws:sts::123456789012:assumed-role/team-a-readers/alice"
PLATFORM = "arn:aws:iam::123456789012:user/platform-oncall"
RULES = parse_caller_rules(
    """[
      {"principal": "arn:aws:iam::123456789012:role/team-a-readers", "prefixes": ["team-a"], "actions": ["read"]},
      {"principal": "arn:aws:iam::123456789012:role/team-a-*", "prefixes": ["team-a/"],
       "actions": ["read", "rollback", "unlock"]},
      {"principal": "arn:aws:iam::123456789012:user/platform-*", "actions": ["read", "rollback", "unlock", "repair",
       "reap"]}
    ]"""
)


@pytest.mark.parametrize(
    ("key", "prefix", "admitted"),
    [
        ("team-a/app/terraform.tfstate", "team-a", True),
        ("team-a/app/terraform.tfstate", "team-a/", True),
        ("team-ab/app/terraform.tfstate", "team-a", False),
        ("team-ab/app/terraform.tfstate", "team-a/", False),
        ("team-a", "team-a", True),
        ("team-a.tfstate", "team-a", False),
        ("team-a/app/terraform.tfstate", "team-a/app", True),
        ("team-a/application/terraform.tfstate", "team-a/app", False),
        ("anything", "", True),
    ],
)
def test_a_prefix_is_a_path_prefix(key: str, prefix: str, admitted: bool) -> None:
    assert under(key, prefix) is admitted


@pytest.mark.parametrize(
    ("key", "admitted"),
    [
        ("team-a/app/terraform.tfstate", True),
        ("env:/staging/team-a/app/terraform.tfstate", True),  # a workspace of a team-a state
        ("workspaces/prod/team-a/app/terraform.tfstate", True),  # under a custom workspace_key_prefix
        ("env:/team-a/other/terraform.tfstate", False),  # workspace "team-a" of another state
        ("env:/staging/team-ab/app/terraform.tfstate", False),
        ("team-ab/app/terraform.tfstate", False),
    ],
)
def test_workspace_states_fall_under_their_keys_scope(key: str, admitted: bool) -> None:
    policy = AccessPolicy(deployment_prefixes=("team-a",), workspace_key_prefixes=("env:", "workspaces"))
    assert policy.scope_for(TEAM_A_ROLE).admits(key) is admitted


def test_an_assumed_role_is_matched_by_its_role_arn() -> None:
    assert principal_names(TEAM_A_ROLE) == (TEAM_A_ROLE, "arn:aws:iam::123456789012:role/team-a-deployer")
    assert principal_names(PLATFORM) == (PLATFORM,)


def test_the_first_matching_rule_applies() -> None:
    policy = AccessPolicy(rules=RULES)
    reader = policy.scope_for(TEAM_A_READER)
    assert reader.rule is not None and reader.rule.position == 1
    deployer = policy.scope_for(TEAM_A_ROLE)
    assert deployer.rule is not None and deployer.rule.position == 2
    assert policy.scope_for(PLATFORM).rule is RULES[2]


def test_a_read_only_caller_is_refused_every_write_naming_its_rule() -> None:
    reader = AccessPolicy(rules=RULES).scope_for(TEAM_A_READER)
    assert reader.check("team-a/app/terraform.tfstate", "read") == "team-a/app/terraform.tfstate"
    for action in ("rollback", "unlock", "repair", "reap"):
        with pytest.raises(NotAllowedError) as refused:
            reader.check("team-a/app/terraform.tfstate", action)
        assert refused.value.rule == "GUARDIAN_API_CALLERS[1] (arn:aws:iam::123456789012:role/team-a-readers)"
        assert f"needs {action}" in str(refused.value) and "allows read on team-a/" in str(refused.value)


def test_a_key_outside_the_rules_prefixes_is_refused_naming_the_rule() -> None:
    deployer = AccessPolicy(rules=RULES).scope_for(TEAM_A_ROLE)
    with pytest.raises(NotAllowedError) as refused:
        deployer.check("team-ab/app/terraform.tfstate", "rollback")
    assert refused.value.rule is not None and refused.value.rule.startswith("GUARDIAN_API_CALLERS[2]")
    assert not deployer.admits("team-b/app/terraform.tfstate")


def test_a_caller_no_rule_matches_may_do_nothing() -> None:
    stranger = AccessPolicy(rules=RULES).scope_for("arn:aws:sts::999999999999:assumed-role/team-a-deployer/x")
    assert stranger.rule is None and not stranger.admits("team-a/app/terraform.tfstate")
    with pytest.raises(NotAllowedError) as refused:
        stranger.require("read")
    assert refused.value.rule == "GUARDIAN_API_CALLERS"


def test_the_deployments_prefixes_bound_every_rule() -> None:
    platform = AccessPolicy(deployment_prefixes=("prod",), rules=RULES).scope_for(PLATFORM)
    assert platform.admits("prod/network/terraform.tfstate")
    with pytest.raises(NotAllowedError) as refused:
        platform.check("dev/network/terraform.tfstate", "read")
    assert refused.value.rule == "GUARDIAN_API_KEY_PREFIXES"


def test_without_rules_every_caller_may_do_everything_within_the_deployment() -> None:
    anyone = AccessPolicy(deployment_prefixes=("team-a",)).scope_for("unknown caller")
    anyone.require("reap")
    assert anyone.check("team-a/x.tfstate", "rollback") == "team-a/x.tfstate"
    assert not anyone.admits("team-ab/x.tfstate")


@pytest.mark.parametrize(
    "raw",
    [
        "not json",
        "{}",
        '[{"principal": "arn:aws:iam::1:role/x"}]',
        '[{"principal": "arn:aws:iam::1:role/x", "actions": ["delete"]}]',
        '[{"principal": "", "actions": ["read"]}]',
        '[{"principal": "arn:aws:iam::1:role/x", "actions": ["read"], "prefixes": "team-a"}]',
        '[{"principal": "arn:aws:iam::1:role/x", "actions": ["read"], "prefix": ["team-a"]}]',
    ],
)
def test_bad_caller_rules_fail_fast_naming_the_setting(raw: str) -> None:
    env = {
        "GUARDIAN_STATE_BUCKET": "b",
        "GUARDIAN_LOCK_TABLE": "t",
        "GUARDIAN_LOCK_TABLE_STREAM_ARN": "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/s",
        "GUARDIAN_TABLE": "g",
        "GUARDIAN_API_CALLERS": raw,
    }
    with pytest.raises(SettingsError, match="GUARDIAN_API_CALLERS"):
        Settings.from_env(env)
