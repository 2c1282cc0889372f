"""The stream handler's event source mappings: one per distinct lock table stream, hardened; no other."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from chalicelib.adapters.backend_session import backend_session
from deploy.changes import Plan
from deploy.errors import AwsCallError, NotDeployedError, RefusedError, aws_call, error_code, translated
from deploy.sources import STREAM_HANDLER, Where, lock_tables, stream_mapping, stream_mapping_hardening
from deploy.stage_config import StageConfig

if TYPE_CHECKING:
    from boto3.session import Session

# After `chalice deploy` a mapping may still be Creating or Updating for a while; Lambda refuses changes until then.
SETTLE_ATTEMPTS = 20
SETTLE_DELAY_S = 3.0


class StreamMappings:
    """The stream handler's event source mappings: one per distinct lock table stream, hardened; no other."""

    def __init__(self, session: Session, lambda_client: Any, stage: StageConfig, home: Where, *,
                 function_arn: str, sleep: Callable[[float], None]) -> None:  # fmt: skip
        self._session, self._lambda, self._stage, self._home = session, lambda_client, stage, home
        self._function_arn = function_arn
        self._sleep = sleep

    def plan(self, plan: Plan, queue_arn: str | None) -> None:
        wanted = self._wanted_streams()
        function_name = self._stage.function_name(STREAM_HANDLER)
        mappings = self._mappings(wanted)
        subscribed = {str(mapping["EventSourceArn"]) for mapping in mappings}
        for stream_arn, table in wanted.items():
            if stream_arn not in subscribed and queue_arn is not None:
                plan.add(
                    f"lambda: subscribe {function_name} to the stream of {table} ({stream_arn}): batches of 100 "
                    f"from the latest record, bisected on error, 5 retries, records up to 1 hour old, failures to "
                    f"{queue_arn}",
                    self._creator(stream_arn, queue_arn),
                )
        for mapping in mappings:
            uuid, stream_arn = str(mapping["UUID"]), str(mapping["EventSourceArn"])
            if stream_arn not in wanted:
                plan.add(
                    f"lambda: remove the event source mapping {uuid} of {function_name} on {stream_arn} "
                    "(no backend's lock table streams there now)",
                    self._remover(uuid),
                )
                continue
            assert queue_arn is not None  # a wanted stream means a lock table, and so a stream queue
            differences = _mapping_differences(mapping, stream_mapping_hardening(queue_arn))
            if differences:
                plan.add(
                    f"lambda: event source mapping {uuid} of {function_name}: {differences}",
                    self._updater(uuid, queue_arn),
                )

    def _mappings(self, wanted: dict[str, str]) -> list[dict[str, Any]]:
        """The function's mappings: listed by function, and by each wanted stream (a mapping made with the function's
        name rather than its ARN is found either way), matched on the function's ARN."""
        found: dict[str, dict[str, Any]] = {}
        paginator = self._lambda.get_paginator("list_event_source_mappings")
        with aws_call(f"list the event source mappings of {self._function_arn}"):
            queries = [{"FunctionName": self._function_arn}, *({"EventSourceArn": arn} for arn in wanted)]
            for query in queries:
                for page in paginator.paginate(**query):
                    for mapping in page.get("EventSourceMappings", []):
                        if mapping.get("FunctionArn") == self._function_arn:
                            found[str(mapping["UUID"])] = mapping
        return list(found.values())

    def _wanted_streams(self) -> dict[str, str]:
        """Each lock table's latest stream ARN, and the table (a table several backends share, read once)."""
        streams: dict[str, str] = {}
        for (where, table), backends in lock_tables(self._stage, self._home).items():
            if where.region != self._home.region:
                raise RefusedError(
                    f"lock table {table} of backend {backends[0].backend.name} is in {where.region}, and Lambda reads "
                    f"streams of its own region only ({self._home.region}): deploy a guardian in {where.region} for "
                    "it, or leave lock_table out and watch its lockfiles"
                )
            dynamodb: Any = backend_session(
                self._session, role_arn=backends[0].backend.role_arn, region=where.region
            ).client("dynamodb")
            with aws_call(f"describe the lock table {table}"):
                try:
                    description = dynamodb.describe_table(TableName=table)["Table"]
                except dynamodb.exceptions.ResourceNotFoundException:
                    raise RefusedError(f"lock table {table} does not exist: run prepare first") from None
            stream_arn = description.get("LatestStreamArn")
            if not description.get("StreamSpecification", {}).get("StreamEnabled") or not stream_arn:
                raise NotDeployedError(f"lock table {table} has no stream: run prepare first")
            streams[str(stream_arn)] = table
        return streams

    def _creator(self, stream_arn: str, queue_arn: str) -> Callable[[], None]:
        def create() -> None:
            self._retried(
                f"subscribe to {stream_arn}",
                lambda: self._lambda.create_event_source_mapping(
                    EventSourceArn=stream_arn, FunctionName=self._function_arn, **stream_mapping(queue_arn)
                ),
                queue_arn,
            )

        return create

    def _updater(self, uuid: str, queue_arn: str) -> Callable[[], None]:
        def update() -> None:
            self._retried(
                f"update the event source mapping {uuid}",
                lambda: self._lambda.update_event_source_mapping(UUID=uuid, **stream_mapping_hardening(queue_arn)),
                queue_arn,
            )

        return update

    def _remover(self, uuid: str) -> Callable[[], None]:
        def remove() -> None:
            self._retried(f"remove the event source mapping {uuid}",
                          lambda: self._lambda.delete_event_source_mapping(UUID=uuid), None)  # fmt: skip

        return remove

    def _retried(self, what: str, call: Callable[[], object], queue_arn: str | None) -> None:
        for attempt in range(1, SETTLE_ATTEMPTS + 1):
            try:
                call()
                return
            except ClientError as exc:
                if error_code(exc) == "ResourceInUseException" and attempt < SETTLE_ATTEMPTS:
                    self._sleep(SETTLE_DELAY_S)
                    continue
                failure = translated(exc, what)
                if error_code(exc) == "InvalidParameterValueException" and queue_arn is not None:
                    # Lambda checks the destination against the function's role when the mapping is written.
                    failure = AwsCallError(
                        f"{failure}; if that is about permissions, the function's role needs sqs:SendMessage on "
                        f"{queue_arn}: add it to .chalice/policy-{self._stage.stage}-{STREAM_HANDLER}.json, "
                        "chalice deploy, and run harden again"
                    )
                raise failure from exc


def _mapping_differences(mapping: dict[str, Any], wanted: dict[str, Any]) -> str:
    """Each setting of the mapping that differs from `wanted`, as `name was → to`; empty when none does."""
    current = {
        "BisectBatchOnFunctionError": mapping.get("BisectBatchOnFunctionError", False),
        "MaximumRetryAttempts": mapping.get("MaximumRetryAttempts", -1),
        "MaximumRecordAgeInSeconds": mapping.get("MaximumRecordAgeInSeconds", -1),
        "DestinationConfig": {
            "OnFailure": {"Destination": mapping.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")}
        },
    }
    return ", ".join(
        f"{name} {_shown(current[name])} → {_shown(value)}" for name, value in wanted.items() if current[name] != value
    )


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict):
        return str(value.get("OnFailure", {}).get("Destination") or "none")
    return str(value)
