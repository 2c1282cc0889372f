"""`make bench ONLY=fanout`: the scheduled jobs' time per invocation at 1 and at 50 backends, on the local stack.

One emulator holds 50 backends, each its own bucket (a few states) and its own lock table of 10,000 items: the
`-md5` digest items of its states and twenty Terraform locks, most fresh and a few stale. A local stack with all 50
and one with the first alone, both up, take turns running the reaper and the digest check for one backend's share
(the event a fan-out sends: the schedule's, its `detail` `{"backends": [name]}`), as Lambda would run it. With 50,
the schedule's own invocation only sends an invocation per backend: it is measured against the same 50 bare Invokes.
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3

from bench.figures import Figure, best_of
from bench.generate_state import generate_state, state_bytes
from chalicelib import composition
from chalicelib.adapters.lambda_fan_out import LambdaFanOut
from chalicelib.domain.digests import DigestSuspect
from chalicelib.services.fan_out import share_event
from deploy.resource_shapes import LOCK_TABLE_STREAM
from local_stack.emulator import MotoServer, free_port
from local_stack.lambda_runtime import FUNCTION_PREFIX, AppHandlers, LocalLambdaContext
from local_stack.provision import provision_backend
from local_stack.stack import REGION, LocalBackend, LocalStack, started_stack

BACKENDS = 50
ITEMS = 10_000  # lock-table items per backend: digest items, and LOCKS Terraform locks
LOCKS = 20  # held locks per table: FRESH of them fresh, the rest past the reaper's TTL
FRESH = 16
STATES = 3  # states in each bucket: their digest items are the bytes' MD5, as Terraform writes them
SUSPECTS = 2  # per backend: states the digest check looks at again (their digests match by now)
# moto takes a BatchWriteItem of any size where DynamoDB takes 25 items: 1,000 a request seeds 500,000 items in
# less than half the time (the README's emulator notes). Two requests in flight keep the emulator busy.
SEED_BATCH = 1_000
SEED_THREADS = 2
SAMPLED = 5  # backends timed at 50, spread over the list; at 1, the one backend as many times
REPEATS = {"reap_stale_locks": 3, "verify_state_digests": 5}  # each sample: the best of this many invocations
JOBS = ("reap_stale_locks", "verify_state_digests")
BAR = 1.2
LOCK_CREATED = datetime(2026, 1, 1, tzinfo=UTC)  # a stale lock's Created; a fresh one's is the seeding's time


@dataclass(frozen=True)
class Seeded:
    """What one backend was seeded with."""

    backend: LocalBackend
    states: dict[str, str]  # key -> current version id


@dataclass
class Deployment:
    """A started local stack, its guardian, its backends; what a measurement keeps for it."""

    stack: LocalStack
    guardian: composition.Guardian
    chosen: list[Seeded]
    picks: list[Seeded] = field(default_factory=list)
    suspects: _DigestSuspects | None = None
    calls: Counter[str] = field(default_factory=Counter)


@dataclass
class Timing:
    """One job's invocations in one deployment: seconds per sample (each the best of its runs), calls per run."""

    samples: list[float] = field(default_factory=list)
    calls: Counter[str] = field(default_factory=Counter)

    @property
    def median_s(self) -> float:
        return statistics.median(self.samples)


def fanout_figures(backends: int = BACKENDS, items: int = ITEMS) -> list[Figure]:
    directory = Path(tempfile.mkdtemp(prefix="bench-fanout-"))
    server = MotoServer(free_port(), log_path=directory / "emulator.log")
    server.start()
    try:
        # moto runs a function's code in Docker; without it, every Invoke is answered at once (emulator notes).
        _post_json(f"{server.endpoint}/moto-api/config", {"lambda": {"use_docker": False}})
        os.environ.update(  # as the stacks will point it: at this emulator
            AWS_ENDPOINT_URL=server.endpoint,
            AWS_ACCESS_KEY_ID="test",
            AWS_SECRET_ACCESS_KEY="test",
            AWS_DEFAULT_REGION=REGION,
        )
        seeding_s, seeded = _seed(boto3.session.Session(), backends, items)
        _progress(f"seeded {backends * items:,} lock-table items in {seeding_s:.1f} s")
        with ExitStack() as stacks:
            # Both stacks stay up on the same guardian table, and their runs alternate, so that both see the same
            # load and the same table (the emulator's Query walks the whole table; DynamoDB reads only the keys asked
            # for): the 50 first, the 1 on a table the 50 filled.
            deployments = []
            for count in (backends, 1):
                chosen = seeded[:count]
                started = time.perf_counter()
                stack = stacks.enter_context(
                    started_stack(_fresh(directory, count), server.endpoint, backends=tuple(s.backend for s in chosen))
                )
                deployments.append(Deployment(stack, composition.container(), chosen))
                _progress(f"a stack of {count} backends started in {time.perf_counter() - started:.1f} s")
            many, one = deployments
            timings: dict[str, dict[int, Timing]] = {}
            for job in JOBS:
                started = time.perf_counter()
                timings[job] = _time_shares(job, deployments)
                _progress(f"{job} measured in {time.perf_counter() - started:.1f} s")
            scan_s = _bare_scan_s(one.chosen[0])
            dispatch_s, floor_s, invokes = _time_dispatch(many)
    finally:
        server.stop()
    return _figures(timings, backends, items, seeding_s, scan_s, dispatch_s, floor_s, invokes)


