"""Each function's AWS calls in this run are allowed by its own hand-written policy, which grants nothing wild."""

from __future__ import annotations

import ast
import copy
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path
from typing import Any

import pytest
from chalice.config import Config

from chalicelib.domain.backends import Backend
from chalicelib.services.notifier import LAMBDA_TIMEOUT_S, LEASE_S
from chalicelib.settings import Settings, backend_settings
from deploy.resource_shapes import INDEX_PREFIX
from deploy.sources import S3_HANDLER, STREAM_HANDLER, s3_queue_name, stream_queue_name
from deploy.stage_config import StageConfig, load_stage
from tests.conftest import API_FUNCTION, AwsCall, recorded_calls
from tests.support.app_functions import deployed_functions, handlers
from tests.support.app_functions import kind_of as _kind
from tests.support.iam_policies import Request, allows, applies, as_list, denied

ROOT = Path(__file__).resolve().parents[1]
CHALICE = ROOT / ".chalice"
CONFIG = json.loads((CHALICE / "config.json").read_text())
STAGES = sorted(CONFIG["stages"])
STATE_EVENTS, LOCK_EVENTS, DIGESTS, REAPER, BACKFILL = (
    "on_state_object_event",
    "on_lock_table_change",
    "verify_state_digests",
    "reap_stale_locks",
    "backfill_history",
)
# The fewest calls a whole run makes as each function, so that checking its policy is never checking nothing.
MINIMUM_CALLS = {STATE_EVENTS: 2000, LOCK_EVENTS: 500, DIGESTS: 100, REAPER: 300, BACKFILL: 300, API_FUNCTION: 500}
# Every action a notification channel needs; a statement with one of them must belong to a configured channel.
CHANNEL_ACTIONS = {
    "sns:Publish",
    "events:PutEvents",
    "ssm:GetParameter",
    "secretsmanager:GetSecretValue",
    "kms:Decrypt",
}
# Grants the emulator cannot exercise, each checked on exactly its resource by a test of its own below: assuming a
# backend's role in another account, and a schedule invoking its own function once per batch of backends.
EXACT_ACTIONS = {"sts:AssumeRole", "lambda:InvokeFunction"}
# Grants that Lambda itself uses with the function's role, never the guardian's code: no call of a run shows them.
LAMBDA_USES = {
    "LockTableStream": "the event source mappings read the lock tables' streams",
    "StreamDeadLetterQueue": "the event source mappings send a batch that keeps failing to `harden`'s queue",
    "FailedEventQueue": "Lambda sends an S3 event the handler kept failing on to its on-failure destination",
    "Logs": "the runtime writes the function's logs",
}
# The delivery ledger every function keeps in the guardian's table as it notifies: claims (a transaction of puts),
# a refused claim read back, deliveries completed and released in batches. Whether a run refuses a claim of each
# function is chance: these are required of every function below rather than learned from the run.
LEDGER_ACTIONS = ("dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:BatchWriteItem")
TRANSACT_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}


FUNCTIONS = deployed_functions()
# The backfill records what the bucket held before the guardian watched it: it announces nothing, so it has no
# channel and no delivery ledger (a call to either, were it to make one, fails the run's check of its calls).
NOTIFIERS = sorted(set(FUNCTIONS) - {BACKFILL})
# The scheduled functions, which hand each batch of backends to an invocation of their own when there are several.
SCHEDULED = sorted(name for name, decorator in handlers() if _kind(decorator) == "schedule")
# Every function but the stream handler reads the backends' buckets; the stream's records say all it needs.
BACKEND_READERS = sorted(set(FUNCTIONS) - {LOCK_EVENTS})


def home_of(env: dict[str, str]) -> tuple[str, str]:
    """The stage's own region and account, as its topic's ARN names them (Chalice deploys where the credentials are)."""
    topic = env.get("GUARDIAN_NOTIFY_TOPIC_ARN", "")
    parts = topic.split(":")
    assert len(parts) == 6 and parts[2] == "sns", "the checker reads the stage's region and account from its topic"
    return parts[3], parts[4]


@dataclass(frozen=True)
class Stage:
    """A stage of .chalice/config.json: its resources, and the policy each function deploys with."""

    name: str

    @cached_property
    def env(self) -> dict[str, str]:
        return {
            **CONFIG.get("environment_variables", {}),
            **CONFIG["stages"][self.name].get("environment_variables", {}),
        }

    @cached_property
    def region(self) -> str:
        return home_of(self.env)[0]

    @cached_property
    def account(self) -> str:
        return home_of(self.env)[1]

    @cached_property
    def backends(self) -> tuple[Settings, ...]:
        return backend_settings(self.env)

    @cached_property
    def direct(self) -> tuple[Backend, ...]:
        """The backends the functions reach with their own role; the others through a role of the backend's."""
        return tuple(settings.backend for settings in self.backends if settings.backend.role_arn is None)

    @cached_property
    def roles(self) -> frozenset[str]:
        return frozenset(settings.backend.role_arn for settings in self.backends if settings.backend.role_arn)

    @property
    def fans_out(self) -> bool:
        """More backends than one invocation takes: each schedule invokes its own function once per batch."""
        return len(self.backends) > self.backends[0].fan_out_batch

    @property
    def buckets(self) -> list[str]:
        return [backend.bucket for backend in self.direct]

    @property
    def index_bucket(self) -> str:
        return self.env["GUARDIAN_INDEX_BUCKET"]

    def object_arn(self, key: str, bucket: str | None = None) -> str:
        return f"arn:aws:s3:::{bucket or self.buckets[0]}/{key}"

    def index_arn(self, key: str) -> str:
        return f"arn:aws:s3:::{self.index_bucket}/{INDEX_PREFIX}{key}"

    def table_arn(self, table: str, backend: Backend | None = None) -> str:
        region = (backend.region if backend else None) or self.region
        account = (backend.account if backend else None) or self.account
        return f"arn:aws:dynamodb:{region}:{account}:table/{table}"

    def lock_table_arns(self) -> set[str]:
        return {self.table_arn(b.lock_table, b) for b in self.direct if b.lock_table}

    def stream_arns(self) -> set[str]:
        """Each lock table's stream: its label is DynamoDB's to choose when `prepare` enables it, so any of its."""
        return {f"{arn}/stream/*" for arn in self.lock_table_arns()}

    @property
    def guardian_table_arn(self) -> str:
        return self.table_arn(self.env["GUARDIAN_TABLE"])

    def event_bus_arn(self, bus: str) -> str:
        return bus if bus.startswith("arn:") else f"arn:aws:events:{self.region}:{self.account}:event-bus/{bus}"

    def function_name(self, function: str) -> str:
        # Chalice names the API function `<app>-<stage>` and every other one `<app>-<stage>-<handler>`.
        return f"{CONFIG['app_name']}-{self.name}" + ("" if function == API_FUNCTION else f"-{function}")

    def function_arn(self, function: str) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account}:function:{self.function_name(function)}"

    @cached_property
    def config(self) -> StageConfig:
        """The stage as the deploy commands read it."""
        return load_stage(CHALICE / "config.json", self.name)

    def queue_arn(self, name: str) -> str:
        return f"arn:aws:sqs:{self.region}:{self.account}:{name}"

    def chalice_config(self, function: str) -> Config:
        return Config(chalice_stage=self.name, function_name=function, config_from_disk=CONFIG)

    def log_group_arn(self, function: str) -> str:
        return f"arn:aws:logs:{self.region}:{self.account}:log-group:/aws/lambda/{self.function_name(function)}:*"

    def policy_path(self, function: str) -> Path:
        return CHALICE / self.chalice_config(function).iam_policy_file

    def policy(self, function: str) -> dict[str, Any]:
        return _read_policy(self.policy_path(function))

    def requests(self, calls: Iterable[AwsCall]) -> dict[Request, str]:
        """The requests of `calls` as IAM would see them in this stage, each with a call that made it."""
        found: dict[Request, str] = {}
        for call in calls:
            for request in requests_of(call, self):
                found.setdefault(request, f"{call.service}:{call.operation}")
        return found


