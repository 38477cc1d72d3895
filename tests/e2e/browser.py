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
import re
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
def watched_page(browser: Browser, *, allowed: str | None = None, locale: str = "en-US") -> Iterator[Page]:
    """A page in a context of its own, its browser set to ``locale`` (the page follows it); a
    console error or an uncaught exception on it fails the test when the page closes (a console
    error that contains ``allowed`` excepted)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale=locale)
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


#: Latin words a Chinese page still shows: names of products, protocols and units, never sentences.
NAMES = frozenset(
    [
        "iflow2api",
        "iflow",
        "deepseek",
        "kimi",
        "moonshot",
        "glm",
        "zhipu",
        "z.ai",
        "qwen",
        "dashscope",
        "minimax",
        "siliconflow",
        "openrouter",
        "openai",
        "anthropic",
        "claude",
        "code",
        "codex",
        "open",
        "webui",
        "lobechat",
        "nextchat",
        "python",
        "curl",
        "api",
        "apis",
        "url",
        "urls",
        "http",
        "https",
        "json",
        "csv",
        "sse",
        "id",
        "ids",
        "p50",
        "p95",
        "p99",
        "ttft",
        "ms",
        "utc",
        "rpm",
        "tpd",
        "token",
        "tokens",
        "oauth",
        "sk",
        "v1",
        "ok",
    ]
)
#: The visible text of every element under ``root``, but code, data marked translate="no", hidden
#: elements and form fields' values; one string per text node.
_VISIBLE_WORDS = """root => {
  const out = [];
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const parent = node.parentElement;
    if (!parent || parent.closest('code, pre, script, style, [translate="no"], [hidden], option')) continue;
    if (!parent.checkVisibility()) continue;
    const text = node.textContent.trim();
    if (text) out.push(text);
  }
  for (const field of root.querySelectorAll('[placeholder], [aria-label], [title]')) {
    if (field.closest('[translate="no"], [hidden]') || !field.checkVisibility()) continue;
    for (const name of ['placeholder', 'aria-label', 'title']) {
      const value = field.getAttribute(name);
      if (value) out.push(value);
    }
  }
  return out;
}"""


def english_words(page: Page, selector: str = "body") -> list[str]:
    """Visible text under ``selector`` with an English word in it (a Latin word of three letters
    or more that is not one of ``NAMES``): on a page shown in Chinese, that is a string some
    catalog lacks."""
    found = []
    for text in page.locator(selector).first.evaluate(_VISIBLE_WORDS):
        words = re.findall(r"[A-Za-z][A-Za-z0-9.'-]*[A-Za-z0-9]", text)
        if any(len(word) >= 3 and word.lower().strip(".") not in NAMES for word in words):
            found.append(text)
    return found
