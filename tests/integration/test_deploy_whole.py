"""`make deploy` run whole, twice, against the emulator as a deployer runs it against an account.

The repository's own `dev` stage is deployed (prepare → `chalice deploy` → harden, as the Makefile's recipe says) on a
moto server of this module's own, into the account that stage names, where a team already has its state bucket and
lock table. Then every function, role, schedule, event source mapping, bucket notification, REST API, alarm and the
dashboard is there as the definitions say, each role with its hand-written policy; and a second run changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.config import Config

from deploy.alarms import alarm_definitions, alarm_topic_name
from deploy.changes import NOTHING_TO_CHANGE
from deploy.dashboard import dashboard_body, dashboard_name
from deploy.deployer_policy import UNSCOPED, WHEN_SOMETHING_CHANGES, deployer_policy
from deploy.deployer_policy import main as deployer_policy_main
from deploy.sources import (
    S3_HANDLER,
    STREAM_HANDLER,
    Where,
    bridge_rule_name,
    bucket_notification,
    s3_handler_invoke_config,
    s3_queue_name,
    stream_mapping_hardening,
    stream_queue_name,
)
from deploy.stage_config import StageConfig, load_stage
from local_stack.emulator import MotoServer, free_port
from tests.conftest import API_FUNCTION
from tests.support.deploy_run import DeployerCall, DeployRun, DeployRunner, copy_project, recipe
from tests.support.iam_policies import Request, allows, applies, as_list, denied
from tests.test_iam_policy import FUNCTIONS, SCHEDULED, Stage

STAGE = "dev"
# Chalice builds the package from the cache in .chalice/deployments when the app is unchanged, else with pip.
pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def stage_config() -> StageConfig:
    return load_stage(Path(__file__).resolve().parents[2] / ".chalice" / "config.json", STAGE)


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory, stage_config: StageConfig) -> Iterator[dict[str, Any]]:
    """Two whole deploys on an emulator of this module's own, with a snapshot of the account after each."""
    work = tmp_path_factory.mktemp("deploy-whole")
    server = MotoServer(free_port(), log_path=work / "moto.log")
    server.start()
    try:
        region, account = Stage(STAGE).region, Stage(STAGE).account
        aws = boto3.session.Session(aws_access_key_id="team", aws_secret_access_key="team", region_name=region)
        clients = Clients(aws, server.endpoint)
        _teams_backend(clients, stage_config)
        runner = DeployRunner(copy_project(work / "project"), server.endpoint, region)
        first = runner.run(STAGE)
        after_first = snapshot(clients, stage_config)
        second = runner.run(STAGE)
        after_second = snapshot(clients, stage_config)
        yield {
            "first": first,
            "second": second,
            "after_first": after_first,
            "after_second": after_second,
            "clients": clients,
            "account": account,
            "region": region,
        }
    finally:
        server.stop()


class Clients:
    """Clients on the emulator, outside any deploy command (they read; the deploy's recording never sees them)."""

    def __init__(self, session: boto3.session.Session, endpoint: str) -> None:
        self._session, self._endpoint = session, endpoint

    def __getattr__(self, service: str) -> Any:
        config = Config(retries={"max_attempts": 1})
        name: Any = {"awslambda": "lambda"}.get(service, service)
        return self._session.client(name, endpoint_url=self._endpoint, config=config)


