"""Load test: many real `terraform apply` runs at once while the guardian delivers events and reaps locks.

Each workspace is a working directory of its own on one state key (several keys; `terraform workspace new`
workspaces under `env:/` for some; S3 lockfiles as well as the lock table on some). While a pool of threads
runs the applies, a background loop delivers S3 events and stream records to the handlers as Lambda would and
runs the scheduled jobs with a reaper TTL and grace of zero. At the end it checks what the guardian said
against what is in the bucket and the lock table. Findings name keys, version and lock ids, never a value.
"""

from __future__ import annotations

import hashlib
import json
import statistics
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3

from chalicelib import composition
from chalicelib.domain.access import Scope
from chalicelib.domain.notifications import Notification
from chalicelib.services.lock_reaper import ReapOutcome
from local_stack.backend_blocks import backend_block_modern
from local_stack.emulator import MotoServer, free_port
from local_stack.stack import REGION, LocalStack, started_stack
from local_stack.stream_source import StreamPoller, is_unchanged_modify

if TYPE_CHECKING:
    from bench.figures import Figure
    from tests.support.terraform import Terraform

# The most aggressive reaper there is: any lock is past its TTL at once, and released on the next run unless it
# shows proof of life. Only the guardian's evidence keeps a live lock; the digest check looks again after 1 s.
LOAD_ENV = {
    "GUARDIAN_REAP_TTL_S": "0",
    "GUARDIAN_REAP_GRACE_S": "0",
    "GUARDIAN_REAP_MAX_PER_RUN": "100",
    "GUARDIAN_DIGEST_GRACE_S": "1",
}
POLL_S = 0.1
SCHEDULE_S = 0.25
PUMP_SLICE = 3
WORKSPACES_PER_KEY = ("default", "blue", "green")
# Each apply replaces its resource and works for two seconds while it holds the lock, as real applies do, so that
# the reaper finds held locks; Terraform persists state during an apply only after 20 s, so none is written then.
CONFIGURATION = """
variable "v" {
  type    = string
  default = "one"
}
resource "terraform_data" "probe" {
  input            = var.v
  triggers_replace = var.v
  provisioner "local-exec" {
    command = "sleep 2"
  }
}
output "v" {
  value = var.v
}
"""


@dataclass
class Slot:
    """One workspace of one state key, in a working directory of its own; the times its state was written."""

    index: int
    key: str
    workspace: str
    lockfile: bool
    writes: list[float] = field(default_factory=list)  # wall-clock time each state-writing command ended

    @property
    def state_key(self) -> str:
        return self.key if self.workspace == "default" else f"env:/{self.workspace}/{self.key}"


