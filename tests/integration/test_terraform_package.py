"""`python -m deploy.package` gives every stage a Terraform configuration that deploys all of app.py, as written, and
everything `python -m deploy harden` sets up, with harden's very settings: a later `harden` or `apply` changes nothing.

The guardian's files are compared field by field with the pure definitions harden applies (`deploy.sources`,
`deploy.alarms`, `deploy.dashboard`), under the provider's argument names written out here by hand."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import zipfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from chalicelib.services.notifier import LEASE_S
from chalicelib.settings import backend_settings
from deploy import terraform_resources
from deploy.alarms import alarm_definitions, alarm_topic_name
from deploy.dashboard import dashboard_body, dashboard_name
from deploy.package import DEPLOYMENT_ZIP, HARDENED_KINDS, RULE_NAMES_OVERRIDE, TEMPLATE, package
from deploy.sources import (
    BRIDGE_TARGET_ID,
    FORWARDING_POLICY_NAME,
    FORWARDING_ROLE_TRUST,
    Where,
    bridge_backends,
    bridge_permission,
    bridge_rule_name,
    bridge_rule_pattern,
    bucket_notification,
    bus_statement_id,
    dead_letter_queue_names,
    forwarding_role_name,
    forwarding_role_policy,
    forwarding_rule_name,
    forwarding_target,
    lock_tables,
    queue_attributes,
    s3_backends,
    s3_handler_invoke_config,
    s3_permission,
    s3_queue_name,
    stream_mapping,
    stream_queue_name,
)
from deploy.stage_config import StageConfig, load_stage
from deploy.terraform_resources import EVENT_SOURCES_FILE, MONITORING_FILE, TerraformShapeError
from tests.support.app_functions import deployed_functions

ROOT = Path(__file__).resolve().parents[2]
CONFIG = json.loads((ROOT / ".chalice" / "config.json").read_text())
STAGES = sorted(CONFIG["stages"])
# A provider mirror (`terraform providers mirror` layout) lets the full schema check run without a network.
PROVIDER_MIRROR = Path(os.environ.get("GUARDIAN_TERRAFORM_PROVIDER_MIRROR", "/opt/tf-plugins"))

# The guardian's account and region, as the generated files write them: Chalice's data sources, read at plan time.
HOME = Where("${data.aws_caller_identity.chalice.account_id}", "${data.aws_region.chalice.name}")
S3_HANDLER_ARN = "${aws_lambda_function.on_state_object_event.arn}"
S3_HANDLER_NAME = "${aws_lambda_function.on_state_object_event.function_name}"

# chalice package pip-installs the requirements and zips them: once per stage for the module.
pytestmark = pytest.mark.timeout(900)


def stage_environment(stage: str) -> dict[str, str]:
    return {**CONFIG.get("environment_variables", {}), **CONFIG["stages"][stage]["environment_variables"]}


@pytest.fixture(scope="module")
def packaged(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each stage packaged once: its output directory."""
    out = tmp_path_factory.mktemp("terraform")
    return {stage: package(stage, out / stage, config=ROOT / ".chalice" / "config.json").parent for stage in STAGES}


def template(packaged: dict[str, Path], stage: str) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads((packaged[stage] / TEMPLATE).read_text())
    return parsed


def resources(packaged: dict[str, Path], stage: str, kind: str) -> dict[str, Any]:
    found: dict[str, Any] = template(packaged, stage)["resource"].get(kind, {})
    return found


def guardian(packaged: dict[str, Path], stage: str) -> dict[str, Any]:
    """The guardian's own files of the stage, merged: `resource`, `data` and `provider`."""
    merged: dict[str, Any] = {"resource": {}, "data": {}, "provider": {"aws": []}}
    for name in (EVENT_SOURCES_FILE, MONITORING_FILE):
        document = json.loads((packaged[stage] / name).read_text())
        for block in ("resource", "data"):
            for kind, named in document.get(block, {}).items():
                assert not set(named) & set(merged[block].setdefault(kind, {}))
                merged[block][kind].update(named)
        merged["provider"]["aws"] += document.get("provider", {}).get("aws", [])
    return merged


