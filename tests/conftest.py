"""Fixtures shared by every layer: the moto server over HTTP, the local stack in-process, real Terraform."""

from __future__ import annotations

import base64
import contextvars
import functools
import json
import logging
import os
import pickle
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from aws_lambda_powertools import Metrics
from chalice.app import EventSourceHandler
from chalice.local import LocalGateway

from chalicelib import composition, observability
from chalicelib.observability import SERVICE, logger
from chalicelib.services.notifier import Notifier
from chalicelib.settings import Settings
from local_stack.emulator import MotoServer, free_port
from local_stack.stack import REGION, LocalStack, StackOptions
from tests.support.secrets import leaks

# Everything the guardian said during the current test: notifications, log lines, metrics and API response bodies.
_SURFACES: list[tuple[str, str]] = []
# Chalice deploys every route of the app as one function of this name.
API_FUNCTION = "api_handler"


@dataclass(frozen=True)
class AwsCall:
    """One AWS call of the guardian's own clients, with the function that made it and the resources it knew."""

    function: str | None  # the Lambda function running it; None when a test called a service directly
    service: str
    operation: str
    params: dict[str, Any]  # as passed to the client, without a `Body`
    settings: Settings  # the calling container's settings: which bucket, tables and channels are its own


# Every AWS call the guardian's own clients made in this process.
AWS_CALLS: list[AwsCall] = []
# Where each process of a run split over several (`make test`) leaves the AWS calls it recorded, for the policy check
# that a last process runs over all of them (`recorded_calls`). Unset, a run's calls stay in its one process.
CALLS_DIR = os.environ.get("GUARDIAN_AWS_CALLS_DIR")
# The function whose handler runs in this context: set around each event handler and each API request.
_RUNNING_FUNCTION: contextvars.ContextVar[str | None] = contextvars.ContextVar("running_function", default=None)


class _Collect(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        _SURFACES.append(("log", self.format(record)))


@pytest.fixture(scope="session", autouse=True)
def _watch_what_the_guardian_says() -> Iterator[None]:
    handler = _Collect()
    handler.setFormatter(logger.registered_formatter)
    handler.setLevel(logging.DEBUG)
    service_logger = logging.getLogger(SERVICE)
    level = service_logger.level
    service_logger.addHandler(handler)
    service_logger.setLevel(logging.DEBUG)  # debug lines must not leak either
    notify_all, flush, handle_request = Notifier.notify_all, Metrics.flush_metrics, LocalGateway.handle_request
    emit = observability.emit

    def watched_notify_all(self: Notifier, notifications: Any) -> None:  # `notify` sends through it too
        for notification in notifications:
            _SURFACES.append(("notification", json.dumps(notification.to_dict())))
        notify_all(self, notifications)

    def watched_flush(self: Metrics, *args: Any, **kwargs: Any) -> None:
        _SURFACES.append(("metrics", json.dumps(self.serialize_metric_set())))
        flush(self, *args, **kwargs)

    def watched_emit(record: object) -> None:  # the counts with dimensions, each an EMF record of its own
        _SURFACES.append(("metrics", json.dumps(record)))
        emit(record)

    def watched_request(self: LocalGateway, *args: Any, **kwargs: Any) -> Any:
        # Every API answer, whether from `chalice.test.Client` or the local stack's server, goes through here.
        response = handle_request(self, *args, **kwargs)
        body = response.get("body") or ""
        if response.get("isBase64Encoded"):
            body = base64.b64decode(body)
        _SURFACES.append(("api response", body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)))
        return response

    Notifier.notify_all = watched_notify_all  # type: ignore[method-assign]
    Metrics.flush_metrics = watched_flush  # type: ignore[method-assign]
    observability.emit = watched_emit
    LocalGateway.handle_request = watched_request  # type: ignore[method-assign]
    yield
    Notifier.notify_all, Metrics.flush_metrics = notify_all, flush  # type: ignore[method-assign]
    observability.emit = emit
    LocalGateway.handle_request = handle_request  # type: ignore[method-assign]
    service_logger.removeHandler(handler)
    service_logger.setLevel(level)


