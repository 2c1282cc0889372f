"""Teams and PagerDuty against local receivers that check each service's documented request, and the messages
people act on end to end: the command a Slack message gives restores the state, and PagerDuty's incident resolves.
"""

from __future__ import annotations

import json
import re
import shlex
import urllib.request
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters

from chalicelib.adapters.guardian_table import GuardianTable
from chalicelib.adapters.secrets import SecretValue
from chalicelib.channels.http import post_json
from chalicelib.channels.pagerduty import PagerDutyChannel
from chalicelib.channels.teams import TeamsChannel, teams_body
from chalicelib.domain.incidents import incident_key
from chalicelib.errors import ChannelDeliveryError
from chalicelib.services.notifier import Notifier
from local_stack.emulator import free_port
from local_stack.provision import provision
from tests.support import example_notifications as examples
from tests.support.cli import tfguardian
from tests.support.events import state_bytes
from tests.support.receiver import Receiver, receiver, slack_problems
from tests.support.teams_api import cards, text_runs

ROUTING_KEY = examples.ROUTING_KEY


@pytest.fixture(autouse=True)
def fresh_parameters() -> None:
    parameters.clear_caches()  # type: ignore[no-untyped-call]


@pytest.fixture
def ledger(aws: boto3.session.Session) -> GuardianTable:
    resources = provision(aws, state_bucket="states", lock_table="locks", guardian_table="guardian", topic="t")
    return GuardianTable(aws.client("dynamodb"), resources.guardian_table)


def secret(aws: boto3.session.Session, name: str, value: str) -> SecretValue:
    aws.client("ssm").put_parameter(Name=name, Value=value, Type="SecureString", Overwrite=True)
    return SecretValue(f"ssm:{name}")


def events(pagerduty: Receiver) -> list[tuple[str, str]]:
    return [(json.loads(r.body)["event_action"], json.loads(r.body)["dedup_key"]) for r in pagerduty.requests]


def test_teams_gets_an_adaptive_card_as_documented(aws) -> None:
    with receiver(kind="teams") as teams:
        TeamsChannel(secret(aws, "/guardian/teams", teams.url)).send(examples.deleted())
    assert teams.refused == []
    (request,) = teams.requests
    assert request.headers["Content-Type"] == "application/json"
    (card,) = cards(json.loads(request.body))
    assert f"ci@runner-7 (apply, lock {examples.lock().id})" in text_runs(card)


def test_the_teams_receiver_refuses_a_bad_card_and_the_channel_says_so(aws) -> None:
    good = json.loads(teams_body(examples.deleted()))
    with receiver(kind="teams") as teams:
        with pytest.raises(ChannelDeliveryError, match="answered 400"):
            post_json(teams.url, json.dumps({**good, "type": "card"}).encode(), {}, "the Teams webhook")
        too_large = {**good, "attachments": [{**good["attachments"][0], "content": {"type": "AdaptiveCard",
                     "version": "1.2", "body": [{"type": "TextBlock", "text": "x" * 30_000}]}}]}  # fmt: skip
        with pytest.raises(ChannelDeliveryError, match="answered 413"):
            post_json(teams.url, json.dumps(too_large).encode(), {}, "the Teams webhook")
    assert len(teams.refused) == 2 and teams.requests == []


def test_a_teams_refusal_in_a_200_answer_is_a_failure(aws) -> None:
    """Legacy connectors answer throttling with 200 and `Microsoft Teams endpoint returned HTTP error 429`."""
    with receiver(kind="teams") as teams:
        teams.post_answer = b"Microsoft Teams endpoint returned HTTP error 429"
        with pytest.raises(ChannelDeliveryError, match="refused"):
            TeamsChannel(secret(aws, "/guardian/teams", teams.url)).send(examples.deleted())


@pytest.mark.parametrize("kind", ["teams", "pagerduty"])
def test_teams_and_pagerduty_never_follow_a_redirect(aws, kind: str) -> None:
    with receiver() as elsewhere, receiver(kind=kind) as service:
        service.redirect_to = elsewhere.url
        channel: Any = (
            TeamsChannel(secret(aws, "/guardian/teams", service.url))
            if kind == "teams"
            else PagerDutyChannel(secret(aws, "/guardian/pd", ROUTING_KEY), events_url=service.url)
        )
        with pytest.raises(ChannelDeliveryError, match="answered 302"):
            channel.send(examples.deleted())
    assert elsewhere.requests == []


