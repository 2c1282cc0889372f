"""`make bench ONLY=history`: a page of the fleet and of a state's versions against one DynamoDB Query of as many
items, at 100 to 10,000 states and versions; and the backfill's rate."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3

from bench.figures import Figure, interleaved
from bench.generate_state import generate_state, state_bytes
from chalicelib import composition
from chalicelib.adapters.audit_table import AuditTable
from chalicelib.adapters.dynamo_items import attributes, batch_write
from chalicelib.adapters.history_table import HistoryTable
from chalicelib.adapters.s3_state_bucket import S3StateBucket
from chalicelib.domain.access import AccessPolicy
from chalicelib.domain.history import decode_token, version_order
from chalicelib.domain.state_keys import StateKeyFilter
from chalicelib.services.backfill import Backfill
from chalicelib.services.state_queries import StateQueries
from chalicelib.services.version_history import VersionHistory
from deploy.resource_shapes import create_guardian_table
from local_stack.provision import Resources

SIZES = (100, 1_000, 10_000)
VERSIONS = 5_000
PAGE = 100
BACKFILL_VERSIONS = 200
SCOPE = AccessPolicy().scope_for("bench")
START = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class PagePoint:
    """One size of the fleet: a page of it through the guardian and as one bare Query, in milliseconds."""

    items: int
    states_ms: float
    versions_ms: float
    states_query_ms: float  # the bare Query of the same page of the fleet's partition
    versions_query_ms: float  # and of the versions' partition


def history_figures(resources: Resources) -> tuple[list[Figure], list[PagePoint]]:
    session = boto3.session.Session()
    dynamodb, s3 = session.client("dynamodb"), session.client("s3")
    # Tables of their own: the emulator's transactions copy a whole table, and its Query walks one.
    pages_table = "bench-history-pages"
    create_guardian_table(dynamodb, pages_table)
    table = HistoryTable(dynamodb, pages_table, retention=timedelta(days=400))
    points = []
    for size in SIZES:
        bucket = f"bench-fleet-{size}"
        fill_fleet(dynamodb, pages_table, bucket, size)
        _fill_versions(dynamodb, pages_table, bucket, "versions/terraform.tfstate", min(size, VERSIONS))
        queries = StateQueries(
            S3StateBucket(s3, bucket, header_bytes=4096, max_state_bytes=1 << 28),
            VersionHistory(table, None, bucket=bucket, workspace_key_prefixes=("env:",)),
            AuditTable(dynamodb, pages_table, retention=timedelta(days=400)),
            composition.container().home.reaper,
            retention=timedelta(days=400),
        )
        # A page from the middle of the listing, as a person paging through it gets.
        middle = queries.states("", SCOPE, limit=size // 2, next_token=None)["next"] if size > PAGE else None
        versions_middle = (
            queries.versions("versions/terraform.tfstate", SCOPE, limit=size // 2, next_token=None, address=None)[
                "next"
            ]
            if size > PAGE
            else None
        )

        def states_page(queries: StateQueries = queries, middle: str | None = middle) -> None:
            assert len(queries.states("", SCOPE, limit=PAGE, next_token=middle)["states"]) == PAGE

        def versions_page(queries: StateQueries = queries, middle: str | None = versions_middle) -> None:
            answer = queries.versions("versions/terraform.tfstate", SCOPE, limit=PAGE, next_token=middle, address=None)
            assert len(answer["versions"]) == PAGE

        def bare(pk: str, token: str | None) -> Callable[[], object]:
            """One Query of PAGE items of the same partition from the same place, as DynamoDB answers it."""
            query: dict[str, Any] = {
                "TableName": pages_table,
                "KeyConditionExpression": "pk = :pk",
                "ExpressionAttributeValues": {":pk": {"S": pk}},
                "Limit": PAGE,
            }
            if token is not None:
                query["ExclusiveStartKey"] = {"pk": {"S": pk}, "sk": {"S": decode_token(token, expect=None)["sk"]}}
            return lambda: dynamodb.query(**query)

        versions_pk = f"versions#{bucket}/versions/terraform.tfstate"
        fleet_query, versions_query = bare(f"fleet#{bucket}", middle), bare(versions_pk, versions_middle)
        # Each page in turns with its bare Query: a machine busier for a while slows both alike.
        states_query_s, states_s = interleaved(fleet_query, states_page, 7)
        versions_query_s, versions_s = interleaved(versions_query, versions_page, 7)
        points.append(
            PagePoint(size, states_s * 1000, versions_s * 1000, states_query_s * 1000, versions_query_s * 1000)
        )
    figures = []
    for point in (points[0], points[-1]):
        label = f"{point.items:,}"
        for what, measured, bare_ms in (
            ("GET /states", point.states_ms, point.states_query_ms),
            ("GET /states/versions", point.versions_ms, point.versions_query_ms),
        ):
            figures.append(
                Figure(
                    f"a page of {PAGE} from {what} over {label} {'states' if 'versions' not in what else 'versions'}"
                    f" vs one DynamoDB Query of the same {PAGE} items",
                    f"{measured:.1f} ms vs {bare_ms:.1f} ms",
                    measured / bare_ms,
                    "≤ 2×",
                    measured / bare_ms <= 2,
                )
            )
    first, last = points[0], points[-1]
    for what, small, large in (
        ("GET /states", first.states_ms / first.states_query_ms, last.states_ms / last.states_query_ms),
        (
            "GET /states/versions",
            first.versions_ms / first.versions_query_ms,
            last.versions_ms / last.versions_query_ms,
        ),
    ):
        figures.append(
            Figure(
                f"{what}: a page at {last.items:,} against at {first.items:,} (each against its own bare Query)",
                f"{large:.2f}× vs {small:.2f}×",
                large / small,
                "no slower (≤ 1.2×, the noise of a run)",
                large / small <= 1.2,
            )
        )
    figures.append(_backfill_rate())
    return figures, points


def fill_fleet(dynamodb: Any, table: str, bucket: str, size: int) -> None:
    requests = []
    for number in range(size):
        written = START + timedelta(seconds=number)
        item = attributes(
            {
                "pk": f"fleet#{bucket}",
                "sk": f"team-{number:05d}/app/terraform.tfstate",
                "order": version_order(written, number, f"v{number}"),
                "workspace": "default",
                "version_id": f"v{number}",
                "kind": "written",
                "written_at": written,
                "serial": number,
                "lineage": "L",
                "terraform_version": "1.11.4",
                "size": 20_000,
                "resources": 40,
                "who": "ci@runner-7",
                "operation": "OperationTypeApply",
                "principal": "AWS:AROAEXAMPLE:ci",
                "history_complete": True,
            }
        )
        requests.append({"PutRequest": {"Item": item}})
    batch_write(dynamodb, table, requests, "fill the bench fleet")


def _fill_versions(dynamodb: Any, table: str, bucket: str, key: str, count: int) -> None:
    requests = []
    for number in range(count):
        written = START + timedelta(minutes=number)
        item = attributes(
            {
                "pk": f"versions#{bucket}/{key}",
                "sk": version_order(written, number + 1, f"v{number}"),
                "key": key,
                "workspace": "default",
                "version_id": f"v{number}",
                "kind": "written",
                "written_at": written,
                "serial": number + 1,
                "lineage": "L",
                "terraform_version": "1.11.4",
                "size": 20_000,
                "who": "ci@runner-7",
                "operation": "OperationTypeApply",
                "principal": "AWS:AROAEXAMPLE:ci",
                "resources": 40,
                "outputs": 2,
                "ra": 1,
                "rc": 2,
                "rr": 0,
                "index_stored": True,
                "changed": frozenset({f"+aws_instance.web[{number}]", "~aws_s3_bucket.logs"}),
            }
        )
        requests.append({"PutRequest": {"Item": item}})
    requests.append(
        {"PutRequest": {"Item": attributes({"pk": f"fleet#{bucket}", "sk": key, "history_complete": True})}}
    )
    batch_write(dynamodb, table, requests, "fill the bench versions")


def _backfill_rate() -> Figure:
    """Versions recorded per second by a backfill of states written before the guardian watched."""
    session = boto3.session.Session()
    s3, dynamodb = session.client("s3"), session.client("dynamodb")
    create_guardian_table(dynamodb, "bench-backfill")
    table = HistoryTable(dynamodb, "bench-backfill", retention=timedelta(days=400))
    bucket = "bench-backfill"
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    state = generate_state(50, serial=1, lineage="L", seed=9)
    for serial in range(1, BACKFILL_VERSIONS + 1):
        body = state_bytes({**state, "serial": serial, "resources": state["resources"][: 10 + serial % 40]})
        s3.put_object(Bucket=bucket, Key=f"team-{serial % 4}/terraform.tfstate", Body=body)
    container = composition.container().home
    backfill = Backfill(
        S3StateBucket(s3, bucket, header_bytes=4096, max_state_bytes=1 << 28),
        VersionHistory(table, container.index_store, bucket=bucket, workspace_key_prefixes=("env:",)),
        state_keys=StateKeyFilter((".tfstate",)),
    )
    started = time.perf_counter()
    progress = backfill.run(restart=True)
    elapsed = time.perf_counter() - started
    assert progress.done and progress.recorded == BACKFILL_VERSIONS, progress
    size_kb = len(state_bytes(state)) / 1000
    return Figure(
        f"backfill rate: {BACKFILL_VERSIONS} versions of states of about {size_kb:.0f} KB (read, indexed, recorded)",
        f"{BACKFILL_VERSIONS / elapsed:.0f} versions/s ({elapsed:.1f} s)",
        None,
        "—",
        None,
    )


def history_chart(points: list[PagePoint], path: Path) -> None:
    """Page time against the number of states or versions, beside the bare Query, as a PNG."""
    import matplotlib  # noqa: PLC0415 - only `make bench` draws

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    figure, axis = plt.subplots(figsize=(6.4, 3.6))
    sizes = [point.items for point in points]
    axis.plot(sizes, [p.states_ms for p in points], marker="o", label="GET /states, a page of 100")
    axis.plot(sizes, [p.versions_ms for p in points], marker="o", label="GET /states/versions, a page of 100")
    axis.plot(sizes, [p.states_query_ms for p in points], marker="o", linestyle="--", label="its bare Query")
    axis.plot(sizes, [p.versions_query_ms for p in points], marker="o", linestyle=":", label="its bare Query")
    axis.set_xscale("log")
    axis.set_xlabel("states in the fleet, or versions of the state")
    axis.set_ylabel("ms per page")
    axis.set_ylim(bottom=0)
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