def _progress(message: str) -> None:
    print(f"fanout: {message}", file=sys.stderr, flush=True)


def _backend(number: int) -> LocalBackend:
    return LocalBackend(f"b{number:02d}", f"bench-fanout-{number:02d}", f"bench-fanout-locks-{number:02d}")


def _fresh(directory: Path, count: int) -> Path:
    path = directory / f"{count}-backends"
    path.mkdir()
    return path


def _post_json(url: str, body: dict[str, Any]) -> None:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(request, timeout=10):
        pass


def _seed(session: boto3.session.Session, backends: int, items: int) -> tuple[float, list[Seeded]]:
    """Every backend's bucket, states and lock table, the table's stream enabled only once it is full (a stream
    already holding the seeding's records would be read whole by the stack's stream poller at its start)."""
    started = time.perf_counter()
    s3, dynamodb = session.client("s3"), session.client("dynamodb")
    state = state_bytes(generate_state(20, seed=1))
    seeded = []
    tables: list[tuple[str, list[Any]]] = []
    for number in range(backends):
        backend = _backend(number)
        assert backend.lock_table is not None
        provision_backend(session, backend.bucket, None)
        states = {}
        for n in range(STATES):
            key = _key(n)
            states[key] = s3.put_object(Bucket=backend.bucket, Key=key, Body=state)["VersionId"]
        dynamodb.create_table(
            TableName=backend.lock_table,
            KeySchema=[{"AttributeName": "LockID", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "LockID", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        tables.append((backend.lock_table, _lock_table_items(backend.bucket, items, hashlib.md5(state).hexdigest())))
        seeded.append(Seeded(backend, states))
    requests = [(table, chunk[start : start + SEED_BATCH]) for table, chunk in tables
                for start in range(0, len(chunk), SEED_BATCH)]  # fmt: skip
    clients = [session.client("dynamodb") for _ in range(SEED_THREADS)]
    with ThreadPoolExecutor(SEED_THREADS) as pool:
        done = pool.map(lambda n: _write(clients[n % SEED_THREADS], *requests[n]), range(len(requests)))
        assert sum(done) == backends * items
    for table, _ in tables:
        dynamodb.update_table(TableName=table, StreamSpecification=LOCK_TABLE_STREAM)
    return time.perf_counter() - started, seeded


def _write(client: Any, table: str, chunk: list[Any]) -> int:
    response = client.batch_write_item(RequestItems={table: chunk})
    assert not response.get("UnprocessedItems"), "the emulator left items unprocessed"
    return len(chunk)


def _key(number: int) -> str:
    return f"team-{number:05d}/app/terraform.tfstate"


def _lock_table_items(bucket: str, items: int, state_md5: str) -> list[Any]:
    """A lock table as Terraform leaves it: a digest item per state, and the locks held right now."""
    requests = []
    for number in range(items - LOCKS):
        digest = state_md5 if number < STATES else hashlib.md5(f"{bucket}{number}".encode()).hexdigest()
        requests.append({"LockID": {"S": f"{bucket}/{_key(number)}-md5"}, "Digest": {"S": digest}})
    now = datetime.now(UTC)
    for number in range(LOCKS):
        fresh = number < FRESH
        # Fresh locks on the states and on keys whose first apply runs; stale ones on keys never written.
        path = f"{bucket}/{_key(number) if fresh else f'abandoned-{number}/terraform.tfstate'}"
        created = now - timedelta(minutes=3) if fresh else LOCK_CREATED
        info = {"ID": str(uuid.uuid4()), "Operation": "OperationTypeApply", "Info": "", "Who": "ci@runner-7",
                "Version": "1.11.4", "Created": created.strftime("%Y-%m-%dT%H:%M:%S.%f000Z"), "Path": path}  # fmt: skip
        requests.append({"LockID": {"S": path}, "Info": {"S": json.dumps(info, separators=(",", ":"))}})
    return [{"PutRequest": {"Item": item}} for item in requests]


def _schedule_event(job: str) -> dict[str, Any]:
    """The scheduled event EventBridge sends the job's function."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "region": REGION,
        "resources": [f"arn:aws:events:{REGION}:123456789012:rule/{FUNCTION_PREFIX}{job}"],
        "detail": {},
    }


def _handler(stack: LocalStack, job: str) -> Callable[[dict[str, Any]], None]:
    assert stack.app is not None
    handler = dict(AppHandlers.of(stack.app).scheduled)[job]
    return lambda event: handler(event, LocalLambdaContext(function_name=f"{FUNCTION_PREFIX}{job}"))


def _count_calls(guardian: composition.Guardian) -> Counter[str]:
    calls: Counter[str] = Counter()
    home = guardian.home
    for client in (home.s3, home.dynamodb, home.sns):
        client.meta.events.register(
            "before-call.*.*", lambda model, **_: calls.update([f"{model.service_model.service_name}:{model.name}"])
        )
    return calls


def _time_shares(job: str, deployments: list[Deployment]) -> dict[int, Timing]:
    """One backend's share of `job`, as a fan-out sends it: in each deployment, SAMPLED backends spread over its
    own (the one backend SAMPLED times), each sample the best of REPEATS runs that alternate with the other
    deployment's."""
    run = _handler(deployments[0].stack, job)
    repeats = REPEATS[job]
    timings = {}
    for deployment in deployments:
        chosen = deployment.chosen
        deployment.picks = [chosen[round(i * (len(chosen) - 1) / max(SAMPLED - 1, 1))] for i in range(SAMPLED)]
        composition.install(deployment.guardian)
        deployment.suspects = _DigestSuspects(deployment.guardian, chosen) if job == JOBS[1] else None
        deployment.calls = _count_calls(deployment.guardian)
        timings[len(chosen)] = Timing()
    for sample in range(SAMPLED):
        events = [share_event(_schedule_event(job), [d.picks[sample].backend.name]) for d in deployments]
        for deployment, event in zip(deployments, events, strict=True):
            composition.install(deployment.guardian)
            if deployment.suspects:
                deployment.suspects.put(deployment.picks[sample])
            run(event)  # warm: the backend's parts built, and the reaper's stale locks warned once
        best = [float("inf")] * len(deployments)
        for repeat in range(repeats):
            order = range(len(deployments)) if repeat % 2 == 0 else reversed(range(len(deployments)))
            for number in order:
                deployment = deployments[number]
                composition.install(deployment.guardian)
                if deployment.suspects:
                    deployment.suspects.put(deployment.picks[sample])
                deployment.calls.clear()
                started = time.perf_counter()
                run(events[number])
                best[number] = min(best[number], time.perf_counter() - started)
                timings[len(deployment.chosen)].calls = Counter(deployment.calls)
        for number, deployment in enumerate(deployments):
            timings[len(deployment.chosen)].samples.append(best[number])
            unpicked = [s for s in deployment.chosen if s not in deployment.picks][:3]
            _check(job, deployment.guardian, deployment.picks[sample], unpicked)
    return timings


class _DigestSuspects:
    """SUSPECTS states of every backend of the stack waiting for a second look, past the grace; a backend's put
    again before each run of its share (the run before looked at them, and forgot them)."""

    def __init__(self, guardian: composition.Guardian, chosen: list[Seeded]) -> None:
        self._table = guardian.guardian_table
        seen = datetime.now(UTC) - timedelta(hours=1)
        self._of = {
            s.backend.name: [DigestSuspect(f"{s.backend.bucket}/{key}", version, seen)
                             for key, version in list(s.states.items())[:SUSPECTS]]
            for s in chosen
        }  # fmt: skip
        for suspects in self._of.values():
            for suspect in suspects:
                self._table.put_digest_suspect(suspect)

    def put(self, pick: Seeded) -> None:
        for suspect in self._of[pick.backend.name]:
            self._table.put_digest_suspect(suspect)


def _check(job: str, guardian: composition.Guardian, pick: Seeded, unpicked: list[Seeded]) -> None:
    """That the invocation did its backend's work: the stale locks judged, or its suspects looked at and those of
    backends never run (a few) left alone."""
    backend = guardian.named(pick.backend.name)
    if job == "reap_stale_locks":
        outcomes = backend.reaper.run(datetime.now(UTC), dry_run=True)
        verdicts = Counter(outcome.judgement.verdict.value for outcome in outcomes)
        assert verdicts == Counter({"fresh": FRESH, "waiting": LOCKS - FRESH}), verdicts
    else:
        table = guardian.guardian_table
        assert not table.digest_suspects(pick.backend.bucket), "its backend's suspects were not looked at"
        assert all(table.digest_suspects(s.backend.bucket) for s in unpicked), "another backend's suspects went"


def _bare_scan_s(seeded: Seeded) -> float:
    """The reaper's Scan of one lock table made bare: the same filter, every page."""
    client = boto3.session.Session().client("dynamodb")
    table = seeded.backend.lock_table
    assert table is not None

    def scan() -> int:
        pages = client.get_paginator("scan").paginate(
            TableName=table,
            FilterExpression="attribute_exists(Info)",
            ProjectionExpression="LockID, Info",
            ConsistentRead=True,
        )
        return sum(len(page["Items"]) for page in pages)

    assert scan() == LOCKS
    return best_of(scan)


def _time_dispatch(deployment: Deployment) -> tuple[float, float, int]:
    """The schedule's own invocation of a deployment of several backends: one asynchronous Invoke per backend,
    against the emulator's Lambda; and the same Invokes sent bare."""
    guardian, count = deployment.guardian, len(deployment.chosen)
    composition.install(guardian)
    local = guardian.fan_out
    client = boto3.session.Session().client("lambda")
    invokes: list[str] = []
    client.meta.events.register("before-call.lambda.Invoke", lambda **_: invokes.append("Invoke"))
    guardian.fan_out = LambdaFanOut(client)
    run = _handler(deployment.stack, "reap_stale_locks")
    event = _schedule_event("reap_stale_locks")
    names = list(guardian.backends)
    payloads = [json.dumps(share_event(event, [name])).encode() for name in names]

    def dispatch() -> None:
        run(event)

    def bare() -> None:
        for payload in payloads:
            client.invoke(FunctionName=f"{FUNCTION_PREFIX}reap_stale_locks", InvocationType="Event", Payload=payload)

    try:
        run(event)
        assert len(invokes) == count, f"{len(invokes)} Invokes for {count} backends"
        times: dict[Callable[[], None], list[float]] = {dispatch: [], bare: []}
        for _ in range(5):  # interleaved: both see the same load
            for timed, taken in times.items():
                started = time.perf_counter()
                timed()
                taken.append(time.perf_counter() - started)
    finally:
        guardian.fan_out = local
    return min(times[dispatch]), min(times[bare]), count


def _figures(
    timings: dict[str, dict[int, Timing]],
    backends: int,
    items: int,
    seeding_s: float,
    scan_s: float,
    dispatch_s: float,
    floor_s: float,
    invokes: int,
) -> list[Figure]:
    figures = []
    for job, label in zip(JOBS, ("the reaper", "the digest check"), strict=True):
        at_one, at_many = timings[job][1], timings[job][backends]
        ratio = at_many.median_s / at_one.median_s
        calls_one, calls_many = sum(at_one.calls.values()), sum(at_many.calls.values())
        figures.append(
            Figure(
                f"{label}: one backend's invocation at {backends} backends vs at 1 backend ({items:,} lock-table"
                " items each)",
                f"{at_many.median_s * 1000:.0f} ms vs {at_one.median_s * 1000:.0f} ms ({_spread(at_many)} over"
                f" {SAMPLED} backends); {calls_many} vs {calls_one} calls"
                + (
                    f" (a bare filtered Scan of its table: {scan_s * 1000:.0f} ms)" if job == "reap_stale_locks" else ""
                ),
                ratio,
                f"≤ {BAR}×, the same calls",
                ratio <= BAR and calls_many == calls_one,
            )
        )
    figures.append(
        Figure(
            f"the reaper's schedule invocation at {backends} backends (it sends one Invoke each) vs {backends} bare"
            " Invokes",
            f"{dispatch_s * 1000:.0f} ms vs {floor_s * 1000:.0f} ms ({invokes} Invokes; one backend's own"
            f" invocation: {timings[JOBS[0]][1].median_s * 1000:.0f} ms)",
            dispatch_s / floor_s,
            "≤ 1.5×",
            dispatch_s / floor_s <= 1.5,
        )
    )
    figures.append(
        Figure(
            f"fan-out setup: {backends} backends of {items:,} lock-table items seeded on the emulator",
            f"{backends * items:,} items in {seeding_s:.0f} s (BatchWriteItem, {SEED_BATCH:,} a request)",
            None,
            "—",
            None,
        )
    )
    return figures


def _spread(timing: Timing) -> str:
    return f"{min(timing.samples) * 1000:.0f}–{max(timing.samples) * 1000:.0f} ms"
