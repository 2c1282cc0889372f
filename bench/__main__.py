"""`make bench`: every performance figure as a ratio against a baseline measured in the same run.

Writes docs/benchmarks.md. The AWS emulator (moto server) runs on a free port of 127.0.0.1.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import platform
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3

from bench.figures import Figure, best_of, cpu_of, interleaved
from bench.generate_state import generate_state, state_bytes
from bench.history import PagePoint, history_chart, history_figures
from bench.naive import naive_diff
from chalicelib import composition
from chalicelib.adapters.s3_state_bucket import S3StateBucket
from chalicelib.domain.access import AccessPolicy
from chalicelib.domain.index_codec import encode_index
from chalicelib.domain.rollback import RollbackRequest, with_serial
from chalicelib.domain.state_index import StateDiff, chunks_of, index_state
from chalicelib.settings import Settings
from local_stack.emulator import MotoServer, free_port
from local_stack.provision import Resources, provision

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / "docs" / "benchmarks.md"
CHART = ROOT / "docs" / "benchmarks.png"
HISTORY_CHART = ROOT / "docs" / "benchmarks-history.png"
SIZES = (1_000, 10_000, 50_000)
REPEATS = 3


def changed_copy(state: dict[str, Any], step: int = 1) -> dict[str, Any]:
    """The version `step` writes later: 1% of instances changed, one resource removed, one added."""
    after: dict[str, Any] = json.loads(json.dumps(state))
    after["serial"] += step
    for position, resource in enumerate(after["resources"]):
        if position % 100 == 0:
            resource["instances"][0]["attributes"]["tags"]["changed"] = f"yes, {step}"
    after["resources"].pop(1)
    after["resources"].append(  # written as Terraform writes a resource
        {
            "mode": "managed",
            "type": "aws_eip",
            "name": "new",
            "provider": 'provider["registry.terraform.io/hashicorp/aws"]',
            "instances": [{"schema_version": 0, "attributes": {"id": "x"}, "sensitive_attributes": []}],
        }
    )
    return after


@dataclass
class DiffPoint:
    """One state size of the diff benchmark, for the chart."""

    megabytes: float
    guardian_ms: float
    floor_ms: float
    naive_ms: float
    guardian_mib: float
    naive_mib: float


def diff_figures(s3: Any, bucket: str) -> tuple[list[Figure], list[DiffPoint]]:
    figures = []
    points = []
    states = S3StateBucket(s3, bucket, header_bytes=4096, max_state_bytes=1 << 31)
    for size in SIZES:
        key = f"bench/{size}/terraform.tfstate"
        before_state = generate_state(size, seed=size)
        before_bytes = state_bytes(before_state)
        after_bytes = state_bytes(changed_copy(before_state))
        before = s3.put_object(Bucket=bucket, Key=key, Body=before_bytes)["VersionId"]
        after = s3.put_object(Bucket=bucket, Key=key, Body=after_bytes)["VersionId"]
        megabytes = len(after_bytes) / 1e6

        def floor(key: str = key, before: str = before, after: str = after) -> None:
            for version in (before, after):
                hashlib.md5(s3.get_object(Bucket=bucket, Key=key, VersionId=version)["Body"].read()).hexdigest()

        def guardian(key: str = key, before: str = before, after: str = after) -> StateDiff:
            return StateDiff.between(*states.read_indexes(key, before, after))

        def naive(key: str = key, before: str = before, after: str = after) -> object:
            return naive_diff(s3, bucket, key, before, after)

        diff = guardian()
        assert (len(diff.resources_added), len(diff.resources_removed)) == (
            1,
            len(before_state["resources"][1]["instances"]),
        )
        # The generated states are the benchmark's own heap, not the guardian's: a Lambda would not hold them
        # while it diffs, and the garbage collector would walk them on every full collection.
        del before_state, before_bytes, after_bytes
        gc.collect()
        floor_s, guardian_s, naive_s = best_of(floor, 5), best_of(guardian, 5), best_of(naive)
        memory = {mode: memory_probe(mode, bucket, key, before, after) for mode in ("guardian", "naive")}
        per_mb = memory["guardian"] / 1024 / megabytes
        points.append(
            DiffPoint(
                megabytes, guardian_s * 1000, floor_s * 1000, naive_s * 1000,
                memory["guardian"] / 1024, memory["naive"] / 1024,
            )
        )  # fmt: skip
        label = f"{size // 1000}k resources ({megabytes:.1f} MB)"
        figures.append(
            Figure(
                f"diff time, {label}, vs read + MD5 (floor)",
                f"{guardian_s * 1000:.0f} ms vs {floor_s * 1000:.0f} ms",
                guardian_s / floor_s,
                "≤ 3× at 10k resources" if size == 10_000 else "—",
                guardian_s / floor_s <= 3 if size == 10_000 else None,
            )
        )
        figures.append(
            Figure(
                f"diff time, {label}, vs naive json.loads",
                f"{guardian_s * 1000:.0f} ms vs {naive_s * 1000:.0f} ms",
                guardian_s / naive_s,
                "—",
                None,
            )
        )
        figures.append(
            Figure(
                f"diff peak memory, {label}, MiB per MB of state",
                f"{memory['guardian'] / 1024:.1f} MiB (naive {memory['naive'] / 1024:.1f} MiB)",
                per_mb,
                "≤ 1.5",
                per_mb <= 1.5,
            )
        )
    return figures, points


def chart(points: list[DiffPoint]) -> None:
    """Diff time and peak memory against state size, next to their baselines, as docs/benchmarks.png."""
    import matplotlib  # noqa: PLC0415 - only `make bench` draws

    matplotlib.use("Agg")
    from matplotlib import pyplot  # noqa: PLC0415

    sizes = [point.megabytes for point in points]
    figure, (times, memory) = pyplot.subplots(1, 2, figsize=(11, 4.2))
    for values, label, style in (
        ([p.guardian_ms for p in points], "guardian diff", "o-"),
        ([p.floor_ms for p in points], "floor: read + MD5", "s--"),
        ([p.naive_ms for p in points], "naive json.loads diff", "^:"),
    ):
        times.plot(sizes, values, style, label=label)
    times.set(xlabel="state size (MB)", ylabel="ms, best of several runs", title="Diff time of two versions")
    for values, label, style in (
        ([p.guardian_mib for p in points], "guardian diff", "o-"),
        ([p.naive_mib for p in points], "naive json.loads diff", "^:"),
        ([1.5 * size for size in sizes], "bar: 1.5 MiB per MB", "k--"),
    ):
        memory.plot(sizes, values, style, label=label)
    memory.set(xlabel="state size (MB)", ylabel="MiB above baseline", title="Diff peak memory")
    for axes in (times, memory):
        axes.grid(alpha=0.3)
        axes.legend()
    figure.tight_layout()
    figure.savefig(CHART, dpi=110)
    pyplot.close(figure)


def memory_probe(mode: str, bucket: str, key: str, before: str, after: str) -> float:
    output = subprocess.run(
        [sys.executable, "-m", "bench.memory_probe", mode, bucket, key, before, after],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return float(json.loads(output)["peak_above_baseline_kib"])


def count_calls(container: composition.Container) -> Counter[str]:
    calls: Counter[str] = Counter()
    for client in (container.s3, container.dynamodb):
        client.meta.events.register(
            "before-call.*.*", lambda model, **_: calls.update([f"{model.service_model.service_name}:{model.name}"])
        )
    return calls


def calls_per_event(resources: Resources, app: Any) -> Figure:
    key = "bench/calls/terraform.tfstate"
    s3 = boto3.session.Session().client("s3")
    state = generate_state(50, seed=1)
    s3.put_object(Bucket=resources.state_bucket, Key=key, Body=state_bytes(state))
    version = s3.put_object(Bucket=resources.state_bucket, Key=key, Body=state_bytes(changed_copy(state)))
    newer = s3.put_object(Bucket=resources.state_bucket, Key=key, Body=state_bytes(changed_copy(state, 2)))
    container = composition.container().home
    calls = count_calls(container)
    app.on_state_object_event(_created_event(resources.state_bucket, key, version["VersionId"]), None)
    calls.clear()  # the second write: its predecessor recorded, as every write but a state's first
    app.on_state_object_event(_created_event(resources.state_bucket, key, newer["VersionId"]), None)
    writes = sum(count for name, count in calls.items() if name.split(":")[1].startswith(WRITES))
    reads = sum(calls.values()) - writes
    detail = ", ".join(f"{name} {count}" for name, count in sorted(calls.items()))
    return Figure(
        "S3 and DynamoDB calls per state-write event (channels aside): reads; the history's writes",
        f"{reads} reads, {writes} writes: {detail}",
        None,
        "≤ 5 reads, ≤ 3 writes",
        reads <= 5 and writes <= 3,
    )


# The history's writes of a state write: its index, its record with the fleet's latest, its audit entry.
WRITES = ("Put", "Update", "TransactWrite", "BatchWrite", "Delete")


def stream_batch(resources: Resources, app: Any) -> list[Figure]:
    sns = boto3.session.Session().client("sns")

    def batch() -> dict[str, Any]:
        records = []
        for i in range(50):
            path = f"{resources.state_bucket}/bench/{i}/terraform.tfstate"
            info = json.dumps(
                {"ID": str(uuid.uuid4()), "Operation": "OperationTypeApply", "Info": "", "Who": "ci@runner",
                 "Version": "1.11.4", "Created": "2026-11-26T11:19:55.018151643Z", "Path": path},
                separators=(",", ":"),
            )  # fmt: skip
            for name, image in (("INSERT", "NewImage"), ("REMOVE", "OldImage")):
                records.append(
                    {
                        "eventID": uuid.uuid4().hex,
                        "eventName": name,
                        "eventSource": "aws:dynamodb",
                        "eventSourceARN": resources.lock_table_stream_arn,
                        "dynamodb": {
                            "ApproximateCreationDateTime": int(time.time()),
                            "Keys": {"LockID": {"S": path}},
                            image: {"LockID": {"S": path}, "Info": {"S": info}},
                            "SequenceNumber": str(i),
                        },
                    }
                )
        return {"Records": records}

    def deserialised(event: dict[str, Any]) -> list[str]:
        messages = []
        for record in event["Records"]:
            body = record["dynamodb"]
            messages.append(json.dumps({"lock": json.loads((body.get("NewImage") or body["OldImage"])["Info"]["S"])}))
        return messages

    def one_by_one(event: dict[str, Any]) -> None:
        """The issue's baseline: a loop that deserialises each record and publishes its notification."""
        for message in deserialised(event):
            sns.publish(TopicArn=resources.notify_topic_arn, Message=message)

    def ten_at_a_time(event: dict[str, Any]) -> None:
        """A stricter baseline: the same, publishing ten to a request as the guardian does."""
        entries: list[Any] = [{"Id": uuid.uuid4().hex, "Message": message} for message in deserialised(event)]
        for start in range(0, len(entries), 10):
            sns.publish_batch(
                TopicArn=resources.notify_topic_arn, PublishBatchRequestEntries=entries[start : start + 10]
            )

    guardian = min(cpu_of(lambda: app.on_lock_table_change(batch(), None)) for _ in range(REPEATS))
    loop = min(cpu_of(lambda: one_by_one(batch())) for _ in range(REPEATS))
    batched = min(cpu_of(lambda: ten_at_a_time(batch())) for _ in range(REPEATS))
    return [
        Figure(
            "CPU per 100-record stream batch vs a deserialise-and-publish loop",
            f"{guardian * 1000:.0f} ms vs {loop * 1000:.0f} ms",
            guardian / loop,
            "≤ 1.5×",
            guardian / loop <= 1.5,
        ),
        Figure(
            "CPU per 100-record stream batch vs the same loop publishing ten per request",
            f"{guardian * 1000:.0f} ms vs {batched * 1000:.0f} ms",
            guardian / batched,
            "—",
            None,
        ),
    ]