@cache
def _read_policy(path: Path) -> dict[str, Any]:
    policy: dict[str, Any] = json.loads(path.read_text())
    return policy


def requests_of(call: AwsCall, stage: Stage) -> list[Request]:
    """The requests IAM authorizes for `call`, had this stage's function made it for any of its backends.

    The run's own bucket and lock table stand for each backend's that the stage's functions reach with their own
    role (so the call must be allowed on every one of them), its guardian table, index bucket and channels for the
    stage's; anything else keeps its name, and so is denied. A backend reached through a role of its own is the
    role's policy's business, in the backend's account: the function's policy only lets it assume that role.
    """
    found: list[Request] = []
    for backend in stage.direct or (None,):
        found += [request for request in _requests_for(call, stage, backend) if request not in found]
    return found


def _requests_for(call: AwsCall, stage: Stage, backend: Backend | None) -> list[Request]:
    own, params = call.settings, call.params
    if call.service == "s3":
        buckets = {own.index_bucket: stage.index_bucket}
        if backend is not None:
            buckets[own.state_bucket] = backend.bucket
        bucket = buckets.get(params["Bucket"], params["Bucket"])
        bucket_arn, versioned = f"arn:aws:s3:::{bucket}", bool(params.get("VersionId"))
        object_arn = f"{bucket_arn}/{params.get('Key', '')}"
        if call.operation in ("GetObject", "HeadObject"):
            # S3 answers a missing key with 403, not 404, to a reader who may not list the bucket; the guardian
            # must tell a key that is gone (a lockfile released before it was read, a state never written) apart.
            read = "s3:GetObjectVersion" if versioned else "s3:GetObject"
            return [Request(read, object_arn), Request("s3:ListBucket", bucket_arn)]
        if call.operation == "PutObject":
            return [Request("s3:PutObject", object_arn)]
        if call.operation == "DeleteObject":
            return [Request("s3:DeleteObjectVersion" if versioned else "s3:DeleteObject", object_arn)]
        if call.operation == "ListObjectVersions":
            return [Request("s3:ListBucketVersions", bucket_arn)]
        if call.operation == "ListObjectsV2":
            return [Request("s3:ListBucket", bucket_arn)]
    if call.service == "dynamodb":
        return _dynamodb_requests(call, stage, backend)
    # A channel the stage does not configure is never called there; each one it does is checked on its own.
    if call.service == "sns" and call.operation in ("Publish", "PublishBatch"):
        if params["TopicArn"] != own.notify_topic_arn:
            return [Request("sns:Publish", params["TopicArn"])]
        topic = stage.env.get("GUARDIAN_NOTIFY_TOPIC_ARN")
        return [Request("sns:Publish", topic)] if topic else []
    if call.service == "events" and call.operation == "PutEvents":
        found = []
        for entry in params["Entries"]:
            bus = entry.get("EventBusName", "default")
            if bus != own.notify_event_bus:
                found.append(Request("events:PutEvents", stage.event_bus_arn(bus)))
            elif stage_bus := stage.env.get("GUARDIAN_NOTIFY_EVENT_BUS"):
                found.append(Request("events:PutEvents", stage.event_bus_arn(stage_bus)))
        return found
    # Likewise a liveness check the stage does not enable is never asked there; EC2's Describe calls name no resource.
    if call.service == "ec2" and call.operation == "DescribeNetworkInterfaces":
        return [Request("ec2:DescribeNetworkInterfaces", "*")] if eni_enabled(stage.backends) else []
    # A backend's role is assumed only where the stage names one; the run's role stands for each of the stage's.
    if call.service == "sts" and call.operation == "AssumeRole":
        if params["RoleArn"] != own.backend.role_arn:
            return [Request("sts:AssumeRole", params["RoleArn"])]
        return [Request("sts:AssumeRole", role) for role in sorted(stage.roles)]
    # A schedule invokes its own function, and only where the stage has more backends than one invocation takes.
    if call.service == "lambda" and call.operation == "Invoke":
        name = str(params["FunctionName"]).rsplit(":function:", 1)[-1]
        if call.function is None or not name.endswith(f"-{call.function}"):
            return [Request("lambda:InvokeFunction", f"arn:aws:lambda:{stage.region}:{stage.account}:function:{name}")]
        return [Request("lambda:InvokeFunction", stage.function_arn(call.function))] if stage.fans_out else []
    raise AssertionError(f"no request mapping for {call.service}:{call.operation}: add one here")


