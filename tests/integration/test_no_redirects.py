"""Issue 12, point 10: webhook, Slack and liveness requests never follow a redirect; the liveness URL is checked."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters

from chalicelib.adapters.guardian_table import GuardianTable
from chalicelib.adapters.http_liveness import HttpLivenessCheck
from chalicelib.adapters.secrets import SecretValue
from chalicelib.channels.slack import SlackChannel
from chalicelib.channels.webhook import WebhookChannel
from chalicelib.domain.locks import LockInfo
from chalicelib.domain.notifications import Notification, NotificationType, Severity
from chalicelib.errors import ChannelDeliveryError, SettingsError, TransientAwsError
from chalicelib.services.notifier import Notifier
from chalicelib.settings import Settings
from deploy.__main__ import main as deploy_main
from local_stack.provision import provision
from tests.support.receiver import receiver

REDIRECTS = [301, 302, 303, 307, 308]
REQUIRED = {
    "GUARDIAN_STATE_BUCKET": "tfstate",
    "GUARDIAN_LOCK_TABLE": "tf-locks",
    "GUARDIAN_LOCK_TABLE_STREAM_ARN": "arn:aws:dynamodb:us-east-1:123456789012:table/tf-locks/stream/x",
    "GUARDIAN_TABLE": "tfstate-guardian",
}


def notification(id: str = "n1") -> Notification:
    return Notification(
        id=id,
        type=NotificationType.STATE_DELETED,
        severity=Severity.CRITICAL,
        occurred_at=datetime(2026, 11, 26, 11, 5, 21, tzinfo=UTC),
        bucket="tfstate",
        key="prod/terraform.tfstate",
        workspace="default",
        summary="prod: deleted (delete marker)",
        details={"version_id": "v1"},
    )


def lock(who: str = "ci@runner-7") -> LockInfo:
    return LockInfo(
        id="0b7a5f1e-aaaa-bbbb-cccc-000000000001",
        operation="OperationTypeApply",
        who=who,
        version="1.11.4",
        created="2026-11-26T11:00:00.123456789Z",
        path="tfstate/prod/terraform.tfstate",
    )


@pytest.fixture(autouse=True)
def fresh_parameters() -> None:
    parameters.clear_caches()  # type: ignore[no-untyped-call]


@pytest.mark.parametrize("status", REDIRECTS)
def test_the_webhook_does_not_follow_a_redirect(aws: boto3.session.Session, status: int) -> None:
    aws.client("ssm").put_parameter(Name="/guardian/hook", Value="k", Type="SecureString")
    with receiver() as elsewhere, receiver() as hook:
        hook.redirect_to, hook.redirect_status = elsewhere.url, status
        with pytest.raises(ChannelDeliveryError, match=f"answered {status}"):
            WebhookChannel(hook.url, SecretValue("ssm:/guardian/hook")).send(notification())
    assert hook.redirected == ["/hook"]
    assert elsewhere.requests == [] and elsewhere.redirected == []


@pytest.mark.parametrize("status", [301, 302, 307])
def test_slack_does_not_follow_a_redirect(aws: boto3.session.Session, status: int) -> None:
    with receiver() as elsewhere, receiver(kind="slack") as slack:
        slack.redirect_to, slack.redirect_status = elsewhere.url, status
        aws.client("ssm").put_parameter(Name="/guardian/slack", Value=slack.url, Type="SecureString")
        with pytest.raises(ChannelDeliveryError, match=f"answered {status}"):
            SlackChannel(SecretValue("ssm:/guardian/slack")).send(notification())
    assert elsewhere.requests == []


def test_a_redirect_is_retried_and_reported_like_a_server_error(aws: boto3.session.Session) -> None:
    resources = provision(aws, state_bucket="states", lock_table="locks", guardian_table="guardian", topic="t")
    ledger = GuardianTable(aws.client("dynamodb"), resources.guardian_table)
    aws.client("ssm").put_parameter(Name="/guardian/hook", Value="k", Type="SecureString")
    sleeps: list[float] = []
    with receiver() as elsewhere, receiver() as hook:
        hook.redirect_to, hook.redirect_status = elsewhere.url, 302
        notifier = Notifier([WebhookChannel(hook.url, SecretValue("ssm:/guardian/hook"))], ledger, sleep=sleeps.append)
        with pytest.raises(ChannelDeliveryError, match="webhook"):
            notifier.notify(notification())
        assert len(hook.redirected) == 3 and sleeps == [0.5, 1.0]  # three attempts with backoff, as for a 503
        hook.redirect_to = None
        notifier.notify(notification())  # the retry of the event delivers, to the configured URL only
    assert len(hook.requests) == 1 and elsewhere.requests == []


@pytest.mark.parametrize("status", [301, 302, 307])
def test_the_liveness_check_does_not_follow_a_redirect(status: int) -> None:
    with receiver() as elsewhere, receiver() as endpoint:
        elsewhere.answer = b'{"alive": false}'
        endpoint.redirect_to, endpoint.redirect_status = elsewhere.url, status
        with pytest.raises(TransientAwsError, match=str(status)):
            HttpLivenessCheck(endpoint.url + "?who={who}&id={id}").is_alive(lock())
    assert len(endpoint.redirected) == 1 and elsewhere.requests == []


def test_each_liveness_value_is_quoted_whole() -> None:
    with receiver() as endpoint:
        endpoint.answer = b'{"alive": true}'
        check = HttpLivenessCheck(endpoint.url + "/{operation}?who={who}&id={id}")
        assert check.is_alive(lock(who="ci/job?x=1&y=2#frag @host")) is True
    (request,) = endpoint.requests
    assert request.path == (
        "/hook/OperationTypeApply?who=ci%2Fjob%3Fx%3D1%26y%3D2%23frag%20%40host&id=0b7a5f1e-aaaa-bbbb-cccc-000000000001"
    )


@pytest.mark.parametrize(
    "template",
    [
        "https://ci.example.com/alive?who={user}",  # unknown placeholder
        "https://ci.example.com/alive?who={who.__class__}",
        "https://ci.example.com/alive?who={}",
        "https://ci.example.com/alive?who={0}",
        "https://ci.example.com/alive?who={who",  # malformed
        "https://ci.example.com/alive?who=}",
        "https://ci.example.com/alive?who={who!r}",
        "https://ci.example.com/alive?who={who:>20}",
        "https://{who}.example.com/alive",  # a lock holder must not choose the host
        "https://ci.example.com:{id}/alive",
        "{operation}://ci.example.com/alive",
        "http://ci.example.com/alive?who={who}",  # plain HTTP off this machine
    ],
)
def test_a_bad_liveness_template_is_refused_when_settings_load(template: str) -> None:
    with pytest.raises(SettingsError, match="GUARDIAN_LIVENESS_URL"):
        Settings.from_env({**REQUIRED, "GUARDIAN_LIVENESS_URL": template})


@pytest.mark.parametrize(
    "template",
    [
        "https://ci.example.com/alive?who={who}&id={id}&operation={operation}",
        "https://ci.example.com/jobs/{id}/alive?json={{}}",
        "http://127.0.0.1:8080/alive?who={who}",
    ],
)
def test_a_good_liveness_template_loads(template: str) -> None:
    assert Settings.from_env({**REQUIRED, "GUARDIAN_LIVENESS_URL": template}).liveness_url == template


def test_prepare_refuses_a_bad_liveness_template_naming_the_setting(
    aws: boto3.session.Session, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = {
        "version": "2.0",
        "app_name": "tfstate-guardian",
        "stages": {
            "test": {
                "environment_variables": {
                    **REQUIRED,
                    "GUARDIAN_LIVENESS_URL": "https://ci.example.com/alive?who={user}",
                }
            }
        },
    }
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    code = deploy_main(["prepare", "--stage", "test", "--config", str(path)], session=aws)
    assert code == 1
    error = capsys.readouterr().err
    assert "GUARDIAN_LIVENESS_URL" in error and "{user}" in error
    assert aws.client("dynamodb").list_tables()["TableNames"] == []