def lock_table_scan(resources: Resources) -> Figure:
    """The reaper's scan of a lock table with 10,000 digest items and 10 locks."""
    client = boto3.session.Session().client("dynamodb")
    items: list[Any] = [
        {"PutRequest": {"Item": {"LockID": {"S": f"{resources.state_bucket}/s{i}/terraform.tfstate-md5"},
                                 "Digest": {"S": hashlib.md5(str(i).encode()).hexdigest()}}}}
        for i in range(10_000)
    ]  # fmt: skip
    for i in range(10):
        path = f"{resources.state_bucket}/s{i}/terraform.tfstate"
        items.append({"PutRequest": {"Item": {"LockID": {"S": path}, "Info": {"S": json.dumps({"Path": path})}}}})
    for start in range(0, len(items), 25):
        client.batch_write_item(RequestItems={resources.lock_table: items[start : start + 25]})
    locks = composition.container().home.lock_table

    def unfiltered() -> int:
        pages = client.get_paginator("scan").paginate(TableName=resources.lock_table, ConsistentRead=True)
        return sum(len(page["Items"]) for page in pages)

    assert len(locks.held_locks()) == 10 and unfiltered() == 10_010
    filtered_s = min(cpu_of(locks.held_locks) for _ in range(REPEATS))
    unfiltered_s = min(cpu_of(unfiltered) for _ in range(REPEATS))
    return Figure(
        "client CPU to find 10 locks among 10,000 digest items, filtered scan vs unfiltered",
        f"{filtered_s * 1000:.1f} ms vs {unfiltered_s * 1000:.1f} ms",
        filtered_s / unfiltered_s,
        "≤ 5 ms per 10k items",
        filtered_s * 1000 <= 5,
    )