def _teams_backend(clients: Clients, stage: StageConfig) -> None:
    """What the team has before the guardian: its state bucket and lock table, as `terraform` made them."""
    for backend in stage.backends:
        clients.s3.create_bucket(Bucket=backend.state_bucket)
        if backend.lock_table:
            clients.dynamodb.create_table(
                TableName=backend.lock_table,
                KeySchema=[{"AttributeName": "LockID", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "LockID", "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
            )


# What a redeploy may change without changing anything: when and at which revision a resource was last written.
VOLATILE = {"LastModified", "RevisionId", "LastUpdateStatusReasonCode", "StateUpdatedTimestamp",
            "AlarmConfigurationUpdatedTimestamp", "StateTransitionedTimestamp", "LastModifiedTimestamp",
            "ResponseMetadata", "StateReason", "StateReasonData", "LastProcessingResult", "createdDate"}  # fmt: skip


def _stable(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _stable(item) for key, item in value.items() if key not in VOLATILE}
    if isinstance(value, list):
        return [_stable(item) for item in value]
    return value.isoformat() if hasattr(value, "isoformat") else value


def snapshot(clients: Clients, stage: StageConfig) -> dict[str, Any]:
    """Everything of the stage in the account, as JSON-able data without the volatile fields."""
    prefix = stage.prefix
    functions = {}
    for page in clients.awslambda.get_paginator("list_functions").paginate():
        for function in page["Functions"]:
            name = function["FunctionName"]
            if name == prefix or name.startswith(f"{prefix}-"):
                policy = _or_none(
                    lambda name=name: json.loads(clients.awslambda.get_policy(FunctionName=name)["Policy"])
                )
                # By ARN: moto matches the FunctionName filter against the form the mapping was created with.
                arn = function["FunctionArn"]
                mappings = clients.awslambda.list_event_source_mappings(FunctionName=arn)["EventSourceMappings"]
                invoke = _or_none(
                    lambda name=name: clients.awslambda.get_function_event_invoke_config(FunctionName=name)
                )
                functions[name] = {"configuration": function, "policy": policy, "mappings": mappings, "invoke": invoke}
    roles = {}
    for role in clients.iam.list_roles()["Roles"]:
        name = role["RoleName"]
        if name.startswith(prefix):
            policies = {
                policy: clients.iam.get_role_policy(RoleName=name, PolicyName=policy)["PolicyDocument"]
                for policy in clients.iam.list_role_policies(RoleName=name)["PolicyNames"]
            }
            roles[name] = {"role": role, "policies": policies}
    rules = {}
    for rule in clients.events.list_rules()["Rules"]:
        if rule["Name"].startswith(prefix):
            rules[rule["Name"]] = {
                "rule": rule,
                "targets": clients.events.list_targets_by_rule(Rule=rule["Name"])["Targets"],
            }
    apis = {}
    for api in clients.apigateway.get_rest_apis()["items"]:
        resources = clients.apigateway.get_resources(restApiId=api["id"], limit=500)["items"]
        apis[api["id"]] = {
            "name": api["name"],
            "routes": sorted((item["path"], sorted(item.get("resourceMethods", {}))) for item in resources),
            "stages": sorted(
                stage["stageName"] for stage in clients.apigateway.get_stages(restApiId=api["id"])["item"]
            ),
        }
    queues = {
        url: clients.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        for url in clients.sqs.list_queues(QueueNamePrefix=prefix).get("QueueUrls", [])
    }
    notifications = {
        backend.state_bucket: clients.s3.get_bucket_notification_configuration(Bucket=backend.state_bucket)
        for backend in stage.backends
    }
    alarms = clients.cloudwatch.describe_alarms(AlarmNamePrefix=f"{prefix}")["MetricAlarms"]
    dashboards = {
        entry["DashboardName"]: json.loads(
            clients.cloudwatch.get_dashboard(DashboardName=entry["DashboardName"])["DashboardBody"]
        )
        for entry in clients.cloudwatch.list_dashboards(DashboardNamePrefix=prefix)["DashboardEntries"]
    }
    tables = {
        name: clients.dynamodb.describe_table(TableName=name)["Table"]
        for name in clients.dynamodb.list_tables()["TableNames"]
    }
    topics = sorted(topic["TopicArn"] for topic in clients.sns.list_topics()["Topics"])
    taken: dict[str, Any] = _stable({
        "functions": functions, "roles": roles, "rules": rules, "apis": apis, "queues": queues,
        "notifications": notifications, "alarms": {alarm["AlarmName"]: alarm for alarm in alarms},
        "dashboards": dashboards, "tables": tables, "topics": topics,
    })  # fmt: skip
    return taken


def _or_none(read: Any) -> Any:
    try:
        return read()
    except Exception as exc:
        if "NotFound" in type(exc).__name__ or "NotFound" in str(exc):
            return None
        raise


def function_name(function: str) -> str:
    return Stage(STAGE).function_name(function)


def test_the_harness_runs_what_make_deploy_runs(deployed: dict[str, Any]) -> None:
    commands = [[Path(argv[0]).name, *argv[1:]] for argv in recipe("deploy", STAGE)]
    assert commands == [
        ["python", "-m", "deploy", "prepare", "--stage", STAGE],
        ["chalice", "deploy", "--stage", STAGE],
        ["python", "-m", "deploy", "harden", "--stage", STAGE],
    ]
    first: DeployRun = deployed["first"]
    assert [(run.command, run.exit_code) for run in first.commands] == [
        ("prepare", 0),
        ("chalice", 0),
        ("harden", 0),
    ], "\n".join(run.output for run in first.commands)
    assert {call.command for call in first.calls} == {"prepare", "chalice", "harden"}


def test_every_function_exists_with_a_role_of_its_own_carrying_its_hand_written_policy(
    deployed: dict[str, Any],
) -> None:
    account = deployed["after_first"]
    assert sorted(account["functions"]) == sorted(function_name(function) for function in FUNCTIONS)
    stage = Stage(STAGE)
    for function in FUNCTIONS:
        configuration = account["functions"][function_name(function)]["configuration"]
        role_name = f"tfstate-guardian-{STAGE}-{function}"
        assert configuration["Role"] == f"arn:aws:iam::{stage.account}:role/{role_name}"
        policies = account["roles"][role_name]["policies"]
        assert list(policies.values()) == [stage.policy(function)], function


def test_each_schedule_is_a_rule_whose_target_is_its_function(deployed: dict[str, Any]) -> None:
    account, stage = deployed["after_first"], Stage(STAGE)
    schedules = {name: rule for name, rule in account["rules"].items() if rule["rule"].get("ScheduleExpression")}
    targets = {tuple(target["Arn"] for target in rule["targets"]) for rule in schedules.values()}
    assert targets == {(stage.function_arn(function),) for function in SCHEDULED}
    assert sorted(rule["rule"]["ScheduleExpression"] for rule in schedules.values()) == sorted(
        ["rate(1 minute)", "rate(5 minutes)", "rate(10 minutes)"]
    )


def test_the_lock_streams_feed_the_stream_handler_with_hardens_settings(
    deployed: dict[str, Any], stage_config: StageConfig
) -> None:
    account, stage = deployed["after_first"], Stage(STAGE)
    queue = stage.queue_arn(stream_queue_name(stage_config))
    streams = {
        account["tables"][backend.lock_table]["LatestStreamArn"]
        for backend in stage_config.backends
        if backend.lock_table
    }
    mappings = account["functions"][function_name(STREAM_HANDLER)]["mappings"]
    assert {mapping["EventSourceArn"] for mapping in mappings} == streams
    for mapping in mappings:
        for setting, value in stream_mapping_hardening(queue).items():
            assert mapping[setting] == value, setting
    assert all(not function["mappings"] for name, function in account["functions"].items()
               if name != function_name(STREAM_HANDLER))  # fmt: skip


def test_each_bucket_notifies_the_s3_handler_whose_failures_go_to_its_queue(
    deployed: dict[str, Any], stage_config: StageConfig
) -> None:
    account, stage = deployed["after_first"], Stage(STAGE)
    handler = account["functions"][function_name(S3_HANDLER)]
    function_arn = stage.function_arn(S3_HANDLER)
    for backend in stage_config.backends:
        configurations = account["notifications"][backend.state_bucket].get("LambdaFunctionConfigurations", [])
        ours = bucket_notification(stage_config, function_arn)
        assert [{key: item[key] for key in ours} for item in configurations] == [ours]
        assert any(
            statement["Principal"] == {"Service": "s3.amazonaws.com"}
            and statement["Condition"]["ArnLike"]["AWS:SourceArn"] == f"arn:aws:s3:::{backend.state_bucket}"
            for statement in handler["policy"]["Statement"]
        )
    wanted = s3_handler_invoke_config(stage.queue_arn(s3_queue_name(stage_config)))
    assert handler["invoke"]["DestinationConfig"]["OnFailure"] == wanted["DestinationConfig"]["OnFailure"]
    assert bridge_rule_name(stage_config) not in account["rules"]  # no backend of this stage uses EventBridge
    queues = {url.rsplit("/", 1)[-1]: attributes for url, attributes in account["queues"].items()}
    assert set(queues) == {s3_queue_name(stage_config), stream_queue_name(stage_config)}
    assert all(attributes["SqsManagedSseEnabled"] == "true" for attributes in queues.values())


def test_the_rest_api_serves_every_route_of_app_py(deployed: dict[str, Any]) -> None:
    (api,) = deployed["after_first"]["apis"].values()
    assert api["name"] == "tfstate-guardian"
    assert api["stages"] == ["api"]
    routes = dict(api["routes"])
    assert routes["/states"] == ["GET"]
    assert routes["/locks"] == ["DELETE", "GET"]
    assert routes["/rollback"] == ["POST"]
    assert {"/health", "/states/versions", "/states/diff", "/states/digest", "/events", "/locks/reap"} <= set(routes)


def test_the_alarms_and_the_dashboard_are_as_defined(deployed: dict[str, Any], stage_config: StageConfig) -> None:
    account, stage = deployed["after_first"], Stage(STAGE)
    topic = f"arn:aws:sns:{stage.region}:{stage.account}:{alarm_topic_name(stage_config)}"
    assert topic in account["topics"]
    wanted = alarm_definitions(stage_config, topic)
    assert sorted(account["alarms"]) == sorted(alarm["AlarmName"] for alarm in wanted)
    for alarm in wanted:
        found = account["alarms"][alarm["AlarmName"]]
        assert found["AlarmActions"] == alarm["AlarmActions"]
        assert found["MetricName"] == alarm["MetricName"]
        assert found["Threshold"] == alarm["Threshold"]
    assert account["dashboards"] == {dashboard_name(stage_config): dashboard_body(stage_config, stage.region)}


def test_a_second_make_deploy_changes_nothing(deployed: dict[str, Any]) -> None:
    second: DeployRun = deployed["second"]
    assert [(run.command, run.exit_code) for run in second.commands] == [
        ("prepare", 0),
        ("chalice", 0),
        ("harden", 0),
    ], "\n".join(run.output for run in second.commands)
    assert second.output("prepare").strip().splitlines() == [NOTHING_TO_CHANGE]
    assert second.output("harden").strip().splitlines() == [NOTHING_TO_CHANGE]
    first, again = deployed["after_first"], deployed["after_second"]
    for kind in first:
        assert again[kind] == first[kind], kind
    # Nothing but Chalice's own redeploy wrote anything: every write of the second run is Chalice's.
    writes = {(call.service, call.operation) for call in second.calls if call.command != "chalice"}
    assert all(operation.startswith(("Get", "List", "Describe", "Head")) for _, operation in writes), writes


def test_the_api_function_is_the_one_every_route_invokes(deployed: dict[str, Any]) -> None:
    account, stage = deployed["after_first"], Stage(STAGE)
    api_function = account["functions"][function_name(API_FUNCTION)]
    assert any(
        statement["Principal"] == {"Service": "apigateway.amazonaws.com"}
        for statement in api_function["policy"]["Statement"]
    )
    assert stage.function_arn(API_FUNCTION).endswith(f":function:tfstate-guardian-{STAGE}")


# IAM's action for an operation, where it is not `<service>:<Operation>`.
IAM_ACTIONS = {
    ("s3", "HeadBucket"): "s3:ListBucket",
    ("s3", "GetBucketEncryption"): "s3:GetEncryptionConfiguration",
    ("s3", "PutBucketEncryption"): "s3:PutEncryptionConfiguration",
    ("s3", "GetPublicAccessBlock"): "s3:GetBucketPublicAccessBlock",
    ("s3", "PutPublicAccessBlock"): "s3:PutBucketPublicAccessBlock",
    ("s3", "GetBucketLifecycleConfiguration"): "s3:GetLifecycleConfiguration",
    ("s3", "PutBucketLifecycleConfiguration"): "s3:PutLifecycleConfiguration",
    ("s3", "GetBucketNotificationConfiguration"): "s3:GetBucketNotification",
    ("s3", "PutBucketNotificationConfiguration"): "s3:PutBucketNotification",
}


def deployer_requests(call: DeployerCall, account: str) -> list[Request]:
    """The requests IAM authorizes for one call of a deploy command, in the account it deploys into."""
    region, params = call.region, call.params
    action = IAM_ACTIONS.get((call.service, call.operation), f"{call.service}:{call.operation}")
    if call.service == "sts" and call.operation == "GetCallerIdentity":
        return []  # IAM never refuses it
    if call.service == "s3":
        return [Request(action, f"arn:aws:s3:::{params['Bucket']}")]
    if call.service == "dynamodb":
        return [Request(action, f"arn:aws:dynamodb:{region}:{account}:table/{params['TableName']}")]
    if call.service == "sns":
        arn = params.get("TopicArn") or f"arn:aws:sns:{region}:{account}:{params['Name']}"
        return [Request(action, arn)]
    if call.service == "sqs":
        name = params.get("QueueName") or params["QueueUrl"].rsplit("/", 1)[-1]
        return [Request(action, f"arn:aws:sqs:{region}:{account}:{name}")]
    if call.service == "iam":
        return [Request(action, f"arn:aws:iam::{account}:role/{params['RoleName']}")]
    if call.service == "events":
        return [Request(action, f"arn:aws:events:{region}:{account}:rule/{params.get('Rule') or params['Name']}")]
    if call.service == "cloudwatch":
        if call.operation in ("GetDashboard", "PutDashboard"):
            return [Request(action, f"arn:aws:cloudwatch::{account}:dashboard/{params['DashboardName']}")]
        if call.operation == "PutMetricAlarm":
            return [Request(action, f"arn:aws:cloudwatch:{region}:{account}:alarm:{params['AlarmName']}")]
        return [Request(action, "*")]
    if call.service == "lambda":
        return _lambda_requests(call, action, account)
    if call.service == "apigateway":
        operation = botocore.session.get_session().get_service_model("apigateway").operation_model(call.operation)
        path = operation.http["requestUri"].split("?", 1)[0]
        assert operation.input_shape is not None
        for member, shape in operation.input_shape.members.items():
            if shape.serialization.get("location") == "uri":
                path = path.replace("{" + shape.serialization["name"] + "}", str(params[member]))
        return [Request(f"apigateway:{operation.http['method']}", f"arn:aws:apigateway:{region}::{path}")]
    raise AssertionError(f"no request mapping for {call.service}:{call.operation}: add one here")


def _lambda_requests(call: DeployerCall, action: str, account: str) -> list[Request]:
    params = call.params
    name = str(params.get("FunctionName") or params.get("Resource") or "")
    arn = name if name.startswith("arn:") else f"arn:aws:lambda:{call.region}:{account}:function:{name}"
    arn = ":".join(arn.split(":")[:7])  # without a qualifier
    if call.operation == "ListEventSourceMappings":
        return [Request(action, "*")]
    if call.operation == "CreateEventSourceMapping":
        return [Request(action, "*", context=(("lambda:FunctionArn", arn),))]
    requests = [Request(action, arn)]
    if call.operation in ("CreateFunction", "UpdateFunctionConfiguration") and params.get("Role"):
        passed = (("iam:PassedToService", "lambda.amazonaws.com"),)
        requests.append(Request("iam:PassRole", params["Role"], context=passed))
    return requests


def test_every_call_of_both_deploys_is_allowed_by_the_deployer_policy(
    deployed: dict[str, Any], stage_config: StageConfig
) -> None:
    account = deployed["account"]
    policy = deployer_policy(stage_config, Where(account, deployed["region"]))
    requests: dict[Request, str] = {}
    for run in ("first", "second"):
        for call in deployed[run].calls:
            for request in deployer_requests(call, account):
                requests.setdefault(request, f"{call.command}: {call.service}:{call.operation}")
    assert len(requests) > 40
    assert denied(policy, requests) == []
    # Each grant is needed by a call of these deploys, or listed with the change that needs it.
    unused = []
    for statement in policy["Statement"]:
        for action in as_list(statement["Action"]):
            if action in WHEN_SOMETHING_CHANGES:
                continue
            narrowed = {**statement, "Action": [a for a in as_list(statement["Action"]) if a != action]}
            if not any(applies(statement, r) and not applies(narrowed, r) for r in requests):
                unused.append(f"{statement['Sid']}: {action}")
    assert unused == []


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_the_deployer_policy_grants_nothing_wild(stage: str) -> None:
    config = load_stage(Path(__file__).resolve().parents[2] / ".chalice" / "config.json", stage)
    policy = deployer_policy(config, Where(Stage(stage).account, Stage(stage).region))
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        actions = as_list(statement["Action"])
        assert not any(set(action) & {"*", "?"} for action in actions), statement["Sid"]
        if "*" in as_list(statement["Resource"]):
            assert as_list(statement["Resource"]) == ["*"]
            assert all(action in UNSCOPED for action in actions), statement["Sid"]
        for resource in as_list(statement["Resource"]):
            # Every other resource is the stage's own: named for it, or one of its backends'.
            own = [config.prefix, config.settings.guardian_table, config.settings.index_bucket or "-", "/restapis"]
            own += [
                name for b in config.backends for name in (b.state_bucket, b.lock_table, b.backend.role_arn) if name
            ]
            own += [":parameter/", f"arn:aws:events:{Stage(stage).region}:{Stage(stage).account}:event-bus/default"]
            # A mapping's ARN holds the id Lambda picks: any mapping, of the stage's own stream handler only.
            narrowed = config.prefix in json.dumps(statement.get("Condition", {}))
            assert resource == "*" or narrowed or any(name in resource for name in own), (statement["Sid"], resource)
    # And it is least privilege: another stage's resources, another account's, are denied.
    other = Request("lambda:UpdateFunctionCode", "arn:aws:lambda:us-east-1:123456789012:function:someone-else")
    assert not allows(policy, other)
    other_role = Request("iam:PassRole", f"arn:aws:iam::{Stage(stage).account}:role/admin",
                         context=(("iam:PassedToService", "lambda.amazonaws.com"),))  # fmt: skip
    assert not allows(policy, other_role)


def test_the_deployer_policy_command_prints_the_policy(capsys: pytest.CaptureFixture[str]) -> None:
    config = Path(__file__).resolve().parents[2] / ".chalice" / "config.json"
    assert deployer_policy_main(["--stage", "prod", "--config", str(config)]) == 0
    printed = json.loads(capsys.readouterr().out)
    stage = load_stage(config, "prod")
    assert printed == deployer_policy(stage, Where(Stage("prod").account, Stage("prod").region))
    assert {"sts:AssumeRole"} <= {a for s in printed["Statement"] for a in as_list(s["Action"])}
