"""Issue 15, point 8: liveness evidence that needs no endpoint of the team's own, on the emulator's EC2 and a local
receiver answering as GitHub's REST API documents its runner list."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
from botocore.config import Config
from chalice.test import Client

from chalicelib.adapters.eni_liveness import NetworkInterfaceLivenessCheck
from chalicelib.adapters.github_runner_liveness import GitHubRunnerLivenessCheck
from chalicelib.adapters.secrets import SecretValue
from chalicelib.domain.locks import LockInfo
from chalicelib.errors import GuardianError
from local_stack.emulator import free_port
from tests.support.receiver import Receiver, receiver

TOKEN = "ghs_liveness-token-0f3a"  # what the receiver expects; never said anywhere else


def lock(who: str) -> LockInfo:
    return LockInfo.parse(
        json.dumps(
            {"ID": str(uuid.uuid4()), "Operation": "OperationTypeApply", "Info": "", "Who": who, "Version": "1.11.4",
             "Created": "2020-01-01T00:00:00.000000000Z", "Path": "b/k.tfstate"}
        )
    )  # fmt: skip


def interface_in_use(aws: boto3.session.Session, address: str) -> None:
    """An instance whose primary interface has `address`: the emulator says `in-use` only of an attached one."""
    ec2 = aws.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.1.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.1.2.0/24")["Subnet"]["SubnetId"]
    ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1, SubnetId=subnet, PrivateIpAddress=address)


# --- the EC2 network-interface check -----------------------------------------------------------------------------


def test_an_interface_in_use_is_alive_none_is_gone_and_anything_else_proves_nothing(aws) -> None:
    interface_in_use(aws, "10.1.2.3")
    ec2 = aws.client("ec2")
    subnet = ec2.describe_subnets()["Subnets"][0]["SubnetId"]
    ec2.create_network_interface(SubnetId=subnet, PrivateIpAddress="10.1.2.9")  # detached: available
    check = NetworkInterfaceLivenessCheck(ec2)
    assert check.is_alive(lock("ci@ip-10-1-2-3")) is True
    assert check.is_alive(lock("ci@ip-10-1-2-3.ec2.internal")) is True
    assert check.is_alive(lock("ci@ip-10-1-2-4")) is False
    assert check.is_alive(lock("ci@ip-10-1-2-9")) is None  # there, but attached to nothing
    assert check.is_alive(lock("ci@ip-10-1-2-4.eu-west-1.compute.internal")) is None  # another region's host
    assert check.is_alive(lock("ci@runner-7")) is None
    assert check.is_alive(lock("ci@ip-54-1-2-3")) is None  # a public address names no interface of ours


def test_a_failed_ec2_call_raises_and_never_says_gone(aws) -> None:
    config = Config(retries={"max_attempts": 1}, connect_timeout=1, read_timeout=1)
    nowhere = aws.client("ec2", endpoint_url=f"http://127.0.0.1:{free_port()}", config=config)
    with pytest.raises(GuardianError):
        NetworkInterfaceLivenessCheck(nowhere).is_alive(lock("ci@ip-10-1-2-4"))


# --- the GitHub Actions runner check ------------------------------------------------------------------------------


def runner(name: str, status: str = "online", busy: bool = False, number: int = 1) -> dict[str, Any]:
    """One runner as GitHub's REST API lists it (docs.github.com, "List self-hosted runners for a repository")."""
    return {
        "id": number,
        "runner_group_id": 1,
        "name": name,
        "os": "linux",
        "status": status,
        "busy": busy,
        "labels": [
            {"id": 1, "name": "self-hosted", "type": "read-only"},
            {"id": 2, "name": "Linux", "type": "read-only"},
            {"id": 3, "name": "X64", "type": "read-only"},
        ],
    }


def runner_list(*runners: dict[str, Any], total: int | None = None) -> bytes:
    return json.dumps({"total_count": len(runners) if total is None else total, "runners": list(runners)}).encode()