def rollback_figures(resources: Resources) -> list[Figure]:
    """A rollback of a ~50 MB state, and the version listing of a state with 100 versions of ~20 MB."""
    s3 = boto3.session.Session().client("s3")
    bucket = resources.state_bucket
    big = state_bytes(generate_state(66_000, seed=5))  # about 50 MB
    key = "bench/rollback/terraform.tfstate"
    target = s3.put_object(Bucket=bucket, Key=key, Body=big)["VersionId"]
    s3.put_object(Bucket=bucket, Key=key, Body=with_serial(big, 2))
    rollbacks = composition.container().home.rollbacks

    def bare() -> None:
        body = s3.get_object(Bucket=bucket, Key=key, VersionId=target)["Body"].read()
        s3.put_object(Bucket=bucket, Key="bench/rollback/copy.tfstate", Body=body)

    def rollback() -> None:
        request = RollbackRequest.parse({"key": key, "version_id": target})
        rollbacks.rollback(request, scope=AccessPolicy().scope_for("bench"), now=datetime.now(UTC))

    bare_s, rollback_s = best_of(bare), best_of(rollback)
    figures = [
        Figure(
            f"rollback of a {len(big) / 1e6:.0f} MB state vs a bare GetObject + PutObject",
            f"{rollback_s * 1000:.0f} ms vs {bare_s * 1000:.0f} ms",
            rollback_s / bare_s,
            "≤ 2×",
            rollback_s / bare_s <= 2,
        )
    ]
    medium = state_bytes(generate_state(26_000, seed=6))  # about 20 MB
    history_key = "bench/history/terraform.tfstate"
    for serial in range(100):
        s3.put_object(Bucket=bucket, Key=history_key, Body=with_serial(medium, serial))
    container = composition.container().home
    read: list[int] = []
    container.s3.meta.events.register(
        "after-call.s3.GetObject", lambda parsed, **_: read.append(int(parsed.get("ContentLength", 0)))
    )
    listing_s = best_of(
        lambda: container.queries.versions(
            history_key, AccessPolicy().scope_for("bench"), limit=100, next_token=None, address=None
        ),
        repeats=1,
    )
    total = 100 * len(medium)
    figures.append(
        Figure(
            f"version listing of 100 versions of {len(medium) / 1e6:.0f} MB: bytes read of all versions' bytes",
            f"{sum(read) / 1024:.0f} KiB of {total / 1e9:.1f} GB in {listing_s:.1f} s ({len(read)} ranged reads)",
            sum(read) / total,
            "no whole reads",
            max(read) <= 4096,
        )
    )
    return figures