@dataclass
class LoadResult:
    """What a load run measured, and what its checks found (empty lists: all held)."""

    workspaces: int
    concurrency: int
    applies_per_workspace: int
    applies: int = 0
    state_versions: int = 0
    events: int = 0
    invocations: int = 0
    duration_s: float = 0.0
    handler_s: float = 0.0
    reaper_runs: int = 0
    verdicts: dict[str, int] = field(default_factory=dict)  # the reaper's verdicts on the locks it found
    latencies_s: list[float] = field(default_factory=list)
    failed_commands: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # state versions never notified
    duplicates: list[str] = field(default_factory=list)  # state versions notified more than once
    unknown: list[str] = field(default_factory=list)  # state.changed for no version in the bucket
    unexpected_versions: list[str] = field(default_factory=list)  # keys with more or fewer versions than writes
    reaped: list[str] = field(default_factory=list)  # lock.reaped or lock.stale about a live lock
    unreleased: list[str] = field(default_factory=list)  # locks acquired with no lock.released, or left held
    digest_mismatches: list[str] = field(default_factory=list)  # digest.mismatch sent, or -md5 != MD5 at the end
    handler_failures: list[str] = field(default_factory=list)

    @property
    def events_per_s(self) -> float:
        return self.events / self.duration_s if self.duration_s else 0.0

    @property
    def handler_ms_per_event(self) -> float:
        return self.handler_s * 1000 / self.events if self.events else 0.0

    @property
    def latency_median_s(self) -> float:
        return statistics.median(self.latencies_s) if self.latencies_s else float("nan")

    @property
    def latency_p95_s(self) -> float:
        if len(self.latencies_s) < 2:
            return self.latencies_s[0] if self.latencies_s else float("nan")
        return statistics.quantiles(self.latencies_s, n=20, method="inclusive")[-1]

    def problems(self) -> list[str]:
        """Every finding, one line each."""
        found = {
            "command failed": self.failed_commands,
            "state version not notified": self.missing,
            "state version notified more than once": self.duplicates,
            "state.changed for no version": self.unknown,
            "versions are not the writes": self.unexpected_versions,
            "live lock judged stale or released": self.reaped,
            "lock not released by its holder": self.unreleased,
            "digest mismatch": self.digest_mismatches,
            "handler failed": self.handler_failures,
        }
        return [f"{what}: {item}" for what, items in found.items() for item in items]

    def summary(self) -> str:
        return (
            f"{self.applies} applies on {self.workspaces} workspaces, {self.concurrency} at a time, in"
            f" {self.duration_s:.1f} s: {self.state_versions} state versions, {self.events} events"
            f" ({self.events_per_s:.1f}/s, {self.handler_ms_per_event:.0f} ms of handler time each),"
            f" {self.reaper_runs} reaper runs judging {self.verdicts}, latency median {self.latency_median_s:.2f} s"
            f" p95 {self.latency_p95_s:.2f} s; {len(self.problems())} problems"
        )


class DeliveryClock:
    """A channel that remembers when each notification was delivered (wall clock)."""

    name = "load-clock"

    def __init__(self) -> None:
        self.delivered: list[tuple[str, str, str | None, float]] = []  # type, key, version id, time

    def send(self, notification: Notification) -> None:
        version_id = notification.details.get("version_id")
        self.delivered.append((notification.type.value, notification.key, version_id, time.time()))


class GuardianLoop:
    """Delivers events continuously and, once armed, runs the scheduled jobs; measures the time it spends."""

    def __init__(self, stack: LocalStack) -> None:
        self._stack = stack
        self._stop = threading.Event()
        self.scheduling = threading.Event()
        self.handler_s = 0.0
        self.invocations = 0
        self.scheduled_runs = 0
        self.verdicts: Counter[str] = Counter()  # what the reaper judged of each lock it found, over all runs
        self.errors: list[str] = []
        self._thread = threading.Thread(target=self._run, name="load-guardian", daemon=True)

    def start(self) -> None:
        # Count the reaper's verdicts as the scheduled handler runs it: locks judged alive are live locks kept.
        reaper = composition.container().home.reaper
        run = reaper.run

        def counted(now: datetime, *, dry_run: bool | None = None, scope: Scope | None = None) -> list[ReapOutcome]:
            outcomes = run(now, dry_run=dry_run, scope=scope)
            self.verdicts.update(outcome.judgement.verdict.value for outcome in outcomes)
            return outcomes

        reaper.run = counted  # type: ignore[method-assign]
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def _run(self) -> None:
        next_schedule = time.monotonic()
        while not self._stop.is_set():
            started = time.perf_counter()
            delivered = 0
            try:
                # A few S3 events at a time, so that a backlog does not hold the scheduled jobs back.
                delivered = self._stack.pump(max_s3_events=PUMP_SLICE)
                self.invocations += delivered
                if self.scheduling.is_set() and time.monotonic() >= next_schedule:
                    self._stack.run_scheduled()
                    self.scheduled_runs += 1
                    next_schedule = time.monotonic() + SCHEDULE_S
            except Exception as exc:  # noqa: BLE001 - reported as a finding, the loop goes on
                self.errors.append(f"event source error: {type(exc).__name__}")
            self.handler_s += time.perf_counter() - started
            if not delivered:
                self._stop.wait(POLL_S)


