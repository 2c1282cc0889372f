"""The status page in headless Chromium against the local stack, after real Terraform applies: the fleet, a diff, a
rollback and a force-unlock from the page, the audit trail, untrusted keys as text, and the keyboard."""

from __future__ import annotations

import json
import os
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from bench.generate_state import generate_state, state_bytes
from guardian_cli.ui_server import CONTENT_SECURITY_POLICY, UiServer, Upstream
from local_stack.backend_blocks import backend_block_legacy, backend_block_modern
from local_stack.stack import LocalStack
from tests.browser.conftest import ROOT
from tests.support.terraform import Terraform, TerraformDir, find_terraform_1_0_3, find_terraform_1_11

pytestmark = pytest.mark.e2e

KEY = "apps/web/terraform.tfstate"
STAGING_KEY = "env:/staging/web/terraform.tfstate"
OTHER_KEYS = ("prod/network/terraform.tfstate", "prod/dns/terraform.tfstate", STAGING_KEY)
# Markup that would run if any of it were inserted as HTML: a script, an image whose error handler runs, a link.
TOKEN = "run-token-0123456789abcdefghijklm"  # as `tfguardian ui` makes one: 32 URL-safe characters
HOSTILE_KEY = 'xss/<script>window.pwned=1</script><img src=x onerror="window.pwned=2"><a href=x>/terraform.tfstate'


def configuration(terraform: Terraform) -> str:
    """Resources to add, change and remove (`terraform_data`, no provider download), an output, a secret one."""
    secret = 'output "token" {\n  value     = "PLANTED-OUTPUT-SENSITIVE-6c1e"\n  sensitive = true\n}\n'
    common = 'variable "v" {\n  default = "one"\n}\noutput "v" {\n  value = var.v\n}\n' + secret
    if not terraform.modern:  # Terraform 1.0 has no built-in resource: outputs only
        return common
    return common + (
        'variable "n" {\n  default = 2\n}\n'
        'resource "terraform_data" "probe" {\n  input = var.v\n}\n'
        'resource "terraform_data" "item" {\n  count = var.n\n  input = count.index\n}\n'
    )


@dataclass
class Fleet:
    """The module's stack after the applies: the Terraform working directory and each apply's serial."""

    stack: LocalStack
    tf: TerraformDir
    serials: list[int]  # after apply one, two, three

    @property
    def url(self) -> str:
        assert self.stack.page_url is not None
        return self.stack.page_url


def pull_serial(tf: TerraformDir) -> int:
    return int(json.loads(tf.run("state", "pull").stdout)["serial"])