@pytest.fixture(scope="session", autouse=True)
def _record_aws_calls() -> Iterator[None]:
    """Record each AWS call of the guardian's clients with the function running it, for tests/test_iam_policy.py.

    An event handler runs as its event source's name (Chalice names the function after the handler), whether the
    local stack's Lambda runtime or a test invokes it; an API request, through the local gateway that both
    `chalice.test.Client` and the local stack's server use, runs as the API function. Work a handler hands to a
    thread pool runs as that handler too, as it does in its Lambda container.
    """
    handle_request, call_handler = LocalGateway.handle_request, EventSourceHandler.__call__
    submit = ThreadPoolExecutor.submit

    def running(function: str, call: Any, *args: Any, **kwargs: Any) -> Any:
        token = _RUNNING_FUNCTION.set(function)
        try:
            return call(*args, **kwargs)
        finally:
            _RUNNING_FUNCTION.reset(token)

    def request_as_api(self: LocalGateway, *args: Any, **kwargs: Any) -> Any:
        return running(API_FUNCTION, handle_request, self, *args, **kwargs)

    def event_as_its_function(self: EventSourceHandler, event: Any, context: Any) -> Any:
        func = getattr(self.func, "_original_func", self.func)  # `@app.lambda_function`'s are wrapped once more
        return running(func.__name__, call_handler, self, event, context)

    def submit_in_context(self: ThreadPoolExecutor, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        return submit(self, contextvars.copy_context().run, fn, *args, **kwargs)

    def recorder(settings: Any) -> Any:
        def record(model: Any, params: dict[str, Any], **_: Any) -> None:
            kept = {name: value for name, value in params.items() if name != "Body"}
            owner = _backend_of_call(kept, settings)
            call = AwsCall(_RUNNING_FUNCTION.get(), model.service_model.service_name, model.name, kept, owner)
            AWS_CALLS.append(call)

        return record

    def recorded_session(self: composition.Container) -> boto3.session.Session:
        session = boto3.session.Session()
        session.events.register("before-parameter-build", recorder(self.settings))
        return session

    original_session = composition.Container.__dict__["_session"]
    recording = functools.cached_property(recorded_session)
    recording.__set_name__(composition.Container, "_session")
    composition.Container._session = recording  # type: ignore[assignment]
    # A backend elsewhere (another region, another account's role) is reached with a session of its own: recorded too.
    original_backend_session = composition.Container.__dict__["_backend_session"]

    def recorded_backend_session(self: composition.Container) -> boto3.session.Session:
        session: boto3.session.Session = original_backend_session.func(self)
        if session is not self._session:
            session.events.register("before-parameter-build", recorder(self.settings))
        return session

    backend_recording = functools.cached_property(recorded_backend_session)
    backend_recording.__set_name__(composition.Container, "_backend_session")
    composition.Container._backend_session = backend_recording  # type: ignore[assignment]
    LocalGateway.handle_request = request_as_api  # type: ignore[method-assign]
    EventSourceHandler.__call__ = event_as_its_function  # type: ignore[method-assign]
    ThreadPoolExecutor.submit = submit_in_context  # type: ignore[method-assign,assignment]
    yield
    if CALLS_DIR and AWS_CALLS:
        Path(CALLS_DIR).mkdir(parents=True, exist_ok=True)
        (Path(CALLS_DIR) / f"calls-{os.getpid()}.pickle").write_bytes(pickle.dumps(AWS_CALLS))
    ThreadPoolExecutor.submit = submit  # type: ignore[method-assign]
    EventSourceHandler.__call__ = call_handler  # type: ignore[method-assign]
    LocalGateway.handle_request = handle_request  # type: ignore[method-assign]
    composition.Container._session = original_session  # type: ignore[method-assign]
    composition.Container._backend_session = original_backend_session  # type: ignore[method-assign]


def recorded_calls() -> list[AwsCall]:
    """Every AWS call of the run: those the other processes of the run left in `CALLS_DIR`, and this process's."""
    return [*_left_by_other_processes(), *AWS_CALLS]


@functools.cache
def _left_by_other_processes() -> list[AwsCall]:
    kept: list[AwsCall] = []
    for path in sorted(Path(CALLS_DIR).glob("calls-*.pickle")) if CALLS_DIR else []:
        kept += pickle.loads(path.read_bytes())
    return kept


def _backend_of_call(params: dict[str, Any], settings: Settings) -> Settings:
    """The settings of the backend a call is about: the backends of a guardian share its clients, so the one whose
    bucket the call names (as `Bucket`, or at the head of a lock item's key) rather than the client's owner."""
    guardian = composition._installed  # the guardian running now, whichever test installed it
    if guardian is None or len(guardian.backends) == 1:
        return settings
    text = json.dumps(params, default=str)
    named = [
        backend.settings
        for backend in guardian.backends.values()
        if params.get("Bucket") == backend.settings.state_bucket or f'"{backend.settings.state_bucket}/' in text
    ]
    return max(named, key=lambda found: len(found.state_bucket)) if named else settings


@pytest.fixture(autouse=True)
def no_planted_secret_is_ever_said() -> Iterator[None]:
    """States hold secrets in plaintext: none may reach a notification, a log line, a metric or an API answer."""
    _SURFACES.clear()
    yield
    found = [(where, secret) for where, text in _SURFACES for secret in leaks(text)]
    assert not found, f"planted secrets were said: {found}"


@pytest.fixture(autouse=True)
def _no_count_left_by_another_test() -> None:
    """A count made outside a handler waits in the one `metrics` for the next handler's flush: a test's own counts are
    never flushed in another's (which one runs before which depends on how a run is split)."""
    observability.metrics.clear_metrics()


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """One moto server on a free port of 127.0.0.1 for the whole run; tests reset it."""
    server = MotoServer(free_port(), log_path=tmp_path_factory.mktemp("moto") / "moto.log")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def aws(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> boto3.session.Session:
    """A boto3 session on a freshly reset emulator."""
    moto_server.reset()
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    return boto3.session.Session()


class RunningStack:
    """A started local stack with helpers to read what it delivered."""

    def __init__(self, stack: LocalStack, notify_file: Path, log_file: Path) -> None:
        self.stack = stack
        self.notify_file = notify_file
        self.log_file = log_file

    @property
    def resources(self) -> Any:
        assert self.stack.resources is not None
        return self.stack.resources

    @property
    def app(self) -> Any:
        """The app module, whose handlers take raw Lambda events as Lambda calls them."""
        assert self.stack.app is not None
        return self.stack.app

    def pump(self) -> int:
        return self.stack.pump()

    def notifications(self) -> list[dict[str, Any]]:
        if not self.notify_file.exists():
            return []
        return [json.loads(line) for line in self.notify_file.read_text().splitlines()]

    def failures(self) -> str:
        text = self.log_file.read_text()
        return "\n".join(line for line in text.splitlines() if "failed" in line or "gave up" in line)


@pytest.fixture
def stack(aws: boto3.session.Session, moto_server: MotoServer, tmp_path: Path) -> Iterator[RunningStack]:
    """The local stack in this process, on the shared emulator; events are delivered by `pump()`."""
    log_file = tmp_path / "guardian.log"
    notify_file = tmp_path / "notifications.jsonl"
    saved_env = dict(os.environ)
    with log_file.open("w", encoding="utf-8") as log:
        local = LocalStack(
            StackOptions(
                notify_file=notify_file,
                work_dir=tmp_path,
                log=log,
                emulator_endpoint=moto_server.endpoint,
                # Digest suspects are looked at again on the next scheduled run, however soon.
                extra_env={"GUARDIAN_DIGEST_GRACE_S": "0"},
            )
        )
        local.start()
        try:
            yield RunningStack(local, notify_file, log_file)
        finally:
            local.stop()
            composition.install(None)
            _restore_env(saved_env)


@pytest.fixture
def stack_with(aws: boto3.session.Session, moto_server: MotoServer, tmp_path: Path) -> Iterator[Any]:
    """Start a local stack with options of the test's own (a REST API port, another app) on the shared emulator."""
    started: list[LocalStack] = []
    log = (tmp_path / "stack.log").open("w", encoding="utf-8")
    saved_env = dict(os.environ)

    def start(**options: Any) -> LocalStack:
        local = LocalStack(
            StackOptions(
                notify_file=tmp_path / "notifications.jsonl",
                work_dir=tmp_path,
                log=log,
                emulator_endpoint=moto_server.endpoint,
                **options,
            )
        )
        local.start()
        started.append(local)
        return local

    try:
        yield start
    finally:
        for local in started:
            local.stop()
        log.close()
        composition.install(None)
        _restore_env(saved_env)


def _restore_env(saved: dict[str, str]) -> None:
    """A stack writes its settings (and a test's `extra_env`) into os.environ: none may reach the next test."""
    os.environ.clear()
    os.environ.update(saved)


# Tests that share what is costly to set up (real Terraform's working directories and stacks, the browser) or write
# the same files (Chalice's package cache in .chalice/deployments), by path: in a run split over several processes
# (`pytest -n 2 --dist loadgroup`, as `make test` runs), each group runs in one of them.
_SHARING = {
    "tests/e2e/": "terraform",
    "tests/browser/": "browser",
    "tests/integration/test_terraform_package.py": "chalice package",
    "tests/integration/test_deploy_whole.py": "chalice package",
}


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked `last` look at what the whole run did: they go at the end. Tests that share go together."""
    items.sort(key=lambda item: item.get_closest_marker("last") is not None)
    for item in items:
        path = item.nodeid.split("::")[0]
        group = next((name for prefix, name in _SHARING.items() if path.startswith(prefix)), None)
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))
