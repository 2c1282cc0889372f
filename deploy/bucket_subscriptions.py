"""`events: "s3"` backends: the guardian's notification merged into each bucket's configuration, never replacing it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chalicelib.adapters.backend_session import backend_session
from deploy.changes import Plan
from deploy.errors import RefusedError, aws_call
from deploy.function_policy import FunctionPolicy
from deploy.sources import (
    S3_HANDLER,
    Where,
    backend_where,
    bucket_notification,
    has_notification,
    merged_notifications,
    s3_backends,
    s3_permission,
)
from deploy.stage_config import StageConfig

if TYPE_CHECKING:
    from boto3.session import Session


def plan_bucket_notifications(plan: Plan, session: Session, stage: StageConfig, home: Where, *,
                               function_arn: str, policy: FunctionPolicy) -> None:  # fmt: skip
    ours = bucket_notification(stage, function_arn)
    for backend in s3_backends(stage):
        where, bucket = backend_where(backend, home), backend.state_bucket
        if where.region != home.region:
            raise RefusedError(
                f"bucket {bucket} of backend {backend.backend.name} is in {where.region}, and S3 notifies functions of "
                f"its own region only ({home.region}): set its events to eventbridge"
            )
        policy.plan(plan, s3_permission(bucket, where.account), f"s3://{bucket}")
        s3: Any = backend_session(session, role_arn=backend.backend.role_arn, region=where.region).client("s3")
        with aws_call(f"read the notifications of s3://{bucket}"):
            current = s3.get_bucket_notification_configuration(Bucket=bucket, ExpectedBucketOwner=where.account)
        if has_notification(current, ours):
            continue

        def put(s3: Any = s3, bucket: str = bucket, where: Where = where) -> None:
            # Read again right before writing, so that a configuration added meanwhile is kept too.
            with aws_call(f"add the guardian's notification to s3://{bucket}"):
                latest = s3.get_bucket_notification_configuration(Bucket=bucket, ExpectedBucketOwner=where.account)
                s3.put_bucket_notification_configuration(
                    Bucket=bucket, NotificationConfiguration=merged_notifications(latest, ours),
                    ExpectedBucketOwner=where.account,
                )  # fmt: skip

        kept = sum(len(value) for name, value in current.items() if name.endswith("Configurations")) - sum(
            1 for item in current.get("LambdaFunctionConfigurations", []) if item.get("Id") == ours["Id"]
        )
        plan.add(
            f"s3://{bucket}: notify {stage.function_name(S3_HANDLER)} of objects created and removed "
            f"(notification {ours['Id']}; the bucket's {kept} other configurations kept)",
            put,
        )
