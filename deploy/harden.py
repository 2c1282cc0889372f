"""`harden`: after `chalice deploy`, subscribe the guardian's event handlers to every backend and watch them.

`chalice deploy` creates the functions, their roles and schedules, and the API; the S3 and stream handlers are plain
functions it subscribes to nothing. `harden` (idempotent; one line per change; `--dry-run` shows them):

- one event source mapping of the stream handler per distinct lock table stream (found by `DescribeTable`), with
  bisect, bounded retries and record age, and an encrypted SQS dead-letter queue; mappings on streams no backend
  uses any more are removed;
- the S3 handler's failed asynchronous invocations go to an encrypted SQS queue of their own;
- an `events: "s3"` backend's bucket notifies the S3 handler through one configuration merged into the bucket's
  others (never replacing them); an `events: "eventbridge"` backend's events reach it through a rule on the
  guardian's default bus, forwarded there from the backend's own account or region by a rule of its own;
- alarms on an SNS topic (`prepare` creates it) and one dashboard.

The definitions (what each resource should look like) are pure functions in `deploy.sources`, `deploy.alarms` and
`deploy.dashboard`; this module reads what is there and plans the difference.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from deploy.bridge_rules import BridgeRules
from deploy.bucket_subscriptions import plan_bucket_notifications
from deploy.changes import Plan
from deploy.dead_letters import plan_invoke_config, plan_queue
from deploy.errors import NotDeployedError, aws_call
from deploy.function_policy import FunctionPolicy
from deploy.monitoring import plan_alarms, plan_dashboard
from deploy.sources import S3_HANDLER, STREAM_HANDLER, Where, lock_tables, s3_queue_name, stream_queue_name
from deploy.stage_config import StageConfig
from deploy.stream_mappings import StreamMappings

if TYPE_CHECKING:
    from boto3.session import Session


def harden(session: Session, stage: StageConfig, *, dry_run: bool, say: Callable[[str], None],
           sleep: Callable[[float], None] = time.sleep) -> None:  # fmt: skip
    """Read the functions, every backend's event source and the monitoring, then make (or show) each change."""
    home = home_of(session)
    lambda_client: Any = session.client("lambda")  # no type stubs are installed for Lambda, SQS, IAM, CloudWatch
    s3_function = _function_arn(lambda_client, stage.function_name(S3_HANDLER))
    streams = lock_tables(stage, home)
    plan = Plan()
    sqs: Any = session.client("sqs")
    s3_queue = plan_queue(plan, sqs, s3_queue_name(stage), home)
    stream_function = _function_arn(lambda_client, stage.function_name(STREAM_HANDLER))
    stream_queue = plan_queue(plan, sqs, stream_queue_name(stage), home) if streams else None
    mappings = StreamMappings(session, lambda_client, stage, home, function_arn=stream_function, sleep=sleep)
    mappings.plan(plan, stream_queue)
    plan_invoke_config(plan, lambda_client, stage.function_name(S3_HANDLER), s3_queue)
    policy = FunctionPolicy(lambda_client, stage.function_name(S3_HANDLER))
    plan_bucket_notifications(plan, session, stage, home, function_arn=s3_function, policy=policy)
    BridgeRules(session, stage, home, s3_function, policy).plan(plan)
    policy.plan_stale(plan)
    plan_alarms(plan, session, stage, home)
    plan_dashboard(plan, session, stage, home)
    plan.carry_out(dry_run=dry_run, say=say)


def home_of(session: Session) -> Where:
    """The guardian's account (of the credentials) and region (of the session)."""
    sts: Any = session.client("sts")
    with aws_call("find the account of your credentials"):
        account = str(sts.get_caller_identity()["Account"])
    return Where(account, str(session.region_name))


def _function_arn(lambda_client: Any, function_name: str) -> str:
    with aws_call(f"read the function {function_name}"):
        try:
            configuration = lambda_client.get_function(FunctionName=function_name)["Configuration"]
        except lambda_client.exceptions.ResourceNotFoundException:
            raise NotDeployedError(f"function {function_name} does not exist: run chalice deploy first") from None
    return str(configuration["FunctionArn"])
