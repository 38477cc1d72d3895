"""The whole first run, in a Chinese browser, from an empty home: the page greets in Chinese with
"Connect a provider", DeepSeek is connected (a fake on loopback, its key checked), the check's
result shows, the playground streams an answer, the snippets name the served model and the
overview says the gateway is serving. No step shows an English word the catalogs should have had.

``IFLOW2API_SCREENSHOTS=1`` saves each step to ``docs/screenshots/first-run-*.png`` (the READMEs
show them); without it they go to the test's temporary folder, so the step runs all the same.
"""

from __future__ import annotations

import importlib.resources
import json
import os
import re
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, Page, expect

from tests.conftest import GatewayProcess
from tests.e2e.browser import english_words, watched_page
from tests.fake_iflow import FakeIflow, Stream

KEY = "sk-deepseek-first-run-0123456789"
SERVED = ["deepseek-chat", "deepseek-reasoner"]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def words(key: str) -> str:
    """The Chinese catalog's words for ``key``, placeholders left out (a test matches around them)."""
    catalog = importlib.resources.files("iflow2api.web").joinpath("messages.zh-CN.json").read_text("utf-8")
    text: str = json.loads(catalog)[key]
    return re.split(r"\{\w+\}", text)[0].strip() or text


def shoot(page: Page, name: str, folder: Path) -> None:
    if os.environ.get("IFLOW2API_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        folder = SCREENSHOTS
    page.screenshot(path=str(folder / name), full_page=True)
    assert (folder / name).stat().st_size > 10_000


def no_english(page: Page, selector: str = "body") -> None:
    assert english_words(page, selector) == []


def test_the_first_run_in_chinese(browser: Browser, start_gateway: Any, tmp_path: Path) -> None:
    gateway: GatewayProcess = start_gateway(None)  # an empty iFlow home, an empty data folder
    with (
        FakeIflow(mode="deepseek", api_keys=[KEY], models=SERVED) as deepseek,
        watched_page(browser, locale="zh-CN") as page,
    ):
        walk(gateway, deepseek, page, tmp_path)


def walk(gateway: GatewayProcess, deepseek: FakeIflow, page: Page, folder: Path) -> None:

    # 1. The page, in Chinese, leads with "Connect a provider".
    page.goto(gateway.url)
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(page.locator("#connect")).to_be_visible()
    expect(page.locator("#connect-title")).to_have_text(words("connect.title"))
    expect(page.locator("#badge")).to_have_class("badge bad")
    no_english(page)
    shoot(page, "first-run-1-connect.png", folder)

    # 2. DeepSeek: the form opens with it chosen; the key (and here the fake's base URL) is all it takes.
    page.click("#connect-providers button[data-provider=deepseek]")
    expect(page.locator("#account-provider")).to_have_value("deepseek")
    page.fill("#account-label", "deepseek")
    page.fill("#account-base-url", deepseek.base_url)
    page.fill("#account-key", KEY)
    page.click("#account-form button[type=submit]")
    box = page.locator("#accounts-message")
    expect(box).to_contain_text("deepseek-chat")
    expect(box).to_have_class("message")  # not an error
    row = page.locator("#accounts-table tbody tr", has_text="deepseek")
    expect(row).to_have_attribute("data-state", "ok")
    expect(page.locator("#badge")).to_have_class("badge ok")  # at once, not at the next poll
    assert KEY not in page.content()
    no_english(page)
    shoot(page, "first-run-2-checked.png", folder)

    # 3. The playground streams an answer, its reasoning folded above it.
    deepseek.enqueue(
        Stream.of_text(
            ["你好，", "我是 ", "DeepSeek。"],
            reasoning=["用户在问候，", "简短回答。"],
            usage={"prompt_tokens": 9, "completion_tokens": 6, "total_tokens": 15},
            model="deepseek-chat",
            delay=0.2,
        )
    )
    page.click("#tabs a[data-view=playground]")
    expect(page.locator("#play-model option")).to_have_count(len(SERVED))
    page.select_option("#play-model", "deepseek-chat")
    page.fill("#play-prompt", "你好")
    page.click("#play-send")
    expect(page.locator("#play-answer")).to_have_text("你好，我是 DeepSeek。")
    expect(page.locator("#play-completion-tokens")).to_have_text("6")
    expect(page.locator("#play-reasoning")).to_be_visible()
    page.locator("#play-reasoning summary").click()
    expect(page.locator("#play-reasoning-text")).to_have_text("用户在问候，简短回答。")
    no_english(page)
    shoot(page, "first-run-3-playground.png", folder)

    # 4. The overview: serving, and every snippet names the model the account serves.
    page.click("#tabs a[data-view=overview]")
    expect(page.locator("#badge")).to_have_class("badge ok")
    expect(page.locator("#connect")).to_be_hidden()
    for snippet in ("curl", "python", "claude-code", "codex", "chat-apps"):
        expect(page.locator("#" + snippet)).to_contain_text("deepseek-chat")
    no_english(page)
    shoot(page, "first-run-4-serving.png", folder)