def ours(packaged: dict[str, Path], stage: str, kind: str) -> dict[str, Any]:
    found: dict[str, Any] = guardian(packaged, stage)["resource"].get(kind, {})
    return found


def stage_config(stage: str) -> StageConfig:
    return load_stage(ROOT / ".chalice" / "config.json", stage)


def by_field(resources: dict[str, Any], field: str) -> dict[str, Any]:
    """The resources keyed by one of their arguments (a name), which must be unique."""
    keyed = {resource[field]: resource for resource in resources.values()}
    assert len(keyed) == len(resources)
    return keyed


def on_failure(resource: dict[str, Any], argument: str) -> str:
    (config,) = resource["destination_config"]
    (failure,) = config["on_failure"]
    assert set(failure) == {argument}
    return str(failure[argument])


def key_of(resources: dict[str, Any], field: str, value: str) -> str:
    """The Terraform name of the one resource whose `field` is `value`."""
    (key,) = [key for key, body in resources.items() if body.get(field) == value]
    return key


def terraform_binary() -> str:
    binary = os.environ.get("GUARDIAN_TERRAFORM_1_11") or shutil.which("terraform")
    if not binary:
        pytest.skip("Terraform 1.11 is not on PATH (or GUARDIAN_TERRAFORM_1_11)")
    return binary