def run_load(
    workspaces: int,
    concurrency: int,
    applies_per_workspace: int,
    *,
    stack: LocalStack | None = None,
    terraform: Terraform | None = None,
    work_dir: Path | None = None,
) -> LoadResult:
    """Run the load on `stack` (started with `LOAD_ENV`), or on a stack and emulator of its own."""
    if terraform is None:
        from tests.support.terraform import find_terraform_1_11  # noqa: PLC0415 - the runner the tests use

        terraform = find_terraform_1_11()
        if terraform is None:
            raise RuntimeError("the load needs Terraform 1.11 on PATH (or GUARDIAN_TERRAFORM_1_11)")
    with _directory(work_dir) as directory, _stack(stack, directory) as running:
        return _run(running, terraform, directory, workspaces, concurrency, applies_per_workspace)


@contextmanager
def _directory(work_dir: Path | None) -> Iterator[Path]:
    if work_dir is not None:
        work_dir.mkdir(parents=True, exist_ok=True)
        yield work_dir
        return
    with tempfile.TemporaryDirectory(prefix="tfstate-guardian-load-") as name:
        yield Path(name)


@contextmanager
def _stack(stack: LocalStack | None, directory: Path) -> Iterator[LocalStack]:
    if stack is not None:
        yield stack
        return
    server = MotoServer(free_port(), log_path=directory / "emulator.log")
    server.start()
    try:
        with started_stack(directory, server.endpoint, extra_env=LOAD_ENV) as local:
            yield local
    finally:
        server.stop()


def _run(
    stack: LocalStack, terraform: Terraform, directory: Path, workspaces: int, concurrency: int, applies: int
) -> LoadResult:
    from tests.support.terraform import TerraformDir  # noqa: PLC0415 - the runner the tests use

    assert stack.resources is not None
    resources = stack.resources
    result = LoadResult(workspaces, concurrency, applies)
    slots = [
        Slot(
            index=i,
            key=f"load/k{i // len(WORKSPACES_PER_KEY)}/terraform.tfstate",
            workspace=WORKSPACES_PER_KEY[i % len(WORKSPACES_PER_KEY)],
            lockfile=(i // len(WORKSPACES_PER_KEY)) % 2 == 1,
        )
        for i in range(workspaces)
    ]
    dirs: dict[int, TerraformDir] = {}
    failed: list[str] = []

    def command(slot: Slot, *args: str, writes: bool) -> None:
        finished = dirs[slot.index].run(*args, check=False)
        if writes:
            slot.writes.append(time.time())
        if finished.returncode != 0:
            # stderr only: stdout shows output values.
            failed.append(
                f"{slot.state_key}: terraform {args[0]} exited {finished.returncode}: {finished.stderr[-400:]}"
            )

    def prepare(slot: Slot) -> None:
        tf = dirs[slot.index] = TerraformDir(terraform, directory / f"ws{slot.index:03d}")
        tf.write("backend.tf", backend_block_modern(stack.endpoint, resources, slot.key, lockfile=slot.lockfile))
        tf.write("main.tf", CONFIGURATION)
        command(slot, "init", "-input=false", "-no-color", writes=False)
        # Every state is written once before the reaper is armed, as a state in use has been: a lock taken with
        # no write of its state ever would be released by a zero TTL and grace, by design.
        if slot.workspace == "default":
            command(slot, "apply", "-auto-approve", "-input=false", "-no-color", "-var", "v=seed", writes=True)
        else:
            command(slot, "workspace", "new", "-no-color", slot.workspace, writes=True)

    def apply_all(slot: Slot) -> None:
        for n in range(applies):
            command(slot, "apply", "-auto-approve", "-input=false", "-no-color", "-var", f"v=load-{n}", writes=True)

    clock = DeliveryClock()
    composition.container().home.notifier.channels.append(clock)
    session = boto3.session.Session()
    s3, dynamodb = session.client("s3"), session.client("dynamodb")
    loop = GuardianLoop(stack)
    loop.start()
    try:
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(prepare, slots))
        _drain(stack)
        events_before = _events_so_far(session, stack)
        handler_before, invocations_before = loop.handler_s, loop.invocations
        started = time.perf_counter()
        loop.scheduling.set()
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(apply_all, slots))
        loop.stop()  # the rest is delivered below, timed alike
        drained = time.perf_counter()
        invocations = loop.invocations - invocations_before + _drain(stack)
        result.handler_s = loop.handler_s - handler_before + (time.perf_counter() - drained)
        result.duration_s = time.perf_counter() - started
    finally:
        loop.stop()
    result.invocations = invocations
    result.events = _events_so_far(session, stack) - events_before
    result.reaper_runs = loop.scheduled_runs
    result.verdicts = dict(loop.verdicts)
    result.applies = workspaces * applies
    # A mismatch must outlive the digest grace before it alarms: look once more after it.
    time.sleep(float(LOAD_ENV["GUARDIAN_DIGEST_GRACE_S"]) + 1)
    stack.run_scheduled()
    _drain(stack)
    result.failed_commands = failed + loop.errors
    _check(result, slots, clock, stack, s3, dynamodb)
    return result


