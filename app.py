"""tfstate-guardian's deployed surface: the Chalice app, its event handlers and routes (wiring only)."""

# Each function deploys this whole module but runs one handler: what a handler alone needs is imported in it,
# so that a cold start pays only for its own.
# ruff: noqa: PLC0415

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from chalice.app import BadRequestError, Chalice, CloudWatchEvent, IAMAuthorizer, Rate, Response

from chalicelib import invocation
from chalicelib.composition import container
from chalicelib.errors import InvalidRequestError
from chalicelib.observability import logger, metrics

if TYPE_CHECKING:
    from chalicelib.composition import Container
    from chalicelib.domain.access import Scope
    from chalicelib.services.fleet_queries import Fleet

UNKNOWN_CALLER = "unknown caller"
app = Chalice(app_name="tfstate-guardian", configure_logs=False)
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


# The S3 and stream handlers are plain functions: `python -m deploy harden` subscribes them to every backend's bucket
# (a notification beside the bucket's others, or an EventBridge rule) and lock table stream.
@app.lambda_function(name="on_state_object_event")
def on_state_object_event(event: dict[str, Any], context: Any) -> None:
    from chalicelib.domain.s3_events import parse_object_events

    container().events.handle_objects(parse_object_events(event))


@app.lambda_function(name="on_lock_table_change")
def on_lock_table_change(event: dict[str, Any], context: Any) -> None:
    container().events.handle_lock_records(event)


@app.schedule(Rate(1, unit=Rate.MINUTES))
def verify_state_digests(event: CloudWatchEvent) -> None:
    _per_backend(event, "verify_state_digests", lambda backend: backend.digests.verify(datetime.now(UTC)))


@app.schedule(Rate(5, unit=Rate.MINUTES))
def reap_stale_locks(event: CloudWatchEvent) -> None:
    _per_backend(event, "reap_stale_locks", lambda backend: backend.reaper.run(datetime.now(UTC)))


@app.schedule(Rate(10, unit=Rate.MINUTES))
def backfill_history(event: CloudWatchEvent) -> None:
    _per_backend(event, "backfill_history", lambda backend: backend.backfill.run(time_left=invocation.time_to_wait))


def _per_backend(event: CloudWatchEvent, job: str, work: Callable[[Container], object]) -> None:
    """The schedule's invocation, or one invocation's share of the backends (its `detail`: `{"backends": [...]}`)."""
    function = getattr(event.context, "function_name", "") or ""
    container().per_backend(job, event.to_dict(), work, function=function)


@app.route("/locks/reap", methods=["POST"], authorizer=iam)
def reap_locks_now() -> Response:
    def reap(fleet: Fleet) -> dict[str, Any]:
        body = _json_body() or {}
        dry_run = body.get("dry_run", True) if isinstance(body, dict) else None  # acting needs an explicit false
        if not isinstance(dry_run, bool):
            raise InvalidRequestError('the body must be a JSON object like {"dry_run": true}')
        return fleet.reap(datetime.now(UTC), dry_run)

    return _fleet_answer(reap, action="reap")


@app.route("/rollback", methods=["POST"], authorizer=iam, content_types=["application/json"])
def rollback() -> Response:
    from chalicelib.domain.rollback import RollbackRequest

    return _answer(
        lambda backend, scope: backend.rollbacks.rollback(
            RollbackRequest.parse(_json_body()), scope=scope, now=datetime.now(UTC)
        ),
        action="rollback",
    )


@app.route("/states", methods=["GET"], authorizer=iam)
def list_states() -> Response:
    from chalicelib.services.state_queries import page_limit

    return _fleet_answer(
        lambda fleet: fleet.states(
            _param("prefix", required=False), limit=page_limit(_param("limit", required=False)),
            next_token=_param("next", required=False) or None, workspace=_param("workspace", required=False) or None,
        )
    )  # fmt: skip


@app.route("/states/versions", methods=["GET"], authorizer=iam)
def list_state_versions() -> Response:
    from chalicelib.services.state_queries import page_limit

    return _answer(
        lambda backend, scope: backend.queries.versions(
            _param("key"), scope, limit=page_limit(_param("limit", required=False)),
            next_token=_param("next", required=False) or None, address=_param("address", required=False) or None,
        )
    )  # fmt: skip


