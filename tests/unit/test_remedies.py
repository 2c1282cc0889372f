"""What to do about a notification: exact commands for this state and version, and links to its page."""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

import pytest

from chalicelib.domain.briefs import TOP_ADDRESSES, brief
from chalicelib.domain.notifications import Notification
from chalicelib.domain.page_links import state_page_url
from chalicelib.domain.remedies import remedy_for
from guardian_cli.args import parser
from tests.support import example_notifications as examples

HOSTILE_KEY = 'team a/it\'s $(rm -rf ~)/`x`;&|<b>"q"/terraform.tfstate'


def api_parts(api_call: str) -> tuple[str, str, dict[str, list[str]], object]:
    method, _, rest = api_call.partition(" ")
    target, _, body = rest.partition(" ")
    path = urlsplit(target)
    return method, path.path, parse_qs(path.query), json.loads(body) if body else None


def test_a_deleted_state_is_restored_from_its_last_version_three_ways() -> None:
    remedy = remedy_for(examples.deleted().to_dict())
    assert remedy is not None
    assert "3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY" in remedy.what and "serial 41" in remedy.what
    assert shlex.split(remedy.command) == [
        "tfguardian", "rollback", examples.KEY, "--version-id", "3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY",
        "--reason", "restore the deleted state",
    ]  # fmt: skip
    assert api_parts(remedy.api_call) == (
        "POST", "/rollback", {},
        {"key": examples.KEY, "version_id": "3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY", "reason": "restore the deleted state"},
    )  # fmt: skip
    assert remedy.by_hand == examples.deleted().details["restore"]


def test_the_cli_takes_every_command_a_remedy_gives() -> None:
    """The commands are the CLI's own: its parser accepts each one as given, with the key and version exact."""
    every: list[Callable[..., Notification]] = [
        examples.deleted, examples.unreadable, examples.mismatch, examples.stale, examples.changed,
    ]  # fmt: skip
    for notification in (build(key=HOSTILE_KEY) for build in every):
        remedy = remedy_for(notification.to_dict())
        assert remedy is not None, notification.type
        argv = shlex.split(remedy.command)
        assert argv[0] == "tfguardian"
        args = parser().parse_args(argv[1:])
        assert args.key == HOSTILE_KEY


def test_a_hostile_key_stays_one_argument_and_one_json_string() -> None:
    remedy = remedy_for(examples.deleted(HOSTILE_KEY).to_dict())
    assert remedy is not None
    assert shlex.split(remedy.command)[2] == HOSTILE_KEY
    assert api_parts(remedy.api_call)[3]["key"] == HOSTILE_KEY  # type: ignore[index]


def test_an_unreadable_write_is_restored_from_the_last_readable_version() -> None:
    remedy = remedy_for(examples.unreadable().to_dict())
    assert remedy is not None
    assert shlex.split(remedy.command)[3:5] == ["--version-id", "3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY"]
    assert api_parts(remedy.api_call)[3]["reason"] == "restore the last readable state"  # type: ignore[index]


def test_a_digest_mismatch_is_repaired_with_the_digest_route() -> None:
    remedy = remedy_for(examples.mismatch(HOSTILE_KEY).to_dict())
    assert remedy is not None
    assert shlex.split(remedy.command) == ["tfguardian", "repair-digest", HOSTILE_KEY]
    assert api_parts(remedy.api_call)[:3] == ("POST", "/states/digest", {"key": [HOSTILE_KEY]})
    assert remedy.by_hand is not None and remedy.by_hand.startswith("aws dynamodb put-item")


def test_a_stale_lock_is_released_by_its_id() -> None:
    remedy = remedy_for(examples.stale(HOSTILE_KEY).to_dict())
    assert remedy is not None
    lock_id = examples.lock().id
    assert shlex.split(remedy.command) == ["tfguardian", "unlock", HOSTILE_KEY, lock_id, "--reason", "stale lock"]
    method, path, query, _ = api_parts(remedy.api_call)
    assert (method, path, query) == ("DELETE", "/locks", {"key": [HOSTILE_KEY], "lock_id": [lock_id],
                                                          "reason": ["stale lock"]})  # fmt: skip
    assert remedy.by_hand == f"terraform force-unlock {lock_id}"


def test_a_bad_write_can_be_undone_and_a_lineage_change_says_so() -> None:
    remedy = remedy_for(examples.changed().to_dict())
    assert remedy is not None and "--allow-lineage-change" not in remedy.command
    lineage = examples.changed().to_dict()
    lineage["details"] = {**lineage["details"], "lineage": {"before": "a", "after": "b", "changed": True}}
    lineage["severity"] = "critical"
    remedy = remedy_for(lineage)
    assert remedy is not None and remedy.command.endswith(" --allow-lineage-change")
    assert api_parts(remedy.api_call)[3]["allow_lineage_change"] is True  # type: ignore[index]


@pytest.mark.parametrize(
    "change",
    [
        {"severity": "info"},  # a normal write
        {"details": {"last_version_id": "v1", "workspace_deleted": False}, "severity": "warning"},  # old version gone
        {"details": {"last_version_id": None}},  # nothing left to restore
    ],
)
def test_nothing_to_do_gives_no_remedy(change: dict[str, object]) -> None:
    base = (examples.changed() if change.get("severity") == "info" else examples.deleted()).to_dict()
    assert remedy_for({**base, **change}) is None


def test_no_remedy_for_types_that_need_none() -> None:
    assert remedy_for(examples.restored().to_dict()) is None


def test_the_state_page_link_encodes_the_whole_key() -> None:
    url = state_page_url("https://guardian.example.com/ui/", "env:/prod/a b&c=d#e/terraform.tfstate")
    assert url == "https://guardian.example.com/ui/#/state?key=env%3A%2Fprod%2Fa%20b%26c%3Dd%23e%2Fterraform.tfstate"
    assert parse_qs(urlsplit(url).fragment.partition("?")[2]) == {"key": ["env:/prod/a b&c=d#e/terraform.tfstate"]}
    assert state_page_url("http://127.0.0.1:8055", "k") == state_page_url("http://127.0.0.1:8055/", "k")


def test_a_brief_lists_the_top_addresses_with_exact_counts() -> None:
    about = brief(examples.changed(removed=30).to_dict())
    (resources,) = [kind for kind in about.changes if kind.label == "Resources"]
    assert resources.counts == {"added": 1, "changed": 1, "removed": 30}
    assert len(resources.top["removed"]) == TOP_ADDRESSES and resources.more("removed") == 30 - TOP_ADDRESSES
    assert resources.tally == "+1 ~1 -30"
    facts = {fact.label: fact.value for fact in about.facts}
    assert facts["Lock holder"] == f"ci@runner-7 (apply, lock {examples.lock().id})"
    assert facts["Serial"] == "41 → 42"


@pytest.mark.parametrize("build", [examples.deleted, examples.unreadable, examples.mismatch, examples.stale])
def test_a_notification_of_a_backend_names_it_in_every_command_and_link(build: Callable[[], Notification]) -> None:
    data = examples.sent(build(), backend="team-b").to_dict()
    remedy = remedy_for(data)
    assert remedy is not None
    command = parser().parse_args(shlex.split(remedy.command)[1:])
    assert command.backend == "team-b"
    _, _, query, _ = api_parts(remedy.api_call)
    assert query["backend"] == ["team-b"]
    page = urlsplit(state_page_url("https://guardian.example.com/", data["key"], data["backend"]))
    assert parse_qs(page.fragment.partition("?")[2])["backend"] == ["team-b"]