LAMBDA_512_VCPU = 512 / 1769  # Lambda gives a whole vCPU at 1769 MB, and CPU in proportion to memory
LAMBDA_TIMEOUT_S = 45


def half_outputs_state() -> tuple[bytes, bytes]:
    """Two versions of a ~20 MB state, half of whose bytes are outputs (a VPC module's maps and lists), as Terraform
    writes it; the second changes one output and 1% of the instances."""
    state = generate_state(13_000, seed=10)
    state["outputs"]["subnets"] = {
        "value": {
            f"subnet-{i}": {"id": f"subnet-{i:017x}", "cidr": f"10.{i // 256 % 256}.{i % 256}.0/24",
                            "availability_zone": f"eu-west-1{'abc'[i % 3]}", "tags": {"Name": f"private-{i}"}}
            for i in range(45_000)
        },
        "type": ["map", ["object", {"availability_zone": "string", "cidr": "string", "id": "string",
                                    "tags": ["map", "string"]}]],
    }  # fmt: skip
    state["outputs"]["instance_ips"] = {
        "value": [f"10.{i // 65536}.{i // 256 % 256}.{i % 256}" for i in range(100_000)],
        "type": ["list", "string"],
    }
    before = state_bytes(state)
    after = changed_copy(state)
    after["outputs"]["subnets"]["value"]["subnet-7"]["cidr"] = "10.200.0.0/24"
    return before, state_bytes(after)


