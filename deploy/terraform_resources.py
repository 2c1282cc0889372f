"""What `harden` sets up, as Terraform JSON: the files `python -m deploy.package` writes next to `chalice.tf.json`.

Every value comes from the pure definitions `harden` applies (`deploy.sources`, `deploy.alarms`, `deploy.dashboard`),
translated field by field from the AWS request shape into the provider's argument names (an unknown field is an
error, never dropped), so that `terraform apply` builds what `harden` would and a later `harden` (or `apply`) finds
nothing to change.

The guardian's own account and region are known only when Terraform plans: they are the expressions of Chalice's
data sources (`HOME`), and a decision `harden` makes by comparing a backend's account or region with the guardian's
(forward its events? let its account put events on the bus?) is a `count` Terraform works out at plan time. A backend
that names a role or a region is reached through a provider alias of its own (`assume_role`, `region`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any, Final

from chalicelib.adapters.backend_session import SESSION_NAME
from chalicelib.settings import Settings
from deploy.alarms import alarm_definitions, alarm_prefix, alarm_topic_name
from deploy.dashboard import dashboard_body, dashboard_name
from deploy.errors import DeployError
from deploy.sources import (
    BRIDGE_RULE_DESCRIPTION,
    BRIDGE_TARGET_ID,
    FORWARDING_POLICY_NAME,
    FORWARDING_ROLE_TRUST,
    S3_HANDLER,
    STREAM_HANDLER,
    Where,
    backend_where,
    bridge_backends,
    bridge_permission,
    bridge_rule_name,
    bridge_rule_pattern,
    bucket_notification,
    bus_statement_id,
    forwarding_groups,
    forwarding_role_name,
    forwarding_role_policy,
    forwarding_rule_name,
    forwarding_target,
    lock_tables,
    pattern_text,
    queue_attributes,
    s3_backends,
    s3_handler_invoke_config,
    s3_permission,
    s3_queue_name,
    stream_mapping,
    stream_queue_name,
)
from deploy.stage_config import StageConfig

EVENT_SOURCES_FILE: Final = "guardian_event_sources.tf.json"
MONITORING_FILE: Final = "guardian_monitoring.tf.json"

# Chalice's own data sources in chalice.tf.json: the account and region the default provider deploys to.
HOME_ACCOUNT: Final = "data.aws_caller_identity.chalice.account_id"
HOME_REGION: Final = "data.aws_region.chalice.name"
HOME: Final = Where(account=f"${{{HOME_ACCOUNT}}}", region=f"${{{HOME_REGION}}}")

# `harden` leaves these to Lambda's and EventBridge's defaults; Terraform's resources name them, with those values.
ASYNC_RETRY_ATTEMPTS: Final = 2  # Lambda's default for asynchronous invocations
RULE_STATE: Final = "ENABLED"

# The Terraform names of the guardian's own resources (Chalice names each function's after its handler).
S3_QUEUE: Final = "s3_dead_letters"
STREAM_QUEUE: Final = "stream_dead_letters"
ALARM_TOPIC: Final = "alarms"
DASHBOARD: Final = "guardian"
BRIDGE_RULE: Final = "s3_objects"

# AWS request fields → provider arguments. A field missing here fails packaging rather than being left out.
QUEUE_FIELDS: Final[dict[str, tuple[str, Callable[[str], Any]]]] = {
    "MessageRetentionPeriod": ("message_retention_seconds", int),
    "SqsManagedSseEnabled": ("sqs_managed_sse_enabled", lambda value: value == "true"),
}
MAPPING_FIELDS: Final = {
    "BatchSize": "batch_size",
    "StartingPosition": "starting_position",
    "BisectBatchOnFunctionError": "bisect_batch_on_function_error",
    "MaximumRetryAttempts": "maximum_retry_attempts",
    "MaximumRecordAgeInSeconds": "maximum_record_age_in_seconds",
}
PERMISSION_FIELDS: Final = {
    "StatementId": "statement_id",
    "Action": "action",
    "Principal": "principal",
    "SourceArn": "source_arn",
    "SourceAccount": "source_account",
}
ALARM_FIELDS: Final = {
    "AlarmName": "alarm_name",
    "AlarmDescription": "alarm_description",
    "ActionsEnabled": "actions_enabled",
    "AlarmActions": "alarm_actions",
    "OKActions": "ok_actions",
    "Namespace": "namespace",
    "MetricName": "metric_name",
    "Statistic": "statistic",
    "Period": "period",
    "EvaluationPeriods": "evaluation_periods",
    "DatapointsToAlarm": "datapoints_to_alarm",
    "Threshold": "threshold",
    "ComparisonOperator": "comparison_operator",
    "TreatMissingData": "treat_missing_data",
}
TARGET_FIELDS: Final = {"Id": "target_id", "Arn": "arn", "RoleArn": "role_arn"}


class TerraformShapeError(DeployError):
    """A definition of `harden` has a field the Terraform package does not know how to write."""


def function_attribute(handler: str, attribute: str) -> str:
    """A reference to an attribute of the function chalice.tf.json declares for `handler`."""
    return f"${{aws_lambda_function.{handler}.{attribute}}}"


def event_sources(stage: StageConfig) -> dict[str, Any]:
    """The dead-letter queues, the stream mappings, the S3 handler's invoke config, the bucket notifications and the
    EventBridge rules of every backend of `stage`, with a provider alias for each backend elsewhere."""
    out = _Configuration()
    providers = _Providers(out, stage)
    s3_queue = out.add("aws_sqs_queue", S3_QUEUE, _queue(s3_queue_name(stage)))
    s3_queue_arn = f"${{aws_sqs_queue.{s3_queue}.arn}}"
    tables = lock_tables(stage, HOME)
    if tables:
        stream_queue = out.add("aws_sqs_queue", STREAM_QUEUE, _queue(stream_queue_name(stage)))
        _add_stream_mappings(out, providers, tables, f"${{aws_sqs_queue.{stream_queue}.arn}}")
    out.add("aws_lambda_function_event_invoke_config", S3_HANDLER, _invoke_config(s3_queue_arn))
    _add_bucket_notifications(out, providers, stage)
    _add_bridge(out, providers, stage)
    return out.document()


def monitoring(stage: StageConfig) -> dict[str, Any]:
    """The alarm topic, every alarm of `deploy.alarms`, and the dashboard of `deploy.dashboard`."""
    out = _Configuration()
    topic = out.add("aws_sns_topic", ALARM_TOPIC, {"name": alarm_topic_name(stage)})
    prefix = alarm_prefix(stage)
    for alarm in alarm_definitions(stage, f"${{aws_sns_topic.{topic}.arn}}"):
        out.add("aws_cloudwatch_metric_alarm", str(alarm["AlarmName"]).removeprefix(prefix), metric_alarm(alarm))
    body = json.dumps(dashboard_body(stage, HOME.region), sort_keys=True)
    out.add("aws_cloudwatch_dashboard", DASHBOARD, {"dashboard_name": dashboard_name(stage), "dashboard_body": body})
    return out.document()


def metric_alarm(alarm: Mapping[str, Any]) -> dict[str, Any]:
    """`PutMetricAlarm`'s arguments as an `aws_cloudwatch_metric_alarm`."""
    fields = {name: value for name, value in alarm.items() if name != "Dimensions"}
    resource = _translated(fields, ALARM_FIELDS, "alarm")
    resource["dimensions"] = {item["Name"]: item["Value"] for item in alarm.get("Dimensions", [])}
    return resource


