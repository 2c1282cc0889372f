"""`make bench ONLY=page`: the status page's fleet view over 10,000 states on the local stack: its first API call
through the page server (against the same call straight to the API), the view drawn in headless Chromium, and that
it pages (one page of the fleet per view, never the whole of it)."""

from __future__ import annotations

import json
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import boto3

from bench.figures import Figure, best_of
from bench.history import fill_fleet
from local_stack.emulator import MotoServer, free_port
from local_stack.stack import LocalStack, started_stack
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS

FLEET = 10_000
PAGE = 100  # the page's own default: it asks for no more
BAR_S = 1.0


def page_figures() -> list[Figure]:
    directory = Path(tempfile.mkdtemp(prefix="bench-page-"))
    server = MotoServer(free_port(), log_path=directory / "emulator.log")
    server.start()
    try:
        with started_stack(directory, server.endpoint, api_port=free_port(), page_port=free_port()) as stack:
            return _measure(stack)
    finally:
        server.stop()


def _measure(stack: LocalStack) -> list[Figure]:
    assert stack.resources is not None and stack.page_url is not None and stack.api_url is not None
    # The fleet's records as the guardian keeps them (writing 10,000 states through the event handler would
    # measure the backfill, not the page).
    fill_fleet(boto3.client("dynamodb"), stack.resources.guardian_table, stack.resources.state_bucket, FLEET)
    through_page = f"{stack.page_url}api/states?limit={PAGE}"
    straight = f"{stack.api_url}/states?limit={PAGE}"
    started = time.perf_counter()
    first = _get(through_page)
    cold_s = time.perf_counter() - started
    assert len(first["states"]) == PAGE and first["next"], "the first page is a page, with a next one"
    middle = None
    for _ in range(FLEET // 2 // 1000):  # the API's largest page is 1,000
        middle = _get(f"{stack.page_url}api/states?limit=1000" + (f"&next={middle}" if middle else ""))["next"]
    page_s, api_s = best_of(lambda: _get(through_page), 7), best_of(lambda: _get(straight), 7)
    dynamodb = boto3.client("dynamodb")
    query: dict[str, Any] = {
        "TableName": stack.resources.guardian_table,
        "KeyConditionExpression": "pk = :pk",
        "ExpressionAttributeValues": {":pk": {"S": f"fleet#{stack.resources.state_bucket}"}},
        "Limit": PAGE,
    }
    query_s = best_of(lambda: dynamodb.query(**query), 7)
    middle_s = best_of(lambda: _get(f"{through_page}&next={middle}"), 7)
    figures = [
        Figure(
            f"status page: the fleet view's API call (the first {PAGE} of {FLEET:,} states) through the page server,"
            " vs straight to the API",
            f"{page_s * 1000:.0f} ms vs {api_s * 1000:.0f} ms (a bare DynamoDB Query of the page: {query_s * 1000:.0f}"
            f" ms; the very first call: {cold_s * 1000:.0f} ms)",
            page_s / api_s,
            "< 1 s",
            max(page_s, cold_s) < BAR_S,
        ),
        Figure(
            f"status page: a page from the middle of {FLEET:,} states (its `next` token) through the page server",
            f"{middle_s * 1000:.0f} ms",
            middle_s / page_s,
            "< 1 s",
            middle_s < BAR_S,
        ),
    ]
    figures += _browser_figures(stack.page_url)
    return figures


def _get(url: str) -> dict[str, Any]:
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return dict(json.load(response))


def _browser_figures(url: str) -> list[Figure]:
    """The fleet view drawn in headless Chromium: from navigation to the table's rows on the screen."""
    name = f"status page: the fleet view over {FLEET:,} states drawn in headless Chromium (navigation to rows shown)"
    try:
        from playwright.sync_api import sync_playwright  # noqa: PLC0415 - a dev dependency
    except ImportError:
        return [Figure(name, "not measured: Playwright is not installed (make install)", None, "< 1 s", None)]
    if not CHROMIUM.exists():
        return [Figure(name, f"not measured: no Chromium at {CHROMIUM} (make chromium)", None, "< 1 s", None)]
    times, api_calls = [], []
    requests: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            for _ in range(5):
                context = browser.new_context(viewport={"width": 1366, "height": 800})
                tab = context.new_page()
                requests.clear()
                tab.on("request", lambda request: requests.append(request.url))
                started = time.perf_counter()
                tab.goto(url)
                tab.wait_for_function("() => Number(document.body.dataset.drawn || 0) > 0")
                times.append(time.perf_counter() - started)
                api_calls.append(
                    tab.evaluate(
                        "() => performance.getEntriesByType('resource').filter(e => e.name.includes('/api/'))"
                        ".map(e => e.responseEnd - e.startTime)[0] / 1000"
                    )
                )
                rows = tab.locator("#fleet-table tbody tr").count()
                pager = tab.locator("#fleet-pager a", has_text="Next page").count()
                context.close()
        finally:
            browser.close()
    calls = [request for request in requests if "/api/" in request]
    pages = rows == PAGE and pager == 1 and len(calls) == 1 and f"limit={PAGE}" in calls[0]
    best = times.index(min(times))
    return [
        Figure(
            name,
            f"{times[best] * 1000:.0f} ms, of which its API call {api_calls[best] * 1000:.0f} ms (a new tab, best of"
            f" {len(times)}; the slowest {max(times) * 1000:.0f} ms)",
            None,
            "< 1 s",
            times[best] < BAR_S,
        ),
        Figure(
            f"status page: it pages: rows drawn and API calls made for the fleet view of {FLEET:,} states",
            f"{rows} rows, {len(calls)} call ({', '.join(c.split('/api/', 1)[1] for c in calls)}), next page offered"
            if pages
            else f"{rows} rows, calls {calls}, next page offered: {pager == 1}",
            None,
            f"one page of {PAGE}",
            pages,
        ),
    ]