def event_probe(bucket: str, key: str, version: str) -> dict[str, float]:
    """The real S3 event handler on one write, in a fresh process warmed up on a small write of its own."""
    s3 = boto3.session.Session().client("s3")
    warm_key = f"bench/memory/warm-{uuid.uuid4().hex}/terraform.tfstate"
    warm = s3.put_object(Bucket=bucket, Key=warm_key, Body=state_bytes(generate_state(50, seed=9)))["VersionId"]
    output = subprocess.run(
        [sys.executable, "-m", "bench.event_probe", bucket, key, version, warm_key, warm],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {name: float(value) for name, value in json.loads(output.splitlines()[-1]).items()}


def event_memory_figures(resources: Resources) -> list[Figure]:
    """Peak memory of the S3 event handler per MB of state (outputs included) and the time of a 200 MB write."""
    s3 = boto3.session.Session().client("s3")
    bucket = resources.state_bucket
    figures = []
    key = "bench/memory/outputs/terraform.tfstate"
    before, after = half_outputs_state()
    outputs_share = (after.index(b'\n  "resources": [') - after.index(b'\n  "outputs": {')) / len(after)
    s3.put_object(Bucket=bucket, Key=key, Body=before)
    version = s3.put_object(Bucket=bucket, Key=key, Body=after)["VersionId"]
    megabytes = len(after) / 1e6
    del before, after
    probe = event_probe(bucket, key, version)
    per_mb = (probe["peak_kib"] - probe["baseline_kib"]) / 1024 / megabytes
    figures.append(
        Figure(
            f"S3 event handler peak memory, {megabytes:.0f} MB state {outputs_share:.0%} outputs, MiB per MB",
            f"{(probe['peak_kib'] - probe['baseline_kib']) / 1024:.1f} MiB above {probe['baseline_kib'] / 1024:.0f}"
            " MiB",
            per_mb,
            "≤ 1.5",
            per_mb <= 1.5,
        )
    )
    key = "bench/memory/large/terraform.tfstate"
    big = state_bytes(generate_state(262_000, seed=11))  # about 200 MB
    gc.collect()
    s3.put_object(Bucket=bucket, Key=key, Body=big)
    # The next version: the serial and 1% of the instances changed, as an apply writes it.
    version = s3.put_object(Bucket=bucket, Key=key, Body=with_serial(big, 2).replace(b'"prod"', b'"test"', 2600))[
        "VersionId"
    ]
    megabytes = len(big) / 1e6
    del big
    gc.collect()
    probe = event_probe(bucket, key, version)
    above, total = (probe["peak_kib"] - probe["baseline_kib"]) / 1024, probe["peak_kib"] / 1024
    at_512 = probe["cpu_s"] / LAMBDA_512_VCPU
    figures += [
        Figure(
            f"S3 event handler peak memory, {megabytes:.0f} MB state, MiB per MB",
            f"{above:.0f} MiB above {probe['baseline_kib'] / 1024:.0f} MiB",
            above / megabytes,
            "≤ 1.5",
            above / megabytes <= 1.5,
        ),
        Figure(
            f"S3 event handler total peak RSS, {megabytes:.0f} MB state, vs a 512 MB Lambda",
            f"{total:.0f} MiB",
            total / 512,
            "< 512 MB",
            total < 512,
        ),
        Figure(
            f"S3 event handler time, {megabytes:.0f} MB state write (local wall; CPU ÷ {LAMBDA_512_VCPU:.2f} vCPU"
            " at 512 MB)",
            f"{probe['wall_s']:.1f} s wall, {probe['cpu_s']:.1f} s CPU: about {at_512:.0f} s at 512 MB",
            at_512 / LAMBDA_TIMEOUT_S,
            f"≤ {LAMBDA_TIMEOUT_S} s at 512 MB (estimate)",
            at_512 <= LAMBDA_TIMEOUT_S,
        ),
    ]
    return figures


CAPTURES = ROOT / "tests" / "events" / "states"


def index_size_figures() -> list[Figure]:
    """The stored index's bytes against the state's, for generated states and the real captures."""
    figures = []
    for size in SIZES:
        data = state_bytes(generate_state(size, seed=size))
        stored = len(encode_index(index_state(chunks_of(data))))
        figures.append(
            Figure(
                f"stored index, {size // 1000}k resources ({len(data) / 1e6:.1f} MB), share of the state's bytes",
                f"{stored / 1e3:.0f} kB: {stored / len(data):.2%}, {stored / len(data) * 1e3:.1f} kB per MB",
                stored / len(data),
                "≤ 5%",
                stored / len(data) <= 0.05,
            )
        )
    captures = [path.read_bytes() for path in sorted(CAPTURES.glob("state_*.json"))]
    stored_sizes = [len(encode_index(index_state([data]))) for data in captures]
    total, stored_total = sum(map(len, captures)), sum(stored_sizes)
    figures.append(
        Figure(
            f"stored index of the {len(captures)} real captures (states of {min(map(len, captures))} to"
            f" {max(map(len, captures))} bytes), share of their bytes",
            f"{stored_total} B for {total} B ({stored_total / total:.0%}): {min(stored_sizes)} to"
            f" {max(stored_sizes)} B each",
            stored_total / total,
            "— (a header of ~80 B)",
            None,
        )
    )
    return figures


def write_figure(
    s3: Any, bucket: str, key: str, version: str, handle: Callable[[], object], *, in_parts: bool = False
) -> Figure:
    """`handle`, the handling of the write of `version` by the S3 event handler, against reading that version and
    computing its MD5. `in_parts`: the version was uploaded in parts, so that its ETag is not its MD5 and the
    handler computes it (a figure without a bar: the bar is of the write as Terraform makes it)."""

    def floor() -> None:
        hashlib.md5(s3.get_object(Bucket=bucket, Key=key, VersionId=version)["Body"].read()).hexdigest()

    floor_s, handle_s = interleaved(floor, handle, 7)
    megabytes = s3.head_object(Bucket=bucket, Key=key, VersionId=version)["ContentLength"] / 1e6
    label = f"handling the write of a {megabytes:.0f} MB state, its predecessor's index stored, vs read + MD5 of it"
    return Figure(
        f"{label}; uploaded in parts, so its MD5 is computed" if in_parts else label,
        f"{handle_s * 1000:.0f} ms vs {floor_s * 1000:.0f} ms",
        handle_s / floor_s,
        "—" if in_parts else "≤ 1.3×",
        None if in_parts else handle_s / floor_s <= 1.3,
    )


def _write_in_parts(s3: Any, bucket: str, key: str, body: bytes) -> str:
    """Upload `body` in two parts, as an SDK's upload manager does a large object; its version id."""
    upload = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    middle = len(body) // 2
    parts = [
        {"PartNumber": number, "ETag": s3.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=number,
                                                      Body=part)["ETag"]}
        for number, part in ((1, body[:middle]), (2, body[middle:]))
    ]  # fmt: skip
    done = s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": parts})
    return str(done["VersionId"])


