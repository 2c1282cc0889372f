"""tfstate-guardian's deployed surface: the Chalice app, its event handlers and routes (wiring only)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from chalice.app import BadRequestError, Chalice, CloudWatchEvent, DynamoDBEvent, IAMAuthorizer, Rate, S3Event

from chalicelib.composition import container
from chalicelib.domain.lock_table import parse_lock_table_batch
from chalicelib.domain.s3_events import parse_s3_event
from chalicelib.observability import logger, metrics
from chalicelib.settings import load_settings

app = Chalice(app_name="tfstate-guardian", configure_logs=False)
settings = load_settings()
iam = IAMAuthorizer()


@app.middleware("all")
def observe(event: Any, get_response: Any) -> Any:
    """Attach the request id to every log line and flush the metrics of each invocation."""
    context = getattr(event, "context", None) or getattr(app, "lambda_context", None)
    request_id = getattr(context, "aws_request_id", None)
    if request_id:
        logger.append_keys(request_id=request_id)
    try:
        return get_response(event)
    finally:
        if metrics.metric_set:
            metrics.flush_metrics()
        logger.remove_keys(["request_id"])


@app.on_s3_event(bucket=settings.state_bucket, events=["s3:ObjectCreated:*", "s3:ObjectRemoved:*"])
def on_state_object_event(event: S3Event) -> None:
    container().bucket_events.handle(parse_s3_event(event.to_dict()))


@app.on_dynamodb_record(stream_arn=settings.lock_table_stream_arn, batch_size=100, starting_position="LATEST")
def on_lock_table_change(event: DynamoDBEvent) -> None:
    guardian = container()
    guardian.locks.handle_stream(parse_lock_table_batch(event.to_dict(), guardian.settings.lock_table))


@app.schedule(Rate(1, unit=Rate.MINUTES))
def verify_state_digests(event: CloudWatchEvent) -> None:
    container().digests.verify(datetime.now(UTC))


@app.schedule(Rate(5, unit=Rate.MINUTES))
def reap_stale_locks(event: CloudWatchEvent) -> None:
    container().reaper.run(datetime.now(UTC))


@app.route("/locks/reap", methods=["POST"], authorizer=iam)
def reap_locks_now() -> dict[str, Any]:
    body = (app.current_request.json_body if app.current_request else None) or {}
    dry_run = body.get("dry_run", True) if isinstance(body, dict) else None  # acting needs an explicit false
    if not isinstance(dry_run, bool):
        raise BadRequestError('the body must be a JSON object like {"dry_run": true}')
    outcomes = container().reaper.run(datetime.now(UTC), dry_run=dry_run)
    return {"dry_run": dry_run, "locks": [outcome.to_dict() for outcome in outcomes]}


@app.route("/health", methods=["GET"], authorizer=iam)
def health() -> dict[str, str]:
    return {"status": "ok"}