def _drain(stack: LocalStack) -> int:
    """Pump until nothing is left: two empty rounds in a row, a poll interval apart."""
    invocations, empty = 0, 0
    while empty < 2:
        delivered = stack.pump()
        invocations += delivered
        empty = empty + 1 if delivered == 0 else 0
        time.sleep(POLL_S)
    return invocations


def _events_so_far(session: boto3.session.Session, stack: LocalStack) -> int:
    """S3 events (object versions and delete markers) and stream records the stack delivers, since it began."""
    assert stack.resources is not None
    s3 = session.client("s3")
    objects = sum(
        len(page.get("Versions", [])) + len(page.get("DeleteMarkers", []))
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=stack.resources.state_bucket)
    )
    poller = StreamPoller(session.client("dynamodbstreams"), stack.resources.lock_table_stream_arn, REGION)
    records = sum(1 for record in poller.poll() if not is_unchanged_modify(record))
    return objects + records


def _check(
    result: LoadResult, slots: list[Slot], clock: DeliveryClock, stack: LocalStack, s3: Any, dynamodb: Any
) -> None:
    assert stack.resources is not None
    bucket, lock_table = stack.resources.state_bucket, stack.resources.lock_table
    notify_file = stack.options.notify_file
    said = [json.loads(line) for line in notify_file.read_text().splitlines()] if notify_file.exists() else []
    by_key = {slot.state_key: slot for slot in slots}

    versions: dict[str, list[str]] = {}  # state key -> version ids, oldest first
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for item in page.get("Versions", []):
            if item["Key"].endswith(".tfstate"):
                versions.setdefault(item["Key"], []).insert(0, item["VersionId"])
    result.state_versions = sum(len(ids) for ids in versions.values())

    changed = Counter(
        (n["key"], n["details"]["version_id"]) for n in said if n["type"] == "state.changed"
    )  # fmt: skip
    delivered_at = {
        (key, version_id): at
        for kind, key, version_id, at in reversed(clock.delivered)
        if kind == "state.changed" and version_id
    }
    for key, ids in sorted(versions.items()):
        slot = by_key.get(key)
        if slot is None or len(slot.writes) != len(ids):
            writes = len(slot.writes) if slot else 0
            result.unexpected_versions.append(f"{key}: {len(ids)} versions for {writes} writes")
        for position, version_id in enumerate(ids):
            count = changed.pop((key, version_id), 0)
            if count == 0:
                result.missing.append(f"{key}@{version_id}")
            elif count > 1:
                result.duplicates.append(f"{key}@{version_id} ×{count}")
            if slot is not None and position < len(slot.writes) and (key, version_id) in delivered_at:
                result.latencies_s.append(delivered_at[(key, version_id)] - slot.writes[position])
    result.unknown = [f"{key}@{version_id}" for key, version_id in sorted(changed)]
    for slot in slots:
        if slot.state_key not in versions:
            result.unexpected_versions.append(f"{slot.state_key}: no version for {len(slot.writes)} writes")

    result.reaped = [
        f"{n['type']} {n['key']} lock {n['details']['lock']['id']}"
        for n in said
        if n["type"] in ("lock.reaped", "lock.stale")
    ]
    acquired = Counter((n["key"], n["details"]["lock"]["id"]) for n in said if n["type"] == "lock.acquired")
    released = Counter((n["key"], n["details"]["lock"]["id"]) for n in said if n["type"] == "lock.released")
    result.unreleased = [f"{key} lock {lock_id}" for key, lock_id in sorted(acquired.keys() - released.keys())]
    result.unreleased += [
        f"{key} lock {lock_id} released, never acquired" for key, lock_id in sorted(released.keys() - acquired.keys())
    ]
    for page in dynamodb.get_paginator("scan").paginate(TableName=lock_table, ConsistentRead=True):
        for item in page["Items"]:
            lock_id = item["LockID"]["S"]
            if lock_id.endswith("-md5"):
                continue
            result.unreleased.append(f"{lock_id} still in the lock table")
    for key in versions:
        try:
            s3.head_object(Bucket=bucket, Key=key + ".tflock")
        except s3.exceptions.ClientError:
            continue
        result.unreleased.append(f"{key}.tflock still there")

    result.digest_mismatches = [f"digest.mismatch sent for {n['key']}" for n in said if n["type"] == "digest.mismatch"]
    for key in sorted(versions):
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        item = dynamodb.get_item(
            TableName=lock_table, Key={"LockID": {"S": f"{bucket}/{key}-md5"}}, ConsistentRead=True
        ).get("Item")
        stored = item["Digest"]["S"] if item else None
        if stored != hashlib.md5(body).hexdigest():  # Terraform's digest
            result.digest_mismatches.append(f"{key}: -md5 item {'differs' if stored else 'missing'}")

    log = getattr(stack.options.log, "name", None)
    if isinstance(log, str) and Path(log).exists():
        lines = Path(log).read_text(encoding="utf-8").splitlines()
        result.handler_failures = [line for line in lines if "failed" in line or "gave up" in line]