def index_figures(resources: Resources, app: Any) -> list[Figure]:
    """The stored index: its size, a 50 MB write handled by the S3 event handler with its predecessor's index
    stored, and `GET /states/diff` of two recorded 50 MB versions."""
    s3 = boto3.session.Session().client("s3")
    bucket = resources.state_bucket
    figures = index_size_figures()
    key = "bench/index/terraform.tfstate"
    state = generate_state(66_000, seed=12)  # about 50 MB
    before, after, later = state_bytes(state), state_bytes(changed_copy(state)), state_bytes(changed_copy(state, 2))
    handler = app.on_state_object_event
    dynamodb = boto3.session.Session().client("dynamodb")

    def written(key: str, body: bytes, *, in_parts: bool = False) -> tuple[str, dict[str, Any]]:
        """`body` written as Terraform writes it (the state, then its digest item), handled as the guardian
        handles it (recorded, its index stored); its version and event."""
        if in_parts:
            version = _write_in_parts(s3, bucket, key, body)
        else:
            version = s3.put_object(Bucket=bucket, Key=key, Body=body)["VersionId"]
        digest = {"LockID": {"S": f"{bucket}/{key}-md5"}, "Digest": {"S": hashlib.md5(body).hexdigest()}}
        dynamodb.put_item(TableName=resources.lock_table, Item=digest)
        event = _created_event(bucket, key, version)
        handler(event, None)
        return version, event

    versions, events = zip(*(written(key, body) for body in (before, after, later)), strict=True)
    # The newest bytes written again in parts, under a key of their own after the same predecessor: S3's ETag is
    # then not their MD5, and the handler computes it beside the read.
    parts_key = "bench/index-in-parts/terraform.tfstate"
    written(parts_key, after)
    parts_version, parts_event = written(parts_key, later, in_parts=True)
    del state, before, after, later
    gc.collect()
    # The newest write handled again, as a retry is: read, diffed against its predecessor's stored index,
    # recorded (the same items) and announced (the ledger finds it delivered).
    figures.append(write_figure(s3, bucket, key, versions[2], lambda: handler(events[2], None)))
    figures.append(write_figure(s3, bucket, parts_key, parts_version, lambda: handler(parts_event, None),
                                in_parts=True))  # fmt: skip
    queries = composition.container().home.queries
    scope = AccessPolicy().scope_for("bench")

    def get_object() -> None:
        s3.get_object(Bucket=bucket, Key=key, VersionId=versions[1])["Body"].read()

    for label, older, newer in (
        ("a version against its predecessor (from the record)", versions[0], versions[1]),
        ("two versions apart (from their stored indexes)", versions[0], versions[2]),
    ):

        def diff(older: str = older, newer: str = newer) -> dict[str, Any]:
            return queries.diff(key, older, newer, scope)

        assert diff()["resources"]["added"] == ["aws_eip.new"]
        get_s, diff_s = interleaved(get_object, diff, 9)
        figures.append(
            Figure(
                f"GET /states/diff of two recorded 50 MB versions, {label}, vs one GetObject of one of them",
                f"{diff_s * 1000:.1f} ms vs {get_s * 1000:.0f} ms",
                diff_s / get_s,
                "≤ 0.1×" if "record" in label else "—",
                diff_s / get_s <= 0.1 if "record" in label else None,
            )
        )
    return figures


def _created_event(bucket: str, key: str, version_id: str) -> dict[str, Any]:
    return {
        "Records": [
            {
                "eventName": "ObjectCreated:Put",
                "eventTime": datetime.now(UTC).isoformat(),
                "userIdentity": {"principalId": "AWS:AROAEXAMPLE:bench"},
                "s3": {
                    "bucket": {"name": bucket},
                    "object": {"key": key, "versionId": version_id, "sequencer": "01"},
                },
            }
        ]
    }


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with Path("/proc/cpuinfo").open(encoding="ascii") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (
        f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}, {platform.system()} {platform.release()}"
    )


def report(figures: list[Figure]) -> str:
    lines = [
        "# Benchmarks",
        "",
        f"Measured by `make bench` on {datetime.now(UTC):%Y-%m-%d} ({machine()}), against a moto server on",
        "127.0.0.1. Every ratio divides the guardian's figure by a baseline measured in the same run; times are the",
        "best of three to five. Memory is the peak resident set above the process's own baseline, in a fresh process.",
        "",
        "| figure | measured | ratio | bar | met | measured by |",
        "|---|---|---|---|---|---|",
    ]
    for figure in figures:
        ratio = f"{figure.ratio:.2f}" if figure.ratio is not None else "—"
        met = {True: "yes", False: "**no**", None: "—"}[figure.met]
        lines.append(f"| {figure.name} | {figure.value} | {ratio} | {figure.bar} | {met} | `{figure.command}` |")
    lines += [
        "",
        "![Diff time and peak memory against state size](benchmarks.png)",
        "",
        "![A page of the fleet and of a state's versions against the number of states or versions]"
        "(benchmarks-history.png)",
    ]
    return "\n".join([*lines, "", NOTES]) + "\n"