def run_terraform(directory: Path, cli_config: str, *args: str) -> subprocess.CompletedProcess[str]:
    (directory.parent / "terraform.rc").write_text(cli_config)
    env = {
        **os.environ,
        "TF_CLI_CONFIG_FILE": str(directory.parent / "terraform.rc"),
        "CHECKPOINT_DISABLE": "1",
        "TF_IN_AUTOMATION": "1",
    }
    return subprocess.run(
        [terraform_binary(), f"-chdir={directory}", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.parametrize("stage", STAGES)
def test_every_handler_of_app_py_is_a_lambda_function(packaged: dict[str, Path], stage: str) -> None:
    functions = resources(packaged, stage, "aws_lambda_function")
    assert set(functions) == set(deployed_functions())
    assert set(deployed_functions()) >= {
        "on_state_object_event",
        "on_lock_table_change",
        "verify_state_digests",
        "reap_stale_locks",
        "backfill_history",
        "api_handler",
    }
    assert functions["api_handler"]["handler"] == "app.app"
    assert all(functions[name]["handler"] == f"app.{name}" for name in set(functions) - {"api_handler"})


@pytest.mark.parametrize("stage", STAGES)
def test_functions_have_room_for_the_largest_state_and_finish_before_a_delivery_lease_ends(
    packaged: dict[str, Path], stage: str
) -> None:
    functions = resources(packaged, stage, "aws_lambda_function")
    assert all(function["timeout"] < LEASE_S for function in functions.values())
    # A rollback holds the current, the target and the written bytes of a state up to 64 MiB, and parses two.
    assert functions["api_handler"]["memory_size"] >= 1024
    assert all(function["memory_size"] >= 512 for function in functions.values())


@pytest.mark.parametrize("stage", STAGES)
def test_schedules_run_at_their_rates_under_stage_unique_rule_names(packaged: dict[str, Path], stage: str) -> None:
    rules = resources(packaged, stage, "aws_cloudwatch_event_rule")
    targets = resources(packaged, stage, "aws_cloudwatch_event_target")
    assert {name: rule["schedule_expression"] for name, rule in rules.items()} == {
        "verify_state_digests-event": "rate(1 minute)",
        "reap_stale_locks-event": "rate(5 minutes)",
        "backfill_history-event": "rate(10 minutes)",
    }
    assert {name: target["arn"] for name, target in targets.items()} == {
        f"{function}-event": f"${{aws_lambda_function.{function}.arn}}"
        for function in ("verify_state_digests", "reap_stale_locks", "backfill_history")
    }
    renamed = json.loads((packaged[stage] / RULE_NAMES_OVERRIDE).read_text())["resource"]["aws_cloudwatch_event_rule"]
    assert {rule: override["name"] for rule, override in renamed.items()} == {
        rule: f"tfstate-guardian-{stage}-{rule}" for rule in rules
    }


@pytest.mark.parametrize("stage", STAGES)
def test_chalice_subscribes_neither_event_handler_itself(packaged: dict[str, Path], stage: str) -> None:
    # harden's resources are the guardian's files' alone: a second subscription from Chalice would fight them.
    assert not set(HARDENED_KINDS) & set(template(packaged, stage)["resource"])
    assert set(HARDENED_KINDS) <= set(guardian(packaged, stage)["resource"]) | {"aws_s3_bucket_notification"}


@pytest.mark.parametrize("stage", STAGES)
def test_the_dead_letter_queues_have_hardens_attributes(packaged: dict[str, Path], stage: str) -> None:
    config = stage_config(stage)
    queues = by_field(ours(packaged, stage, "aws_sqs_queue"), "name")
    assert set(queues) == set(dead_letter_queue_names(config)) == {s3_queue_name(config), stream_queue_name(config)}
    attributes = queue_attributes()
    assert set(attributes) == {"MessageRetentionPeriod", "SqsManagedSseEnabled"}  # each compared below
    for queue in queues.values():
        assert queue == {
            "name": queue["name"],
            "message_retention_seconds": int(attributes["MessageRetentionPeriod"]),
            "sqs_managed_sse_enabled": attributes["SqsManagedSseEnabled"] == "true",
        }


@pytest.mark.parametrize("stage", STAGES)
def test_one_hardened_stream_mapping_per_lock_table(packaged: dict[str, Path], stage: str) -> None:
    config = stage_config(stage)
    tables = lock_tables(config, HOME)
    # prod: two backends share one lock table, the third has none: one mapping, as harden makes.
    assert len(tables) == 1
    queue_arn = (
        f"${{aws_sqs_queue.{key_of(ours(packaged, stage, 'aws_sqs_queue'), 'name', stream_queue_name(config))}.arn}}"
    )
    data = guardian(packaged, stage)["data"]["aws_dynamodb_table"]
    mappings = ours(packaged, stage, "aws_lambda_event_source_mapping")
    assert len(mappings) == len(tables)
    for (where, table), _backends in tables.items():
        assert where == HOME
        (source,) = [name for name, body in data.items() if body == {"name": table}]  # the guardian's own provider
        mapping = mappings[source]
        wanted = stream_mapping(queue_arn)
        assert set(wanted) == {"BatchSize", "StartingPosition", "BisectBatchOnFunctionError", "MaximumRetryAttempts",
                               "MaximumRecordAgeInSeconds", "DestinationConfig"}  # fmt: skip
        assert mapping["event_source_arn"] == f"${{data.aws_dynamodb_table.{source}.stream_arn}}"
        assert mapping["function_name"] == "${aws_lambda_function.on_lock_table_change.arn}"
        assert mapping["batch_size"] == wanted["BatchSize"]
        assert mapping["starting_position"] == wanted["StartingPosition"]
        assert mapping["bisect_batch_on_function_error"] is wanted["BisectBatchOnFunctionError"] is True
        assert mapping["maximum_retry_attempts"] == wanted["MaximumRetryAttempts"]
        assert mapping["maximum_record_age_in_seconds"] == wanted["MaximumRecordAgeInSeconds"]
        assert on_failure(mapping, "destination_arn") == wanted["DestinationConfig"]["OnFailure"]["Destination"]
        (lifecycle,) = mapping["lifecycle"]
        assert [item["condition"] for item in lifecycle["precondition"]] == [
            f"${{data.aws_dynamodb_table.{source}.stream_enabled}}"  # harden's "run prepare first"
        ]


@pytest.mark.parametrize("stage", STAGES)
def test_the_s3_handlers_failed_invocations_go_to_its_queue(packaged: dict[str, Path], stage: str) -> None:
    config = stage_config(stage)
    queue = key_of(ours(packaged, stage, "aws_sqs_queue"), "name", s3_queue_name(config))
    wanted = s3_handler_invoke_config(f"${{aws_sqs_queue.{queue}.arn}}")
    assert set(wanted) == {"DestinationConfig"}
    (invoke_config,) = ours(packaged, stage, "aws_lambda_function_event_invoke_config").values()
    assert invoke_config == {
        "function_name": S3_HANDLER_NAME,
        "maximum_retry_attempts": 2,  # what harden's PutFunctionEventInvokeConfig leaves: Lambda's default
        "destination_config": [
            {"on_failure": [{"destination": wanted["DestinationConfig"]["OnFailure"]["Destination"]}]}
        ],
    }


@pytest.mark.parametrize("stage", STAGES)
def test_each_s3_backends_bucket_notifies_the_s3_handler_as_harden_configures_it(
    packaged: dict[str, Path], stage: str
) -> None:
    config = stage_config(stage)
    buckets = [backend.state_bucket for backend in s3_backends(config)]
    assert buckets == (
        ["example-tfstate-prod", "example-tfstate-staging"] if stage == "prod" else ["example-tfstate-dev"]
    )
    notifications = by_field(ours(packaged, stage, "aws_s3_bucket_notification"), "bucket")
    # Only the events: "s3" backends' buckets: an "eventbridge" backend's bucket keeps its own notifications, which
    # an aws_s3_bucket_notification would replace (prepare merges EventBridge delivery into them instead).
    assert set(notifications) == set(buckets)
    permissions = by_field(ours(packaged, stage, "aws_lambda_permission"), "statement_id")
    wanted_notification = bucket_notification(config, S3_HANDLER_ARN)
    for bucket in buckets:
        permission = s3_permission(bucket, HOME.account)
        granted = permissions[permission["StatementId"]]
        assert granted == {
            "function_name": S3_HANDLER_NAME,
            "statement_id": permission["StatementId"],
            "action": permission["Action"],
            "principal": permission["Principal"],
            "source_arn": permission["SourceArn"],
            "source_account": permission["SourceAccount"],
        }
        notification = notifications[bucket]
        assert notification["lambda_function"] == [
            {
                "id": wanted_notification["Id"],
                "lambda_function_arn": wanted_notification["LambdaFunctionArn"],
                "events": wanted_notification["Events"],
            }
        ]
        assert set(notification) == {"bucket", "lambda_function", "depends_on"}  # no filter, the guardian's provider
        name = key_of(ours(packaged, stage, "aws_lambda_permission"), "statement_id", permission["StatementId"])
        assert notification["depends_on"] == [f"aws_lambda_permission.{name}"]


def test_the_eventbridge_backend_elsewhere_is_forwarded_to_the_guardians_bus(packaged: dict[str, Path]) -> None:
    config = stage_config("prod")
    (sandbox,) = bridge_backends(config)
    assert (sandbox.backend.region, sandbox.backend.account) == ("eu-west-1", "210987654321")
    providers = {provider["alias"]: provider for provider in guardian(packaged, "prod")["provider"]["aws"]}
    assert providers == {
        "backend_sandbox": {
            "alias": "backend_sandbox",
            "region": "eu-west-1",
            "assume_role": [{"role_arn": sandbox.backend.role_arn, "session_name": "tfstate-guardian"}],
        }
    }
    rules = by_field(ours(packaged, "prod", "aws_cloudwatch_event_rule"), "name")
    targets = ours(packaged, "prod", "aws_cloudwatch_event_target")
    pattern = bridge_rule_pattern([sandbox.state_bucket])
    # On the guardian's default bus: the rule, its target (the S3 handler) and the handler's permission.
    home_rule = rules[bridge_rule_name(config)]
    assert "provider" not in home_rule and "count" not in home_rule and "event_bus_name" not in home_rule
    assert json.loads(home_rule["event_pattern"]) == pattern
    assert (home_rule["state"], home_rule["description"]) == ("ENABLED", "S3 object events of the guardian's backends")
    home_key = key_of(ours(packaged, "prod", "aws_cloudwatch_event_rule"), "name", bridge_rule_name(config))
    assert targets[home_key] == {
        "rule": f"${{aws_cloudwatch_event_rule.{home_key}.name}}",
        "target_id": BRIDGE_TARGET_ID,
        "arn": S3_HANDLER_ARN,
    }
    rule_arn = f"arn:aws:events:{HOME.region}:{HOME.account}:rule/tfstate-guardian-prod-s3-objects"
    permission = bridge_permission(rule_arn)
    granted = by_field(ours(packaged, "prod", "aws_lambda_permission"), "statement_id")[permission["StatementId"]]
    assert {key: value for key, value in granted.items() if key != "depends_on"} == {
        "function_name": S3_HANDLER_NAME,
        "statement_id": permission["StatementId"],
        "action": permission["Action"],
        "principal": permission["Principal"],
        "source_arn": permission["SourceArn"],
    }
    # In the sandbox's account and region, through its role: the forwarding rule, its role and target.
    elsewhere = '${("210987654321" != data.aws_caller_identity.chalice.account_id || "eu-west-1" != data.aws_region.chalice.name) ? 1 : 0}'  # noqa: E501
    forwarding = rules[forwarding_rule_name(config)]
    assert json.loads(forwarding["event_pattern"]) == pattern
    assert (forwarding["provider"], forwarding["count"], forwarding["state"]) == (
        "aws.backend_sandbox",
        elsewhere,
        "ENABLED",
    )
    key = key_of(ours(packaged, "prod", "aws_cloudwatch_event_rule"), "name", forwarding_rule_name(config))
    roles = ours(packaged, "prod", "aws_iam_role")
    (role_key,) = roles
    role = roles[role_key]
    assert (role["name"], role["provider"], role["count"]) == (
        forwarding_role_name(config),
        "aws.backend_sandbox",
        elsewhere,
    )
    assert json.loads(role["assume_role_policy"]) == FORWARDING_ROLE_TRUST
    (policy,) = ours(packaged, "prod", "aws_iam_role_policy").values()
    assert (policy["name"], policy["role"], policy["provider"]) == (
        FORWARDING_POLICY_NAME, f"${{aws_iam_role.{role_key}[0].id}}", "aws.backend_sandbox"
    )  # fmt: skip
    assert json.loads(policy["policy"]) == forwarding_role_policy(HOME)
    target = forwarding_target(HOME, f"${{aws_iam_role.{role_key}[0].arn}}")
    assert targets[key] == {
        "rule": f"${{aws_cloudwatch_event_rule.{key}[0].name}}",
        "target_id": target["Id"],
        "arn": target["Arn"],
        "role_arn": target["RoleArn"],
        "provider": "aws.backend_sandbox",
        "count": elsewhere,
    }
    # The guardian's bus lets the sandbox's account put events on it, unless that is the guardian's own account.
    (bus_permission,) = ours(packaged, "prod", "aws_cloudwatch_event_permission").values()
    assert bus_permission == {
        "event_bus_name": "default",
        "action": "events:PutEvents",
        "principal": "210987654321",
        "statement_id": bus_statement_id("210987654321"),
        "count": '${"210987654321" == data.aws_caller_identity.chalice.account_id ? 0 : 1}',
    }


def test_the_dev_stage_has_no_eventbridge_resources_or_provider_aliases(packaged: dict[str, Path]) -> None:
    dev = guardian(packaged, "dev")
    assert dev["provider"] == {"aws": []}
    assert not {"aws_cloudwatch_event_rule", "aws_iam_role", "aws_cloudwatch_event_permission"} & set(dev["resource"])


@pytest.mark.parametrize("stage", STAGES)
def test_every_alarm_and_the_dashboard_are_hardens(packaged: dict[str, Path], stage: str) -> None:
    config = stage_config(stage)
    ((topic_key, topic),) = ours(packaged, stage, "aws_sns_topic").items()
    assert topic == {"name": alarm_topic_name(config)}
    wanted = alarm_definitions(config, f"${{aws_sns_topic.{topic_key}.arn}}")
    alarms = by_field(ours(packaged, stage, "aws_cloudwatch_metric_alarm"), "alarm_name")
    assert set(alarms) == {alarm["AlarmName"] for alarm in wanted}
    names = {"AlarmName": "alarm_name", "AlarmDescription": "alarm_description", "ActionsEnabled": "actions_enabled",
             "AlarmActions": "alarm_actions", "OKActions": "ok_actions", "Namespace": "namespace",
             "MetricName": "metric_name", "Statistic": "statistic", "Period": "period",
             "EvaluationPeriods": "evaluation_periods", "DatapointsToAlarm": "datapoints_to_alarm",
             "Threshold": "threshold", "ComparisonOperator": "comparison_operator",
             "TreatMissingData": "treat_missing_data"}  # fmt: skip
    for alarm in wanted:
        assert set(alarm) == set(names) | {"Dimensions"}
        written = alarms[alarm["AlarmName"]]
        assert written == {
            **{names[field]: value for field, value in alarm.items() if field != "Dimensions"},
            "dimensions": {item["Name"]: item["Value"] for item in alarm["Dimensions"]},
        }
    (dashboard,) = ours(packaged, stage, "aws_cloudwatch_dashboard").values()
    assert dashboard["dashboard_name"] == dashboard_name(config)
    assert json.loads(dashboard["dashboard_body"]) == dashboard_body(config, HOME.region)


@pytest.mark.parametrize("stage", STAGES)
def test_everything_harden_creates_has_its_terraform_counterpart_and_nothing_else_is_there(
    packaged: dict[str, Path], stage: str
) -> None:
    config = stage_config(stage)
    bridged = bridge_backends(config)
    # What harden creates for the stage (deploy/harden.py), each by the name harden gives it.
    harden_creates = {
        ("aws_sqs_queue", name) for name in dead_letter_queue_names(config)
    } | {
        ("aws_lambda_event_source_mapping", table) for _where, table in lock_tables(config, HOME)
    } | {
        ("aws_lambda_function_event_invoke_config", S3_HANDLER_NAME),
        ("aws_sns_topic", alarm_topic_name(config)),
        ("aws_cloudwatch_dashboard", dashboard_name(config)),
    } | {
        ("aws_cloudwatch_metric_alarm", alarm["AlarmName"]) for alarm in alarm_definitions(config, "topic")
    } | {
        ("aws_s3_bucket_notification", backend.state_bucket) for backend in s3_backends(config)
    } | {
        ("aws_lambda_permission", s3_permission(backend.state_bucket, "any")["StatementId"])
        for backend in s3_backends(config)
    }  # fmt: skip
    if bridged:
        harden_creates |= {
            ("aws_cloudwatch_event_rule", bridge_rule_name(config)),
            ("aws_cloudwatch_event_target", f"{bridge_rule_name(config)}/{BRIDGE_TARGET_ID}"),
            ("aws_lambda_permission", bridge_permission(f"rule/{bridge_rule_name(config)}")["StatementId"]),
            ("aws_cloudwatch_event_rule", forwarding_rule_name(config)),
            ("aws_cloudwatch_event_target", f"{forwarding_rule_name(config)}/tfstate-guardian-bus"),
            ("aws_iam_role", forwarding_role_name(config)),
            ("aws_iam_role_policy", FORWARDING_POLICY_NAME),
            ("aws_cloudwatch_event_permission", bus_statement_id("210987654321")),
        }
    resources = guardian(packaged, stage)["resource"]
    rule_names = {key: rule["name"] for key, rule in resources.get("aws_cloudwatch_event_rule", {}).items()}
    data = guardian(packaged, stage)["data"].get("aws_dynamodb_table", {})
    identity: dict[str, Callable[[dict[str, Any]], Any]] = {
        "aws_sqs_queue": lambda body: body["name"],
        "aws_lambda_event_source_mapping": lambda body: data[body["event_source_arn"].split(".")[2]]["name"],
        "aws_lambda_function_event_invoke_config": lambda body: body["function_name"],
        "aws_sns_topic": lambda body: body["name"],
        "aws_cloudwatch_dashboard": lambda body: body["dashboard_name"],
        "aws_cloudwatch_metric_alarm": lambda body: body["alarm_name"],
        "aws_s3_bucket_notification": lambda body: body["bucket"],
        "aws_lambda_permission": lambda body: body["statement_id"],
        "aws_cloudwatch_event_rule": lambda body: body["name"],
        "aws_cloudwatch_event_target": lambda body: (
            f"{rule_names[body['rule'].split('.')[1].split('[')[0]]}/{body['target_id']}"
        ),
        "aws_iam_role": lambda body: body["name"],
        "aws_iam_role_policy": lambda body: body["name"],
        "aws_cloudwatch_event_permission": lambda body: body["statement_id"],
    }
    terraform_declares = {(kind, identity[kind](body)) for kind, named in resources.items() for body in named.values()}
    assert terraform_declares == harden_creates


def test_a_setting_the_package_cannot_write_stops_packaging_rather_than_being_left_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = stage_config("dev")
    assert terraform_resources.event_sources(config)
    widened = stream_mapping
    monkeypatch.setattr(terraform_resources, "stream_mapping",
                        lambda queue_arn: {**widened(queue_arn), "TumblingWindowInSeconds": 60})  # fmt: skip
    with pytest.raises(TerraformShapeError, match="TumblingWindowInSeconds"):
        terraform_resources.event_sources(config)


def test_a_literal_template_sequence_in_a_definition_stops_packaging(monkeypatch: pytest.MonkeyPatch) -> None:
    config = stage_config("dev")
    widened = alarm_definitions
    monkeypatch.setattr(
        terraform_resources,
        "alarm_definitions",
        lambda stage, topic: [{**alarm, "AlarmDescription": "costs ${5}"} for alarm in widened(stage, topic)],
    )
    with pytest.raises(TerraformShapeError, match="template sequence"):
        terraform_resources.monitoring(config)


@pytest.mark.parametrize("stage", STAGES)
def test_the_api_is_a_regional_rest_api(packaged: dict[str, Path], stage: str) -> None:
    (api,) = resources(packaged, stage, "aws_api_gateway_rest_api").values()
    assert api["endpoint_configuration"] == {"types": ["REGIONAL"]}
    assert "${aws_lambda_function.api_handler.invoke_arn}" in template(packaged, stage)["locals"]["chalice_api_swagger"]


@pytest.mark.parametrize("stage", STAGES)
def test_each_function_has_a_role_of_its_own_with_its_hand_written_policy_naming_its_own_logs(
    packaged: dict[str, Path], stage: str
) -> None:
    functions = resources(packaged, stage, "aws_lambda_function")
    roles = resources(packaged, stage, "aws_iam_role")
    policies = resources(packaged, stage, "aws_iam_role_policy")
    assert set(roles) == set(policies) == {f"{name}_role" for name in set(deployed_functions())}  # no default-role
    assert len({role["name"] for role in roles.values()}) == len(roles)
    for name, function in functions.items():
        assert function["role"] == f"${{aws_iam_role.{name}_role.arn}}"
        assert policies[f"{name}_role"]["role"] == f"${{aws_iam_role.{name}_role.id}}"
        policy_file = CONFIG["stages"][stage]["lambda_functions"][name]["iam_policy_file"]
        written = json.loads((ROOT / ".chalice" / policy_file).read_text())
        assert json.loads(policies[f"{name}_role"]["policy"]) == written
        (logs,) = [statement for statement in written["Statement"] if statement["Sid"] == "Logs"]
        assert logs["Resource"].split(":log-group:")[1] == f"/aws/lambda/{function['function_name']}:*"
    assert len({policy["policy"] for policy in policies.values()}) == len(functions)


@pytest.mark.parametrize("stage", STAGES)
def test_the_package_holds_the_app_with_bytecode_and_not_what_lambda_provides(
    packaged: dict[str, Path], stage: str
) -> None:
    names = set(zipfile.ZipFile(packaged[stage] / DEPLOYMENT_ZIP).namelist())
    assert {"app.py", "chalicelib/composition.py", "__pycache__/app.cpython-311.pyc"} <= names
    assert "chalicelib/__pycache__/composition.cpython-311.pyc" in names
    assert not any(name.startswith(("boto3/", "botocore/", "tests/", "local_stack/", "deploy/")) for name in names)


@pytest.mark.parametrize("stage", STAGES)
def test_terraform_1_11_reads_the_configuration_and_accepts_its_version(packaged: dict[str, Path], stage: str) -> None:
    result = run_terraform(packaged[stage], "", "validate", "-json", "-no-color")
    diagnostics = [(d["severity"], d["summary"]) for d in json.loads(result.stdout)["diagnostics"]]
    # Without `terraform init` the providers are missing; everything else (syntax, overrides, version) is checked.
    assert diagnostics and set(diagnostics) == {("error", "Missing required provider")}
    unpinned = dict(template(packaged, stage)["terraform"])
    assert "1.4.0" in unpinned["required_version"]  # what Chalice writes, and what the override replaces


@pytest.mark.parametrize("stage", STAGES)
def test_the_aws_resources_validate_against_the_provider_schema(
    packaged: dict[str, Path], tmp_path_factory: pytest.TempPathFactory, stage: str
) -> None:
    if not (PROVIDER_MIRROR / "registry.terraform.io" / "hashicorp" / "aws").is_dir():
        pytest.skip(f"no hashicorp/aws provider in a mirror at {PROVIDER_MIRROR} (GUARDIAN_TERRAFORM_PROVIDER_MIRROR)")
    copy = tmp_path_factory.mktemp("schema") / stage
    shutil.copytree(packaged[stage], copy)
    chalice = json.loads((copy / TEMPLATE).read_text())
    # The null provider of Chalice's bookkeeping data source is not in the mirror; nothing refers to it.
    del chalice["data"]["null_data_source"], chalice["terraform"]["required_providers"]["null"]
    (copy / TEMPLATE).write_text(json.dumps(chalice))
    mirror = f'provider_installation {{\n  filesystem_mirror {{\n    path = "{PROVIDER_MIRROR}"\n  }}\n}}\n'
    init = run_terraform(copy, mirror, "init", "-backend=false", "-input=false", "-no-color")
    assert init.returncode == 0, init.stderr
    result = run_terraform(copy, mirror, "validate", "-json", "-no-color")
    validation = json.loads(result.stdout)
    assert validation["valid"], validation["diagnostics"]
    assert {d["summary"] for d in validation["diagnostics"]} <= {"Argument is deprecated", "Deprecated attribute"}


def test_a_lock_table_named_with_and_without_the_guardians_region_has_one_stream_mapping() -> None:
    # Lambda refuses a second mapping of one stream to one function: the region spelled out by some backends is
    # checked to be the guardian's instead, on the one mapping.
    shared = [
        {"name": "a", "bucket": "bucket-a", "lock_table": "shared-locks"},
        {"name": "b", "bucket": "bucket-b", "lock_table": "shared-locks", "region": "eu-west-1"},
        {"name": "c", "bucket": "bucket-c", "lock_table": "shared-locks", "region": "eu-west-1"},
        {"name": "d", "bucket": "bucket-d", "lock_table": "other-locks", "region": "eu-central-1"},
    ]
    env = {**stage_environment("prod"), "GUARDIAN_BACKENDS": json.dumps(shared)}
    config = replace(stage_config("prod"), backends=backend_settings(env))
    assert len(lock_tables(config, HOME)) == 3  # as the backends name them
    document = terraform_resources.event_sources(config)
    mappings = document["resource"]["aws_lambda_event_source_mapping"]
    data = document["data"]["aws_dynamodb_table"]
    assert sorted(body["name"] for body in data.values()) == ["other-locks", "shared-locks"]
    conditions = {
        data[name]["name"]: [
            (item["condition"], item["error_message"]) for item in mapping["lifecycle"][0]["precondition"]
        ]
        for name, mapping in mappings.items()
    }
    region = "${data.aws_region.chalice.name"
    assert [condition for condition, _ in conditions["shared-locks"]][1:] == [f'{region} == "eu-west-1"}}']
    assert "backend b is in eu-west-1" in conditions["shared-locks"][1][1]
    assert [condition for condition, _ in conditions["other-locks"]][1:] == [f'{region} == "eu-central-1"}}']