def load_figures(workspaces: int = 21, concurrency: int = 5, applies_per_workspace: int = 3) -> list[Figure]:
    """`make bench`: the full-size load, on a stack and emulator of its own."""
    from bench.figures import Figure  # noqa: PLC0415

    result = run_load(workspaces, concurrency, applies_per_workspace)
    command = f"python -m bench (bench.load.run_load({workspaces}, {concurrency}, {applies_per_workspace}))"
    problems = result.problems()
    notified = result.state_versions - len(result.missing)
    return [
        Figure(
            f"load: {result.applies} real applies on {workspaces} workspaces, {concurrency} at a time:"
            " events handled per second",
            f"{result.events} events in {result.duration_s:.0f} s: {result.events_per_s:.1f}/s"
            f" ({result.handler_ms_per_event:.0f} ms of handler time per event)",
            None,
            "—",
            None,
            command,
        ),
        Figure(
            "load: notification latency from the state write (apply's exit) to delivery, median / p95",
            f"{result.latency_median_s:.2f} s / {result.latency_p95_s:.2f} s"
            f" (event poll every {POLL_S:g} s, {len(result.latencies_s)} writes)",
            None,
            "—",
            None,
            command,
        ),
        Figure(
            "load: state writes notified exactly once",
            f"{notified} of {result.state_versions}, {len(result.duplicates)} twice or more,"
            f" {len(result.unknown)} for no version",
            None,
            "all, once",
            not (result.missing or result.duplicates or result.unknown or result.unexpected_versions),
            command,
        ),
        Figure(
            f"load: live locks released with a reaper TTL and grace of 0 ({result.reaper_runs} runs)",
            f"{len(result.reaped)} judged stale or released; {len(result.failed_commands)} commands failed",
            None,
            "0, every apply exits 0",
            not (result.reaped or result.failed_commands or result.unreleased),
            command,
        ),
        Figure(
            "load: digest mismatches (sent, or left at the end)",
            f"{len(result.digest_mismatches)}; {len(problems)} problems in all",
            None,
            "0",
            not result.digest_mismatches and not problems,
            command,
        ),
    ]