NOTES = """## Notes

- The fan-out figures (`make bench ONLY=fanout`) come from an emulator of their own holding 50 backends, each
  with its own bucket and its own lock table of 10,000 items (digest items and 20 Terraform locks, 4 of them
  stale). A local stack with all 50 backends and one with the first backend only run at the same time on the same
  guardian table, and take turns running one backend's share of the reaper and of the digest check: the event a
  fan-out sends. Each invocation is warmed first, so the stale locks have already been warned once and are
  waiting out their grace. The same number of calls at 1 and at 50 backends shows that an invocation touches its
  own backend only. The schedule's own invocation at 50 backends only sends 50 asynchronous Invokes, answered at
  once by the emulator's Lambda, which runs without Docker. The emulator takes BatchWriteItem requests of 1,000
  items (DynamoDB takes 25), so seeding 500,000 items takes 36–60 s instead of about 105 s.
- Terraform and OpenTofu write states with Go's `json.MarshalIndent`, so equal values are equal bytes. The diff
  reads each version once, streaming; in that layout it finds resources and instances by their indentation and
  digests each instance's attributes as the text Terraform wrote, without decoding them, and the second version
  takes the entries of every resource written exactly as in the first from the first's index. A state in any
  other layout is decoded one resource at a time with the standard library's C scanner (about twice as slow);
  the two kinds of digest are never compared with each other. Only digests are kept: peak memory stays near
  1 MiB per MB (`json.loads` of both versions takes about 4).
- The stream batch figure against a one-by-one publishing loop is the issue's bar; the stricter figure against a
  loop that publishes ten per request is shown too. The guardian's extra work per batch is the lock-session and
  delivery-claim transactions that make replays harmless.
- The S3 event handler's memory is measured in a fresh process running the real handler (`app.on_state_object_event`)
  against the emulator, warmed up on a small write first: the peak RSS of the write (`VmHWM`, reset just before it;
  `ru_maxrss` would carry the bench's own peak over fork and exec) minus the RSS just before. The write reads the
  new version and its predecessor, streaming, and keeps only their indexes. Outputs are never decoded: each is
  digested as its text a chunk at a time, so a state of large outputs costs no more than one of resources. The
  200 MB write's time is estimated for a 512 MB Lambda (about 0.29 vCPU) by dividing the process's CPU time by
  0.29; the local wall time also waits on the emulator, which serves 400 MB from one process.
- The diff benchmark drops its own generated states before it measures: a Lambda would not hold them, and the
  garbage collector would walk them on every full collection.
- A rollback reads the target and the version it replaces side by side, sets the target's resources aside by
  the digest of their text, notes which the replaced version wrote byte for byte alike and parses every other
  one on either side (validation and diff at once), while a second thread builds the restored bytes and their
  MD5 from the two heads; then it takes both of Terraform's locks, records the digest it is about to write,
  writes the state and the digest, releases the locks and notifies: about fifteen calls around two 50 MB reads
  and a 50 MB write.
- The stored index (`make bench ONLY=index`) keeps, per version, each resource's 8-byte fingerprint (the
  SHA-256 of its text, cut) and line of addresses, and each instance's 8-byte digest: the digests, which do not
  compress, are about 1.6% of a generated state, the zlib-packed addresses about 0.5%. The write figure is the real
  S3 event handler (`app.on_state_object_event`), the 50 MB version's predecessor recorded and its digest item
  written as Terraform writes it: while the version streams it lists the key's versions, reads the predecessor's
  stored index, the digest item and the lock sessions; it indexes the version as it streams, computing only the
  fingerprint of each resource written as before, with a second thread reading the bytes; S3's ETag, the MD5 of an
  object written in one request, equals the digest item, so the bytes are not digested with MD5 again; then it
  records the version (its index and its record side by side) while it notifies. The same bytes uploaded in parts
  have an ETag that is not their MD5: the handler then computes it in a third thread (the figure without a bar).
  It needs the machine's second core, which the emulator also uses, and varies by about ±15% here: 1.27× to
  1.51× over 15 runs of `make bench ONLY=index`. The diff of a version against its predecessor reads the newer
  version's record (one GetItem); of two versions further apart, their two stored indexes side by side. The
  emulator answers a GetObject of 50 MB in 50 to 80 ms, where S3 takes several hundred, and a small request in 2
  to 4 ms: the diff's ratios would be several times smaller against S3.
- The history's pages (`make bench ONLY=history`) are measured on tables of their own, filled with 100 to 10,000
  fleet entries and version records, each page from the middle of its listing in turns with a bare Query of the
  same page: the emulator's Query walks its table, so the bare Query slows down with the table where DynamoDB's
  does not, and the bar is that the guardian adds nothing that grows. The backfill's rate is the emulator's: each
  version is a read, an index put and a transaction.
- The emulator (`local_stack/moto_server.py`) takes away costs of moto's that AWS does not have
  (`local_stack/moto_costs.py`): it shares bytes where moto copies a whole bucket for each version listing, copies
  the items a transaction names where moto copies the whole table for each of its actions, finds a request's
  service once per host, and neither counts an update's clauses at every level of its expression nor looks up an
  attribute value's members one spelling at a time (see the README's emulator notes). Each makes both sides of a
  ratio faster: a GetObject of 50 MB as well as the guardian's requests.
- The emulator answers a ranged read of a large object much more slowly than S3 does once it holds gigabytes;
  the listing figure counts bytes read, which does not depend on that.
- The package figures come from `python -m deploy.package` (Chalice's package plus bytecode for the modules a
  cold start imports); the import is timed in a fresh interpreter from the unpacked package, like Lambda.
- The load latency is measured on the local stack, whose one event loop delivers events one at a time while
  five applies run: it mostly measures that queue. Lambda runs S3 invocations side by side.
- `make run`'s start (`make bench ONLY=start`) runs `make run` in a copy of the working tree (what git tracks or
  would track, so uncommitted changes too) with free ports, timed from the command to its `ready` line: cold in a
  new venv with pip's cache off, so every package is downloaded, then warm in the same copy. The cold figure is
  mostly the download and unpacking of the packages, and varies with the network by several seconds.
- The status page's figures (`make bench ONLY=page`) run a local stack with its REST API and page server, its
  fleet filled with 10,000 records as the guardian keeps them. The API call is the one the fleet view makes
  (`/api/states?limit=100` through the page server); nearly all of it is the emulator's Query, which walks the
  fleet's partition (the bare Query of the same page is shown beside it). The browser figure is a new tab of
  headless Chromium from navigation until the table's rows are drawn, HTML, CSS, script and the API call included,
  while the emulator, the API and Chromium share the two cores.
- Figures on a 2-core machine shared with the emulator vary by about ±20% from run to run."""


