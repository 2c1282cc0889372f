"""`prepare`: bring every backend and the guardian's own resources to the state the guardian needs.

It creates only what belongs to the guardian (its table, index bucket, topics, event bus and secrets) and changes only
settings the guardian depends on (versioning, default encryption, public access block, the lock table's stream,
EventBridge delivery of an `events: "eventbridge"` backend's bucket, the index bucket's retention rule). It never
creates a team's state bucket or lock table, and never switches a stream that other consumers may read.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from chalicelib.adapters.backend_session import backend_session
from chalicelib.adapters.secrets import SecretValue
from chalicelib.domain.backends import EVENTBRIDGE
from chalicelib.errors import SettingsError
from chalicelib.settings import Settings
from deploy.alarms import alarm_topic_name
from deploy.changes import Plan
from deploy.errors import AwsCallError, RefusedError, StageConfigError, aws_call, error_code
from deploy.resource_shapes import (
    DEFAULT_ENCRYPTION,
    GUARDIAN_TABLE_ATTRIBUTES,
    GUARDIAN_TABLE_KEY_SCHEMA,
    GUARDIAN_TABLE_TTL_ATTRIBUTE,
    INDEX_PREFIX,
    LOCK_STREAM_VIEW_TYPE,
    LOCK_TABLE_STREAM,
    PUBLIC_ACCESS_BLOCK,
    PUBLIC_ACCESS_BLOCK_FLAGS,
    create_guardian_table,
    enable_guardian_table_ttl,
    index_bucket_lifecycle,
)
from deploy.sources import with_eventbridge
from deploy.stage_config import StageConfig

if TYPE_CHECKING:
    from boto3.session import Session

# Where `prepare` takes a missing secret's value from: the environment only, so it never lands in shell history.
SECRET_VALUE_VARIABLES = {
    "GUARDIAN_SLACK_WEBHOOK_SECRET": "GUARDIAN_SLACK_WEBHOOK_URL_VALUE",
    "GUARDIAN_WEBHOOK_SECRET": "GUARDIAN_WEBHOOK_SECRET_VALUE",
    "GUARDIAN_TEAMS_WEBHOOK_SECRET": "GUARDIAN_TEAMS_WEBHOOK_URL_VALUE",
    "GUARDIAN_PAGERDUTY_ROUTING_KEY_SECRET": "GUARDIAN_PAGERDUTY_ROUTING_KEY_VALUE",
}
_NO_BUCKET = ("404", "NoSuchBucket")
_FORBIDDEN = ("403", "AccessDenied")
_TTL_ON = ("ENABLED", "ENABLING")


@dataclass(frozen=True)
class _SecretReference:
    setting: str
    store: str
    name: str
    value_variable: str

    def __str__(self) -> str:
        return f"{self.store}:{self.name}"


def prepare(session: Session, stage: StageConfig, *, dry_run: bool, say: Callable[[str], None],
            environ: Mapping[str, str]) -> bool:  # fmt: skip
    """Read everything, then make (or, on a dry run, show) each change; True when nothing is left to do.

    Each backend is readied in its own account and region (through its role, if it names one): its bucket, its lock
    table (once, however many backends share it), and EventBridge delivery for an `events: "eventbridge"` backend.
    The guardian's own resources are readied in the account and region of your credentials.
    """
    home = _Backend(session, stage, environ, stage.settings)
    plan = Plan()
    for settings in stage.backends:
        home.check_index_bucket_is_not_the_state_bucket(settings.state_bucket)
    tables: set[tuple[str | None, str | None, str]] = set()
    for settings in stage.backends:
        backend = settings.backend
        here = backend_session(session, role_arn=backend.role_arn, region=backend.region)
        checks = _Backend(here, stage, environ, settings)
        checks.check_state_bucket(plan)
        if backend.events == EVENTBRIDGE:
            checks.check_eventbridge_delivery(plan)
        if settings.lock_table and (backend.account, backend.region, settings.lock_table) not in tables:
            tables.add((backend.account, backend.region, settings.lock_table))
            checks.check_lock_table(plan)
    for settings in _distinct(stage.backends, "notify_topic_arn"):
        _Backend(session, stage, environ, settings).check_topic(plan)
    for settings in _distinct(stage.backends, "notify_event_bus"):
        _Backend(session, stage, environ, settings).check_event_bus(plan)
    home.check_alarm_topic(plan)
    home.check_guardian_table(plan)
    home.check_index_bucket(plan)
    references: set[str] = set()
    for settings in stage.backends:
        _Backend(session, stage, environ, settings).check_secrets(plan, references)
    plan.carry_out(dry_run=dry_run, say=say)
    for item in plan.to_do:
        say(f"to do: {item}")
    return not plan.to_do


def _distinct(backends: tuple[Settings, ...], setting: str) -> list[Settings]:
    """One backend's settings for each distinct value of `setting` (a backend may override a channel's)."""
    seen: dict[object, Settings] = {}
    for settings in backends:
        seen.setdefault(getattr(settings, setting), settings)
    return [settings for value, settings in seen.items() if value]


class _Backend:
    """The checks and changes, one method per resource; reads happen at once, writes only through the plan."""

    def __init__(self, session: Session, stage: StageConfig, environ: Mapping[str, str], settings: Settings) -> None:
        self._session = session
        self._stage = stage
        self._settings = settings
        self._environ = environ
        self._s3 = session.client("s3")
        self._dynamodb = session.client("dynamodb")

    def check_eventbridge_delivery(self, plan: Plan) -> None:
        """S3 sends the bucket's events to EventBridge: `EventBridgeConfiguration` merged into its notifications."""
        bucket = self._settings.state_bucket
        with aws_call(f"read the notifications of s3://{bucket}"):
            current = dict(self._s3.get_bucket_notification_configuration(Bucket=bucket))
        if "EventBridgeConfiguration" in current:
            return

        def enable() -> None:
            with aws_call(f"send the events of s3://{bucket} to EventBridge"):
                # Read again right before writing, so that a configuration added meanwhile is kept too.
                latest = dict(self._s3.get_bucket_notification_configuration(Bucket=bucket))
                self._s3.put_bucket_notification_configuration(
                    Bucket=bucket,
                    NotificationConfiguration=with_eventbridge(latest),  # type: ignore[arg-type]
                )

        plan.add(
            f"s3://{bucket}: send its events to EventBridge (backend {self._settings.backend.name}; "
            "its other notifications kept)",
            enable,
        )

    def check_alarm_topic(self, plan: Plan) -> None:
        """The SNS topic the guardian's alarms notify (`harden` wires them to it): subscribe to it yourself."""
        name = alarm_topic_name(self._stage)
        topic_arn = f"arn:aws:sns:{self._session.region_name}:{self._caller_account}:{name}"
        self._plan_topic(
            plan, topic_arn, name, f"sns: create the topic {name}, for the guardian's alarms (subscribe to it)"
        )

    def check_state_bucket(self, plan: Plan) -> None:
        bucket = self._settings.state_bucket
        where = f"s3://{bucket}"
        with aws_call(f"read {where}"):
            try:
                self._s3.head_bucket(Bucket=bucket)
            except ClientError as exc:
                if error_code(exc) not in _NO_BUCKET:
                    raise
                raise RefusedError(
                    f"state bucket {bucket} of backend {self._settings.backend.name} does not exist: prepare never "
                    "creates a team's state bucket; create it, or fix the backend's bucket (GUARDIAN_STATE_BUCKET or "
                    "GUARDIAN_BACKENDS)"
                ) from None
            versioning = self._s3.get_bucket_versioning(Bucket=bucket).get("Status", "never enabled")
            encryption = self._bucket_encryption(bucket)
            public_access = self._public_access_block(bucket)
        if versioning != "Enabled":
            # First in the plan: rollback reads old versions, so nothing else is worth doing without it.
            plan.add(f"{where}: enable versioning (it is {versioning})", lambda: self._enable_versioning(bucket))
        self._plan_bucket_protection(plan, bucket, encryption, public_access)

    def _plan_bucket_protection(
        self, plan: Plan, bucket: str, encryption: object | None, public_access: dict[str, Any]
    ) -> None:
        """Default encryption where a bucket has none, and every public access flag on."""
        where = f"s3://{bucket}"
        if encryption is None:
            plan.add(
                f"{where}: set default encryption to SSE-S3 (AES256) (it has none)",
                lambda: self._put_bucket_encryption(bucket),
            )
        off = [flag for flag in PUBLIC_ACCESS_BLOCK_FLAGS if not public_access.get(flag)]
        if off:
            plan.add(
                f"{where}: block all public access ({', '.join(off)} off)",
                lambda: self._put_public_access_block(bucket),
            )

    def check_lock_table(self, plan: Plan) -> None:
        """Plan the stream, if needed (`harden` finds the stream's ARN by describing the table)."""
        table = self._settings.lock_table
        if table is None:
            return
        with aws_call(f"describe the lock table {table}"):
            try:
                description = self._dynamodb.describe_table(TableName=table)["Table"]
            except self._dynamodb.exceptions.ResourceNotFoundException:
                raise RefusedError(
                    f"lock table {table} of backend {self._settings.backend.name} does not exist: prepare never "
                    "creates a team's lock table; create it (or fix the backend's lock table)"
                ) from None
        stream = description.get("StreamSpecification", {})
        if not stream.get("StreamEnabled"):
            plan.add(
                f"dynamodb table {table}: enable its stream with {LOCK_STREAM_VIEW_TYPE}",
                lambda: self._enable_lock_stream(table),
            )
            return
        view = stream.get("StreamViewType")
        if view != LOCK_STREAM_VIEW_TYPE:
            raise RefusedError(
                f"lock table {table} has a {view} stream, and the guardian needs {LOCK_STREAM_VIEW_TYPE} "
                "(the old image says which lock was released). A stream's view type cannot be changed: it takes "
                "disabling the stream and enabling a new one, which cuts off every other consumer of the current "
                "stream, so prepare leaves it to you: move those consumers, then run "
                f"`aws dynamodb update-table --table-name {table} --stream-specification StreamEnabled=false`, "
                "then run prepare again"
            )

    def check_topic(self, plan: Plan) -> None:
        topic_arn = self._settings.notify_topic_arn
        if topic_arn is None:
            return
        parts = topic_arn.split(":")
        if len(parts) != 6 or parts[0] != "arn" or parts[2] != "sns" or not parts[5]:
            raise StageConfigError(f"GUARDIAN_NOTIFY_TOPIC_ARN {topic_arn!r} is not an SNS topic ARN")
        region, account, name = parts[3], parts[4], parts[5]
        self._refuse_unless_here("GUARDIAN_NOTIFY_TOPIC_ARN", account, region, "topic")
        self._plan_topic(plan, topic_arn, name, f"sns: create the topic {name}")

    def _plan_topic(self, plan: Plan, topic_arn: str, name: str, said: str) -> None:
        """Plan creating the topic unless it exists."""
        sns = self._session.client("sns")
        with aws_call(f"read the topic {topic_arn}"):
            try:
                sns.get_topic_attributes(TopicArn=topic_arn)
                return
            except sns.exceptions.NotFoundException:
                pass

        def create() -> None:
            with aws_call(f"create the topic {name}"):
                sns.create_topic(Name=name)

        plan.add(said, create)

    def check_event_bus(self, plan: Plan) -> None:
        bus = self._settings.notify_event_bus
        if bus is None:
            return
        name = bus
        if bus.startswith("arn:"):
            parts = bus.split(":", 5)
            if len(parts) != 6 or parts[2] != "events" or not parts[5].startswith("event-bus/"):
                raise StageConfigError(f"GUARDIAN_NOTIFY_EVENT_BUS {bus!r} is neither a bus name nor a bus ARN")
            self._refuse_unless_here("GUARDIAN_NOTIFY_EVENT_BUS", parts[4], parts[3], "event bus")
            name = parts[5].removeprefix("event-bus/")
        if name == "default":
            return  # every account and region has it
        events = self._session.client("events")
        with aws_call(f"read the event bus {name}"):
            try:
                events.describe_event_bus(Name=name)
                return
            except events.exceptions.ResourceNotFoundException:
                pass

        def create() -> None:
            with aws_call(f"create the event bus {name}"):
                events.create_event_bus(Name=name)

        plan.add(f"events: create the event bus {name}", create)

    def check_guardian_table(self, plan: Plan) -> None:
        table = self._settings.guardian_table
        with aws_call(f"describe the guardian table {table}"):
            try:
                description = self._dynamodb.describe_table(TableName=table)["Table"]
            except self._dynamodb.exceptions.ResourceNotFoundException:
                description = None
            ttl = (
                self._dynamodb.describe_time_to_live(TableName=table).get("TimeToLiveDescription", {})
                if description is not None
                else {}
            )

        if description is None:

            def create() -> None:
                with aws_call(f"create the guardian table {table}"):
                    create_guardian_table(self._dynamodb, table)

            plan.add(
                f"dynamodb table {table}: create it (pk, sk strings; on demand; TTL on {GUARDIAN_TABLE_TTL_ATTRIBUTE})",
                create,
            )
            return
        key_schema = sorted((key["AttributeName"], key["KeyType"]) for key in description.get("KeySchema", []))
        types = {a["AttributeName"]: a["AttributeType"] for a in description.get("AttributeDefinitions", [])}
        wanted_keys = sorted((key["AttributeName"], key["KeyType"]) for key in GUARDIAN_TABLE_KEY_SCHEMA)
        wanted_types = {a["AttributeName"]: a["AttributeType"] for a in GUARDIAN_TABLE_ATTRIBUTES}
        if key_schema != wanted_keys or any(types.get(name) != kind for name, kind in wanted_types.items()):
            raise RefusedError(
                f"table {table} exists with another key schema ({key_schema}): GUARDIAN_TABLE must name the "
                "guardian's own table, with string keys pk (HASH) and sk (RANGE); pick a name that is free"
            )
        if ttl.get("TimeToLiveStatus") in _TTL_ON:
            if ttl.get("AttributeName") != GUARDIAN_TABLE_TTL_ATTRIBUTE:
                raise RefusedError(
                    f"table {table} expires items on {ttl.get('AttributeName')}, not {GUARDIAN_TABLE_TTL_ATTRIBUTE}: "
                    "it is not the guardian's table; pick a name that is free for GUARDIAN_TABLE"
                )
            return

        def enable_ttl() -> None:
            with aws_call(f"turn on TTL of {table}"):
                enable_guardian_table_ttl(self._dynamodb, table)

        plan.add(f"dynamodb table {table}: expire items on {GUARDIAN_TABLE_TTL_ATTRIBUTE} (TTL is off)", enable_ttl)

    def check_index_bucket_is_not_the_state_bucket(self, state_bucket: str) -> None:
        bucket = self._settings.index_bucket
        if bucket is not None and bucket == state_bucket:
            raise RefusedError(
                f"GUARDIAN_INDEX_BUCKET is the state bucket {bucket}: the indexes need a bucket of the guardian's own "
                f"(its lifecycle rule expires everything under {INDEX_PREFIX}, and every index written would be an "
                "S3 event of the state bucket); pick a free name for GUARDIAN_INDEX_BUCKET"
            )

    def check_index_bucket(self, plan: Plan) -> None:
        """The guardian's own bucket of indexes: created if missing, else brought to the same shape."""
        bucket = self._settings.index_bucket
        if bucket is None:
            return  # no index is kept
        where, days = f"s3://{bucket}", self._settings.history_days
        with aws_call(f"read {where}"):
            try:
                self._s3.head_bucket(Bucket=bucket)
            except ClientError as exc:
                if error_code(exc) in _FORBIDDEN:
                    raise RefusedError(
                        f"index bucket {bucket} exists but your credentials may not read it: bucket names are "
                        "global, so it may be another account's; pick a free name for GUARDIAN_INDEX_BUCKET, or run "
                        "prepare with credentials that may read it"
                    ) from None
                if error_code(exc) not in _NO_BUCKET:
                    raise
                plan.add(
                    f"{where}: create it, the guardian's index bucket (SSE-S3, all public access blocked, "
                    f"{INDEX_PREFIX} expiring after {days} days)",
                    lambda: self._create_index_bucket(bucket),
                )
                return
            encryption = self._bucket_encryption(bucket)
            public_access = self._public_access_block(bucket)
            rules = self._lifecycle_rules(bucket)
        self._plan_bucket_protection(plan, bucket, encryption, public_access)
        (wanted,) = index_bucket_lifecycle(days)["Rules"]
        found = next((rule for rule in rules if rule.get("ID") == wanted["ID"]), None)
        differs = _retention_differs(found, wanted)
        if differs:
            # The bucket's other rules (an operator's own) are kept: only the guardian's rule is put.
            others = [rule for rule in rules if rule.get("ID") != wanted["ID"]]
            plan.add(
                f"{where}: expire {INDEX_PREFIX} after {days} days, as GUARDIAN_HISTORY_DAYS says ({differs})",
                lambda: self._put_lifecycle(bucket, [*others, wanted]),
            )

    def check_secrets(self, plan: Plan, seen: set[str]) -> None:
        """The secrets this backend's channels read (each looked at once, however many backends share it)."""
        for reference in self._secret_references():
            if str(reference) in seen:
                continue
            seen.add(str(reference))
            value = self._environ.get(reference.value_variable, "")
            if self._secret_exists(plan, reference):
                continue
            if not value:
                plan.to_do.append(
                    f"{reference} ({reference.setting}) does not exist: export {reference.value_variable} with its "
                    "value and run prepare again"
                )
                continue
            plan.add(
                f"{reference.store}: create {reference.name} from ${reference.value_variable}",
                self._secret_creator(reference, value),
            )

    def _secret_references(self) -> list[_SecretReference]:
        configured = {
            "GUARDIAN_SLACK_WEBHOOK_SECRET": self._settings.slack_webhook_secret,
            "GUARDIAN_WEBHOOK_SECRET": self._settings.webhook_secret,
            "GUARDIAN_TEAMS_WEBHOOK_SECRET": self._settings.teams_webhook_secret,
            "GUARDIAN_PAGERDUTY_ROUTING_KEY_SECRET": self._settings.pagerduty_routing_key_secret,
        }
        references = []
        for setting, reference in configured.items():
            if not reference:
                continue
            try:
                SecretValue(reference)  # the guardian's own parser says whether it can read this reference
            except SettingsError as exc:
                raise StageConfigError(f"{setting}: {exc}") from exc
            store, _, name = reference.partition(":")
            references.append(_SecretReference(setting, store, name, SECRET_VALUE_VARIABLES[setting]))
        return references

    def _secret_exists(self, plan: Plan, reference: _SecretReference) -> bool:
        # Only metadata is read: prepare never fetches a secret's value.
        if reference.store == "ssm":
            ssm: Any = self._session.client("ssm")  # no type stubs are installed for SSM
            with aws_call(f"look up {reference}"):
                found = ssm.describe_parameters(
                    ParameterFilters=[{"Key": "Name", "Option": "Equals", "Values": [reference.name]}]
                ).get("Parameters", [])
            if found and found[0].get("Type") != "SecureString":
                plan.to_do.append(
                    f"{reference} is a {found[0].get('Type')} parameter, readable without decryption: delete it and "
                    f"run prepare again with {reference.value_variable} set, to create it as a SecureString"
                )
            return bool(found)
        secrets: Any = self._session.client("secretsmanager")  # no type stubs are installed for Secrets Manager
        with aws_call(f"look up {reference}"):
            try:
                secrets.describe_secret(SecretId=reference.name)
            except secrets.exceptions.ResourceNotFoundException:
                return False
        return True

    def _secret_creator(self, reference: _SecretReference, value: str) -> Callable[[], None]:
        def create() -> None:
            with aws_call(f"create {reference}"):
                if reference.store == "ssm":
                    ssm: Any = self._session.client("ssm")
                    ssm.put_parameter(Name=reference.name, Value=value, Type="SecureString", Overwrite=False)
                else:
                    secrets: Any = self._session.client("secretsmanager")
                    secrets.create_secret(Name=reference.name, SecretString=value)

        return create

    def _refuse_unless_here(self, setting: str, account: str, region: str, what: str) -> None:
        caller_account, caller_region = self._caller_account, self._session.region_name
        if (account, region) != (caller_account, caller_region):
            raise RefusedError(
                f"{setting} is in account {account}, region {region}, but your credentials are for account "
                f"{caller_account}, region {caller_region}: prepare only creates the {what} where it deploys; "
                f"run it with credentials and region of the {what}'s account, or fix {setting}"
            )

    @functools.cached_property
    def _caller_account(self) -> str:
        sts: Any = self._session.client("sts")  # no type stubs are installed for STS
        with aws_call("find the account of your credentials"):
            return str(sts.get_caller_identity()["Account"])

    def _bucket_encryption(self, bucket: str) -> dict[str, Any] | None:
        try:
            return dict(self._s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"])
        except ClientError as exc:
            if error_code(exc) == "ServerSideEncryptionConfigurationNotFoundError":
                return None
            raise

    def _public_access_block(self, bucket: str) -> dict[str, Any]:
        try:
            return dict(self._s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"])
        except ClientError as exc:
            if error_code(exc) == "NoSuchPublicAccessBlockConfiguration":
                return {}
            raise

    def _lifecycle_rules(self, bucket: str) -> list[dict[str, Any]]:
        try:
            return [dict(rule) for rule in self._s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]]
        except ClientError as exc:
            if error_code(exc) == "NoSuchLifecycleConfiguration":
                return []
            raise

    def _create_index_bucket(self, bucket: str) -> None:
        region = self._session.region_name
        with aws_call(f"create s3://{bucket}"):
            if region == "us-east-1":  # the one region that refuses a location constraint naming it
                self._s3.create_bucket(Bucket=bucket)
            else:
                self._s3.create_bucket(
                    Bucket=bucket,
                    CreateBucketConfiguration={"LocationConstraint": region},  # type: ignore[typeddict-item]
                )
        self._put_bucket_encryption(bucket)
        self._put_public_access_block(bucket)
        self._put_lifecycle(bucket, index_bucket_lifecycle(self._settings.history_days)["Rules"])

    def _put_lifecycle(self, bucket: str, rules: list[dict[str, Any]]) -> None:
        with aws_call(f"set the lifecycle rules of s3://{bucket}"):
            self._s3.put_bucket_lifecycle_configuration(
                Bucket=bucket,
                LifecycleConfiguration={"Rules": rules},  # type: ignore[typeddict-item]
            )

    def _enable_versioning(self, bucket: str) -> None:
        with aws_call(f"enable versioning on s3://{bucket}"):
            self._s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
            status = self._s3.get_bucket_versioning(Bucket=bucket).get("Status")
        if status != "Enabled":
            raise AwsCallError(f"versioning of s3://{bucket} is still {status} after enabling it; stopped there")

    def _put_bucket_encryption(self, bucket: str) -> None:
        with aws_call(f"set default encryption on s3://{bucket}"):
            self._s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration=DEFAULT_ENCRYPTION)

    def _put_public_access_block(self, bucket: str) -> None:
        with aws_call(f"block public access to s3://{bucket}"):
            self._s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=PUBLIC_ACCESS_BLOCK)

    def _enable_lock_stream(self, table: str) -> None:
        with aws_call(f"enable the stream of {table}"):
            self._dynamodb.update_table(TableName=table, StreamSpecification=LOCK_TABLE_STREAM)


def _retention_differs(found: dict[str, Any] | None, wanted: dict[str, Any]) -> str | None:
    """How the bucket's retention rule differs from the wanted one, in a few words; None when it does not."""
    if found is None:
        return "it has no such rule"
    prefix = found.get("Filter", {}).get("Prefix", found.get("Prefix"))
    days = found.get("Expiration", {}).get("Days")
    if found.get("Status") != "Enabled":
        return f"its rule is {found.get('Status')}"
    if prefix != wanted["Filter"]["Prefix"]:
        return f"its rule covers the prefix {prefix!r}"
    if days != wanted["Expiration"]["Days"]:
        return f"its rule says {days} days" if days is not None else "its rule sets no expiration in days"
    return None
