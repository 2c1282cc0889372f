"""Every handler under AWS and webhook faults: it finishes or raises for a retry, and after the retries every
notification has reached every channel exactly once, no lock was wrongly released, no failed rollback changed a
state."""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters
from chalice.test import Client

from chalicelib import composition
from chalicelib.adapters.guardian_table import GuardianTable
from chalicelib.errors import TransientAwsError
from local_stack.emulator import free_port
from local_stack.stack import LocalStack
from tests.support.events import state_bytes
from tests.support.faults import CONNECTION, DELAY, SERVER_ERROR, THROTTLE, Fault, inject_faults
from tests.support.receiver import Received, receiver

KEY = "prod/app/terraform.tfstate"
BUS = "guardian-bus"
STATES = [
    state_bytes("state_tf1.11.4_first_apply_serial1.json"),
    state_bytes("state_tf1.11.4_second_apply_serial2.json"),
]
CHANNELS = ("file", "sns", "eventbridge", "webhook")


@dataclass
class Guardian:
    """A local stack with all four channels that leave the machine or the process, and readers for each."""

    stack: LocalStack
    aws: boto3.session.Session
    notify_file: Path
    log_file: Path
    hook_port: int
    queues: dict[str, str]
    exits: ExitStack
    hook_requests: list[Received] = field(default_factory=list)
    _hook: Any = None
    _read: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {"sns": [], "eventbridge": []})

    @property
    def container(self) -> composition.Container:
        return composition.container().home

    @property
    def bucket(self) -> str:
        assert self.stack.resources is not None
        return self.stack.resources.state_bucket

    @property
    def lock_table(self) -> str:
        assert self.stack.resources is not None
        return self.stack.resources.lock_table

    def webhook_up(self) -> None:
        if self._hook is None:
            self._hook = self.exits.enter_context(receiver(self.hook_port))
            self._hook.requests = self.hook_requests  # one record across outages

    def webhook_down(self) -> None:
        """Nothing listens on the webhook's port any more: connections are refused."""
        if self._hook is not None:
            self.exits.close()
            self.exits = ExitStack()
            self._hook = None

    @property
    def hook(self) -> Any:
        assert self._hook is not None
        return self._hook

    def put_state(self, body: bytes, key: str = KEY) -> str:
        return str(self.aws.client("s3").put_object(Bucket=self.bucket, Key=key, Body=body)["VersionId"])

    def failed_invocations(self) -> int:
        return self.log_file.read_text().count("failed:\n")

    def gave_up(self) -> list[str]:
        return [line for line in self.log_file.read_text().splitlines() if "gave up" in line or "skipped a" in line]

    def deliveries(self) -> dict[str, list[dict[str, Any]]]:
        """Every notification each channel received, in order."""
        sqs = self.aws.client("sqs")
        for channel, url in self.queues.items():
            while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
                for message in messages:
                    body = json.loads(message["Body"])
                    self._read[channel].append(json.loads(body["Message"]) if channel == "sns" else body["detail"])
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        file = (
            [json.loads(line) for line in self.notify_file.read_text().splitlines()]
            if self.notify_file.exists()
            else []
        )
        return {
            "file": file,
            "sns": list(self._read["sns"]),
            "eventbridge": list(self._read["eventbridge"]),
            "webhook": [json.loads(request.body) for request in self.hook_requests],
        }

    def assert_exactly_once(self, expected: Counter[str] | None = None) -> list[dict[str, Any]]:
        """Every channel received the same notifications, each once; `expected` counts them by type."""
        delivered = self.deliveries()
        ids = {channel: Counter(n["id"] for n in notifications) for channel, notifications in delivered.items()}
        for channel, counted in ids.items():
            assert [i for i, n in counted.items() if n > 1] == [], f"duplicates on {channel}"
            assert set(counted) == set(ids["file"]), f"{channel} differs from the file channel"
        if expected is not None:
            assert Counter(n["type"] for n in delivered["file"]) == expected
        return delivered["file"]


