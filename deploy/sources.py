"""How events reach the guardian's two event handlers, as plain data: the definitions `harden` applies.

Pure functions of a stage (and the ARNs they point at): no AWS call happens here, so the Terraform package can build
the very same settings. Each returns the request shape of the AWS call that makes it (boto3's parameter names).

- a lock table's stream → `on_lock_table_change`: `stream_mapping` (an event source mapping per distinct stream);
- a failed asynchronous invocation of `on_state_object_event` → its own SQS queue: `s3_handler_invoke_config`;
- an `events: "s3"` backend's bucket → `on_state_object_event`: `bucket_notification` (one configuration, merged
  into the bucket's others by `merged_notifications`), allowed by `s3_permission`;
- an `events: "eventbridge"` backend's bucket → the guardian account's default bus → `on_state_object_event`:
  `bridge_rule_pattern` for `bridge_rule_name`, allowed by `bridge_permission`; from another account or region,
  `forwarding_rule_name` with `forwarding_target` (and `forwarding_role_*`) carry the events to that bus first.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from chalicelib.domain.backends import EVENTBRIDGE, S3_NOTIFICATIONS
from chalicelib.settings import Settings
from deploy.stage_config import StageConfig

S3_HANDLER: Final = "on_state_object_event"
STREAM_HANDLER: Final = "on_lock_table_change"
# Every function `chalice deploy` creates from app.py: each gets its own alarms.
FUNCTIONS: Final = (
    S3_HANDLER,
    STREAM_HANDLER,
    "verify_state_digests",
    "reap_stale_locks",
    "backfill_history",
    "api_handler",
)

STREAM_BATCH_SIZE: Final = 100
STREAM_STARTING_POSITION: Final = "LATEST"
MAXIMUM_RETRY_ATTEMPTS: Final = 5
# A lock event older than an hour is old news: the reaper and the next lock event say more.
MAXIMUM_RECORD_AGE_S: Final = 3600
DEAD_LETTER_RETENTION_S: Final = 14 * 24 * 3600  # SQS's longest: two weeks to look at what failed and replay it
OBJECT_EVENTS: Final = ("s3:ObjectCreated:*", "s3:ObjectRemoved:*")
BRIDGE_DETAIL_TYPES: Final = ("Object Created", "Object Deleted")
BRIDGE_TARGET_ID: Final = "tfstate-guardian"
FORWARDING_TARGET_ID: Final = "tfstate-guardian-bus"
# The prefix of every statement `harden` adds to the S3 handler's resource policy: any other such statement is stale.
PERMISSION_PREFIX: Final = "tfstate-guardian-"


@dataclass(frozen=True)
class Where:
    """An account and a region: where a backend's bucket and lock table are, or where the guardian runs."""

    account: str
    region: str


def backend_where(backend: Settings, home: Where) -> Where:
    """Where `backend` is: its own account and region, else the guardian's."""
    return Where(backend.backend.account or home.account, backend.backend.region or home.region)


def stream_queue_name(stage: StageConfig) -> str:
    """The dead-letter queue of the lock streams' mappings: what still fails after the retries, as batch info."""
    return f"{stage.prefix}-stream-dlq"


def s3_queue_name(stage: StageConfig) -> str:
    """The on-failure destination of the S3 handler's asynchronous invocations: the whole event, kept."""
    return f"{stage.prefix}-s3-dlq"


def dead_letter_queue_names(stage: StageConfig) -> tuple[str, ...]:
    """Every dead-letter queue of the stage: the S3 handler's, and the streams' when a backend has a lock table."""
    streams = (stream_queue_name(stage),) if any(backend.lock_table for backend in stage.backends) else ()
    return (s3_queue_name(stage), *streams)


def queue_attributes() -> dict[str, str]:
    """`CreateQueue`'s `Attributes` of a dead-letter queue: encrypted with SSE-SQS, messages kept 14 days."""
    return {"MessageRetentionPeriod": str(DEAD_LETTER_RETENTION_S), "SqsManagedSseEnabled": "true"}


