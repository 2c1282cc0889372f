"""tfstate-guardian's deployed surface: the Chalice app, its event handlers and routes (wiring only)."""

# Each function deploys this whole module but runs one handler: what a handler alone needs is imported in it,
# so that a cold start pays only for its own.
# ruff: noqa: PLC0415

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from chalice.app import (
    BadRequestError,
    Chalice,
    CloudWatchEvent,
    DynamoDBEvent,
    IAMAuthorizer,
    Rate,
    Response,
    S3Event,
)

from chalicelib import invocation
from chalicelib.composition import container
from chalicelib.errors import InvalidRequestError
from chalicelib.observability import logger, metrics
from chalicelib.settings import event_sources

if TYPE_CHECKING:
    from chalicelib.domain.access import Scope

UNKNOWN_CALLER = "unknown caller"
app = Chalice(app_name="tfstate-guardian", configure_logs=False)
sources = event_sources()
iam = IAMAuthorizer()


@app.middleware("all")
def observe(event: Any, get_response: Any) -> Any:
    """Attach the request id to every log line, note the invocation's deadline, flush its metrics."""
    context = getattr(event, "context", None) or getattr(app, "lambda_context", None)
    request_id = getattr(context, "aws_request_id", None)
    if request_id:
        logger.append_keys(request_id=request_id)
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    invocation.begin(remaining() if remaining else None)
    try:
        return get_response(event)
    finally:
        invocation.end()
        if metrics.metric_set:
            metrics.flush_metrics()
        logger.remove_keys(["request_id"])


@app.on_s3_event(bucket=sources.state_bucket, events=["s3:ObjectCreated:*", "s3:ObjectRemoved:*"])
def on_state_object_event(event: S3Event) -> None:
    from chalicelib.domain.s3_events import parse_s3_event

    container().bucket_events.handle(parse_s3_event(event.to_dict()))


@app.on_dynamodb_record(stream_arn=sources.lock_table_stream_arn, batch_size=100, starting_position="LATEST")
def on_lock_table_change(event: DynamoDBEvent) -> None:
    from chalicelib.domain.lock_table import parse_lock_table_batch

    guardian = container()
    guardian.locks.handle_stream(parse_lock_table_batch(event.to_dict(), guardian.settings.lock_table))


@app.schedule(Rate(1, unit=Rate.MINUTES))
def verify_state_digests(event: CloudWatchEvent) -> None:
    container().digests.verify(datetime.now(UTC))


@app.schedule(Rate(5, unit=Rate.MINUTES))
def reap_stale_locks(event: CloudWatchEvent) -> None:
    container().reaper.run(datetime.now(UTC))


@app.schedule(Rate(10, unit=Rate.MINUTES))
def backfill_history(event: CloudWatchEvent) -> None:
    container().backfill.run(time_left=invocation.time_to_wait)


@app.route("/locks/reap", methods=["POST"], authorizer=iam)
def reap_locks_now() -> Response:
    def reap(scope: Scope) -> dict[str, Any]:
        body = _json_body() or {}
        dry_run = body.get("dry_run", True) if isinstance(body, dict) else None  # acting needs an explicit false
        if not isinstance(dry_run, bool):
            raise InvalidRequestError('the body must be a JSON object like {"dry_run": true}')
        return container().repairs.reap(datetime.now(UTC), dry_run, scope)

    return _answer(reap, action="reap")


@app.route("/rollback", methods=["POST"], authorizer=iam, content_types=["application/json"])
def rollback() -> Response:
    from chalicelib.domain.rollback import RollbackRequest

    return _answer(
        lambda scope: container().rollbacks.rollback(
            RollbackRequest.parse(_json_body()), scope=scope, now=datetime.now(UTC)
        ),
        action="rollback",
    )


