"""`python -m deploy.deployer_policy --stage STAGE [--account ID] [--region R]`: the deployer's least-privilege policy.

The IAM policy a person or a pipeline needs to run `make deploy` (`prepare`, `chalice deploy`, `harden`) for one
stage, every grant scoped to the stage's own resource names. Printed as JSON, to attach to the deployer's role.
A few actions cannot be scoped to a resource; each is listed in `UNSCOPED` with why.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from deploy.alarms import alarm_prefix, alarm_topic_name
from deploy.dashboard import dashboard_name
from deploy.errors import DeployError
from deploy.sources import (
    STREAM_HANDLER,
    Where,
    forwarding_groups,
    s3_queue_name,
    stream_queue_name,
)
from deploy.stage_config import DEFAULT_CONFIG, StageConfig, load_stage

# The actions granted on every resource ("*"), and why no narrower resource would do.
UNSCOPED: Final = {
    "lambda:ListEventSourceMappings": "a listing: Lambda authorizes it on no resource (harden lists the mappings)",
    "lambda:CreateEventSourceMapping": "names no resource until created; narrowed to the stream handler by the "
    "lambda:FunctionArn condition",
    "cloudwatch:DescribeAlarms": "a listing by name prefix: CloudWatch authorizes it on every alarm",
    "ssm:DescribeParameters": "a listing: SSM authorizes it on no resource (prepare looks a secret up without "
    "reading it)",
}
# Granted for changes a first deploy does not make: a function, a backend or a stream removed from the config, a
# queue or a mapping whose settings someone changed by hand.
WHEN_SOMETHING_CHANGES: Final = frozenset(
    {
        "iam:DeleteRole",
        "iam:DeleteRolePolicy",
        "lambda:DeleteFunction",
        "lambda:RemovePermission",
        "lambda:TagResource",
        "lambda:UntagResource",
        "lambda:UpdateEventSourceMapping",
        "lambda:DeleteEventSourceMapping",
        "events:ListTargetsByRule",
        "events:RemoveTargets",
        "events:DeleteRule",
        "sqs:SetQueueAttributes",
        "cloudwatch:DeleteAlarms",
        "apigateway:DELETE",
        "ssm:PutParameter",
        "secretsmanager:DescribeSecret",
        "secretsmanager:CreateSecret",
        "events:DescribeEventBus",
        "events:CreateEventBus",
        "events:PutPermission",
        "sts:AssumeRole",
    }
)


def deployer_policy(stage: StageConfig, home: Where) -> dict[str, Any]:
    """The policy document for deploying `stage` into `home` (the guardian's account and region)."""
    region, account = home.region, home.account
    prefix = stage.prefix
    direct = [backend for backend in stage.backends if backend.backend.role_arn is None]
    statements: list[dict[str, Any]] = []

    def allow(sid: str, actions: list[str], resources: list[str], condition: dict[str, Any] | None = None) -> None:
        if resources:
            statement: dict[str, Any] = {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resources}
            if condition:
                statement["Condition"] = condition
            statements.append(statement)

    # prepare: the team's buckets brought to shape; harden: their notifications (or their delivery to EventBridge).
    allow("StateBuckets", [
        "s3:ListBucket", "s3:GetBucketVersioning", "s3:PutBucketVersioning", "s3:GetEncryptionConfiguration",
        "s3:PutEncryptionConfiguration", "s3:GetBucketPublicAccessBlock", "s3:PutBucketPublicAccessBlock",
        "s3:GetBucketNotification", "s3:PutBucketNotification",
    ], sorted({f"arn:aws:s3:::{backend.state_bucket}" for backend in direct}))  # fmt: skip
    index_bucket = stage.settings.index_bucket
    allow("IndexBucket", [
        "s3:CreateBucket", "s3:ListBucket", "s3:GetEncryptionConfiguration", "s3:PutEncryptionConfiguration",
        "s3:GetBucketPublicAccessBlock", "s3:PutBucketPublicAccessBlock", "s3:GetLifecycleConfiguration",
        "s3:PutLifecycleConfiguration",
    ], [f"arn:aws:s3:::{index_bucket}"] if index_bucket else [])  # fmt: skip

    def table(backend_where: Where, name: str) -> str:
        return f"arn:aws:dynamodb:{backend_where.region}:{backend_where.account}:table/{name}"

    lock_tables = sorted(
        {
            table(Where(b.backend.account or account, b.backend.region or region), b.lock_table)
            for b in direct
            if b.lock_table
        }
    )
    allow("LockTables", ["dynamodb:DescribeTable", "dynamodb:UpdateTable"], lock_tables)
    allow("GuardianTable", [
        "dynamodb:DescribeTable", "dynamodb:CreateTable", "dynamodb:DescribeTimeToLive", "dynamodb:UpdateTimeToLive",
    ], [table(home, stage.settings.guardian_table)])  # fmt: skip
    topics = [f"arn:aws:sns:{region}:{account}:{alarm_topic_name(stage)}"]
    if stage.settings.notify_topic_arn:
        topics.insert(0, stage.settings.notify_topic_arn)
    allow("Topics", ["sns:GetTopicAttributes", "sns:CreateTopic"], topics)
    bus = stage.settings.notify_event_bus
    if bus and bus.removeprefix(f"arn:aws:events:{region}:{account}:event-bus/") != "default":
        name = bus.rsplit("/", 1)[-1] if bus.startswith("arn:") else bus
        allow("NotifyEventBus", ["events:DescribeEventBus", "events:CreateEventBus"],
              [f"arn:aws:events:{region}:{account}:event-bus/{name}"])  # fmt: skip
    _secrets(stage, home, allow)
    # chalice deploy: a role of its own per function, passed to Lambda only.
    roles = [f"arn:aws:iam::{account}:role/{prefix}-*"]
    allow("FunctionRoles", ["iam:GetRole", "iam:CreateRole", "iam:PutRolePolicy", "iam:DeleteRolePolicy",
                            "iam:DeleteRole"], roles)  # fmt: skip
    allow("PassFunctionRoles", ["iam:PassRole"], roles,
          {"StringEquals": {"iam:PassedToService": "lambda.amazonaws.com"}})  # fmt: skip
    functions = [
        f"arn:aws:lambda:{region}:{account}:function:{prefix}",
        f"arn:aws:lambda:{region}:{account}:function:{prefix}-*",
    ]
    function_actions = [
        "lambda:GetFunction",
        "lambda:CreateFunction",
        "lambda:UpdateFunctionCode",
        "lambda:UpdateFunctionConfiguration",
        "lambda:DeleteFunction",
        "lambda:DeleteFunctionConcurrency",
        "lambda:ListTags",
        "lambda:TagResource",
        "lambda:UntagResource",
        "lambda:AddPermission",
        "lambda:RemovePermission",
        "lambda:GetPolicy",
        "lambda:GetFunctionEventInvokeConfig",
        "lambda:PutFunctionEventInvokeConfig",
    ]
    allow("Functions", function_actions, functions)
    stream_handler = f"arn:aws:lambda:{region}:{account}:function:{stage.function_name(STREAM_HANDLER)}"
    on_stream_handler = {"ArnLike": {"lambda:FunctionArn": stream_handler}}
    allow("ListEventSourceMappings", ["lambda:ListEventSourceMappings"], ["*"])
    allow("CreateStreamMappings", ["lambda:CreateEventSourceMapping"], ["*"], on_stream_handler)
    allow("StreamMappings", ["lambda:UpdateEventSourceMapping", "lambda:DeleteEventSourceMapping"],
          [f"arn:aws:lambda:{region}:{account}:event-source-mapping:*"], on_stream_handler)  # fmt: skip
    # chalice deploy's schedules, harden's EventBridge rule on the default bus: all named `<app>-<stage>-...`.
    allow("Rules", ["events:PutRule", "events:DescribeRule", "events:PutTargets", "events:ListTargetsByRule",
                    "events:RemoveTargets", "events:DeleteRule"],
          [f"arn:aws:events:{region}:{account}:rule/{prefix}-*"])  # fmt: skip
    if any(where.account != account for where in forwarding_groups(stage, home)):
        allow("ForwardedEvents", ["events:DescribeEventBus", "events:PutPermission"],
              [f"arn:aws:events:{region}:{account}:event-bus/default"])  # fmt: skip
    # An API's ARN holds the id API Gateway picks when creating it, and Chalice does not tag it: any REST API.
    allow("RestApi", ["apigateway:GET", "apigateway:POST", "apigateway:PUT", "apigateway:PATCH", "apigateway:DELETE"],
          [f"arn:aws:apigateway:{region}::/restapis", f"arn:aws:apigateway:{region}::/restapis/*"])  # fmt: skip
    queues = [s3_queue_name(stage)] + ([stream_queue_name(stage)] if lock_tables else [])
    allow("DeadLetterQueues", ["sqs:GetQueueUrl", "sqs:GetQueueAttributes", "sqs:CreateQueue",
                               "sqs:SetQueueAttributes"],
          [f"arn:aws:sqs:{region}:{account}:{name}" for name in queues])  # fmt: skip
    allow("ListAlarms", ["cloudwatch:DescribeAlarms"], ["*"])
    allow("Alarms", ["cloudwatch:PutMetricAlarm", "cloudwatch:DeleteAlarms"],
          [f"arn:aws:cloudwatch:{region}:{account}:alarm:{alarm_prefix(stage)}*"])  # fmt: skip
    allow("Dashboard", ["cloudwatch:GetDashboard", "cloudwatch:PutDashboard"],
          [f"arn:aws:cloudwatch::{account}:dashboard/{dashboard_name(stage)}"])  # fmt: skip
    # Backends in another account: prepare and harden reach them through their role (its policy is the backend
    # account's; see the README's "A backend in another account").
    allow("BackendRoles", ["sts:AssumeRole"],
          sorted({b.backend.role_arn for b in stage.backends if b.backend.role_arn}))  # fmt: skip
    return {"Version": "2012-10-17", "Statement": statements}


def _secrets(stage: StageConfig, home: Where, allow: Any) -> None:
    settings = stage.settings
    references = [
        settings.slack_webhook_secret,
        settings.webhook_secret,
        settings.teams_webhook_secret,
        settings.pagerduty_routing_key_secret,
    ]
    parameters, secrets = [], []
    for reference in filter(None, references):
        store, _, name = reference.partition(":")
        if store == "ssm":
            parameters.append(f"arn:aws:ssm:{home.region}:{home.account}:parameter/{name.lstrip('/')}")
        elif store == "secretsmanager":
            secrets.append(name if name.startswith("arn:") else
                           f"arn:aws:secretsmanager:{home.region}:{home.account}:secret:{name}-??????")  # fmt: skip
    if parameters:
        allow("ListParameters", ["ssm:DescribeParameters"], ["*"])
        allow("SecretParameters", ["ssm:PutParameter"], sorted(set(parameters)))
    allow("Secrets", ["secretsmanager:DescribeSecret", "secretsmanager:CreateSecret"], sorted(set(secrets)))


def _home(stage: StageConfig, account: str | None, region: str | None) -> Where:
    """The account and region given, else those of the stage's topic."""
    topic = (stage.settings.notify_topic_arn or "").split(":")
    account = account or (topic[4] if len(topic) == 6 else None)
    region = region or (topic[3] if len(topic) == 6 else None)
    if not account or not region:
        raise DeployError("give --account and --region: the stage names no topic to take them from")
    return Where(account, region)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.deployer_policy", description=__doc__.splitlines()[0])
    parser.add_argument("--stage", required=True, help="a stage of the Chalice config, e.g. dev or prod")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="the Chalice config to read")
    parser.add_argument("--account", help="the account the guardian deploys into (default: its topic's)")
    parser.add_argument("--region", help="the region the guardian deploys into (default: its topic's)")
    args = parser.parse_args(argv)
    try:
        stage = load_stage(args.config, args.stage)
        policy = deployer_policy(stage, _home(stage, args.account, args.region))
    except DeployError as exc:
        sys.stderr.write(f"deployer-policy: error: {exc}\n")
        return 1
    sys.stdout.write(json.dumps(policy, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
