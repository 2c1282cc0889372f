"""`LocalStack`: the emulator, the resources, the event sources, the scheduled jobs and the REST API, together."""

from __future__ import annotations

import importlib
import json
import os
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, TextIO

import boto3
from chalice.config import Config
from chalice.local import CustomLocalChalice, LocalChalice, LocalDevServer

from chalicelib import composition
from chalicelib.domain.backends import DEFAULT_NAME, EVENTBRIDGE, S3_NOTIFICATIONS
from chalicelib.settings import backend_settings, load_settings
from guardian_cli.ui_server import ListenError, UiServer, Upstream
from local_stack.acting import ActingRequestHandler
from local_stack.bridge_source import bridge_event
from local_stack.emulator import HOST, MotoServer, PortInUseError, check_port_free, free_port
from local_stack.lambda_runtime import AppHandlers, LocalFanOut, invoke
from local_stack.provision import Resources, provision, provision_backend
from local_stack.s3_source import VersionWatcher
from local_stack.stream_source import BATCH_SIZE, StreamPoller, is_unchanged_modify, without_local_fields

REGION = "us-east-1"
S3_ATTEMPTS = 3  # Lambda tries an asynchronous (S3) invocation three times
STREAM_ATTEMPTS = 5  # Lambda would retry a stream batch for a day; locally the stack moves on sooner


@dataclass(frozen=True)
class LocalBackend:
    """One backend of the local stack: its bucket, its lock table (None: lockfiles only), how its events come."""

    name: str
    bucket: str
    lock_table: str | None = None
    events: str = S3_NOTIFICATIONS
    settings: Mapping[str, str] = field(default_factory=dict)  # its own GUARDIAN_* settings

    def entry(self) -> dict[str, Any]:
        """Its entry in `GUARDIAN_BACKENDS`."""
        entry: dict[str, Any] = {"name": self.name, "bucket": self.bucket, "events": self.events}
        if self.lock_table:
            entry["lock_table"] = self.lock_table
        return entry | ({"settings": dict(self.settings)} if self.settings else {})


@dataclass
class StackOptions:
    """How to run the local stack. Ports of None mean: a free one (AWS), no API, no status page."""

    notify_file: Path
    work_dir: Path
    log: TextIO
    console: TextIO | None = None
    aws_port: int | None = None
    api_port: int | None = None
    page_port: int | None = None  # the status page (`tfguardian ui`'s server, unsigned); it needs the API
    emulator_endpoint: str | None = None  # use an emulator that is already running
    state_bucket: str = "tfstate-guardian-local"
    lock_table: str = "tfstate-guardian-locks"
    guardian_table: str = "tfstate-guardian"
    topic: str = "tfstate-guardian-notifications"
    index_bucket: str = "tfstate-guardian-local-indexes"
    poll_interval_s: float = 0.5
    schedule_interval_s: float = 10.0
    app_module: str = "app"
    extra_env: dict[str, str] = field(default_factory=dict)
    # Several backends (`GUARDIAN_BACKENDS`); none: the one of `state_bucket` and `lock_table`, as a lone deployment.
    backends: tuple[LocalBackend, ...] = ()


S3_EVENTS_PER_ROUND = 20