def _dynamodb_requests(call: AwsCall, stage: Stage, backend: Backend | None) -> list[Request]:
    own, params = call.settings, call.params
    tables: dict[str, tuple[str, Backend | None]] = {own.guardian_table: (stage.env["GUARDIAN_TABLE"], None)}
    partition_keys = {own.guardian_table: "pk"}
    if own.lock_table:
        partition_keys[own.lock_table] = "LockID"
        if backend is not None and backend.lock_table:
            tables[own.lock_table] = (backend.lock_table, backend)
    # A backend without a lock table: the run's calls on its lock table are never made for that backend.
    skipped = own.lock_table if own.lock_table and backend is not None and not backend.lock_table else None
    bucket = backend.bucket if backend is not None else ""

    def request(action: str, table: str, items: Iterable[dict[str, Any]] | None) -> list[Request]:
        if table == skipped:
            return []
        keys = None
        if items is not None:
            name = partition_keys.get(table, "")
            keys = tuple(sorted({_leading_key(item.get(name, {}).get("S", ""), table, own, bucket) for item in items}))
        stage_table, table_backend = tables.get(table, (table, None))
        return [Request(f"dynamodb:{action}", stage.table_arn(stage_table, table_backend), keys)]

    if call.operation == "TransactWriteItems":
        # IAM authorizes each item of a transaction as the single-item action it is.
        return [
            found
            for action in params["TransactItems"]
            for kind, item in action.items()
            for found in request(TRANSACT_ACTIONS[kind], item["TableName"], [item.get("Key") or item["Item"]])
        ]
    if call.operation == "BatchWriteItem":
        return [
            found
            for table, writes in params["RequestItems"].items()
            for found in request(
                "BatchWriteItem",
                table,
                [write.get("PutRequest", {}).get("Item") or write["DeleteRequest"]["Key"] for write in writes],
            )
        ]
    if call.operation in ("GetItem", "PutItem", "UpdateItem", "DeleteItem"):
        return request(call.operation, params["TableName"], [params.get("Key") or params["Item"]])
    if call.operation == "Query":
        name = partition_keys.get(params["TableName"], "")
        return request("Query", params["TableName"], [{name: _queried_partition(params, name)}])
    if call.operation == "Scan":
        return request("Scan", params["TableName"], None)
    raise AssertionError(f"no request mapping for dynamodb:{call.operation}: add one here")


def _leading_key(value: str, table: str, own: Any, bucket: str) -> str:
    # Lock and digest items are named `<bucket>/<key>`: the run's bucket stands for the backend's there too.
    prefix = f"{own.state_bucket}/"
    return bucket + "/" + value[len(prefix) :] if table == own.lock_table and value.startswith(prefix) else value


def _queried_partition(params: dict[str, Any], name: str) -> dict[str, str]:
    names = {alias: real for alias, real in params.get("ExpressionAttributeNames", {}).items()}
    for attribute, placeholder in re.findall(r"(#?\w+)\s*=\s*(:\w+)", params["KeyConditionExpression"]):
        if names.get(attribute, attribute) == name:
            return dict(params["ExpressionAttributeValues"][placeholder])
    raise AssertionError(f"no partition key in {params['KeyConditionExpression']!r}")


def whole_run() -> None:
    if len(recorded_calls()) < 1000:
        pytest.skip("run the whole suite: this checks the calls it made")


@cache
def calls_as(stage: Stage, function: str | None) -> dict[Request, str]:
    return stage.requests(call for call in recorded_calls() if call.function == function)


STAGE_FUNCTIONS = [(stage, function) for stage in STAGES for function in FUNCTIONS]


@pytest.mark.last
@pytest.mark.parametrize(("stage", "function"), STAGE_FUNCTIONS)
def test_every_call_a_function_made_in_this_run_is_allowed_by_its_own_policy(stage: str, function: str) -> None:
    whole_run()
    made = sum(call.function == function for call in recorded_calls())
    assert made >= MINIMUM_CALLS[function], f"the run made only {made} calls as {function}"
    assert denied(Stage(stage).policy(function), calls_as(Stage(stage), function)) == []


@pytest.mark.last
@pytest.mark.parametrize("stage", STAGES)
def test_every_call_made_outside_a_handler_is_allowed_by_a_policy_of_the_stage(stage: str) -> None:
    """A test that calls a service directly stands for whichever function calls it."""
    whole_run()
    assert {call.function for call in recorded_calls()} - {None} <= set(FUNCTIONS)  # no call is left unchecked
    policies = [Stage(stage).policy(function) for function in FUNCTIONS]
    denied_calls = set()
    for call in recorded_calls():
        if call.function is None:
            needed = requests_of(call, Stage(stage))
            if not any(all(allows(policy, request) for request in needed) for policy in policies):
                denied_calls.add(f"{call.service}:{call.operation}: " + ", ".join(map(str, needed)))
    assert sorted(denied_calls) == []


def narrowings(statement: dict[str, Any]) -> Iterable[tuple[str, dict[str, Any]]]:
    """The statement with one action removed, one resource or one condition pattern made to match nothing."""
    for action in as_list(statement["Action"]):
        yield f"removing {action}", {**statement, "Action": [a for a in as_list(statement["Action"]) if a != action]}
    for resource in as_list(statement["Resource"]):
        narrowed = [r + "#narrowed" if r == resource else r for r in as_list(statement["Resource"])]
        yield f"narrowing the resource {resource}", {**statement, "Resource": narrowed}
    for operator, keys in statement.get("Condition", {}).items():
        for key, patterns in keys.items():
            for pattern in as_list(patterns):
                condition = copy.deepcopy(statement["Condition"])
                condition[operator][key] = [p + "#narrowed" if p == pattern else p for p in as_list(patterns)]
                yield f"narrowing {key} {pattern}", {**statement, "Condition": condition}


@pytest.mark.last
@pytest.mark.parametrize(("stage", "function"), STAGE_FUNCTIONS)
def test_narrowing_any_grant_the_function_used_fails_the_check(stage: str, function: str) -> None:
    whole_run()
    policy, made = Stage(stage).policy(function), calls_as(Stage(stage), function)
    for index, statement in enumerate(policy["Statement"]):
        used = {request: call for request, call in made.items() if applies(statement, request)}
        for change, narrowed_statement in narrowings(statement):
            narrowed = copy.deepcopy(policy)
            narrowed["Statement"][index] = narrowed_statement
            if all(applies(narrowed_statement, request) for request in used):
                continue  # a grant this function's calls did not use: see the test below
            assert denied(narrowed, used), f"{change} in {statement['Sid']} went unnoticed"


