"""A stage as `chalice deploy` leaves it on the moto server, for the deploy commands' tests, and the emulator shims.

moto stores a function's zip without running it (its `Invoke` needs Docker), so the functions here are stubs: the
deploy commands only read their ARNs and write their settings.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.client import BaseClient

from deploy.sources import FUNCTIONS

APP = "tfstate-guardian"
STAGE = "test"
HOME_ACCOUNT = "123456789012"  # moto's account for the default credentials
READS = ("Get", "Describe", "Head", "List")


def function_name(handler: str) -> str:
    return f"{APP}-{STAGE}-{handler}"


def deployed_functions(aws: boto3.session.Session) -> dict[str, str]:
    """Every function of app.py, as stubs moto stores: handler → function ARN."""
    trust = {"Version": "2012-10-17", "Statement": []}
    role = aws.client("iam").create_role(RoleName=f"{APP}-{STAGE}", AssumeRolePolicyDocument=json.dumps(trust))
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("app.py", "def handler(event, context):\n    return None\n")
    lambda_client = aws.client("lambda")
    return {
        handler: str(
            lambda_client.create_function(
                FunctionName=function_name(handler),
                Runtime="python3.11",
                Role=role["Role"]["Arn"],
                Handler="app.handler",
                Code={"ZipFile": code.getvalue()},
            )["FunctionArn"]
        )
        for handler in FUNCTIONS
    }


def lock_table(session: boto3.session.Session, name: str, *, stream: bool = True) -> str | None:
    """A team's lock table; its stream's ARN."""
    spec = {"StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}} if stream else {}
    table = session.client("dynamodb").create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "LockID", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "LockID", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        **spec,  # type: ignore[arg-type]
    )
    return table["TableDescription"].get("LatestStreamArn")


def write_config(tmp_path: Path, stage_env: dict[str, str]) -> Path:
    config = {
        "version": "2.0",
        "app_name": APP,
        "environment_variables": {"GUARDIAN_TABLE": f"{APP}-{STAGE}"},
        "stages": {STAGE: {"environment_variables": stage_env}},
    }
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


def recording_session() -> tuple[boto3.session.Session, list[str]]:
    """A session like the command's own, noting the name of every AWS operation its clients call."""
    session = boto3.session.Session()
    calls: list[str] = []
    session.events.register("before-parameter-build", lambda model, **_: calls.append(model.name))
    return session, calls


def writes(calls: list[str]) -> list[str]:
    return [call for call in calls if not call.startswith(READS)]


@contextmanager
def all_calls() -> Iterator[list[str]]:
    """Every AWS operation any client of this process calls meanwhile, whatever its session (a backend's session
    through its role is a session of its own, which `recording_session` does not see)."""
    calls: list[str] = []
    original = BaseClient._make_api_call  # type: ignore[attr-defined]

    def recorded(self: BaseClient, operation_name: str, api_params: dict[str, Any]) -> Any:
        calls.append(operation_name)
        return original(self, operation_name, api_params)

    BaseClient._make_api_call = recorded  # type: ignore[attr-defined]
    try:
        yield calls
    finally:
        BaseClient._make_api_call = original  # type: ignore[attr-defined]


def keep_eventbridge_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    """Emulator workaround: moto stores a bucket's `EventBridgeConfiguration` (and sends the events) but leaves it
    out of `GetBucketNotificationConfiguration`'s answer, where AWS returns it. Every client of this process gets
    it back in that answer from the last configuration put on the bucket meanwhile (test harness only)."""
    enabled: dict[str, bool] = {}
    original = BaseClient._make_api_call  # type: ignore[attr-defined]

    def patched(self: BaseClient, operation_name: str, api_params: dict[str, Any]) -> Any:
        answer = original(self, operation_name, api_params)
        if operation_name == "PutBucketNotificationConfiguration":
            configuration = api_params.get("NotificationConfiguration", {})
            enabled[api_params["Bucket"]] = "EventBridgeConfiguration" in configuration
        elif operation_name == "GetBucketNotificationConfiguration" and enabled.get(api_params["Bucket"]):
            answer = {**answer, "EventBridgeConfiguration": {}}
        return answer

    monkeypatch.setattr(BaseClient, "_make_api_call", patched)


def drop_remove_permission_revision(monkeypatch: pytest.MonkeyPatch) -> None:
    """Emulator workaround: moto's `RemovePermission` reads its `RevisionId` query parameter as a list and so refuses
    every revision as outdated (PreconditionFailedException). The test harness drops the `RevisionId` from that call
    (the product still sends it; AWS checks it against `GetPolicy`'s)."""
    original = BaseClient._make_api_call  # type: ignore[attr-defined]

    def patched(self: BaseClient, operation_name: str, api_params: dict[str, Any]) -> Any:
        if operation_name == "RemovePermission":
            api_params = {name: value for name, value in api_params.items() if name != "RevisionId"}
        return original(self, operation_name, api_params)

    monkeypatch.setattr(BaseClient, "_make_api_call", patched)