@app.route("/events", methods=["GET"], authorizer=iam)
def list_events() -> Response:
    from chalicelib.services.state_queries import moment_param, page_limit

    def events(backend: Container, scope: Scope, admits: Callable[[str, str], bool] | None = None) -> dict[str, Any]:
        filters = {name: value for name in ("prefix", "type", "actor") if (value := _param(name, required=False))}
        return backend.queries.events(
            scope,
            key=_param("key", required=False) or None,
            filters=filters,
            since=moment_param(_param("since", required=False), "since"),
            until=moment_param(_param("until", required=False), "until"),
            limit=page_limit(_param("limit", required=False)),
            next_token=_param("next", required=False) or None,
            now=datetime.now(UTC),
            admits=admits,
        )

    if _param("key", required=False):  # one state's trail: in one backend
        return _answer(lambda backend, scope: _named(backend, events(backend, scope)))
    guardian = container()
    return _fleet_answer(lambda fleet: fleet.events(lambda scope, admits: events(guardian.home, scope, admits)))


@app.route("/states/diff", methods=["GET"], authorizer=iam)
def diff_state_versions() -> Response:
    return _answer(lambda backend, scope: backend.queries.diff(_param("key"), _param("from"), _param("to"), scope))


@app.route("/states/digest", methods=["POST"], authorizer=iam)
def repair_state_digest() -> Response:
    return _answer(
        lambda backend, scope: backend.repairs.repair_digest(_param("key"), scope, now=datetime.now(UTC)),
        action="repair",
    )


@app.route("/locks", methods=["GET"], authorizer=iam)
def list_locks() -> Response:
    return _fleet_answer(lambda fleet: {"locks": fleet.locks(datetime.now(UTC))})


@app.route("/locks", methods=["DELETE"], authorizer=iam)
def force_unlock() -> Response:
    return _answer(
        lambda backend, scope: backend.repairs.force_unlock(
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


def _answer(call: Callable[[Container, Scope], dict[str, Any]], *, action: str = "read") -> Response:
    """A route on one state: in the backend `backend=` names (needed only when there are several), for the caller's
    scope there; the answer names the backend."""

    def work(backend: Container, scope: Scope) -> dict[str, Any]:
        return {**call(backend, scope), "backend": backend.name}

    return _respond(lambda guardian: [guardian.named(_backend_param())], work, action=action)


def _fleet_answer(call: Callable[[Fleet], dict[str, Any]], *, action: str = "read") -> Response:
    """A route across backends (`backend=` narrows it to one): each where the caller may take `action`."""
    from chalicelib.services.fleet_queries import BackendView, Fleet

    views: list[BackendView] = []

    def gather(backend: Container, scope: Scope) -> None:
        views.append(BackendView(backend.name, backend.settings.state_bucket, backend.queries, backend.repairs, scope))

    def work(backend: Container, scope: Scope) -> dict[str, Any]:
        return call(Fleet(views))

    return _respond(lambda guardian: guardian.selected(_backend_param()), work, action=action, gather=gather)


def _named(backend: Container, answer: dict[str, Any]) -> dict[str, Any]:
    return {**answer, "events": [{**event, "backend": backend.name} for event in answer["events"]]}


def _backend_param() -> str | None:
    return _param("backend", required=False) or None


def _respond(
    backends_of: Callable[[Any], list[Container]],
    work: Callable[[Container, Scope], dict[str, Any]],
    *,
    action: str,
    gather: Callable[[Container, Scope], None] | None = None,
) -> Response:
    """Run a route's work through the API's error table and `Idempotency-Key` handling, after checking the caller's
    action in each backend it covers: a backend where the caller may not is left out, and refused when none is left."""
    from chalicelib.api import answer
    from chalicelib.errors import NotAllowedError

    request = app.current_request
    if request is None:
        raise InvalidRequestError("no request")
    guardian = container()
    caller = _caller()
    allowed: list[tuple[Container, Scope]] = []

    def authorize() -> None:
        refusal: NotAllowedError | None = None
        for backend in backends_of(guardian):
            scope = backend.access.scope_for(caller)
            try:
                scope.require(action)
            except NotAllowedError as exc:
                refusal = refusal or exc
                continue
            allowed.append((backend, scope))
            if gather is not None:
                gather(backend, scope)
        if not allowed:
            assert refusal is not None
            raise refusal

    status, body = answer(
        lambda: work(*allowed[0]),
        authorize=authorize,
        method=request.method,
        path=request.path,
        caller=caller,
        idempotency_key=request.headers.get("idempotency-key"),
        fingerprint_of=lambda: [request.query_params, request.raw_body],
        ledger=guardian.guardian_table,
    )
    return Response(body=body, status_code=status)


@app.route("/health", methods=["GET"], authorizer=iam)
def health() -> dict[str, str]:
    return {"status": "ok"}