@pytest.mark.last
@pytest.mark.parametrize(("stage", "function"), STAGE_FUNCTIONS)
def test_each_function_is_granted_only_what_it_used_in_this_run(stage: str, function: str) -> None:
    """Every action, resource and condition pattern of the function's policy was needed by one of its calls.

    Lambda's own uses of the role, the channels, the backends' roles and the schedules' own functions (each checked
    on exactly its resources below) and the delivery ledger (checked for every function that notifies below) aside.
    """
    whole_run()
    policy, made = Stage(stage).policy(function), calls_as(Stage(stage), function)
    unused = []
    for statement in policy["Statement"]:
        if statement["Sid"] in LAMBDA_USES or set(as_list(statement["Action"])) <= CHANNEL_ACTIONS | EXACT_ACTIONS:
            continue
        used = [request for request in made if applies(statement, request)]
        for change, narrowed in narrowings(statement):
            ledger = function in NOTIFIERS and change.removeprefix("removing ") in LEDGER_ACTIONS
            if statement["Sid"] == "GuardianTable" and ledger:
                continue
            if all(applies(narrowed, request) for request in used):
                unused.append(f"{statement['Sid']}: {change.removeprefix('removing ').removeprefix('narrowing ')}")
    assert unused == []


@pytest.mark.parametrize(("stage", "function"), STAGE_FUNCTIONS)
def test_every_function_that_notifies_may_keep_the_delivery_ledger_of_its_notifications(
    stage: str, function: str
) -> None:
    config = Stage(stage)
    for action in LEDGER_ACTIONS:
        request = Request(action, config.guardian_table_arn, ("delivery#0123abcd",))
        assert allows(config.policy(function), request) or function not in NOTIFIERS