@pytest.fixture
def guardian(
    aws: boto3.session.Session, stack_with: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Guardian]:
    """SNS and EventBridge (each read through an SQS queue), a signed webhook, and the JSON-lines file."""
    parameters.clear_caches()  # type: ignore[no-untyped-call]
    aws.client("ssm").put_parameter(Name="/guardian/hook", Value="hook-key", Type="SecureString")
    sqs, events = aws.client("sqs"), aws.client("events")
    events.create_event_bus(Name=BUS)
    queues = {name: sqs.create_queue(QueueName=name)["QueueUrl"] for name in ("sns", "eventbridge")}
    arns = {
        name: sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        for name, url in queues.items()
    }
    events.put_rule(Name="all", EventBusName=BUS, EventPattern=json.dumps({"source": ["tfstate-guardian"]}))
    events.put_targets(Rule="all", EventBusName=BUS, Targets=[{"Id": "q", "Arn": arns["eventbridge"]}])
    port = free_port()
    env = {
        "GUARDIAN_NOTIFY_EVENT_BUS": BUS,
        "GUARDIAN_WEBHOOK_URL": f"http://127.0.0.1:{port}/hook",
        "GUARDIAN_WEBHOOK_SECRET": "ssm:/guardian/hook",
        "GUARDIAN_DIGEST_GRACE_S": "0",
        "GUARDIAN_REAP_GRACE_S": "0",
        # One attempt per channel and invocation: the retries are the Lambda's, and no test sleeps between
        # channel attempts.
        "GUARDIAN_CHANNEL_ATTEMPTS": "1",
    }
    for name, value in env.items():  # the local stack writes them into the process: they end with the test
        monkeypatch.setenv(name, value)
    local = stack_with(extra_env=env)
    aws.client("sns").subscribe(TopicArn=local.resources.notify_topic_arn, Protocol="sqs", Endpoint=arns["sns"])
    g = Guardian(
        stack=local,
        aws=aws,
        notify_file=tmp_path / "notifications.jsonl",
        log_file=tmp_path / "stack.log",
        hook_port=port,
        queues=queues,
        exits=ExitStack(),
    )
    g.webhook_up()
    try:
        yield g
    finally:
        g.webhook_down()


def beyond_retries(g: Guardian) -> int:
    """How many faults in a row make one call fail after all of botocore's attempts."""
    config: Any = g.container.s3.meta.config
    return int(config.retries["total_max_attempts"])


def lock_info(
    g: Guardian, lock_id: str, *, age: timedelta, key: str = KEY, operation: str = "OperationTypeApply"
) -> str:
    created = (datetime.now(UTC) - age).strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"
    return json.dumps(
        {"ID": lock_id, "Operation": operation, "Info": "", "Who": "ci@runner-7", "Version": "1.11.4",
         "Created": created, "Path": f"{g.bucket}/{key}"},
        separators=(",", ":"),
    )  # fmt: skip


def lock_item(g: Guardian, key: str = KEY) -> str | None:
    item = g.aws.client("dynamodb").get_item(
        TableName=g.lock_table, Key={"LockID": {"S": f"{g.bucket}/{key}"}}, ConsistentRead=True
    )
    return item.get("Item", {}).get("Info", {}).get("S")


def digest_item(g: Guardian, key: str = KEY) -> str | None:
    item = g.aws.client("dynamodb").get_item(
        TableName=g.lock_table, Key={"LockID": {"S": f"{g.bucket}/{key}-md5"}}, ConsistentRead=True
    )
    return item.get("Item", {}).get("Digest", {}).get("S")


def current_bytes(g: Guardian, key: str = KEY) -> bytes:
    return bytes(g.aws.client("s3").get_object(Bucket=g.bucket, Key=key)["Body"].read())


# --- S3 events: on_state_object_event -------------------------------------------------------------------------

OUTAGES = {
    "s3 throttled": [Fault("s3", "GetObject", THROTTLE, first=5), Fault("s3", kind=THROTTLE, rate=0.5)],
    "s3 reads and listings 5xx": [
        Fault("s3", "GetObject", SERVER_ERROR, rate=0.7),
        Fault("s3", "ListObjectVersions", SERVER_ERROR),
    ],
    "dynamodb throttled": [Fault("dynamodb", "Query", THROTTLE, first=5), Fault("dynamodb", kind=THROTTLE, rate=0.5)],
    # A claim of one notification is a PutItem; a version's record and its state's latest, a transaction.
    "ledger claims and version records down": [
        Fault("dynamodb", "PutItem", SERVER_ERROR),
        Fault("dynamodb", "TransactWriteItems", SERVER_ERROR),
    ],
    # The audit trail and the ledger's completions: the invocation fails before any channel has the notification.
    "audit trail and ledger completions down": [Fault("dynamodb", "BatchWriteItem", SERVER_ERROR)],
    "sns throttled": [Fault("sns", kind=THROTTLE)],
    "eventbridge 5xx": [Fault("eventbridge", kind=SERVER_ERROR)],
    "network drops": [
        Fault("eventbridge", kind=CONNECTION, first=5),
        *(Fault(s, kind=CONNECTION, rate=0.5) for s in ("s3", "dynamodb", "sns")),
    ],
    "slow aws": [Fault(s, kind=DELAY, rate=0.1, delay_s=0.1) for s in ("s3", "dynamodb", "sns", "eventbridge")],
}