def _queue(name: str) -> dict[str, Any]:
    resource: dict[str, Any] = {"name": name}
    for field, value in queue_attributes().items():
        if field not in QUEUE_FIELDS:
            raise TerraformShapeError(f"queue attribute {field} has no Terraform argument in the package")
        argument, convert = QUEUE_FIELDS[field]
        resource[argument] = convert(value)
    return resource


def _on_failure(destination_config: Mapping[str, Any], argument: str) -> list[dict[str, Any]]:
    if set(destination_config) != {"OnFailure"} or set(destination_config["OnFailure"]) != {"Destination"}:
        raise TerraformShapeError(f"destination config {sorted(destination_config)} is more than the package writes")
    return [{"on_failure": [{argument: destination_config["OnFailure"]["Destination"]}]}]


def stream_mapping_resource(queue_arn: str, stream_arn: str) -> dict[str, Any]:
    """`CreateEventSourceMapping`'s arguments (`stream_mapping`) as an `aws_lambda_event_source_mapping`."""
    settings = dict(stream_mapping(queue_arn))
    destination = settings.pop("DestinationConfig")
    resource = _translated(settings, MAPPING_FIELDS, "event source mapping")
    resource["destination_config"] = _on_failure(destination, "destination_arn")
    return {"event_source_arn": stream_arn, "function_name": function_attribute(STREAM_HANDLER, "arn"), **resource}


