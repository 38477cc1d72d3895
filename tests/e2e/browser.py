"""Headless Chromium for the page's tests, driven by Playwright's sync API.

The browser is Debian's (``apt-get install chromium``), never one Playwright downloads: this
workplace cannot download browsers. On a developer machine without it the browser tests skip and
say how to install it; in CI (``CI=true``) they fail instead, since a skipped page test there would
hide a missing install step.

The flags keep Chromium off the network, which is closed here: no component updates, no sync, no
QUIC, no background requests. Playwright starts each browser with a fresh temporary profile
(``--user-data-dir`` in a new temp folder), so nothing carries over between runs.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
#: Milliseconds Playwright waits for a page event (navigation, an element) before failing.
TIMEOUT_MS = 10_000


def require_chromium() -> Path:
    """The Chromium to use; skips the test without one (fails it in CI)."""
    if CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    message = f"no Chromium at {CHROMIUM}: the page tests need it (apt-get install chromium)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message + "; CI must install it (.ci/run does)", pytrace=False)
    pytest.skip(message)


@contextmanager
def chromium() -> Iterator[Browser]:
    """A headless Chromium, closed (with its Playwright driver) on exit."""
    executable = require_chromium()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(executable), headless=True, args=list(CHROMIUM_ARGS)
        )
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def watched_page(browser: Browser, *, allowed: str | None = None) -> Iterator[Page]:
    """A page in a context of its own; a console error or an uncaught exception on it fails the
    test when the page closes (a console error that contains ``allowed`` excepted)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    context.set_default_timeout(TIMEOUT_MS)
    problems: list[str] = []
    page = context.new_page()
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    try:
        yield page
    finally:
        context.close()
    assert [problem for problem in problems if allowed is None or allowed not in problem] == []