def test_state_writes_during_outages_are_notified_once_on_every_channel(guardian: Guardian) -> None:
    """Each outage in turn: a write, its first delivery during the outage, Lambda's retries after it."""
    versions = []
    for number, (outage, faults) in enumerate(OUTAGES.items()):
        versions.append(guardian.put_state(STATES[number % 2]))
        failed = guardian.failed_invocations()
        with inject_faults(guardian.container, *faults, seed=number) as injected:
            guardian.stack.pump()
        assert injected.injected, f"{outage}: the outage never happened"
        if outage != "slow aws":
            assert guardian.failed_invocations() > failed, f"{outage}: nothing failed, nothing was retried"
        guardian.stack.pump()
        guardian.stack.pump()
        assert guardian.gave_up() == [], outage
        delivered = guardian.assert_exactly_once(Counter({"state.changed": len(versions)}))
        assert sorted(n["details"]["version_id"] for n in delivered) == sorted(versions), outage


def test_an_outage_longer_than_botocores_retries_fails_the_invocation_and_the_retry_delivers(
    guardian: Guardian,
) -> None:
    guardian.put_state(STATES[0])
    with inject_faults(guardian.container, Fault("sns", "Publish", first=beyond_retries(guardian))) as faults:
        guardian.stack.pump()
    assert faults.count("sns") == beyond_retries(guardian)
    assert guardian.failed_invocations() == 1  # raised, so that Lambda retries the event
    assert guardian.deliveries()["sns"] == []
    guardian.stack.pump()
    guardian.assert_exactly_once(Counter({"state.changed": 1}))


# --- the webhook: down, failing, slow --------------------------------------------------------------------------


def test_a_webhook_that_is_down_gets_each_notification_once_when_it_is_back(guardian: Guardian) -> None:
    for number, failure in enumerate(["connection refused", "500", "503"]):
        if failure == "connection refused":
            guardian.webhook_down()
        else:
            guardian.hook.fail_next, guardian.hook.fail_status = 100, int(failure)
        received, failed = len(guardian.hook_requests), guardian.failed_invocations()
        guardian.put_state(STATES[number % 2])
        guardian.stack.pump()
        assert guardian.failed_invocations() == failed + 1, failure
        assert len(guardian.hook_requests) == received, failure
        # The other channels got it on the first attempt, and get nothing twice from the retries.
        assert len(guardian.deliveries()["sns"]) == number + 1, failure
        if failure == "connection refused":
            guardian.webhook_up()
        else:
            guardian.hook.fail_next = 0
        guardian.stack.pump()
        guardian.assert_exactly_once(Counter({"state.changed": number + 1}))
    assert all(r.headers["X-Guardian-Delivery"] == json.loads(r.body)["id"] for r in guardian.hook_requests)


def test_a_slow_webhook_gets_each_notification_once_and_a_timed_out_one_keeps_its_delivery_id(
    guardian: Guardian, monkeypatch: pytest.MonkeyPatch
) -> None:
    guardian.hook.delay_s = 0.3  # slow, within the channel's timeout
    guardian.put_state(STATES[0])
    guardian.stack.pump()
    assert guardian.failed_invocations() == 0
    guardian.assert_exactly_once(Counter({"state.changed": 1}))
    # Slower than the timeout: the receiver took it, the guardian cannot know, the retry sends it again.
    # At-least-once, as for any HTTP call that times out; receivers dedupe on `X-Guardian-Delivery`.
    monkeypatch.setattr("chalicelib.channels.http.TIMEOUT_S", 0.2)
    guardian.hook.delay_s = 0.4
    guardian.put_state(STATES[1])
    guardian.stack.pump()
    assert guardian.failed_invocations() == 1
    guardian.hook.delay_s = 0
    guardian.stack.pump()
    deadline = time.monotonic() + 2
    while len(guardian.hook_requests) < 3 and time.monotonic() < deadline:  # the slow one lands late
        time.sleep(0.05)
    late = [r for r in guardian.hook_requests if json.loads(r.body)["details"]["serial"]["after"] == 2]
    assert len(late) == 2 and len({r.headers["X-Guardian-Delivery"] for r in late}) == 1
    assert len(guardian.deliveries()["sns"]) == 2  # the other channels: once