GROUPS = (
    "diff", "memory", "calls", "stream", "scan", "rollback", "index", "history", "package", "start", "page", "fanout",
    "load",
)  # fmt: skip


def main(groups: list[str]) -> int:
    """Every group of figures, or only those named (printed, not written to the report)."""
    unknown = set(groups) - set(GROUPS)
    if unknown:
        print(f"unknown groups {sorted(unknown)}; choose from {', '.join(GROUPS)}", file=sys.stderr)
        return 2
    selected = set(groups or GROUPS)
    server = MotoServer(free_port())
    server.start()
    try:
        os.environ.update(
            AWS_ENDPOINT_URL=server.endpoint,
            AWS_ACCESS_KEY_ID="test",
            AWS_SECRET_ACCESS_KEY="test",
            AWS_DEFAULT_REGION="us-east-1",
        )
        session = boto3.session.Session()
        resources = provision(
            session,
            state_bucket="bench-states",
            lock_table="bench-locks",
            guardian_table="bench-guardian",
            topic="bench",
        )
        os.environ.update(resources.guardian_env())
        import app  # noqa: PLC0415 - the app reads its settings at import

        figures: list[Figure] = []
        points: list[DiffPoint] = []
        pages: list[PagePoint] = []

        def measured(group: str, group_figures: list[Figure]) -> None:
            for figure in group_figures:
                figure.command = f"make bench ONLY={group}"
            figures.extend(group_figures)

        if "diff" in selected:
            diff_results, points = diff_figures(session.client("s3"), resources.state_bucket)
            measured("diff", diff_results)
        if "memory" in selected:
            measured("memory", event_memory_figures(resources))
        if "calls" in selected:
            quiet = Settings.from_env({**os.environ, "GUARDIAN_NOTIFY_TOPIC_ARN": ""})
            composition.install(composition.Container(quiet))
            measured("calls", [calls_per_event(resources, app)])
        composition.install(composition.Container(Settings.from_env()))
        if "stream" in selected:
            measured("stream", stream_batch(resources, app))
        if "scan" in selected:
            measured("scan", [lock_table_scan(resources)])
        if "rollback" in selected:
            measured("rollback", rollback_figures(resources))
        if "index" in selected:
            measured("index", index_figures(resources, app))
        if "history" in selected:
            history_results, pages = history_figures(resources)
            measured("history", history_results)
        if "package" in selected:
            from bench.package_size import package_figures  # noqa: PLC0415 - chalice package takes a while

            measured("package", package_figures())
    finally:
        server.stop()
    if "start" in selected:  # `make run` in a copy of the tree, with a venv and an emulator of its own
        from bench.start import start_figures  # noqa: PLC0415

        measured("start", start_figures())
    if "page" in selected:  # the status page on a local stack of its own, with 10,000 states
        from bench.page import page_figures  # noqa: PLC0415

        measured("page", page_figures())
    if "fanout" in selected:  # 1 and 50 backends on local stacks and an emulator of their own
        from bench.fanout import fanout_figures  # noqa: PLC0415

        measured("fanout", fanout_figures())
    if "load" in selected:  # last: it runs a local stack of its own, with settings of its own
        from bench.load import load_figures  # noqa: PLC0415

        measured("load", load_figures())
    text = report(figures)
    if not groups:
        REPORT.parent.mkdir(exist_ok=True)
        REPORT.write_text(text)
        chart(points)
        history_chart(pages, HISTORY_CHART)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