@pytest.fixture(scope="module")
def fleet(page_stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Fleet:
    """Three real applies of one configuration, and a few more states written straight to the bucket."""
    terraform = find_terraform_1_11() or find_terraform_1_0_3()
    assert page_stack.resources is not None
    tf = TerraformDir(terraform, tmp_path_factory.mktemp("tf"))
    block = backend_block_modern if terraform.modern else backend_block_legacy
    tf.write("backend.tf", block(page_stack.endpoint, page_stack.resources, key=KEY))
    tf.write("main.tf", configuration(terraform))
    tf.init()
    serials = []
    for value, count in (("one", 2), ("two", 3), ("three", 1)):
        tf.apply("-var", f"v={value}", *(["-var", f"n={count}"] if terraform.modern else []))
        serials.append(pull_serial(tf))
    s3 = boto3.client("s3")
    for number, key in enumerate((*OTHER_KEYS, HOSTILE_KEY)):
        state = generate_state(4, serial=number + 1, lineage=f"L{number}", seed=number)
        s3.put_object(Bucket=page_stack.resources.state_bucket, Key=key, Body=state_bytes(state))
    page_stack.pump()
    return Fleet(page_stack, tf, serials)


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the screenshots go: docs/ under `make screenshots` (GUARDIAN_SCREENSHOTS=docs), else a temporary dir."""
    wanted = os.environ.get("GUARDIAN_SCREENSHOTS")
    return ROOT / wanted if wanted else tmp_path_factory.mktemp("screenshots")


def drawn(page: Any) -> int:
    return int(page.evaluate("Number(document.body.dataset.drawn || 0)"))


def after(page: Any, action: Callable[[], object]) -> None:
    """Do `action`, then wait until the page has drawn the view it leads to."""
    before = drawn(page)
    action()
    page.wait_for_function("before => Number(document.body.dataset.drawn || 0) > before", arg=before)


def open_page(page: Any, fleet: Fleet, route: str = "#/") -> None:
    after(page, lambda: page.goto(fleet.url + route))


def rows(page: Any, table: str) -> list[list[str]]:
    """Each row of a table's body as the text of its cells."""
    return page.eval_on_selector_all(  # type: ignore[no-any-return]
        f"#{table} tbody tr", "rows => rows.map(row => [...row.cells].map(cell => cell.textContent.trim()))"
    )


def test_the_fleet_lists_every_state_and_filters_by_prefix_and_workspace(
    page: Any, fleet: Fleet, screenshots: Path
) -> None:
    open_page(page, fleet)
    listed = {row[0]: row for row in rows(page, "fleet-table")}
    assert set(listed) == {KEY, *OTHER_KEYS, HOSTILE_KEY}
    assert listed[KEY][2] == str(fleet.serials[-1])  # serial
    assert listed[KEY][6] == fleet.tf.terraform.version  # Terraform version
    assert "@" in listed[KEY][3]  # the last writer, Terraform's user@host
    assert listed[STAGING_KEY][1] == "staging"
    page.screenshot(path=str(screenshots / "page-fleet.png"))

    page.fill("#fleet-prefix", "prod/")
    after(page, lambda: page.click("#fleet-filter button[type=submit]"))
    assert sorted(row[0] for row in rows(page, "fleet-table")) == sorted(OTHER_KEYS[:2])
    assert "prefix=prod%2F" in page.url
    page.fill("#fleet-prefix", "")
    page.fill("#fleet-workspace", "staging")
    after(page, lambda: page.press("#fleet-workspace", "Enter"))
    assert [row[0] for row in rows(page, "fleet-table")] == [STAGING_KEY]


def test_the_fleet_pages_through_the_apis_next_tokens(page: Any, fleet: Fleet) -> None:
    calls: list[str] = []

    def on_request(request: Any) -> None:
        if "/api/states" in request.url:
            calls.append(request.url)

    page.on("request", on_request)
    open_page(page, fleet, "#/?limit=25")
    assert len(rows(page, "fleet-table")) == 5  # fewer than a page: no next page
    assert page.locator("#fleet-pager a").count() == 0
    # Two per page: the pager follows `next`, and every state is listed once.
    seen: list[str] = []
    after(page, lambda: page.evaluate("location.hash = '#/?limit=2'"))
    while True:
        seen += [row[0] for row in rows(page, "fleet-table")]
        more = page.locator("#fleet-pager a", has_text="Next page")
        if more.count() == 0:
            break
        after(page, more.click)
    assert sorted(seen) == sorted({KEY, *OTHER_KEYS, HOSTILE_KEY})
    assert all("limit=" in call for call in calls)  # never the whole fleet at once


def test_a_diff_of_two_versions_shows_the_addresses_and_outputs_that_changed(
    page: Any, fleet: Fleet, screenshots: Path
) -> None:
    open_page(page, fleet)
    after(page, lambda: page.get_by_role("link", name=KEY, exact=True).click())
    assert page.url.endswith("#/state?key=apps%2Fweb%2Fterraform.tfstate&backend=default")
    assert page.locator("#state-key").text_content() == KEY
    first, _, third = fleet.serials
    page.get_by_label(f"Compare from serial {first}", exact=True).check()
    page.get_by_label(f"Compare to serial {third}", exact=True).check()
    page.click("#diff-button")
    page.wait_for_selector("#diff:not([hidden])")
    assert page.locator("#diff-title").text_content() == f"Changes from serial {first} to serial {third}"

    def listed(kind: str, change: str) -> list[str]:
        return [text.strip() for text in page.locator(f"#diff-{kind}-{change} li code").all_text_contents()]

    assert listed("outputs", "changed") == ["v"]  # the secret output's value did not change, nor is it ever shown
    assert listed("outputs", "added") == listed("outputs", "removed") == []
    if fleet.tf.terraform.modern:
        assert listed("resources", "changed") == ["terraform_data.probe"]
        assert listed("resources", "removed") == ["terraform_data.item[1]"]
        assert listed("resources", "added") == []
    page.locator("#diff").scroll_into_view_if_needed()
    page.screenshot(path=str(screenshots / "page-state-diff.png"), full_page=True)
    # The diff is linkable: the address keeps both versions.
    assert "from=" in page.url and "to=" in page.url


def test_a_rollback_from_the_page_previews_confirms_and_terraform_reads_the_old_value(
    page: Any, fleet: Fleet, screenshots: Path
) -> None:
    first, _, third = fleet.serials
    open_page(page, fleet, "#/state?key=" + KEY.replace("/", "%2F"))
    page.get_by_role("button", name=f"Roll back to serial {first}…").click()
    confirm = page.locator("#confirm-go")
    confirm.wait_for(state="visible")
    # The preview: a dry run naming the state, the serial it is at and the one it restores, and what changes.
    assert page.locator("#confirm-title").text_content() == f"Roll back {KEY} to serial {first}?"
    assert f"{KEY} is at serial {third}" in page.locator("#confirm-what").text_content()
    assert f"as serial {third + 1}" in page.locator("#confirm-what").text_content()
    assert confirm.text_content() == f"Roll back {KEY} to serial {first}"
    assert page.locator("#diff-preview-outputs-changed li code").all_text_contents() == ["v"]
    assert json.loads(fleet.tf.run("output", "-json").stdout)["v"]["value"] == "three"  # the preview changed nothing
    page.fill("#confirm-reason", "bad apply")
    page.screenshot(path=str(screenshots / "page-rollback-confirm.png"))

    confirm.click()
    result = page.locator("#confirm-result")
    result.wait_for(state="visible")
    page.wait_for_function("() => document.getElementById('confirm-result').textContent.length > 0")
    text = result.text_content()
    assert text.startswith(f"Rolled back {KEY} to serial {first}: serial {third} → {third + 1}"), text
    assert page.locator("#confirm-go").is_hidden()  # done: nothing left to press twice
    assert json.loads(fleet.tf.run("output", "-json").stdout)["v"]["value"] == "one"
    assert pull_serial(fleet.tf) == third + 1
    fleet.stack.pump()  # the write's S3 event, which records the new version
    after(page, lambda: page.click("#confirm-cancel"))  # closing draws the state again, with the new version
    assert rows(page, "versions-table")[0][2].startswith(str(third + 1))


def test_a_held_lock_shows_with_the_reapers_verdict_and_is_force_unlocked_after_a_preview(
    page: Any, fleet: Fleet, screenshots: Path
) -> None:
    serial = pull_serial(fleet.tf)
    with fleet.tf.holding_lock("-var", "v=held", answer="no"):
        fleet.stack.pump()
        open_page(page, fleet, "#/locks")
        held = [row for row in rows(page, "locks-table") if row[0] == KEY]
        assert held and held[0][1] == "dynamodb" and held[0][4] == "OperationTypeApply"
        assert held[0][6].startswith("fresh")  # younger than its TTL: the reaper leaves it
        page.screenshot(path=str(screenshots / "page-locks.png"))
        page.get_by_role("button", name="Force-unlock…").first.click()
        confirm = page.locator("#confirm-go")
        confirm.wait_for(state="visible")
        assert confirm.text_content() == f"Force-unlock {KEY} at serial {serial}"
        lock_id = page.locator("#confirm-preview dd code").first.text_content()
        assert lock_id and lock_id in json.dumps(boto3.client("dynamodb").scan(TableName=_lock_table(fleet))["Items"])
        page.fill("#confirm-reason", "cancelled CI job")
        confirm.click()
        page.wait_for_function("() => document.getElementById('confirm-result').textContent.length > 0")
        assert page.locator("#confirm-result").text_content().startswith(f"Released the dynamodb lock of {KEY}")
        assert not [item for item in _lock_items(fleet) if not item["LockID"]["S"].endswith("-md5")]
        after(page, lambda: page.click("#confirm-cancel"))
        assert not [row for row in rows(page, "locks-table") if row[0] == KEY]


def _lock_table(fleet: Fleet) -> str:
    assert fleet.stack.resources is not None
    return str(fleet.stack.resources.lock_table)


def _lock_items(fleet: Fleet) -> list[dict[str, Any]]:
    return list(boto3.client("dynamodb").scan(TableName=_lock_table(fleet))["Items"])


def test_the_audit_trail_shows_who_did_what(page: Any, fleet: Fleet, screenshots: Path) -> None:
    fleet.stack.pump()
    open_page(page, fleet, "#/events")
    events = rows(page, "events-table")
    restored = [row for row in events if row[1] == "state.restored"]
    assert restored and restored[0][3] == KEY and restored[0][6] == "bad apply"
    assert [row for row in events if row[1] == "lock.force_released" and row[6] == "cancelled CI job"]
    page.screenshot(path=str(screenshots / "page-audit.png"))
    page.select_option("#events-type", "state.restored")
    after(page, lambda: page.click("#events-filter button[type=submit]"))
    assert {row[1] for row in rows(page, "events-table")} == {"state.restored"}


def test_a_key_with_markup_in_it_is_text_everywhere_and_nothing_runs(page_without_csp: Any, fleet: Fleet) -> None:
    page = page_without_csp  # the page's own escaping, without the CSP that would block an inline script anyway
    open_page(page, fleet)
    link = page.get_by_role("link", name=HOSTILE_KEY, exact=True)
    assert link.text_content() == HOSTILE_KEY
    after(page, link.click)
    assert page.locator("#state-key").text_content() == HOSTILE_KEY
    open_page(page, fleet, "#/events")
    assert HOSTILE_KEY in [row[3] for row in rows(page, "events-table")]
    assert page.evaluate("window.pwned") is None
    assert page.locator("main img, main script, #fleet-table a[href=x]").count() == 0
    # A link that put the key straight into the address (as a Slack message does) shows it as text too.
    open_page(page, fleet, "#/state?key=" + urllib.parse.quote(HOSTILE_KEY, safe=""))
    assert page.locator("#state-key").text_content() == HOSTILE_KEY
    assert page.evaluate("window.pwned") is None


def test_the_page_server_sends_a_strict_content_security_policy(fleet: Fleet) -> None:
    with urllib.request.urlopen(fleet.url, timeout=10) as response:
        assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
        assert "script-src 'self'" in CONTENT_SECURITY_POLICY and "unsafe-inline" not in CONTENT_SECURITY_POLICY
        assert b"<script>" not in response.read()  # no inline script: the page's one script is a file


def test_the_keyboard_reaches_every_view_and_the_actions(page: Any, fleet: Fleet) -> None:
    open_page(page, fleet)

    def tab_to(test: str, limit: int = 80, key: str = "Tab") -> None:
        for _ in range(limit):
            page.keyboard.press(key)
            if page.evaluate(f"(() => {{ const e = document.activeElement; return {test}; }})()"):
                return
        raise AssertionError(f"Tab never reached an element where {test}")

    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "skip"  # the first stop skips to the content
    tab_to("e.getAttribute('href') === '#/locks'")
    after(page, lambda: page.keyboard.press("Enter"))
    assert page.evaluate("document.activeElement.id") == "locks-title"  # focus follows the view
    tab_to("e.dataset.view === 'fleet'", limit=10, key="Shift+Tab")
    after(page, lambda: page.keyboard.press("Enter"))
    tab_to(f"e.textContent === {json.dumps(KEY)}")
    after(page, lambda: page.keyboard.press("Enter"))
    assert page.locator("#state-key").text_content() == KEY
    tab_to("e.classList.contains('rollback')")
    opener = page.evaluate("document.activeElement.textContent")
    page.keyboard.press("Enter")
    page.locator("#confirm-go").wait_for(state="visible")
    assert page.evaluate("document.activeElement.id") == "confirm-reason"  # not the button: Enter must not act
    page.keyboard.press("Enter")
    assert page.locator("#confirm-go").is_visible() and page.locator("#confirm-result").text_content() == ""
    tab_to("e.id === 'confirm-go'", limit=5)
    page.keyboard.press("Escape")  # changed our mind: nothing happens, and focus goes back where it was
    page.locator("#confirm").wait_for(state="hidden")
    assert page.evaluate("document.activeElement.textContent") == opener


def test_the_link_tfguardian_ui_prints_carries_a_token_the_page_keeps_and_sends(page: Any, fleet: Fleet) -> None:
    """`tfguardian ui` guards its API calls with a token of the run, in the link it prints: the page takes it out of
    the address bar, keeps it for later links (a message's link to a state), and a browser without it is refused."""
    assert fleet.stack.api_url is not None
    server = UiServer(Upstream(fleet.stack.api_url, None), 0, token=TOKEN)
    server.start()
    try:
        assert server.url.endswith(f"/?token={TOKEN}")
        after(page, lambda: page.goto(server.url + "#/"))
        assert TOKEN not in page.url
        assert KEY in [row[0] for row in rows(page, "fleet-table")]
        base = f"http://127.0.0.1:{server.port}/"
        after(page, lambda: page.goto(base + "#/state?key=" + urllib.parse.quote(KEY, safe="")))
        assert page.locator("#state-key").text_content() == KEY
        stranger = page.context.browser.new_context()
        try:
            tab = stranger.new_page()
            tab.goto(base + "#/")
            tab.wait_for_function("document.getElementById('alert').textContent.includes('tfguardian ui')")
            assert tab.locator("#fleet-table tbody tr").count() == 0
        finally:
            stranger.close()
    finally:
        server.stop()
