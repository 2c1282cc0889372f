"""`harden`: what Chalice cannot set on the lock stream's event source mapping, set after `chalice deploy`.

Chalice subscribes `on_lock_table_change` to the lock table's stream with a batch size and a starting position
only. Left like that, Lambda retries a failing batch until its records expire (24 hours), holding up every later
lock event of the shard. `harden` bisects failing batches, bounds retries and record age, and sends what still
fails to an encrypted SQS queue instead of dropping it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from deploy.changes import Plan
from deploy.errors import AwsCallError, NotDeployedError, aws_call, error_code, translated
from deploy.stage_config import StageConfig

if TYPE_CHECKING:
    from boto3.session import Session

STREAM_HANDLER = "on_lock_table_change"
MAXIMUM_RETRY_ATTEMPTS = 5
# A lock event older than an hour is old news: the reaper and the next lock event say more.
MAXIMUM_RECORD_AGE_S = 3600
DEAD_LETTER_RETENTION_S = 14 * 24 * 3600  # SQS's longest: two weeks to look at what failed
# After `chalice deploy` the mapping may still be Creating or Updating for a while; Lambda refuses changes until then.
SETTLE_ATTEMPTS = 20
SETTLE_DELAY_S = 3.0


@dataclass(frozen=True)
class Hardening:
    """The settings `harden` gives the mapping, compared with what it has."""

    queue_arn: str

    def wanted(self) -> dict[str, Any]:
        return {
            "BisectBatchOnFunctionError": True,
            "MaximumRetryAttempts": MAXIMUM_RETRY_ATTEMPTS,
            "MaximumRecordAgeInSeconds": MAXIMUM_RECORD_AGE_S,
            "DestinationConfig": {"OnFailure": {"Destination": self.queue_arn}},
        }

    def differences(self, mapping: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
        """Each setting that differs: (what it is, what it should be)."""
        current = {
            "BisectBatchOnFunctionError": mapping.get("BisectBatchOnFunctionError", False),
            "MaximumRetryAttempts": mapping.get("MaximumRetryAttempts", -1),
            "MaximumRecordAgeInSeconds": mapping.get("MaximumRecordAgeInSeconds", -1),
            "DestinationConfig": {
                "OnFailure": {
                    "Destination": mapping.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
                }
            },
        }
        return {name: (current[name], value) for name, value in self.wanted().items() if current[name] != value}


def dead_letter_queue_name(stage: StageConfig) -> str:
    return f"{stage.app_name}-{stage.stage}-stream-dlq"


def harden(session: Session, stage: StageConfig, *, dry_run: bool, say: Callable[[str], None],
           sleep: Callable[[float], None] = time.sleep) -> None:  # fmt: skip
    """Read the function, its mapping and the queue, then make (or, on a dry run, show) each change."""
    lambda_client: Any = session.client("lambda")  # no type stubs are installed for Lambda and SQS
    sqs: Any = session.client("sqs")
    function_name = stage.function_name(STREAM_HANDLER)
    stream_arn = stage.settings.lock_table_stream_arn
    function_arn = _function_arn(lambda_client, function_name)
    mappings = _mappings(lambda_client, function_arn, stream_arn)
    if not mappings:
        raise _not_subscribed(lambda_client, function_name, function_arn, stream_arn)
    plan = Plan()
    queue_arn = _plan_dead_letter_queue(plan, sqs, dead_letter_queue_name(stage), function_arn)
    hardening = Hardening(queue_arn)
    for mapping in mappings:
        differences = hardening.differences(mapping)
        if differences:
            changes = ", ".join(f"{name} {_shown(was)} → {_shown(to)}" for name, (was, to) in differences.items())
            plan.add(
                f"lambda: event source mapping {mapping['UUID']} of {function_name}: {changes}",
                _mapping_updater(lambda_client, mapping["UUID"], hardening, stage, sleep),
            )
    plan.carry_out(dry_run=dry_run, say=say)


def _function_arn(lambda_client: Any, function_name: str) -> str:
    with aws_call(f"read the function {function_name}"):
        try:
            configuration = lambda_client.get_function(FunctionName=function_name)["Configuration"]
        except lambda_client.exceptions.ResourceNotFoundException:
            raise NotDeployedError(f"function {function_name} does not exist: run chalice deploy first") from None
    return str(configuration["FunctionArn"])


def _mappings(lambda_client: Any, function_arn: str, stream_arn: str) -> list[dict[str, Any]]:
    # Listed by stream and matched on the function's ARN: Lambda takes a name or an ARN when one is created.
    with aws_call(f"list the event source mappings of {stream_arn}"):
        pages = lambda_client.get_paginator("list_event_source_mappings").paginate(EventSourceArn=stream_arn)
        return [
            mapping
            for page in pages
            for mapping in page.get("EventSourceMappings", [])
            if mapping.get("FunctionArn") == function_arn
        ]


def _not_subscribed(lambda_client: Any, function_name: str, function_arn: str, stream_arn: str) -> NotDeployedError:
    with aws_call(f"list the event source mappings of {function_name}"):
        pages = lambda_client.get_paginator("list_event_source_mappings").paginate(FunctionName=function_arn)
        others = [mapping for page in pages for mapping in page.get("EventSourceMappings", [])]
    if not others:
        return NotDeployedError(
            f"{function_name} is not subscribed to {stream_arn} (GUARDIAN_LOCK_TABLE_STREAM_ARN): "
            "run chalice deploy first, with that stream ARN in the stage's config"
        )
    # Chalice updates an existing stream mapping in place and never moves it to a new stream ARN.
    subscribed = ", ".join(f"{mapping['EventSourceArn']} (mapping {mapping['UUID']})" for mapping in others)
    return NotDeployedError(
        f"{function_name} is subscribed to {subscribed}, not to {stream_arn} (GUARDIAN_LOCK_TABLE_STREAM_ARN), "
        "and chalice deploy keeps an existing subscription: delete it with "
        "`aws lambda delete-event-source-mapping --uuid UUID`, then chalice deploy and harden again"
    )


def _plan_dead_letter_queue(plan: Plan, sqs: Any, name: str, function_arn: str) -> str:
    """Plan the queue or its settings; the queue's ARN, known before it exists (same account and region)."""
    wanted = {"MessageRetentionPeriod": str(DEAD_LETTER_RETENTION_S), "SqsManagedSseEnabled": "true"}
    with aws_call(f"read the queue {name}"):
        try:
            url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        except sqs.exceptions.QueueDoesNotExist:
            url = None
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"] if url else None
    if attributes is None:

        def create() -> None:
            with aws_call(f"create the queue {name}"):
                sqs.create_queue(QueueName=name, Attributes=wanted)

        plan.add(f"sqs: create the queue {name} (encrypted with SSE-SQS, messages kept 14 days)", create)
        _, partition, _, region, account, _ = function_arn.split(":", 5)
        return f"arn:{partition}:sqs:{region}:{account}:{name}"
    if attributes.get("KmsMasterKeyId"):
        wanted.pop("SqsManagedSseEnabled")  # already encrypted with a KMS key of the team's choice: keep it
    different = {key: value for key, value in wanted.items() if attributes.get(key) != value}
    if different:
        shown = ", ".join(f"{key} {attributes.get(key)} → {value}" for key, value in different.items())

        def update() -> None:
            with aws_call(f"update the queue {name}"):
                sqs.set_queue_attributes(QueueUrl=url, Attributes=different)

        plan.add(f"sqs: queue {name}: {shown}", update)
    return str(attributes["QueueArn"])


def _mapping_updater(lambda_client: Any, uuid: str, hardening: Hardening, stage: StageConfig,
                     sleep: Callable[[float], None]) -> Callable[[], None]:  # fmt: skip
    def update() -> None:
        for attempt in range(1, SETTLE_ATTEMPTS + 1):
            try:
                lambda_client.update_event_source_mapping(UUID=uuid, **hardening.wanted())
                return
            except ClientError as exc:
                if error_code(exc) == "ResourceInUseException" and attempt < SETTLE_ATTEMPTS:
                    sleep(SETTLE_DELAY_S)
                    continue
                failure = translated(exc, f"update the event source mapping {uuid}")
                if error_code(exc) == "InvalidParameterValueException":
                    # Lambda checks the destination against the function's role when the mapping is updated.
                    failure = AwsCallError(
                        f"{failure}; if that is about permissions, the function's role needs sqs:SendMessage on "
                        f"{hardening.queue_arn}: add it to .chalice/policy-{stage.stage}-{STREAM_HANDLER}.json, "
                        "chalice deploy, and run harden again"
                    )
                raise failure from exc

    return update


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict):
        return str(value.get("OnFailure", {}).get("Destination") or "none")
    return str(value)