# --- the lock table stream: on_lock_table_change --------------------------------------------------------------

STREAM_OUTAGES = {
    "lock sessions and claims throttled": [
        Fault("dynamodb", "TransactWriteItems", THROTTLE, first=5),
        Fault("dynamodb", "PutItem", THROTTLE, first=5),
    ],
    "audit trail and ledger completions 5xx": [Fault("dynamodb", "BatchWriteItem", SERVER_ERROR, first=5)],
    "eventbridge throttled, sns dropping": [
        Fault("eventbridge", kind=THROTTLE, first=5),
        Fault("sns", kind=CONNECTION, rate=0.5),
    ],
}


def test_lock_records_during_outages_are_notified_once_on_every_channel(guardian: Guardian) -> None:
    dynamodb = guardian.aws.client("dynamodb")
    path = f"{guardian.bucket}/{KEY}"
    for number, (outage, faults) in enumerate(STREAM_OUTAGES.items()):
        info = lock_info(guardian, f"5a751819-e4fe-1612-b981-{number:012d}", age=timedelta(seconds=1))
        dynamodb.put_item(TableName=guardian.lock_table, Item={"LockID": {"S": path}, "Info": {"S": info}})
        dynamodb.delete_item(TableName=guardian.lock_table, Key={"LockID": {"S": path}})
        failed = guardian.failed_invocations()
        with inject_faults(guardian.container, *faults, seed=number) as injected:
            guardian.stack.pump()
        assert injected.injected, outage
        # The audit trail is written with BatchWriteItem too: the batch fails before anything is delivered.
        assert guardian.failed_invocations() == failed + 1, outage  # the batch failed, and comes again
        guardian.stack.pump()
        guardian.stack.pump()
        assert guardian.gave_up() == [], outage
        guardian.assert_exactly_once(Counter({"lock.acquired": number + 1, "lock.released": number + 1}))


# --- the schedules: verify_state_digests and reap_stale_locks -------------------------------------------------

DIGEST_OUTAGES = {
    "s3 reads throttled": [Fault("s3", "GetObject", THROTTLE, first=5)],
    "lock table reads 5xx": [Fault("dynamodb", "GetItem", SERVER_ERROR, first=5)],
    "suspect list unreachable": [Fault("dynamodb", "Query", CONNECTION, first=5)],
    "sns 5xx": [Fault("sns", kind=SERVER_ERROR, first=5)],
}


def test_a_digest_mismatch_is_notified_once_whatever_fails_on_the_way(guardian: Guardian) -> None:
    dynamodb = guardian.aws.client("dynamodb")
    for number, (outage, faults) in enumerate(DIGEST_OUTAGES.items()):
        key = f"digest-{number}/terraform.tfstate"
        guardian.put_state(STATES[0], key=key)
        dynamodb.put_item(
            TableName=guardian.lock_table,
            Item={"LockID": {"S": f"{guardian.bucket}/{key}-md5"}, "Digest": {"S": "0" * 32}},
        )
        guardian.stack.pump()  # the write is a digest suspect
        failed = guardian.failed_invocations()
        with inject_faults(guardian.container, *faults) as injected:
            guardian.stack.run_scheduled()
        assert injected.injected, outage
        assert guardian.failed_invocations() > failed, outage
        guardian.stack.run_scheduled()
        guardian.stack.run_scheduled()
        guardian.assert_exactly_once(Counter({"state.changed": number + 1, "digest.mismatch": number + 1}))


def three_locks(g: Guardian) -> dict[str, str]:
    """A stale lock, a fresh one, and an old one whose holder wrote its state: only the first may go."""
    dynamodb = g.aws.client("dynamodb")
    locks = {
        "stale": lock_info(g, "stale", age=timedelta(hours=3), key="stale/terraform.tfstate"),
        "fresh": lock_info(g, "fresh", age=timedelta(minutes=5), key="fresh/terraform.tfstate"),
        "alive": lock_info(g, "alive", age=timedelta(hours=3), key="alive/terraform.tfstate"),
    }
    for name, info in locks.items():
        item = {"LockID": {"S": f"{g.bucket}/{name}/terraform.tfstate"}, "Info": {"S": info}}
        dynamodb.put_item(TableName=g.lock_table, Item=item)
    g.put_state(STATES[0], key="alive/terraform.tfstate")
    g.stack.pump()
    return locks