class LocalStack:
    """The whole guardian on one machine."""

    def __init__(self, options: StackOptions) -> None:
        self.options = options
        self.emulator: MotoServer | None = None
        self.endpoint = options.emulator_endpoint or ""
        self.resources: Resources | None = None
        self.app: ModuleType | None = None
        self.api_url: str | None = None
        self.page_url: str | None = None
        self._page_server: UiServer | None = None
        self._handlers: AppHandlers | None = None
        self._watchers: list[tuple[VersionWatcher, LocalBackend]] = []
        self._pollers: list[StreamPoller] = []
        self._s3_queue: deque[tuple[dict[str, Any], int]] = deque()
        self._stream_attempts = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._api_server: Any = None
        self._pump_lock = threading.Lock()

    def start(self) -> None:
        """Bring everything up; raises `PortInUseError` before starting anything if a port is taken."""
        options = self.options
        if options.api_port is not None:
            check_port_free(options.api_port, "GUARDIAN_API_PORT")
        if options.page_port is not None:
            check_port_free(options.page_port, "GUARDIAN_PAGE_PORT")
        if not self.endpoint:
            port = options.aws_port if options.aws_port is not None else free_port()
            check_port_free(port, "GUARDIAN_AWS_PORT")
            self.emulator = MotoServer(port, log_path=options.work_dir / "emulator.log")
            self.emulator.start()
            self.endpoint = self.emulator.endpoint
        self._point_at_emulator()
        session = boto3.session.Session()
        first = self.backends[0]
        self.resources = provision(
            session,
            state_bucket=first.bucket,
            lock_table=first.lock_table or options.lock_table,
            guardian_table=options.guardian_table,
            topic=options.topic,
            index_bucket=options.index_bucket,
        )
        streams = {self.resources.lock_table: self.resources.lock_table_stream_arn}
        for backend in options.backends[1:]:
            stream_arn = provision_backend(session, backend.bucket, backend.lock_table)
            if backend.lock_table and stream_arn:
                streams[backend.lock_table] = stream_arn
        self._configure_guardian(self.resources)
        # What the buckets held before the guardian watched them: recorded now, as the scheduled backfill would.
        for container in composition.container().backends.values():
            container.backfill.run()
        for backend in self.backends:
            watcher = VersionWatcher(session.client("s3"), backend.bucket, REGION, "tfstate-guardian")
            watcher.baseline()
            self._watchers.append((watcher, backend))
        for stream_arn in streams.values():
            poller = StreamPoller(session.client("dynamodbstreams"), stream_arn, REGION)
            poller.baseline()
            self._pollers.append(poller)
        if options.api_port is not None or options.page_port is not None:
            self._start_api(options.api_port if options.api_port is not None else free_port())
        if options.page_port is not None:
            self._start_page(options.page_port)

    @property
    def backends(self) -> tuple[LocalBackend, ...]:
        options = self.options
        return options.backends or (LocalBackend(DEFAULT_NAME, options.state_bucket, options.lock_table),)

    def _point_at_emulator(self) -> None:
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
            os.environ.pop(name, None)
        os.environ.update(
            AWS_ENDPOINT_URL=self.endpoint,
            AWS_ACCESS_KEY_ID="test",
            AWS_SECRET_ACCESS_KEY="test",
            AWS_DEFAULT_REGION=REGION,
            AWS_REGION=REGION,
        )

    def _configure_guardian(self, resources: Resources) -> None:
        env = resources.guardian_env()
        for name in ("GUARDIAN_BACKENDS", "GUARDIAN_BACKENDS_FILE", "GUARDIAN_STATE_BUCKET", "GUARDIAN_LOCK_TABLE"):
            os.environ.pop(name, None)  # a stack started before in this process may have set them
        if self.options.backends:
            del env["GUARDIAN_STATE_BUCKET"], env["GUARDIAN_LOCK_TABLE"]
            env["GUARDIAN_BACKENDS"] = json.dumps([backend.entry() for backend in self.options.backends])
        os.environ.update(
            env,
            GUARDIAN_NOTIFY_FILE=str(self.options.notify_file),
            GUARDIAN_NOTIFY_CONSOLE="true" if self.options.console else "false",
            # Messages link to each state's page where this stack serves one.
            **({"GUARDIAN_PAGE_URL": f"http://{HOST}:{self.options.page_port}/"} if self.options.page_port else {}),
            **self.options.extra_env,
        )
        load_settings.cache_clear()
        self.app = importlib.import_module(self.options.app_module)
        self._handlers = AppHandlers.of(self.app)
        guardian = composition.Guardian.of(backend_settings(), console=self.options.console)
        # A schedule's invocation hands each backend to an invocation of its own, as the deployed one does.
        guardian.fan_out = LocalFanOut(self._handlers, self.options.log)
        composition.install(guardian)

    def _start_api(self, port: int) -> None:
        assert self.app is not None
        config = Config.create(chalice_app=self.app.app, app_name="tfstate-guardian", chalice_stage="local")
        if not isinstance(self.app.app, LocalChalice):  # as `create_local_server` makes the app serve locally
            CustomLocalChalice.__bases__ = (LocalChalice, self.app.app.__class__)
            self.app.app.__class__ = CustomLocalChalice
        self._api_server = LocalDevServer(self.app.app, config, HOST, port, handler_cls=ActingRequestHandler)
        # Polled often: `stop` waits for the loop to notice its shutdown (half a second at the default).
        server = self._api_server.server
        thread = threading.Thread(target=lambda: server.serve_forever(poll_interval=0.05), name="rest-api", daemon=True)
        thread.start()
        self._threads.append(thread)
        self.api_url = f"http://{HOST}:{port}"

    def _start_page(self, port: int) -> None:
        """The status page, as `tfguardian ui` serves it, forwarding to this stack's API unsigned."""
        assert self.api_url is not None
        try:
            self._page_server = UiServer(Upstream(self.api_url, signer=None), port)
        except ListenError:  # taken since it was checked
            raise PortInUseError(f"port {port} on {HOST} is in use; set GUARDIAN_PAGE_PORT to another") from None
        self._page_server.start()
        self.page_url = self._page_server.url

    def pump(self, max_s3_events: int | None = None) -> int:
        """Deliver every S3 event and stream record that is waiting; the number of invocations made.

        With `max_s3_events`, S3 events beyond that many stay queued for the next call, so that a caller can run
        the scheduled jobs in between under a backlog, as Lambda runs them beside the event handlers.
        """
        with self._pump_lock:
            # Stream records first: a lock is taken before the state write it covers.
            return self._pump_stream() + self._pump_s3(max_s3_events)

    def _poll_buckets(self) -> list[dict[str, Any]]:
        """Each bucket's changes, as its backend receives them: S3 notifications, or EventBridge's events."""
        events: list[dict[str, Any]] = []
        for watcher, backend in self._watchers:
            for event in watcher.poll():
                delivered = bridge_event(event, REGION) if backend.events == EVENTBRIDGE else event
                if delivered is not None:
                    events.append(delivered)
        return events

    def _pump_s3(self, limit: int | None) -> int:
        assert self._handlers is not None
        self._s3_queue.extend((event, 0) for event in self._poll_buckets())
        invocations = 0
        waiting = len(self._s3_queue)
        for _ in range(waiting if limit is None else min(limit, waiting)):
            event, failures = self._s3_queue.popleft()
            for name, handler in self._handlers.s3:
                invocations += 1
                if invoke(name, handler, event, self.options.log):
                    continue
                if failures + 1 < S3_ATTEMPTS:
                    self._s3_queue.append((event, failures + 1))
                else:
                    self._report(f"gave up on an S3 event after {S3_ATTEMPTS} attempts of {name}")
        return invocations

    def _pump_stream(self) -> int:
        return sum(self._pump_one_stream(poller) for poller in self._pollers)

    def _pump_one_stream(self, poller: StreamPoller) -> int:
        assert self._handlers is not None
        records = poller.poll()
        invocations = 0
        for start in range(0, len(records), BATCH_SIZE):
            batch = records[start : start + BATCH_SIZE]
            delivered = [without_local_fields(r) for r in batch if not is_unchanged_modify(r)]
            ok = True
            if delivered:
                for name, handler in self._handlers.dynamodb:
                    invocations += 1
                    ok = invoke(name, handler, {"Records": delivered}, self.options.log) and ok
            if not ok:
                self._stream_attempts += 1
                if self._stream_attempts < STREAM_ATTEMPTS:
                    break  # the same batch again on the next pump, as Lambda retries a stream batch
                self._report(f"skipped a stream batch after {STREAM_ATTEMPTS} failed attempts")
            self._stream_attempts = 0
            poller.acknowledge(batch)
        return invocations

    def take_events(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The S3 events and stream batches waiting, taken out of the stack for a caller to deliver by hand (as a
        test that stops an invocation half-way does); `pump` will not deliver them again."""
        with self._pump_lock:
            batches = []
            for poller in self._pollers:
                records = poller.poll()
                poller.acknowledge(records)
                batches += [
                    {"Records": [without_local_fields(r) for r in records[start : start + BATCH_SIZE]
                                 if not is_unchanged_modify(r)]}
                    for start in range(0, len(records), BATCH_SIZE)
                ]  # fmt: skip
            return self._poll_buckets(), [batch for batch in batches if batch["Records"]]

    def run_scheduled(self) -> int:
        """Run every scheduled job once, with a scheduled event in the EventBridge shape."""
        assert self._handlers is not None
        for name, handler in self._handlers.scheduled:
            event = {
                "version": "0",
                "id": f"local-{time.time_ns()}",
                "detail-type": "Scheduled Event",
                "source": "aws.events",
                "account": "123456789012",
                "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "region": REGION,
                "resources": [f"arn:aws:events:{REGION}:123456789012:rule/tfstate-guardian-local-{name}"],
                "detail": {},
            }
            invoke(name, handler, event, self.options.log)
        return len(self._handlers.scheduled)

    def run_in_background(self) -> None:
        """Deliver events every poll interval and run the scheduled jobs every schedule interval."""
        thread = threading.Thread(target=self._loop, name="event-sources", daemon=True)
        thread.start()
        self._threads.append(thread)

    def _loop(self) -> None:
        next_schedule = time.monotonic() + self.options.schedule_interval_s
        while not self._stop.is_set():
            delivered = 0
            try:
                # A bounded round, so that the scheduled jobs run on time under a backlog too.
                delivered = self.pump(max_s3_events=S3_EVENTS_PER_ROUND)
                if time.monotonic() >= next_schedule:
                    self.run_scheduled()
                    next_schedule = time.monotonic() + self.options.schedule_interval_s
            except Exception as exc:  # noqa: BLE001 - the emulator may be restarting; try again next round
                self._report(f"event source error: {exc}")
            if delivered < S3_EVENTS_PER_ROUND:
                self._stop.wait(self.options.poll_interval_s)

    def _report(self, message: str) -> None:
        self.options.log.write(message + "\n")
        self.options.log.flush()
        if self.options.console:
            self.options.console.write(f"guardian: {message} (details in the log)\n")
            self.options.console.flush()

    def stop(self) -> None:
        """Stop everything this stack started."""
        self._stop.set()
        if self._page_server is not None:
            self._page_server.stop()
        if self._api_server is not None:
            self._api_server.shutdown()
            self._api_server.server.server_close()
        for thread in self._threads:
            thread.join(timeout=10)
        if self.emulator is not None:
            self.emulator.stop()


@contextmanager
def started_stack(directory: Path, emulator_endpoint: str, **options: Any) -> Iterator[LocalStack]:
    """A stack on an emulator already running, its notifications, log and work files in `directory`: started, then
    stopped and the guardian it installed taken away (the benchmarks' and the browser tests' stacks)."""
    with (directory / "guardian.log").open("w", encoding="utf-8") as log:
        stack = LocalStack(
            StackOptions(
                notify_file=directory / "notifications.jsonl",
                work_dir=directory,
                log=log,
                emulator_endpoint=emulator_endpoint,
                **options,
            )
        )
        stack.start()
        try:
            yield stack
        finally:
            stack.stop()
            composition.install(None)