@pytest.fixture
def github(aws) -> Iterator[tuple[Receiver, str]]:
    """A receiver standing in for the API, and where the token is kept: in SSM, as a deployment keeps it."""
    name = f"/ci/github-token-{uuid.uuid4().hex}"  # Powertools caches a parameter by name for minutes
    aws.client("ssm").put_parameter(Name=name, Value=TOKEN, Type="SecureString")
    with receiver() as endpoint:
        yield endpoint, f"ssm:{name}"


def api_url(endpoint: Receiver) -> str:
    return endpoint.url.removesuffix("/hook")


def assert_asked_as_github_documents(endpoint: Receiver, path: str, name: str) -> None:
    for request in endpoint.requests:
        headers = {key.lower(): value for key, value in request.headers.items()}
        assert headers["authorization"] == f"Bearer {TOKEN}"
        assert headers["accept"] == "application/vnd.github+json"
        assert headers["x-github-api-version"] == "2022-11-28"
        assert headers.get("user-agent")  # GitHub refuses a request without one
        url = urlsplit(request.path)
        assert url.path == path
        query = parse_qs(url.query)
        assert (query["name"], query["per_page"]) == ([name], ["100"])


@pytest.mark.parametrize(
    ("runners", "alive"),
    [
        ([runner("runner-7", busy=True)], True),
        ([runner("runner-7")], False),  # online and idle: the job that took the lock has ended
        ([runner("runner-7", status="offline")], None),  # it may have lost GitHub while its job still runs
        ([], None),  # another repository's runner, or an ephemeral one already gone
        ([runner("runner-70", number=2)], None),  # a server that ignores `name` lists others
        ([runner("runner-7"), runner("runner-7", busy=True, number=2)], True),
    ],
    ids=["busy", "idle", "offline", "absent", "another name", "one of two busy"],
)
def test_a_runner_is_alive_while_busy_and_gone_when_online_and_idle(github, runners, alive) -> None:
    endpoint, token = github
    endpoint.answer = runner_list(*runners)
    check = GitHubRunnerLivenessCheck("acme/infra", SecretValue(token), api_url=api_url(endpoint))
    assert check.is_alive(lock("runner@runner-7")) is alive
    assert len(endpoint.requests) == 1
    assert_asked_as_github_documents(endpoint, "/repos/acme/infra/actions/runners", "runner-7")


def test_every_page_is_read_when_the_server_lists_every_runner(github) -> None:
    endpoint, token = github
    others = [runner(f"other-{n}", busy=True, number=n) for n in range(100)]

    def answer(path: str) -> bytes:
        page = parse_qs(urlsplit(path).query)["page"]
        return runner_list(*others, total=101) if page == ["1"] else runner_list(runner("runner-7"), total=101)

    endpoint.answer_for = answer
    check = GitHubRunnerLivenessCheck("org:acme", SecretValue(token), api_url=api_url(endpoint))
    assert check.is_alive(lock("runner@runner-7")) is False
    assert [parse_qs(urlsplit(r.path).query)["page"] for r in endpoint.requests] == [["1"], ["2"]]
    assert_asked_as_github_documents(endpoint, "/orgs/acme/actions/runners", "runner-7")


@pytest.mark.parametrize("failure", ["401", "500", "redirect", "not a runner list", "not JSON"])
def test_any_other_answer_raises_and_never_says_gone(github, failure: str) -> None:
    endpoint, token = github
    with receiver() as elsewhere:
        if failure == "redirect":
            endpoint.redirect_to = elsewhere.url
        elif failure.isdigit():
            endpoint.answer_status, endpoint.answer = int(failure), b'{"message": "Bad credentials"}'
        else:
            endpoint.answer = b'{"runners": {}}' if failure == "not a runner list" else b"<html>"
        check = GitHubRunnerLivenessCheck("acme/infra", SecretValue(token), api_url=api_url(endpoint))
        with pytest.raises(GuardianError) as raised:
            check.is_alive(lock("runner@runner-7"))
        assert elsewhere.requests == []  # a redirect is never followed
    assert TOKEN not in str(raised.value)


# --- the reaper with both checks, from the settings down ----------------------------------------------------------