@app.route("/states", methods=["GET"], authorizer=iam)
def list_states() -> Response:
    from chalicelib.services.state_queries import page_limit

    return _answer(
        lambda scope: container().queries.states(
            _param("prefix", required=False), scope, limit=page_limit(_param("limit", required=False)),
            next_token=_param("next", required=False) or None, workspace=_param("workspace", required=False) or None,
        )
    )  # fmt: skip


@app.route("/states/versions", methods=["GET"], authorizer=iam)
def list_state_versions() -> Response:
    from chalicelib.services.state_queries import page_limit

    return _answer(
        lambda scope: container().queries.versions(
            _param("key"), scope, limit=page_limit(_param("limit", required=False)),
            next_token=_param("next", required=False) or None, address=_param("address", required=False) or None,
        )
    )  # fmt: skip


@app.route("/events", methods=["GET"], authorizer=iam)
def list_events() -> Response:
    from chalicelib.services.state_queries import moment_param, page_limit

    def events(scope: Scope) -> dict[str, Any]:
        filters = {name: value for name in ("prefix", "type", "actor") if (value := _param(name, required=False))}
        return container().queries.events(
            scope,
            key=_param("key", required=False) or None,
            filters=filters,
            since=moment_param(_param("since", required=False), "since"),
            until=moment_param(_param("until", required=False), "until"),
            limit=page_limit(_param("limit", required=False)),
            next_token=_param("next", required=False) or None,
            now=datetime.now(UTC),
        )

    return _answer(events)


@app.route("/states/diff", methods=["GET"], authorizer=iam)
def diff_state_versions() -> Response:
    return _answer(lambda scope: container().queries.diff(_param("key"), _param("from"), _param("to"), scope))


@app.route("/states/digest", methods=["POST"], authorizer=iam)
def repair_state_digest() -> Response:
    return _answer(
        lambda scope: container().repairs.repair_digest(_param("key"), scope, now=datetime.now(UTC)), action="repair"
    )


@app.route("/locks", methods=["GET"], authorizer=iam)
def list_locks() -> Response:
    return _answer(lambda scope: {"locks": container().queries.locks(datetime.now(UTC), scope)})


@app.route("/locks", methods=["DELETE"], authorizer=iam)
def force_unlock() -> Response:
    return _answer(
        lambda scope: container().repairs.force_unlock(
            _param("key"), _param("lock_id"), scope, reason=_param("reason", required=False), now=datetime.now(UTC)
        ),
        action="unlock",
    )


def _param(name: str, *, required: bool = True) -> str:
    params: Any = (app.current_request.query_params if app.current_request else None) or {}
    value = params.get(name, "")
    if required and not value:
        raise InvalidRequestError(f"the query parameter {name} is required")
    return str(value)


def _json_body() -> Any:
    try:
        return app.current_request.json_body if app.current_request else None
    except (BadRequestError, RecursionError):  # Python's JSON decoder recurses once per level of nesting
        raise InvalidRequestError("the body is not valid JSON") from None


def _caller() -> str:
    """The IAM identity that signed the request, as API Gateway passes it on."""
    request = app.current_request
    identity = (request.context.get("identity") or {}) if request else {}
    return str(identity.get("userArn") or identity.get("caller") or UNKNOWN_CALLER)


def _answer(call: Callable[[Scope], dict[str, Any]], *, action: str = "read") -> Response:
    """Run a route's work for the caller's scope, through the API's error table and `Idempotency-Key` handling."""
    from chalicelib.api import answer

    request = app.current_request
    if request is None:
        raise InvalidRequestError("no request")
    guardian = container()
    scope = guardian.access.scope_for(_caller())
    status, body = answer(
        lambda: call(scope),
        authorize=lambda: scope.require(action),
        method=request.method,
        path=request.path,
        caller=scope.caller,
        idempotency_key=request.headers.get("idempotency-key"),
        fingerprint_of=lambda: [request.query_params, request.raw_body],
        ledger=guardian.guardian_table,
    )
    return Response(body=body, status_code=status)


@app.route("/health", methods=["GET"], authorizer=iam)
def health() -> dict[str, str]:
    return {"status": "ok"}
