"""The guardian watched: its alarms on the stage's alarm topic, and its dashboard, as `deploy.alarms` and
`deploy.dashboard` define them."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from deploy.alarms import alarm_definitions, alarm_differences, alarm_prefix, alarm_topic_name
from deploy.changes import Plan
from deploy.dashboard import dashboard_body, dashboard_name
from deploy.errors import AwsCallError, NotDeployedError, aws_call, error_code
from deploy.sources import Where
from deploy.stage_config import StageConfig

if TYPE_CHECKING:
    from boto3.session import Session


def plan_alarms(plan: Plan, session: Session, stage: StageConfig, home: Where) -> None:
    topic_arn = f"arn:aws:sns:{home.region}:{home.account}:{alarm_topic_name(stage)}"
    sns: Any = session.client("sns")
    with aws_call(f"read the topic {topic_arn}"):
        try:
            sns.get_topic_attributes(TopicArn=topic_arn)
        except sns.exceptions.NotFoundException:
            raise NotDeployedError(f"the alarm topic {topic_arn} does not exist: run prepare first") from None
    cloudwatch: Any = session.client("cloudwatch")
    prefix = alarm_prefix(stage)
    with aws_call("read the alarms"):
        pages = cloudwatch.get_paginator("describe_alarms").paginate(AlarmNamePrefix=prefix, AlarmTypes=["MetricAlarm"])
        found = {alarm["AlarmName"]: alarm for page in pages for alarm in page.get("MetricAlarms", [])}
    wanted = alarm_definitions(stage, topic_arn)
    for alarm in wanted:
        name = alarm["AlarmName"]
        differences = alarm_differences(found[name], alarm) if name in found else None
        if differences == []:
            continue

        def put(alarm: dict[str, Any] = alarm) -> None:
            with aws_call(f"write the alarm {alarm['AlarmName']}"):
                cloudwatch.put_metric_alarm(**alarm)

        said = "create the alarm" if differences is None else f"update the alarm ({', '.join(differences or [])})"
        plan.add(f"cloudwatch: {said} {name!r}", put)
    stale = sorted(set(found) - {alarm["AlarmName"] for alarm in wanted})
    if stale:

        def delete() -> None:
            with aws_call("delete alarms no longer wanted"):
                cloudwatch.delete_alarms(AlarmNames=stale)

        plan.add(f"cloudwatch: delete the alarms {', '.join(map(repr, stale))} (nothing of the stage left to watch)",
                 delete)  # fmt: skip


def plan_dashboard(plan: Plan, session: Session, stage: StageConfig, home: Where) -> None:
    cloudwatch: Any = session.client("cloudwatch")
    name, body = dashboard_name(stage), dashboard_body(stage, home.region)
    with aws_call(f"read the dashboard {name}"):
        try:
            current = json.loads(cloudwatch.get_dashboard(DashboardName=name)["DashboardBody"])
        except ClientError as exc:
            if error_code(exc) not in ("ResourceNotFound", "ResourceNotFoundException"):
                raise
            current = None
    if current == body:
        return

    def put() -> None:
        with aws_call(f"write the dashboard {name}"):
            answer = cloudwatch.put_dashboard(DashboardName=name, DashboardBody=json.dumps(body))
        if answer.get("DashboardValidationMessages"):
            raise AwsCallError(f"the dashboard {name} was refused: {answer['DashboardValidationMessages']}")

    plan.add(f"cloudwatch: {'create' if current is None else 'update'} the dashboard {name}", put)