def test_the_slack_receiver_refuses_what_block_kit_does_not_take(aws) -> None:
    too_long = {"text": "t", "blocks": [{"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}]}
    with receiver(kind="slack") as slack, pytest.raises(ChannelDeliveryError, match="answered 400"):
        post_json(slack.url, json.dumps(too_long).encode(), {}, "the Slack webhook")
    assert slack.requests == [] and "a header of 151 characters" in slack.refused[0]


def test_pagerduty_pages_once_for_critical_only_and_the_restore_resolves(aws, ledger: GuardianTable) -> None:
    with receiver(kind="pagerduty") as pagerduty:
        channel = PagerDutyChannel(secret(aws, "/guardian/pd", ROUTING_KEY), events_url=pagerduty.url)
        notifier = Notifier([channel], ledger, sleep=lambda s: None)
        notifier.notify_all([examples.changed(), examples.stale(), examples.deleted(), examples.mismatch()])
        notifier.notify(examples.deleted())  # a replay of the event
        notifier.notify(examples.restored())
    assert pagerduty.refused == []
    state, digest = (incident_key(examples.BUCKET, examples.KEY, family) for family in ("state", "digest"))
    assert events(pagerduty) == [("trigger", state), ("trigger", digest), ("resolve", state), ("resolve", digest)]
    # What PagerDuty does not take is not claimed in its ledger either: nothing is waiting to be delivered there.
    claims = ledger.claim_deliveries([examples.changed().id, examples.stale().id], "pagerduty", now=0, lease_s=1)
    assert claims.delivered == set()


def test_pagerduty_down_is_retried_then_delivered_once(aws, ledger: GuardianTable) -> None:
    with receiver(kind="pagerduty") as pagerduty:
        pagerduty.fail_next, pagerduty.fail_status = 2, 429
        channel = PagerDutyChannel(secret(aws, "/guardian/pd", ROUTING_KEY), events_url=pagerduty.url)
        notifier = Notifier([channel], ledger, sleep=lambda s: None)
        notifier.notify(examples.deleted())
        notifier.notify(examples.deleted())
    assert [action for action, _ in events(pagerduty)] == ["trigger"]


def test_the_pagerduty_receiver_refuses_a_bad_event(aws) -> None:
    with receiver(kind="pagerduty") as pagerduty:
        bad = {"routing_key": ROUTING_KEY, "event_action": "trigger", "payload": {"summary": "s" * 1025}}
        with pytest.raises(ChannelDeliveryError, match="answered 400"):
            post_json(pagerduty.url, json.dumps(bad).encode(), {}, "PagerDuty")
    assert pagerduty.requests == [] and "payload.summary" in pagerduty.refused[0]


def code_blocks(text: str) -> list[str]:
    return [part.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
            for part in re.findall(r"```(.*?)```", text, re.DOTALL)]  # fmt: skip


def section(message: dict[str, Any], block_id: str) -> str:
    (found,) = [b["text"]["text"] for b in message["blocks"] if b.get("block_id") == block_id]
    return str(found)


def test_the_commands_in_the_messages_restore_and_repair_and_pagerduty_resolves(aws, stack_with) -> None:
    """A state deleted, then its digest broken: each message's command fixes it, and each incident resolves."""
    key = "team a/app/terraform.tfstate"
    with receiver(kind="slack") as slack, receiver(kind="teams") as teams, receiver(kind="pagerduty") as pagerduty:
        secret(aws, "/guardian/slack", slack.url)
        secret(aws, "/guardian/teams", teams.url)
        secret(aws, "/guardian/pd", ROUTING_KEY)
        local = stack_with(
            api_port=free_port(),
            extra_env={
                "GUARDIAN_SLACK_WEBHOOK_SECRET": "ssm:/guardian/slack",
                "GUARDIAN_TEAMS_WEBHOOK_SECRET": "ssm:/guardian/teams",
                "GUARDIAN_PAGERDUTY_ROUTING_KEY_SECRET": "ssm:/guardian/pd",
                "GUARDIAN_PAGERDUTY_EVENTS_URL": pagerduty.url,
                "GUARDIAN_PAGE_URL": "http://127.0.0.1:8056/",
                "GUARDIAN_DIGEST_GRACE_S": "0",
            },
        )
        bucket, s3 = local.resources.state_bucket, aws.client("s3")
        first = s3.put_object(Bucket=bucket, Key=key, Body=state_bytes("state_tf1.11.4_first_apply_serial1.json"))
        local.pump()
        s3.delete_object(Bucket=bucket, Key=key)
        local.pump()

        # Slack says what to run; running it as given (with --yes, as a script would) restores the state.
        (deleted,) = [json.loads(r.body) for r in slack.requests if "State deleted" in r.body.decode()]
        assert slack_problems(deleted) == []
        (command,) = code_blocks(section(deleted, "remedy"))
        argv = shlex.split(command)
        assert argv[:3] == ["tfguardian", "rollback", key] and argv[4] == first["VersionId"]
        ran = tfguardian(local, *argv[1:], "--yes")
        assert ran.returncode == 0, ran.stdout + ran.stderr
        local.pump()
        restored = s3.get_object(Bucket=bucket, Key=key)
        assert json.loads(restored["Body"].read())["serial"] == 2

        # A write whose digest Terraform never wrote: Teams gives the REST call that repairs it.
        s3.put_object(Bucket=bucket, Key=key, Body=state_bytes("state_tf1.11.4_second_apply_serial2.json"))
        local.pump()
        local.run_scheduled()
        mismatches = [cards(json.loads(r.body))[0] for r in teams.requests if b"Digest mismatch" in r.body]
        assert len(mismatches) == 1
        (api_call,) = [run for run in text_runs(mismatches[0]) if run.startswith("POST /states/digest?")]
        method, target = api_call.split(" ")
        request = urllib.request.Request(local.api_url + target, method=method)
        with urllib.request.urlopen(request, timeout=30) as answer:
            assert answer.status == 200
        local.pump()

    assert slack.refused == teams.refused == pagerduty.refused == []
    state, digest = (incident_key(bucket, key, family) for family in ("state", "digest"))
    assert events(pagerduty) == [("trigger", state), ("resolve", state), ("resolve", digest), ("trigger", digest),
                                 ("resolve", digest)]  # fmt: skip
    page_links = [link for r in slack.requests for link in re.findall(r"<(http://127[^|]*)\|", r.body.decode())]
    assert page_links and {link.replace("&amp;", "&") for link in page_links} == {  # as Slack reads `&amp;`
        "http://127.0.0.1:8056/#/state?key=team%20a%2Fapp%2Fterraform.tfstate&backend=default"
    }