def _invoke_config(queue_arn: str) -> dict[str, Any]:
    settings = dict(s3_handler_invoke_config(queue_arn))
    destination = settings.pop("DestinationConfig")
    if settings:
        raise TerraformShapeError(f"invoke config fields {sorted(settings)} have no Terraform argument in the package")
    return {
        "function_name": function_attribute(S3_HANDLER, "function_name"),
        "maximum_retry_attempts": ASYNC_RETRY_ATTEMPTS,
        "destination_config": _on_failure(destination, "destination"),
    }


def _permission(permission: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "function_name": function_attribute(S3_HANDLER, "function_name"),
        **_translated(permission, PERMISSION_FIELDS, "permission"),
    }


def _add_stream_mappings(out: _Configuration, providers: _Providers,
                         tables: Mapping[tuple[Where, str], list[Settings]], queue_arn: str) -> None:  # fmt: skip
    for table, regions, backends in _streams(tables):
        first = backends[0]
        source = out.add("data.aws_dynamodb_table", f"lock_table_{table}", {"name": table, **providers.of(first)})
        reference = f"data.aws_dynamodb_table.{source}"
        conditions = [
            _condition(
                f"{reference}.stream_enabled", f"lock table {table} has no stream: run python -m deploy prepare first"
            ),
        ]
        for region, named_by in regions.items():
            conditions.append(
                _condition(
                    f'{HOME_REGION} == "{region}"',
                    f"lock table {table} of backend {named_by} is in {region}, and Lambda reads "
                    "streams of its own region only: deploy a guardian there for it, or leave lock_table out",
                )
            )
        mapping = stream_mapping_resource(queue_arn, f"${{{reference}.stream_arn}}")
        out.add("aws_lambda_event_source_mapping", f"lock_table_{table}", {**mapping, **_preconditions(conditions)})


def _streams(
    tables: Mapping[tuple[Where, str], list[Settings]],
) -> list[tuple[str, dict[str, str], list[Settings]]]:
    """Each lock table's stream once: its name, the regions backends spell out for it (each with the first backend
    that does), and its backends. A lock table one backend names with the guardian's region spelled out and another
    without is one table: a mapping holds only where the region is the guardian's, which its precondition checks,
    so two would be two mappings of one stream, which Lambda refuses."""
    streams: dict[tuple[str, str], tuple[dict[str, str], list[Settings]]] = {}
    for (where, table), backends in tables.items():
        regions, merged = streams.setdefault((where.account, table), ({}, []))
        if where.region != HOME.region:
            regions.setdefault(where.region, backends[0].backend.name)
        merged += backends
    return [(table, regions, backends) for (_, table), (regions, backends) in streams.items()]


def _add_bucket_notifications(out: _Configuration, providers: _Providers, stage: StageConfig) -> None:
    ours = bucket_notification(stage, function_attribute(S3_HANDLER, "arn"))
    for backend in s3_backends(stage):
        where = backend_where(backend, HOME)
        bucket = backend.state_bucket
        permission = out.add("aws_lambda_permission", f"s3_{bucket}", _permission(s3_permission(bucket, where.account)))
        notification = {
            "bucket": bucket,
            "lambda_function": [
                {"id": ours["Id"], "lambda_function_arn": ours["LambdaFunctionArn"], "events": list(ours["Events"])}
            ],
            "depends_on": [f"aws_lambda_permission.{permission}"],
            **providers.of(backend),
        }
        if where.region != HOME.region:
            notification.update(
                _preconditions(
                    [
                        _condition(
                            f'{HOME_REGION} == "{where.region}"',
                            f"bucket {bucket} of backend {backend.backend.name} is in {where.region}, and S3 notifies "
                            'functions of its own region only: set its events to "eventbridge"',
                        )
                    ]
                )
            )
        out.add("aws_s3_bucket_notification", bucket, notification)