def test_the_checker_evaluates_what_iam_would() -> None:
    stage = Stage("dev")
    (table,) = stage.lock_table_arns()
    bucket = f"arn:aws:s3:::{stage.buckets[0]}"
    policy: dict[str, Any] = {
        "Statement": [
            {"Sid": "Objects", "Effect": "Allow", "Action": ["s3:GetObject"], "Resource": f"{bucket}/*"},
            {"Sid": "Locks", "Effect": "Allow", "Action": ["s3:DeleteObjectVersion"], "Resource": f"{bucket}/*.tflock"},
            {"Sid": "One", "Effect": "Allow", "Action": ["s3:PutObject"], "Resource": f"{bucket}/env?/*"},
            {
                "Sid": "Digests",
                "Effect": "Allow",
                "Action": ["dynamodb:PutItem"],
                "Resource": table,
                "Condition": {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": [f"{stage.buckets[0]}/*-md5"]}},
            },
        ]
    }
    assert allows(policy, Request("s3:GetObject", f"{bucket}/a/b.tfstate"))
    assert allows(policy, Request("S3:getobject", f"{bucket}/a/b.tfstate"))  # actions are case-insensitive
    assert not allows(policy, Request("s3:GetObject", bucket))  # the bucket is not one of its objects
    assert not allows(policy, Request("s3:GetObject", f"{bucket}-other/a.tfstate"))
    assert allows(policy, Request("s3:DeleteObjectVersion", f"{bucket}/env:/prod/a.tfstate.tflock"))
    assert not allows(policy, Request("s3:DeleteObjectVersion", f"{bucket}/a.tfstate"))
    assert not allows(policy, Request("s3:DeleteObjectVersion", f"{bucket}/a.tflock.tfstate"))
    assert allows(policy, Request("s3:PutObject", f"{bucket}/env:/prod/a.tfstate"))
    assert not allows(policy, Request("s3:PutObject", f"{bucket}/env::/prod/a.tfstate"))
    assert allows(policy, Request("dynamodb:PutItem", table, (f"{stage.buckets[0]}/a.tfstate-md5",)))
    assert not allows(policy, Request("dynamodb:PutItem", table, (f"{stage.buckets[0]}/a.tfstate",)))
    assert not allows(
        policy, Request("dynamodb:PutItem", table, (f"{stage.buckets[0]}/a-md5", f"{stage.buckets[0]}/a"))
    )
    assert not allows(policy, Request("dynamodb:PutItem", table, ("other/a.tfstate-md5",)))
    assert not allows(policy, Request("dynamodb:PutItem", stage.guardian_table_arn, (f"{stage.buckets[0]}/a-md5",)))
    denying = {"Statement": [*policy["Statement"], {**policy["Statement"][0], "Effect": "Deny"}]}
    assert not allows(denying, Request("s3:GetObject", f"{bucket}/a/b.tfstate"))
    passing: dict[str, Any] = {
        "Statement": [
            {
                "Sid": "Pass",
                "Effect": "Allow",
                "Action": "iam:PassRole",
                "Resource": "arn:aws:iam::1:role/r",
                "Condition": {"StringEquals": {"iam:PassedToService": "lambda.amazonaws.com"}},
            }
        ]
    }
    to_lambda = Request(
        "iam:PassRole", "arn:aws:iam::1:role/r", context=(("iam:PassedToService", "lambda.amazonaws.com"),)
    )
    assert allows(passing, to_lambda)
    assert not allows(passing, Request("iam:PassRole", "arn:aws:iam::1:role/r"))  # a missing key does not match
    assert not allows(
        passing,
        Request("iam:PassRole", "arn:aws:iam::1:role/r", context=(("iam:PassedToService", "ec2.amazonaws.com"),)),
    )


def test_the_checker_sees_each_item_and_the_resources_of_a_call() -> None:
    stage = Stage("dev")
    (lock_table_arn,) = stage.lock_table_arns()
    run = Settings(Backend(name="default", bucket="b", lock_table="locks"), guardian_table="guardian", index_bucket="i")
    transaction = AwsCall(
        REAPER,
        "dynamodb",
        "TransactWriteItems",
        {
            "TransactItems": [
                {"Put": {"TableName": "guardian", "Item": {"pk": {"S": "delivery#1"}, "sk": {"S": "sns"}}}},
                {"Delete": {"TableName": "locks", "Key": {"LockID": {"S": "b/prod/a.tfstate"}}}},
            ]
        },
        run,
    )
    assert requests_of(transaction, stage) == [
        Request("dynamodb:PutItem", stage.guardian_table_arn, ("delivery#1",)),
        Request("dynamodb:DeleteItem", lock_table_arn, (f"{stage.buckets[0]}/prod/a.tfstate",)),
    ]
    batch = AwsCall(
        REAPER,
        "dynamodb",
        "BatchWriteItem",
        {"RequestItems": {"locks": [{"DeleteRequest": {"Key": {"LockID": {"S": "b/x"}}}},
                                    {"PutRequest": {"Item": {"LockID": {"S": "other/y"}}}}]}},
        run,
    )  # fmt: skip
    assert requests_of(batch, stage) == [
        Request("dynamodb:BatchWriteItem", lock_table_arn, (f"{stage.buckets[0]}/x", "other/y"))
    ]
    read = AwsCall(REAPER, "s3", "GetObject", {"Bucket": "b", "Key": "a.tflock", "VersionId": "v"}, run)
    assert requests_of(read, stage) == [
        Request("s3:GetObjectVersion", stage.object_arn("a.tflock")),
        Request("s3:ListBucket", f"arn:aws:s3:::{stage.buckets[0]}"),
    ]
    index = AwsCall(STATE_EVENTS, "s3", "GetObject", {"Bucket": "i", "Key": f"{INDEX_PREFIX}x/v"}, run)
    assert requests_of(index, stage) == [
        Request("s3:GetObject", stage.index_arn("x/v")),
        Request("s3:ListBucket", f"arn:aws:s3:::{stage.index_bucket}"),
    ]
    elsewhere = AwsCall(REAPER, "s3", "DeleteObject", {"Bucket": "c", "Key": "a.tflock", "VersionId": "v"}, run)
    assert requests_of(elsewhere, stage) == [Request("s3:DeleteObjectVersion", "arn:aws:s3:::c/a.tflock")]
    query = AwsCall(
        REAPER,
        "dynamodb",
        "Query",
        {"TableName": "guardian", "KeyConditionExpression": "#pk = :pk AND sk > :sk",
         "ExpressionAttributeNames": {"#pk": "pk"}, "ExpressionAttributeValues": {":pk": {"S": "lock#b/a"}}},
        run,
    )  # fmt: skip
    assert requests_of(query, stage) == [Request("dynamodb:Query", stage.guardian_table_arn, ("lock#b/a",))]


def intended_access(stage: Stage, backend: Backend) -> dict[str, tuple[Request, set[str]]]:
    """Each way to read or change a state, a lock, a digest or an index of a backend, and the functions that may."""
    state, lockfile, path = "prod/app.tfstate", "prod/app.tfstate.tflock", f"{backend.bucket}/prod/app.tfstate"
    bucket, other = f"arn:aws:s3:::{backend.bucket}", "other/prod/app.tfstate"
    table = stage.table_arn(backend.lock_table or "no-lock-table", backend)
    with_locks = (lambda functions: functions) if backend.lock_table else (lambda functions: set())
    indexes, index = f"arn:aws:s3:::{stage.index_bucket}", stage.index_arn("0123abcd/3HL4kqtJlcpXroDTDmJ")
    everyone_but_the_stream = set(FUNCTIONS) - {LOCK_EVENTS}
    # The index of a version is written by whoever first reads that version to record it; the API only reads them.
    indexers, readers = {STATE_EVENTS, BACKFILL}, {STATE_EVENTS, BACKFILL, API_FUNCTION}
    return {
        "list the states": (Request("s3:ListBucket", bucket), everyone_but_the_stream),
        "list their versions": (Request("s3:ListBucketVersions", bucket), everyone_but_the_stream),
        "read a state": (
            Request("s3:GetObject", stage.object_arn(state, backend.bucket)),
            {STATE_EVENTS, API_FUNCTION},
        ),
        "read a state version": (
            Request("s3:GetObjectVersion", stage.object_arn(state, backend.bucket)),
            {STATE_EVENTS, DIGESTS, BACKFILL, API_FUNCTION},
        ),
        "read a lockfile": (
            Request("s3:GetObject", stage.object_arn(lockfile, backend.bucket)),
            {STATE_EVENTS, REAPER, API_FUNCTION},
        ),
        "read another bucket's state": (Request("s3:GetObject", f"arn:aws:s3:::{other}"), set()),
        "write a state": (Request("s3:PutObject", stage.object_arn(state, backend.bucket)), {API_FUNCTION}),
        "create a lockfile": (Request("s3:PutObject", stage.object_arn(lockfile, backend.bucket)), {API_FUNCTION}),
        "delete a state": (Request("s3:DeleteObject", stage.object_arn(state, backend.bucket)), set()),
        "delete a state version": (Request("s3:DeleteObjectVersion", stage.object_arn(state, backend.bucket)), set()),
        "delete a lockfile": (Request("s3:DeleteObject", stage.object_arn(lockfile, backend.bucket)), set()),
        "delete a lockfile version": (
            Request("s3:DeleteObjectVersion", stage.object_arn(lockfile, backend.bucket)),
            {API_FUNCTION, REAPER},
        ),
        "delete another bucket's lockfile version": (
            Request("s3:DeleteObjectVersion", f"arn:aws:s3:::{other}.tflock"),
            set(),
        ),
        "scan the lock table": (Request("dynamodb:Scan", table), with_locks({REAPER, API_FUNCTION})),
        "read a lock": (Request("dynamodb:GetItem", table, (path,)), with_locks({API_FUNCTION})),
        "read another bucket's lock": (Request("dynamodb:GetItem", table, (other,)), set()),
        "take a lock": (Request("dynamodb:PutItem", table, (path,)), with_locks({API_FUNCTION})),
        "release a lock": (Request("dynamodb:DeleteItem", table, (path,)), with_locks({API_FUNCTION, REAPER})),
        "release another bucket's lock": (Request("dynamodb:DeleteItem", table, (other,)), set()),
        "update a lock item": (Request("dynamodb:UpdateItem", table, (path,)), set()),
        "read a digest": (
            Request("dynamodb:GetItem", table, (path + "-md5",)),
            with_locks({STATE_EVENTS, DIGESTS, API_FUNCTION}),
        ),
        "write a digest": (Request("dynamodb:PutItem", table, (path + "-md5",)), with_locks({API_FUNCTION, DIGESTS})),
        "write another bucket's digest": (Request("dynamodb:PutItem", table, (other + "-md5",)), set()),
        "write several lock items at once": (Request("dynamodb:BatchWriteItem", table, (path,)), set()),
        "list the indexes": (Request("s3:ListBucket", indexes), readers),
        "read an index": (Request("s3:GetObject", index), readers),
        "write an index": (Request("s3:PutObject", index), indexers),
        "delete an index": (Request("s3:DeleteObject", index), set()),
        "read an index bucket object outside the indexes": (
            Request("s3:GetObject", f"{indexes}/{backend.bucket}/{state}"),
            set(),
        ),
        "write an index bucket object outside the indexes": (Request("s3:PutObject", f"{indexes}/{state}"), set()),
        "write an index into the state bucket": (
            Request("s3:PutObject", stage.object_arn(f"{INDEX_PREFIX}0123abcd/v", backend.bucket)),
            {API_FUNCTION},  # it writes states, whose keys are the team's to choose
        ),
        "read a state version in the index bucket": (Request("s3:GetObjectVersion", f"{indexes}/{state}"), set()),
    }


@pytest.mark.parametrize("stage", STAGES)
def test_each_function_may_read_and_change_only_what_it_is_meant_to(stage: str) -> None:
    config = Stage(stage)
    assert config.direct
    for backend in config.direct:
        for access, (request, functions) in intended_access(config, backend).items():
            allowed = {function for function in FUNCTIONS if allows(config.policy(function), request)}
            assert allowed == functions, f"{access} of backend {backend.name}"


@pytest.mark.parametrize("stage", STAGES)
def test_no_function_reaches_a_backend_of_another_account_but_through_its_role(stage: str) -> None:
    config = Stage(stage)
    for settings in config.backends:
        backend = settings.backend
        if backend.role_arn is None:
            continue
        bucket = f"arn:aws:s3:::{backend.bucket}"
        for request in (Request("s3:ListBucket", bucket), Request("s3:GetObject", f"{bucket}/a.tfstate")):
            assert not any(allows(config.policy(function), request) for function in FUNCTIONS), request


def stage_resources(stage: Stage, function: str) -> set[str]:
    """Everything a function's policy may name: the stage's own resources, and its own log group."""
    indexes = f"arn:aws:s3:::{stage.index_bucket}"
    resources = {arn for bucket in stage.buckets for arn in (f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*")}
    resources |= {f"arn:aws:s3:::{bucket}/*.tflock" for bucket in stage.buckets}
    resources |= stage.lock_table_arns() | {stage.guardian_table_arn, indexes, stage.index_arn("*")}
    resources |= {resource for _, resource in channel_grants(stage.env)} | {stage.log_group_arn(function)}
    resources |= {resource for _, resource in liveness_grants(stage.env, function)}
    resources |= {resource for _, resource in exact_grants(stage, function)}
    if function == STREAM_HANDLER:
        resources |= stage.stream_arns() | {stage.queue_arn(stream_queue_name(stage.config))}
    if function == S3_HANDLER:
        resources.add(stage.queue_arn(s3_queue_name(stage.config)))
    return resources


@pytest.mark.parametrize(("stage", "function"), STAGE_FUNCTIONS)
def test_no_wildcards_beyond_the_buckets_objects_and_the_functions_own_log_streams(stage: str, function: str) -> None:
    config = Stage(stage)
    wild = {f"arn:aws:s3:::{bucket}/{keys}" for bucket in config.buckets for keys in ("*", "*.tflock")}
    wild |= {config.log_group_arn(function), config.index_arn("*")}
    wild |= config.stream_arns()  # a stream's label is known only once `prepare` has enabled it
    wild |= {resource for action, resource in liveness_grants(config.env, function) if action.startswith("ec2:")}
    for statement in config.policy(function)["Statement"]:
        assert statement["Effect"] == "Allow", statement["Sid"]
        assert not any(set(action) & {"*", "?"} for action in as_list(statement["Action"])), statement["Sid"]
        for resource in as_list(statement["Resource"]):
            assert resource in stage_resources(config, function), statement["Sid"]
            assert resource in wild or not set(resource) & {"*", "?"}, statement["Sid"]
        for keys in statement.get("Condition", {}).values():
            for patterns in keys.values():
                # Wildcards only within the keys of the stage's own buckets.
                prefixes = tuple(f"{bucket}/" for bucket in config.buckets)
                assert all(pattern.startswith(prefixes) for pattern in as_list(patterns)), statement["Sid"]


@pytest.mark.parametrize(("stage", "function"), STAGE_FUNCTIONS)
def test_each_function_writes_its_own_logs_only(stage: str, function: str) -> None:
    config = Stage(stage)
    logs = [s for s in config.policy(function)["Statement"] if any(a.startswith("logs:") for a in as_list(s["Action"]))]
    assert [as_list(statement["Resource"]) for statement in logs] == [[config.log_group_arn(function)]]


@pytest.mark.parametrize(("stage", "function"), STAGE_FUNCTIONS)
def test_only_the_event_handlers_read_the_streams_and_feed_their_own_dead_letter_queues(
    stage: str, function: str
) -> None:
    config = Stage(stage)
    sids = {statement["Sid"] for statement in config.policy(function)["Statement"]}
    streams, queues = {"LockTableStream", "StreamDeadLetterQueue"}, {"FailedEventQueue"}
    assert sids & streams == (streams if function == STREAM_HANDLER else set())
    assert sids & queues == (queues if function == S3_HANDLER else set())
    own_queue = {
        STREAM_HANDLER: config.queue_arn(stream_queue_name(config.config)),
        S3_HANDLER: config.queue_arn(s3_queue_name(config.config)),
    }.get(function)
    for statement in config.policy(function)["Statement"]:
        resources = as_list(statement["Resource"])
        assert not config.stream_arns() & set(resources) or statement["Sid"] == "LockTableStream"
        if statement["Sid"] == "LockTableStream":
            assert set(resources) == config.stream_arns()  # every lock table's stream, and nothing else
        if any(action.startswith("sqs:") for action in as_list(statement["Action"])):
            assert statement["Sid"] in {"StreamDeadLetterQueue", "FailedEventQueue"}
            assert as_list(statement["Action"]) == ["sqs:SendMessage"] and resources == [own_queue]


# Every setting that names a channel's secret (`ssm:` or `secretsmanager:`), each read with its own grant.
SECRET_SETTINGS = (
    "GUARDIAN_SLACK_WEBHOOK_SECRET",
    "GUARDIAN_WEBHOOK_SECRET",
    "GUARDIAN_TEAMS_WEBHOOK_SECRET",
    "GUARDIAN_PAGERDUTY_ROUTING_KEY_SECRET",
)


def channel_grants(env: dict[str, str]) -> set[tuple[str, str]]:
    """(action, resource) for each channel the stage configures, on exactly the resource it names."""
    region, account = home_of(env)
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
    return grants | secret_grants(env, SECRET_SETTINGS)


def secret_grants(env: dict[str, str], settings: tuple[str, ...]) -> set[tuple[str, str]]:
    """(action, resource) reading each secret the settings name, on exactly that secret."""
    region, account = home_of(env)
    grants = set()
    for setting in settings:
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


def policy_channel_grants(policy: dict[str, Any]) -> set[tuple[str, str]]:
    grants = set()
    for statement in policy["Statement"]:
        actions = as_list(statement["Action"])
        grants |= {(a, r) for a in actions if a in CHANNEL_ACTIONS for r in as_list(statement["Resource"])}
    return grants


@pytest.mark.parametrize(("stage", "function"), STAGE_FUNCTIONS)
def test_each_configured_channel_and_no_other_is_allowed_on_exactly_its_resource(stage: str, function: str) -> None:
    """Every function but the backfill notifies: each gets every channel the stage configures, the backfill none."""
    config = Stage(stage)
    wanted = channel_grants(config.env) if function in NOTIFIERS else set()
    wanted |= {
        (action, resource) for action, resource in liveness_grants(config.env, function) if action in CHANNEL_ACTIONS
    }
    assert policy_channel_grants(config.policy(function)) == wanted


# The functions that run the reaper's judgement, and so its liveness checks: the schedule, and the API (its dry run).
LIVENESS_FUNCTIONS = frozenset({REAPER, API_FUNCTION})
LIVENESS_SECRET_SETTINGS = ("GUARDIAN_LIVENESS_GITHUB_TOKEN_SECRET",)


def eni_enabled(backends: Iterable[Settings]) -> bool:
    """Whether a backend the functions reach with their own role asks EC2 (another account's: its role does)."""
    return any(settings.liveness.eni for settings in backends if settings.backend.role_arn is None)


def liveness_grants(env: dict[str, str], function: str) -> set[tuple[str, str]]:
    """(action, resource) for each liveness check the stage enables, for the functions that ask it."""
    if function not in LIVENESS_FUNCTIONS:
        return set()
    backends = backend_settings(env)
    grants = {("ec2:DescribeNetworkInterfaces", "*")} if eni_enabled(backends) else set()
    for settings in backends:  # the token is the guardian's own, whichever backend's runners it asks about
        secret = settings.liveness.github_token_secret
        if secret:
            grants |= secret_grants({**env, LIVENESS_SECRET_SETTINGS[0]: secret}, LIVENESS_SECRET_SETTINGS)
    return grants


@pytest.mark.parametrize(("stage", "function"), STAGE_FUNCTIONS)
def test_each_enabled_liveness_check_and_no_other_may_ask_ec2(stage: str, function: str) -> None:
    config = Stage(stage)
    granted = {
        (action, resource)
        for statement in config.policy(function)["Statement"]
        for action in as_list(statement["Action"])
        if action.lower().startswith("ec2:")
        for resource in as_list(statement["Resource"])
    }
    assert granted == {grant for grant in liveness_grants(config.env, function) if grant[0].startswith("ec2:")}


def test_the_liveness_mapping_sees_every_check() -> None:
    env = {
        "GUARDIAN_STATE_BUCKET": "b",
        "GUARDIAN_LOCK_TABLE": "t",
        "GUARDIAN_TABLE": "g",
        "GUARDIAN_NOTIFY_TOPIC_ARN": "arn:aws:sns:eu-west-1:111122223333:t",
        "GUARDIAN_LIVENESS_ENI": "true",
        "GUARDIAN_LIVENESS_GITHUB": "org:acme",
        "GUARDIAN_LIVENESS_GITHUB_TOKEN_SECRET": "ssm:/ci/github-token",
    }
    assert (
        liveness_grants(env, REAPER)
        == liveness_grants(env, API_FUNCTION)
        == {
            ("ec2:DescribeNetworkInterfaces", "*"),
            ("ssm:GetParameter", "arn:aws:ssm:eu-west-1:111122223333:parameter/ci/github-token"),
        }
    )
    assert liveness_grants(env, STATE_EVENTS) == set()
    assert liveness_grants({**env, "GUARDIAN_LIVENESS_ENI": "false"}, REAPER) == {
        ("ssm:GetParameter", "arn:aws:ssm:eu-west-1:111122223333:parameter/ci/github-token")
    }


def test_the_channel_mapping_sees_every_channel() -> None:
    env = {
        "GUARDIAN_NOTIFY_TOPIC_ARN": "arn:aws:sns:eu-west-1:111122223333:t",
        "GUARDIAN_NOTIFY_EVENT_BUS": "bus",
        "GUARDIAN_SLACK_WEBHOOK_SECRET": "ssm:/team/slack",
        "GUARDIAN_WEBHOOK_SECRET": "secretsmanager:arn:aws:secretsmanager:eu-west-1:111122223333:secret:hook-AbCdEf",
        "GUARDIAN_TEAMS_WEBHOOK_SECRET": "ssm:/team/teams",
        "GUARDIAN_PAGERDUTY_ROUTING_KEY_SECRET": "ssm:/team/pagerduty",
    }
    assert channel_grants(env) == {
        ("sns:Publish", "arn:aws:sns:eu-west-1:111122223333:t"),
        ("events:PutEvents", "arn:aws:events:eu-west-1:111122223333:event-bus/bus"),
        ("ssm:GetParameter", "arn:aws:ssm:eu-west-1:111122223333:parameter/team/slack"),
        ("secretsmanager:GetSecretValue", "arn:aws:secretsmanager:eu-west-1:111122223333:secret:hook-AbCdEf"),
        ("ssm:GetParameter", "arn:aws:ssm:eu-west-1:111122223333:parameter/team/teams"),
        ("ssm:GetParameter", "arn:aws:ssm:eu-west-1:111122223333:parameter/team/pagerduty"),
    }


def test_every_secret_setting_of_the_guardian_is_mapped() -> None:
    """A channel secret the settings read but this test does not map would be granted unchecked."""
    settings = (ROOT / "chalicelib" / "settings.py").read_text()
    assert set(re.findall(r'"(GUARDIAN_[A-Z_]*_SECRET)"', settings)) == {*SECRET_SETTINGS, *LIVENESS_SECRET_SETTINGS}


@pytest.mark.parametrize("stage", STAGES)
def test_each_function_deploys_a_hand_written_policy_of_its_own(stage: str) -> None:
    config = Stage(stage)
    assert all(config.chalice_config(function).autogen_policy is False for function in FUNCTIONS)
    # No policy for the whole stage: a new function without its own would fail to deploy, not inherit another's.
    assert "iam_policy_file" not in CONFIG and "iam_policy_file" not in CONFIG["stages"][stage]
    files = {function: config.chalice_config(function).iam_policy_file for function in FUNCTIONS}
    assert files == {function: f"policy-{stage}-{function}.json" for function in FUNCTIONS}
    assert all(config.policy_path(function).is_file() for function in FUNCTIONS)


def test_every_policy_file_is_one_a_function_deploys() -> None:
    deployed = {f"policy-{stage}-{function}.json" for stage, function in STAGE_FUNCTIONS}
    assert {path.name for path in CHALICE.glob("policy*.json")} == deployed


def test_each_event_function_is_named_after_its_handler() -> None:
    """Chalice deploys `<app>-<stage>-<name>`; the calls of this run are recorded under the handler's name."""
    for name, decorator in handlers():
        given = [k.value for k in decorator.keywords if k.arg == "name"] if isinstance(decorator, ast.Call) else []
        assert all(isinstance(value, ast.Constant) and value.value == name for value in given), name


def test_no_function_outlives_a_delivery_lease() -> None:
    """A Lambda still delivering after its claim's lease ran out could deliver twice alongside a retry."""
    # As Chalice looks each one up: the function's own in the stage, the stage's, the function's own, the app's, 60 s.
    timeouts = [Stage(stage).chalice_config(function).lambda_timeout for stage, function in STAGE_FUNCTIONS]
    assert max(timeouts) < LEASE_S


@pytest.mark.parametrize(("stage", "function"), STAGE_FUNCTIONS)
def test_every_function_runs_with_the_timeout_the_delivery_lease_is_set_for(stage: str, function: str) -> None:
    assert Stage(stage).chalice_config(function).lambda_timeout == LAMBDA_TIMEOUT_S


def exact_grants(stage: Stage, function: str) -> set[tuple[str, str]]:
    """(action, resource) the emulator cannot exercise: each backend's role in another account, for the functions
    that read the backends; its own function, for a schedule that hands batches of backends to invocations of it."""
    grants = {("sts:AssumeRole", role) for role in stage.roles} if function in BACKEND_READERS else set()
    if function in SCHEDULED and stage.fans_out:
        grants.add(("lambda:InvokeFunction", stage.function_arn(function)))
    return grants


def policy_grants(policy: dict[str, Any], prefixes: tuple[str, ...]) -> set[tuple[str, str]]:
    return {
        (action, resource)
        for statement in policy["Statement"]
        for action in as_list(statement["Action"])
        if action.lower().startswith(prefixes)
        for resource in as_list(statement["Resource"])
    }


@pytest.mark.parametrize(("stage", "function"), STAGE_FUNCTIONS)
def test_each_backend_role_and_the_schedules_own_function_are_granted_exactly(stage: str, function: str) -> None:
    config = Stage(stage)
    assert policy_grants(config.policy(function), ("sts:", "lambda:", "iam:")) == exact_grants(config, function)


def test_the_stages_cover_a_backend_role_and_a_fan_out() -> None:
    """So that the check above is not only ever checking for nothing."""
    assert any(Stage(stage).roles for stage in STAGES)
    assert any(Stage(stage).fans_out for stage in STAGES)
    assert not all(Stage(stage).fans_out for stage in STAGES)


def test_the_checker_maps_a_call_onto_every_backend_of_the_stage() -> None:
    stage = Stage("prod")
    assert len(stage.direct) >= 2 and stage.roles
    run = Settings(Backend(name="default", bucket="b", lock_table="locks"), guardian_table="guardian", index_bucket="i")
    read = AwsCall(REAPER, "s3", "GetObject", {"Bucket": "b", "Key": "a.tflock"}, run)
    assert requests_of(read, stage) == [
        request
        for bucket in stage.buckets
        for request in (Request("s3:GetObject", f"arn:aws:s3:::{bucket}/a.tflock"),
                        Request("s3:ListBucket", f"arn:aws:s3:::{bucket}"))
    ]  # fmt: skip
    release = AwsCall(REAPER, "dynamodb", "DeleteItem", {"TableName": "locks", "Key": {"LockID": {"S": "b/a"}}}, run)
    assert requests_of(release, stage) == [
        Request("dynamodb:DeleteItem", stage.table_arn(b.lock_table, b), (f"{b.bucket}/a",))
        for b in stage.direct
        if b.lock_table
    ]
    role_backend = Backend(name="x", bucket="b", role_arn="arn:aws:iam::111122223333:role/r")
    assumed = Settings(role_backend, guardian_table="guardian")
    assume = AwsCall(REAPER, "sts", "AssumeRole", {"RoleArn": role_backend.role_arn, "RoleSessionName": "s"}, assumed)
    assert requests_of(assume, stage) == [Request("sts:AssumeRole", role) for role in sorted(stage.roles)]
    assert requests_of(assume, Stage("dev")) == []  # a stage without a backend of another account never assumes
    other = AwsCall(REAPER, "sts", "AssumeRole", {"RoleArn": "arn:aws:iam::1:role/other", "RoleSessionName": "s"}, run)
    assert requests_of(other, stage) == [Request("sts:AssumeRole", "arn:aws:iam::1:role/other")]
    invoke = AwsCall(REAPER, "lambda", "Invoke", {"FunctionName": f"tfstate-guardian-local-{REAPER}"}, run)
    assert requests_of(invoke, stage) == [Request("lambda:InvokeFunction", stage.function_arn(REAPER))]
    assert requests_of(invoke, Stage("dev")) == []  # one backend: the schedule never fans out
    elsewhere = AwsCall(REAPER, "lambda", "Invoke", {"FunctionName": f"tfstate-guardian-local-{DIGESTS}"}, run)
    assert [r.resource for r in requests_of(elsewhere, stage)] == [
        f"arn:aws:lambda:{stage.region}:{stage.account}:function:tfstate-guardian-local-{DIGESTS}"
    ]
