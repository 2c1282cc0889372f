"""Headless Chromium (the distribution's `chromium` package, driven by Playwright) and one local stack with its status
page for the module, after real Terraform applies."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from local_stack.emulator import MotoServer, free_port
from local_stack.stack import LocalStack, started_stack
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS
from tests.support.secrets import leaks

ROOT = Path(__file__).resolve().parents[2]
VIEWPORT = {"width": 1366, "height": 800}  # a laptop screen


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    """The browser; a missing one fails the tests (they are part of `make test`, which installs it)."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"the browser tests need Chromium at {CHROMIUM}: run `make test` (it installs Debian's chromium package) "
            "or `apt-get install chromium` as root",
            pytrace=False,
        )
    try:
        from playwright.sync_api import sync_playwright  # noqa: PLC0415
    except ImportError:
        pytest.fail("the browser tests need Playwright: `make install` installs requirements-dev.txt", pytrace=False)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class PageWatch:
    """What a page did that a test must not let pass: a script error, a dialog, a console error."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.console_errors: list[str] = []


@pytest.fixture
def page(chromium: Any) -> Iterator[Any]:
    """A fresh tab on a laptop-sized window; after the test, no script error, no dialog and no planted secret."""
    yield from _watched_tab(chromium)


@pytest.fixture
def page_without_csp(chromium: Any) -> Iterator[Any]:
    """The same, with the page's Content-Security-Policy ignored: what the page itself does with untrusted text,
    without the header that would stop an inline script anyway."""
    yield from _watched_tab(chromium, bypass_csp=True)


def _watched_tab(chromium: Any, **options: Any) -> Iterator[Any]:
    context = chromium.new_context(viewport=VIEWPORT, **options)
    context.set_default_timeout(10_000)  # everything is local: a wait this long has failed
    tab = context.new_page()
    watch = PageWatch()
    tab.on("pageerror", lambda error: watch.errors.append(str(error)))

    def on_dialog(dialog: Any) -> None:
        watch.dialogs.append(dialog.message)
        dialog.dismiss()

    def on_console(message: Any) -> None:
        if message.type == "error":
            watch.console_errors.append(message.text)

    tab.on("dialog", on_dialog)
    tab.on("console", on_console)
    try:
        yield tab
        assert not watch.errors, f"script errors on the page: {watch.errors}"
        assert not watch.dialogs, f"the page opened dialogs (alert, confirm): {watch.dialogs}"
        blocked = [text for text in watch.console_errors if "Content Security Policy" in text]
        assert not blocked, f"the page tried what its Content-Security-Policy forbids: {blocked}"
        assert not leaks(tab.content()), "a planted secret reached the page"
    finally:
        context.close()


@pytest.fixture(scope="module")
def page_stack(moto_server: MotoServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """One local stack, with its REST API and status page, for the whole module (a reset emulator first)."""
    work = tmp_path_factory.mktemp("page-stack")
    saved_env = dict(os.environ)
    moto_server.reset()
    os.environ.update(
        AWS_ENDPOINT_URL=moto_server.endpoint,
        AWS_ACCESS_KEY_ID="test",
        AWS_SECRET_ACCESS_KEY="test",
        AWS_DEFAULT_REGION="us-east-1",
    )
    try:
        with started_stack(work, moto_server.endpoint, api_port=free_port(), page_port=free_port()) as local:
            yield local
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
