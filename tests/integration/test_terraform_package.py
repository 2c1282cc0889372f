"""`python -m deploy.package` gives every stage a Terraform configuration that deploys all of app.py, as written."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import pytest

from chalicelib.services.notifier import LEASE_S
from deploy.package import DEPLOYMENT_ZIP, RULE_NAMES_OVERRIDE, TEMPLATE, package

ROOT = Path(__file__).resolve().parents[2]
CONFIG = json.loads((ROOT / ".chalice" / "config.json").read_text())
STAGES = sorted(CONFIG["stages"])
# Chalice's decorators that each deploy a function of their own; every route shares the one API handler.
EVENT_DECORATORS = {"on_s3_event", "on_dynamodb_record", "schedule", "on_sns_message", "on_sqs_message", "on_cw_event"}
# A provider mirror (`terraform providers mirror` layout) lets the full schema check run without a network.
PROVIDER_MIRROR = Path(os.environ.get("GUARDIAN_TERRAFORM_PROVIDER_MIRROR", "/opt/tf-plugins"))

# chalice package pip-installs the requirements and zips them: once per stage for the whole run.
pytestmark = pytest.mark.timeout(900)


def deployed_functions() -> set[str]:
    """The functions app.py deploys, read from its decorators."""
    tree = ast.parse((ROOT / "app.py").read_text())
    functions, routes = set(), False
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef):
            continue
        for decorator in node.decorator_list:
            target = decorator.func if isinstance(decorator, ast.Call) else decorator
            name = target.attr if isinstance(target, ast.Attribute) else ""
            functions |= {node.name} if name in EVENT_DECORATORS else set()
            routes = routes or name == "route"
    return functions | ({"api_handler"} if routes else set())


def stage_environment(stage: str) -> dict[str, str]:
    return {**CONFIG.get("environment_variables", {}), **CONFIG["stages"][stage]["environment_variables"]}


@pytest.fixture(scope="session")
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
    assert set(functions) == deployed_functions()
    assert deployed_functions() >= {
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
def test_the_lock_stream_and_the_state_bucket_invoke_their_handlers(packaged: dict[str, Path], stage: str) -> None:
    env = stage_environment(stage)
    (mapping,) = resources(packaged, stage, "aws_lambda_event_source_mapping").values()
    assert mapping["event_source_arn"] == env["GUARDIAN_LOCK_TABLE_STREAM_ARN"]
    assert mapping["function_name"] == "${aws_lambda_function.on_lock_table_change.arn}"
    # Terraform's aws_s3_bucket_notification owns the bucket's whole notification configuration.
    (notification,) = resources(packaged, stage, "aws_s3_bucket_notification").values()
    assert notification["bucket"] == env["GUARDIAN_STATE_BUCKET"]
    assert notification["lambda_function"] == [
        {
            "events": ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"],
            "lambda_function_arn": "${aws_lambda_function.on_state_object_event.arn}",
        }
    ]


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
    assert set(roles) == set(policies) == {f"{name}_role" for name in deployed_functions()}  # no default-role
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


def test_the_aws_resources_validate_against_the_provider_schema(
    packaged: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> None:
    if not (PROVIDER_MIRROR / "registry.terraform.io" / "hashicorp" / "aws").is_dir():
        pytest.skip(f"no hashicorp/aws provider in a mirror at {PROVIDER_MIRROR} (GUARDIAN_TERRAFORM_PROVIDER_MIRROR)")
    copy = tmp_path_factory.mktemp("schema") / "prod"
    shutil.copytree(packaged["prod"], copy)
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