AGE = timedelta(days=3650)


def put_lock(aws, stack, name: str, who: str) -> str:
    created = (datetime.now(UTC) - AGE).strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"
    lock_id = f"{stack.resources.state_bucket}/{name}/terraform.tfstate"
    info = json.dumps(
        {"ID": str(uuid.uuid4()), "Operation": "OperationTypeApply", "Info": "", "Who": who, "Version": "1.11.4",
         "Created": created, "Path": lock_id},
        separators=(",", ":"),
    )  # fmt: skip
    aws.client("dynamodb").put_item(
        TableName=stack.resources.lock_table, Item={"LockID": {"S": lock_id}, "Info": {"S": info}}
    )
    return lock_id


def held(aws, stack) -> set[str]:
    items = aws.client("dynamodb").scan(TableName=stack.resources.lock_table, ConsistentRead=True)["Items"]
    return {item["LockID"]["S"].split("/")[1] for item in items}


def test_a_gone_holder_is_released_after_the_shortened_wait_and_one_in_use_never(
    aws, github, stack_with, tmp_path: Path
) -> None:
    endpoint, token = github
    runners = {"gh-1": runner("gh-1"), "gh-2": runner("gh-2", busy=True, number=2)}
    endpoint.answer_for = lambda path: runner_list(
        *[runners[n] for n in parse_qs(urlsplit(path).query)["name"] if n in runners]
    )
    interface_in_use(aws, "10.1.2.3")
    stack = stack_with(
        extra_env={
            "GUARDIAN_REAP_TTL_S": "60",
            "GUARDIAN_REAP_GRACE_S": "3600",
            "GUARDIAN_REAP_GONE_GRACE_S": "0",
            "GUARDIAN_LIVENESS_ENI": "true",
            "GUARDIAN_LIVENESS_GITHUB": "acme/infra",
            "GUARDIAN_LIVENESS_GITHUB_TOKEN_SECRET": token,
            "GUARDIAN_LIVENESS_GITHUB_API_URL": api_url(endpoint),
        }
    )
    locks = {
        "no-interface": "ci@ip-10-1-2-4",
        "interface-in-use": "ci@ip-10-1-2-3.ec2.internal",
        "runner-idle": "runner@gh-1",
        "runner-busy": "runner@gh-2",
        "unknown-host": "ci@laptop",
    }
    for name, who in locks.items():
        put_lock(aws, stack, name, who)

    stack.run_scheduled()  # warned, each with the wait its evidence allows
    notifications = [json.loads(line) for line in (tmp_path / "notifications.jsonl").read_text().splitlines()]
    stale = {n["key"].split("/")[0]: n["details"] for n in notifications if n["type"] == "lock.stale"}
    assert set(stale) == {"no-interface", "runner-idle", "unknown-host"}
    assert stale["no-interface"]["evidence"]["gone_by"] == ["eni"]
    assert stale["runner-idle"]["evidence"]["gone_by"] == ["github-runner"]
    assert "gone_by" not in stale["unknown-host"]["evidence"]
    assert stale["no-interface"]["release_after"] < stale["unknown-host"]["release_after"]

    with Client(stack.app.app) as client:  # the API's dry run asks the same checks
        answer = client.http.post("/locks/reap", headers={"Content-Type": "application/json"}, body="{}").json_body
    actions = {lock["key"].split("/")[0]: (lock["verdict"], lock["action"]) for lock in answer["locks"]}
    assert actions["no-interface"] == actions["runner-idle"] == ("release", "would-release")
    assert actions["interface-in-use"] == actions["runner-busy"] == ("alive", "none")
    assert actions["unknown-host"] == ("waiting", "none")

    stack.run_scheduled()
    stack.run_scheduled()
    assert held(aws, stack) == {"interface-in-use", "runner-busy", "unknown-host"}
    reaped = [json.loads(line) for line in (tmp_path / "notifications.jsonl").read_text().splitlines()]
    assert {n["key"].split("/")[0] for n in reaped if n["type"] == "lock.reaped"} == {"no-interface", "runner-idle"}