@pytest.mark.parametrize(
    "faults",
    [
        [Fault("dynamodb", kind=THROTTLE, rate=0.7)],  # the scan, the stale records, the release, the ledger
        [Fault(s, kind=CONNECTION, rate=0.4) for s in ("s3", "dynamodb", "eventbridge")],
        [Fault("sns", "Publish", THROTTLE)],
    ],
    ids=["dynamodb-throttled", "network", "sns-down"],
)
def test_the_reaper_under_faults_releases_only_the_stale_lock_and_says_so_once(
    guardian: Guardian, faults: list[Fault]
) -> None:
    locks = three_locks(guardian)
    with inject_faults(guardian.container, *faults, seed=5) as injected:
        for _ in range(2):  # with no grace period: a run warns, the next releases
            guardian.stack.run_scheduled()
            guardian.stack.pump()
    assert injected.injected
    assert lock_item(guardian, "fresh/terraform.tfstate") == locks["fresh"]
    assert lock_item(guardian, "alive/terraform.tfstate") == locks["alive"]
    for _ in range(3):  # the next scheduled runs, after the outage
        guardian.stack.run_scheduled()
        guardian.stack.pump()
    assert lock_item(guardian, "stale/terraform.tfstate") is None
    assert lock_item(guardian, "fresh/terraform.tfstate") == locks["fresh"]
    assert lock_item(guardian, "alive/terraform.tfstate") == locks["alive"]
    delivered = guardian.assert_exactly_once()
    about = Counter((n["type"], n["details"]["lock"]["id"]) for n in delivered if n["type"].startswith("lock."))
    assert about == Counter(
        {
            ("lock.acquired", "stale"): 1, ("lock.acquired", "fresh"): 1, ("lock.acquired", "alive"): 1,
            ("lock.stale", "stale"): 1, ("lock.reaped", "stale"): 1, ("lock.released", "stale"): 1,
        }
    )  # fmt: skip


def test_a_channel_down_at_the_release_still_gets_lock_reaped(guardian: Guardian) -> None:
    three_locks(guardian)
    guardian.stack.run_scheduled()  # warns
    with inject_faults(guardian.container, Fault("sns", "Publish", THROTTLE)):
        guardian.stack.run_scheduled()  # releases; SNS is down
    assert lock_item(guardian, "stale/terraform.tfstate") is None
    for _ in range(3):
        guardian.stack.run_scheduled()
        guardian.stack.pump()
    reaped = [n for n in guardian.deliveries()["sns"] if n["type"] == "lock.reaped"]
    assert len(reaped) == 1


# --- the rollback API ------------------------------------------------------------------------------------------


def rollback(g: Guardian, version_id: str) -> tuple[int, dict[str, Any]]:
    body = json.dumps({"key": KEY, "version_id": version_id, "reason": "faults"})
    with Client(g.stack.app.app) as client:  # type: ignore[union-attr]
        response = client.http.post("/rollback", headers={"Content-Type": "application/json"}, body=body)
    return response.status_code, response.json_body


def seed_history(g: Guardian) -> tuple[str, bytes]:
    """Two versions written the way Terraform writes them, digest included; the first's id and the current bytes."""
    first = g.put_state(STATES[0])
    g.put_state(STATES[1])
    g.aws.client("dynamodb").put_item(
        TableName=g.lock_table,
        Item={"LockID": {"S": f"{g.bucket}/{KEY}-md5"}, "Digest": {"S": hashlib.md5(STATES[1]).hexdigest()}},
    )
    g.stack.pump()
    return first, STATES[1]


def no_locks_left(g: Guardian) -> None:
    assert lock_item(g) is None
    with pytest.raises(g.aws.client("s3").exceptions.ClientError):
        g.aws.client("s3").head_object(Bucket=g.bucket, Key=KEY + ".tflock")


