"""Fixtures shared by every layer: the moto server over HTTP, the local stack in-process, real Terraform."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from chalicelib import composition
from local_stack.emulator import MotoServer, free_port
from local_stack.stack import REGION, LocalStack, StackOptions


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