def lock_tables(stage: StageConfig, home: Where) -> dict[tuple[Where, str], list[Settings]]:
    """Each distinct lock table (where it is, its name) with the backends that use it, in the order listed."""
    tables: dict[tuple[Where, str], list[Settings]] = {}
    for backend in stage.backends:
        if backend.lock_table:
            tables.setdefault((backend_where(backend, home), backend.lock_table), []).append(backend)
    return tables


def stream_mapping(queue_arn: str) -> dict[str, Any]:
    """`CreateEventSourceMapping`'s settings (but the stream and the function): bisect a failing batch, retry it 5
    times, give up on records older than an hour, and send what still fails to `queue_arn`."""
    return {
        "BatchSize": STREAM_BATCH_SIZE,
        "StartingPosition": STREAM_STARTING_POSITION,
        **stream_mapping_hardening(queue_arn),
    }


def stream_mapping_hardening(queue_arn: str) -> dict[str, Any]:
    """The part of `stream_mapping` that `UpdateEventSourceMapping` can change on an existing mapping."""
    return {
        "BisectBatchOnFunctionError": True,
        "MaximumRetryAttempts": MAXIMUM_RETRY_ATTEMPTS,
        "MaximumRecordAgeInSeconds": MAXIMUM_RECORD_AGE_S,
        "DestinationConfig": {"OnFailure": {"Destination": queue_arn}},
    }


def s3_handler_invoke_config(queue_arn: str) -> dict[str, Any]:
    """`PutFunctionEventInvokeConfig`'s settings (but the function): Lambda's own retries (two), then the event, whole,
    to `queue_arn`, from which `python -m deploy replay` invokes the handler with it again."""
    return {"DestinationConfig": {"OnFailure": {"Destination": queue_arn}}}


def notification_id(stage: StageConfig) -> str:
    """The Id of the guardian's configuration among a bucket's notifications: one per stage, so it is found again."""
    return f"{stage.prefix}-{S3_HANDLER}"


def bucket_notification(stage: StageConfig, function_arn: str) -> dict[str, Any]:
    """The guardian's `LambdaFunctionConfiguration` on an `events: "s3"` backend's bucket: every object created or
    removed (the handler itself picks the keys it watches, states and `.tflock` files alike)."""
    return {"Id": notification_id(stage), "LambdaFunctionArn": function_arn, "Events": list(OBJECT_EVENTS)}


def merged_notifications(current: Mapping[str, Any], ours: Mapping[str, Any]) -> dict[str, Any]:
    """A bucket's notification configuration with `ours` in it: every other configuration kept as it is, any older one
    of ours (same Id, or the same function: S3 refuses two overlapping ones) replaced."""
    merged = {name: value for name, value in current.items() if name != "ResponseMetadata"}
    functions = [
        dict(configuration)
        for configuration in merged.get("LambdaFunctionConfigurations", [])
        if configuration.get("Id") != ours["Id"] and configuration.get("LambdaFunctionArn") != ours["LambdaFunctionArn"]
    ]
    merged["LambdaFunctionConfigurations"] = [*functions, dict(ours)]
    return merged


def has_notification(current: Mapping[str, Any], ours: Mapping[str, Any]) -> bool:
    """Whether the bucket already notifies exactly as `ours` says, and no other configuration of ours is left."""
    mine = [
        configuration
        for configuration in current.get("LambdaFunctionConfigurations", [])
        if configuration.get("Id") == ours["Id"] or configuration.get("LambdaFunctionArn") == ours["LambdaFunctionArn"]
    ]
    if len(mine) != 1:
        return False
    found = mine[0]
    return bool(
        found.get("Id") == ours["Id"]
        and found.get("LambdaFunctionArn") == ours["LambdaFunctionArn"]
        and sorted(found.get("Events", [])) == sorted(ours["Events"])
        and not found.get("Filter", {}).get("Key", {}).get("FilterRules")
    )


def with_eventbridge(current: Mapping[str, Any]) -> dict[str, Any]:
    """A bucket's notification configuration with delivery to EventBridge on, every other configuration kept."""
    merged = {name: value for name, value in current.items() if name != "ResponseMetadata"}
    return {**merged, "EventBridgeConfiguration": {}}


