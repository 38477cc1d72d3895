"""The usage and playground sections as a Chinese browser shows them: every word from the zh-CN
catalog, with real data in them (charts, recent rows, a streamed answer with its reasoning, a
failure); the host's own words kept apart as data; and a switch of language redraws the charts.

The gateway's only account is a fake OpenAI-compatible host on loopback, added through the page's API.
"""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import Browser, Page, expect

from tests.conftest import GatewayProcess
from tests.e2e.browser import english_words, watched_page
from tests.e2e.test_accounts import eventually
from tests.e2e.test_playground import GOOD, MODELS, connect, recent
from tests.fake_iflow import FakeIflow, HttpError, Stream

REFUSAL = "The prompt is too long for this model"


def send(page: Page, prompt: str) -> None:
    page.fill("#play-prompt", prompt)
    page.click("#play-send")


def test_usage_and_playground_read_in_chinese_and_switch_to_english(
    start_gateway: Any, browser: Browser
) -> None:
    # The refused prompt is a 400 the browser logs as a failed resource; anything else is a fault.
    with (
        FakeIflow(mode="openai", api_keys=[GOOD], models=MODELS) as host,
        watched_page(browser, locale="zh-CN", allowed="400") as page,
    ):
        gateway: GatewayProcess = start_gateway(None)
        page.goto(gateway.url + "/#usage")
        empty = page.locator("#usage-empty")
        expect(empty).to_be_visible()
        expect(empty.locator("h2")).to_have_text("暂无请求")
        expect(page.locator("#usage-empty-text")).to_contain_text("最近 7 天内没有请求经过网关")
        expect(page.locator("#usage-range button[data-days='30']")).to_have_text("30 天")
        assert english_words(page, "#view-usage") == []

        connect(gateway, host)
        page.click("#tabs a[data-view=playground]")
        expect(page.locator("#play-model option")).to_have_count(len(MODELS))
        expect(page.locator("#play-send")).to_have_text("发送")
        expect(page.locator("#play-prompt")).to_have_attribute("placeholder", "用五个字打个招呼。")

        # A refusal: the page's lead in Chinese, the host's own words after it, as data.
        host.enqueue(HttpError(400, body={"error": {"message": REFUSAL, "type": "invalid_request_error"}}))
        send(page, "Greet me.")
        message = page.locator("#play-message")
        expect(message).to_contain_text("请求失败：")
        expect(message.locator("[translate=no]")).to_contain_text(REFUSAL)
        assert english_words(page, "#view-playground") == []
        # A message already shown follows a switch of language too.
        page.select_option("#language", "en")
        # English shows the API's words alone, as the page always did.
        expect(message).to_have_text(re.compile(rf"^Upstream answered 400: {REFUSAL}$"))
        expect(page.locator("#play-send")).to_have_text("Send")
        page.select_option("#language", "zh-CN")
        expect(message).to_have_text(re.compile(rf"^请求失败：.*{REFUSAL}$"))

        host.enqueue(
            Stream.of_text(
                ["Hello ", "there."],
                reasoning=["Weighing ", "a greeting."],
                usage={"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
                model="fake-large",
            )
        )
        page.select_option("#play-model", "fake-large")
        send(page, "Greet me.")
        expect(page.locator("#play-answer")).to_have_text("Hello there.")
        expect(page.locator("#play-reasoning summary")).to_have_text("思考过程")
        expect(page.locator("#play-completion-tokens")).to_have_text("7")
        expect(page.locator("#play-output")).to_contain_text("首字耗时")
        assert english_words(page, "#view-playground") == []

        eventually(lambda: len(recent(gateway)) == 2)
        page.click("#tabs a[data-view=usage]")
        expect(page.locator("#usage-charts")).to_be_visible()
        rows = page.locator("#usage-recent tbody tr")
        expect(rows).to_have_count(2)
        expect(rows.nth(0)).to_contain_text("流式")
        expect(page.locator("#usage-recent thead")).to_contain_text("首字")
        expect(page.locator("[data-stat=requests] .sub")).to_have_text("1 次错误")
        requests = page.locator("#chart-requests svg[role=img]")
        expect(page.locator("#chart-requests h2")).to_have_text("每日请求")
        expect(requests.locator(":scope > title")).to_have_text("每日请求")
        expect(requests.locator("g.bar title").last).to_contain_text("2 次请求，1 次错误")
        expect(requests.locator(".axis-title")).to_have_text(["请求数", "日期（UTC）"])
        expect(page.locator("#chart-models h2")).to_have_text("按模型")
        expect(page.locator("#chart-models svg text.label[translate=no]")).to_have_count(2)
        # The playground's requests carry no key: a word of the page, not the API's "(no key)".
        expect(page.locator("#chart-keys svg text.label")).to_have_text(["（无密钥）"])
        expect(page.locator("#chart-latency .legend")).to_contain_text("首字")
        assert english_words(page, "#view-usage") == []

        page.select_option("#language", "en")
        expect(page.locator("#chart-requests h2")).to_have_text("Requests per day")
        expect(requests.locator(":scope > title")).to_have_text("Requests per day")
        expect(requests.locator("g.bar title").last).to_contain_text("2 requests, 1 error")
        expect(page.locator("#chart-tokens h2")).to_have_text("Tokens per day")
        expect(page.locator("#chart-latency .legend")).to_contain_text("first token")
        expect(page.locator("[data-stat=requests] .sub")).to_have_text("1 error")
        expect(page.locator("#chart-keys svg text.label")).to_have_text(["(no key)"])
        expect(rows.nth(0)).to_contain_text("stream")
        expect(page.locator("#usage-recent thead")).to_contain_text("first token")

        # And back: a page switched to Chinese (not only one opened in it) has no English left.
        page.select_option("#language", "zh-CN")
        expect(page.locator("#chart-requests h2")).to_have_text("每日请求")
        expect(rows.nth(0)).to_contain_text("流式")
        assert english_words(page, "#view-usage") == []
        page.click("#tabs a[data-view=playground]")
        expect(page.locator("#play-reasoning summary")).to_have_text("思考过程")
        assert english_words(page, "#view-playground") == []