ROLLBACK_FAULTS = {
    "state head": Fault("s3", "HeadObject", THROTTLE),
    "target read": Fault("s3", "GetObject", SERVER_ERROR),
    "lock read": Fault("dynamodb", "GetItem", THROTTLE),
    "lock take": Fault("dynamodb", "PutItem", SERVER_ERROR, body_contains=b"attribute_not_exists"),
    "lockfile take": Fault("s3", "PutObject", CONNECTION, body_contains=b"tfstate-guardian-rollback"),
    "state write": Fault("s3", "PutObject", THROTTLE, body_contains=b'"lineage"'),
}


def test_a_rollback_that_fails_before_its_write_changes_nothing_and_leaves_no_lock(guardian: Guardian) -> None:
    first, current = seed_history(guardian)
    for step, fault in ROLLBACK_FAULTS.items():
        with inject_faults(guardian.container, fault) as injected:
            status, body = rollback(guardian, first)
        assert injected.injected, step
        assert (status, body["error"]) == (503, "try_again"), step
        assert current_bytes(guardian) == current, step
        assert digest_item(guardian) == hashlib.md5(current).hexdigest(), step
        no_locks_left(guardian)
    guardian.stack.pump()
    told = Counter(n["type"] for n in guardian.assert_exactly_once())
    assert told["state.changed"] == 2 and "state.restored" not in told


def test_a_rollback_under_throttling_everywhere_is_done_once(guardian: Guardian) -> None:
    first, _ = seed_history(guardian)
    faults = [Fault(s, kind=THROTTLE, rate=0.3) for s in ("s3", "dynamodb", "sns", "eventbridge")]
    with inject_faults(guardian.container, *faults, seed=11) as injected:
        status, body = rollback(guardian, first)
    assert injected.injected
    assert status == 200, body
    restored = current_bytes(guardian)
    assert json.loads(restored) == {**json.loads(STATES[0]), "serial": 3}
    assert digest_item(guardian) == hashlib.md5(restored).hexdigest()
    no_locks_left(guardian)
    guardian.stack.pump()
    guardian.assert_exactly_once(
        Counter({"state.changed": 3, "state.restored": 1, "lock.acquired": 1, "lock.released": 1})
    )


def test_a_digest_write_that_fails_after_the_state_write_is_finished_by_the_schedule(guardian: Guardian) -> None:
    """The one failure after which a failed request has changed the state: the S3 put and the digest are two
    writes. The answer says to try again; the state is the restored one, and the guardian finishes the digest."""
    first, _ = seed_history(guardian)
    with inject_faults(guardian.container, Fault("dynamodb", "PutItem", SERVER_ERROR, body_contains=b"-md5")):
        status, body = rollback(guardian, first)
    assert (status, body["error"]) == (503, "try_again")
    restored = current_bytes(guardian)
    assert json.loads(restored) == {**json.loads(STATES[0]), "serial": 3}
    no_locks_left(guardian)
    guardian.stack.pump()
    guardian.stack.run_scheduled()
    assert digest_item(guardian) == hashlib.md5(restored).hexdigest()


def test_a_lock_release_that_fails_leaves_only_that_lock_for_the_reaper(guardian: Guardian) -> None:
    first, _ = seed_history(guardian)
    fault = Fault("s3", "DeleteObject", THROTTLE, first=beyond_retries(guardian))
    with inject_faults(guardian.container, fault):
        status, _ = rollback(guardian, first)
    assert status == 503
    restored = current_bytes(guardian)
    assert digest_item(guardian) == hashlib.md5(restored).hexdigest()  # the rollback itself is whole
    assert lock_item(guardian) is None  # the other lock was still released
    lockfile = guardian.aws.client("s3").get_object(Bucket=guardian.bucket, Key=KEY + ".tflock")["Body"].read()
    assert json.loads(lockfile)["Operation"] == "tfstate-guardian-rollback"


def test_deliveries_made_but_not_recorded_do_not_fail_the_invocation(
    guardian: Guardian, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The channels took the notification; only recording that failed: a retry could only deliver it again."""

    def completions_down(self: GuardianTable, *args: Any, **kwargs: Any) -> None:
        raise TransientAwsError("complete deliveries: InternalServerError")

    monkeypatch.setattr(GuardianTable, "complete_deliveries", completions_down)
    monkeypatch.setattr("chalicelib.services.notifier.BACKOFF_S", 0.0)
    guardian.put_state(STATES[0])
    guardian.stack.pump()
    assert guardian.failed_invocations() == 0
    guardian.assert_exactly_once(Counter({"state.changed": 1}))