def s3_backends(stage: StageConfig) -> list[Settings]:
    return [backend for backend in stage.backends if backend.backend.events == S3_NOTIFICATIONS]


def bridge_backends(stage: StageConfig) -> list[Settings]:
    return [backend for backend in stage.backends if backend.backend.events == EVENTBRIDGE]


def statement_id(kind: str, name: str) -> str:
    """A statement of the S3 handler's resource policy: `tfstate-guardian-<kind>-<name>`."""
    return f"{PERMISSION_PREFIX}{kind}-{name}"


def s3_permission(bucket: str, bucket_account: str) -> dict[str, Any]:
    """`AddPermission`'s settings (but the function) letting `bucket`'s notifications invoke the S3 handler."""
    return {
        "StatementId": statement_id("s3", bucket),
        "Action": "lambda:InvokeFunction",
        "Principal": "s3.amazonaws.com",
        "SourceArn": f"arn:aws:s3:::{bucket}",
        "SourceAccount": bucket_account,
    }


BRIDGE_RULE_DESCRIPTION = "S3 object events of the guardian's backends"  # harden's and Terraform's alike


def bridge_rule_name(stage: StageConfig) -> str:
    """The rule on the guardian account's default bus that invokes the S3 handler with S3's object events."""
    return f"{stage.prefix}-s3-objects"


def bridge_rule_pattern(buckets: Iterable[str]) -> dict[str, Any]:
    """The event pattern of S3's object-level events of `buckets` on EventBridge."""
    return {
        "source": ["aws.s3"],
        "detail-type": list(BRIDGE_DETAIL_TYPES),
        "detail": {"bucket": {"name": sorted(buckets)}},
    }


def bridge_permission(rule_arn: str) -> dict[str, Any]:
    """`AddPermission`'s settings (but the function) letting the rule invoke the S3 handler."""
    return {
        "StatementId": statement_id("events", rule_arn.rsplit("/", 1)[-1]),
        "Action": "lambda:InvokeFunction",
        "Principal": "events.amazonaws.com",
        "SourceArn": rule_arn,
    }


def default_bus_arn(where: Where) -> str:
    return f"arn:aws:events:{where.region}:{where.account}:event-bus/default"


def forwarding_groups(stage: StageConfig, home: Where) -> dict[Where, list[Settings]]:
    """The `events: "eventbridge"` backends whose events arise elsewhere than on the guardian's default bus (another
    account or region), grouped by where they are: one forwarding rule in each place."""
    groups: dict[Where, list[Settings]] = {}
    for backend in bridge_backends(stage):
        where = backend_where(backend, home)
        if where != home:
            groups.setdefault(where, []).append(backend)
    return groups


def forwarding_rule_name(stage: StageConfig) -> str:
    """The rule on a backend account's default bus that forwards its buckets' object events to the guardian's bus."""
    return f"{stage.prefix}-forward-s3-objects"


def forwarding_role_name(stage: StageConfig) -> str:
    """The role EventBridge assumes in a backend's account to put events on the guardian's bus (cross-region and
    cross-account bus targets take one)."""
    return f"{stage.prefix}-forward-s3-objects"


FORWARDING_ROLE_TRUST: Final = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}
FORWARDING_POLICY_NAME: Final = "put-events-on-the-guardian-bus"


def forwarding_role_policy(home: Where) -> dict[str, Any]:
    """The forwarding role's one inline policy: PutEvents on the guardian's default bus, nothing else."""
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "events:PutEvents", "Resource": default_bus_arn(home)}],
    }


def forwarding_target(home: Where, role_arn: str) -> dict[str, Any]:
    """`PutTargets`' target of a forwarding rule: the guardian's default bus."""
    return {"Id": FORWARDING_TARGET_ID, "Arn": default_bus_arn(home), "RoleArn": role_arn}


def bus_statement_id(account: str) -> str:
    """The guardian bus policy's statement letting `account` put events on it."""
    return f"{PERMISSION_PREFIX}forward-{account}"


def pattern_text(pattern: Mapping[str, Any]) -> str:
    """An event pattern as `PutRule` takes it (and as it is compared after reading it back: parsed)."""
    return json.dumps(pattern, sort_keys=True)