def _add_bridge(out: _Configuration, providers: _Providers, stage: StageConfig) -> None:
    backends = bridge_backends(stage)
    if not backends:
        return
    name = bridge_rule_name(stage)
    buckets = [backend.state_bucket for backend in backends]
    rule = out.add("aws_cloudwatch_event_rule", BRIDGE_RULE, _rule(name, bridge_rule_pattern(buckets)))
    out.add("aws_cloudwatch_event_target", BRIDGE_RULE, _target(f"${{aws_cloudwatch_event_rule.{rule}.name}}",
            {"Id": BRIDGE_TARGET_ID, "Arn": function_attribute(S3_HANDLER, "arn")}))  # fmt: skip
    rule_arn = f"arn:aws:events:{HOME.region}:{HOME.account}:rule/{name}"
    out.add("aws_lambda_permission", BRIDGE_RULE, {**_permission(bridge_permission(rule_arn)),
                                                   "depends_on": [f"aws_cloudwatch_event_rule.{rule}"]})  # fmt: skip
    groups = forwarding_groups(stage, HOME)
    roles: dict[str, tuple[str, list[str]]] = {}  # account → the role's resource name, each group's "forwarded"
    for where, group in groups.items():
        first = group[0]
        forwarded = _is_elsewhere(where)
        role_key, in_account = roles.setdefault(where.account, (resource_name(f"forwarding_{first.backend.name}"), []))
        in_account.append(forwarded)
        count = {"count": f"${{({forwarded}) ? 1 : 0}}"}
        key = f"forwarding_{first.backend.name}"
        role_arn = f"${{aws_iam_role.{role_key}[0].arn}}"
        reachable = []
        if where.account != HOME.account and first.backend.role_arn is None:
            reachable.append(_condition(f'"{where.account}" == {HOME_ACCOUNT}', f"backend {first.backend.name} is in "
                                        f"account {where.account}, but names no role_arn to reach it"))  # fmt: skip
        rule_name = out.add("aws_cloudwatch_event_rule", key, {
            **_rule(forwarding_rule_name(stage), bridge_rule_pattern(b.state_bucket for b in group)),
            **count, **providers.of(first), **(_preconditions(reachable) if reachable else {})})  # fmt: skip
        out.add("aws_cloudwatch_event_target", key, {
            **_target(f"${{aws_cloudwatch_event_rule.{rule_name}[0].name}}", forwarding_target(HOME, role_arn)),
            **count, **providers.of(first)})  # fmt: skip
    for account, (key, anywhere_forwarded) in roles.items():
        first = next(group[0] for where, group in groups.items() if where.account == account)
        count = {"count": f"${{({' || '.join(anywhere_forwarded)}) ? 1 : 0}}"}
        role = out.add("aws_iam_role", key, {
            "name": forwarding_role_name(stage),
            "assume_role_policy": json.dumps(FORWARDING_ROLE_TRUST),
            "description": "EventBridge forwards S3 object events to the guardian's bus",
            **count, **providers.of(first)})  # fmt: skip
        out.add("aws_iam_role_policy", key, {
            "name": FORWARDING_POLICY_NAME,
            "role": f"${{aws_iam_role.{role}[0].id}}",
            "policy": json.dumps(forwarding_role_policy(HOME)),
            **count, **providers.of(first)})  # fmt: skip
        if account != HOME.account:
            out.add("aws_cloudwatch_event_permission", f"forwarding_{account}", {
                "event_bus_name": "default",
                "action": "events:PutEvents",
                "principal": account,
                "statement_id": bus_statement_id(account),
                "count": f'${{"{account}" == {HOME_ACCOUNT} ? 0 : 1}}'})  # fmt: skip


def _is_elsewhere(where: Where) -> str:
    """A Terraform expression: whether `where` (a backend naming an account or a region) is not the guardian's."""
    terms = []
    if where.account != HOME.account:
        terms.append(f'"{where.account}" != {HOME_ACCOUNT}')
    if where.region != HOME.region:
        terms.append(f'"{where.region}" != {HOME_REGION}')
    return " || ".join(terms) or "false"


def _rule(name: str, pattern: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "event_pattern": pattern_text(pattern),
        "state": RULE_STATE,
        "description": BRIDGE_RULE_DESCRIPTION,
    }


def _target(rule: str, target: Mapping[str, Any]) -> dict[str, Any]:
    return {"rule": rule, **_translated(target, TARGET_FIELDS, "rule target")}


def _condition(condition: str, error_message: str) -> dict[str, str]:
    return {"condition": f"${{{condition}}}", "error_message": f"{error_message}."}


def _preconditions(conditions: list[dict[str, str]]) -> dict[str, Any]:
    return {"lifecycle": [{"precondition": conditions}]}


def _translated(fields: Mapping[str, Any], names: Mapping[str, str], what: str) -> dict[str, Any]:
    unknown = sorted(set(fields) - set(names))
    if unknown:
        raise TerraformShapeError(f"{what} fields {unknown} have no Terraform argument in the package")
    return {names[field]: value for field, value in fields.items()}


def resource_name(text: str) -> str:
    """A Terraform resource name from any text: letters, digits, `_` and `-`, starting with a letter or `_`."""
    name = re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_-")
    return name if re.match(r"[A-Za-z_]", name) else f"_{name}"


class _Configuration:
    """A Terraform JSON document being built: resources and data sources by type and unique name."""

    def __init__(self) -> None:
        self.resource: dict[str, dict[str, Any]] = {}
        self.data: dict[str, dict[str, Any]] = {}
        self.providers: list[dict[str, Any]] = []

    def add(self, kind: str, name: str, body: dict[str, Any]) -> str:
        """Declare a resource (or, with a `data.` kind, a data source); the name it got."""
        blocks = self.data if kind.startswith("data.") else self.resource
        of_kind = blocks.setdefault(kind.removeprefix("data."), {})
        unique = resource_name(name)
        if unique in of_kind:
            raise TerraformShapeError(f"two {kind} would both be named {unique}")
        _check_literal(body)
        of_kind[unique] = body
        return unique

    def document(self) -> dict[str, Any]:
        document: dict[str, Any] = {}
        if self.providers:
            document["provider"] = {"aws": self.providers}
        if self.data:
            document["data"] = self.data
        document["resource"] = self.resource
        return document


class _Providers:
    """A provider alias for each backend that names a role or a region, shared by backends naming the same ones."""

    def __init__(self, out: _Configuration, stage: StageConfig) -> None:
        self._aliases: dict[tuple[str | None, str | None], str] = {}
        for backend in stage.backends:
            role, region = backend.backend.role_arn, backend.backend.region
            if (role or region) and (role, region) not in self._aliases:
                alias = resource_name(f"backend_{backend.backend.name}")
                self._aliases[role, region] = alias
                provider: dict[str, Any] = {"alias": alias, "region": region or HOME.region}
                if role:
                    provider["assume_role"] = [{"role_arn": role, "session_name": SESSION_NAME}]
                out.providers.append(provider)

    def of(self, backend: Settings) -> dict[str, str]:
        """The `provider` meta-argument of a resource in `backend`'s account and region; none for the guardian's."""
        alias = self._aliases.get((backend.backend.role_arn, backend.backend.region))
        return {"provider": f"aws.{alias}"} if alias else {}


_TEMPLATE_SEQUENCE = re.compile(r"[$%]\{")
# The expressions this module writes: references to resources and data sources, and conditions on them.
_OUR_EXPRESSIONS = re.compile(r"\$\{(?:data\.aws_|aws_|\(|\")[^{}]*\}")


def _check_literal(value: Any) -> None:
    """Refuse a literal `${` or `%{` from a definition: Terraform would read it as an expression."""
    if isinstance(value, str):
        if _TEMPLATE_SEQUENCE.search(_OUR_EXPRESSIONS.sub("", value)):
            raise TerraformShapeError(f"{value!r} holds a Terraform template sequence")
    elif isinstance(value, dict):
        for item in value.values():
            _check_literal(item)
    elif isinstance(value, list):
        for item in value:
            _check_literal(item)
