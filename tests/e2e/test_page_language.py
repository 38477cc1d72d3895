"""The page's shell and overview in Chinese and English (issue 12, item 6): a Chinese browser sees
them in Chinese from the first paint, an English one in English; the header's switch changes the
words at once, sets ``<html lang>`` and is remembered over the browser's own language; the badge
says in either language what ``/health``'s summary says in English.

Real gateways (``iflow2api serve`` in a subprocess), one of them serving through the fake DeepSeek,
in headless Chromium set to ``zh-CN`` or ``en-US``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from playwright.sync_api import Browser, Page, expect

from iflow2api.services.serving import serving
from tests.conftest import GatewayProcess
from tests.e2e import test_serving
from tests.e2e.browser import english_words, watched_page

StartGateway = Callable[..., GatewayProcess]
CLIENT_KEY = "client-key-language"
#: What the page shows of the shell and the overview, the sections other modules own aside.
SHELL = ("header", "#page-message", "#signin", "#view-overview")


# The gateways of test_serving, used here as they are there: an empty one and one serving DeepSeek.
deepseek, empty, served = test_serving.deepseek, test_serving.empty, test_serving.served


NUMBERS_ON_THE_PAGE = """async (language) => {
  const i18n = await import("/static/i18n.js");
  const format = await import("/static/format.js");
  await i18n.choose(language);
  const later = format.when(Date.now() / 1000 + 6.5 * 3600 + 60);
  return [format.count(1234567), format.short(1234567), later.split(" (")[1]];
}"""


def english_in_shell(page: Page) -> list[str]:
    return [text for selector in SHELL for text in english_words(page, selector)]


def shown_at_once(page: Page, url: str, selector: str) -> list[str]:
    """The English words of the shell the moment `selector` first shows (the first paint of it)."""
    page.goto(url)
    page.wait_for_selector(selector, state="visible")
    return english_in_shell(page)


def test_a_chinese_browser_sees_connect_a_provider_in_chinese(
    browser: Browser, empty: GatewayProcess
) -> None:
    with watched_page(browser, locale="zh-CN") as page:
        assert shown_at_once(page, empty.url + "/", "#connect") == []
        expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
        expect(page.locator("#connect-title")).to_have_text("连接服务商")
        expect(page.locator("#badge")).to_have_text("未在服务")
        expect(page.locator("#badge")).to_have_attribute("title", "未在服务 — 尚未连接服务商")
        expect(page.locator("#account")).to_contain_text("未在服务 — 尚未连接服务商")
        # Product names stay; the other choices are in Chinese, the iFlow login last and marked.
        buttons = page.locator("#connect-providers button")
        expect(buttons.first).to_have_text("阿里云百炼（DashScope、Qwen）")
        expect(page.locator("#connect-providers button[data-provider=deepseek]")).to_have_text("DeepSeek")
        generic = page.locator("#connect-providers button[data-provider=generic]")
        expect(generic).to_have_text("其他 OpenAI 兼容服务")
        expect(buttons.last).to_have_text("iFlow 登录")
        expect(buttons.last).to_have_attribute("title", "iFlow：原服务，已于 2026-04-17 关闭")
        expect(page.locator("#models tbody")).to_have_text("连接服务商后，这里会列出模型。")
        assert page.locator("#language").input_value() == "zh-CN"
        assert english_in_shell(page) == []


def test_a_chinese_browser_sees_a_serving_gateway_in_chinese(
    browser: Browser, served: GatewayProcess
) -> None:
    with watched_page(browser, locale="zh-CN") as page:
        assert shown_at_once(page, served.url + "/", "#account dd") == []
        expect(page.locator("#badge")).to_have_text("服务中")
        expect(page.locator("#badge")).to_have_attribute("title", "服务中 — 1 个账号：deepseek")
        expect(page.locator("#account")).to_contain_text("服务中 — 1 个账号：deepseek")
        expect(page.locator("#connect")).to_be_hidden()
        # With data in it: the served models (as data, marked so) and the snippets naming one.
        first = httpx.get(served.url + "/v1/models", timeout=5).json()["data"][0]["id"]
        expect(page.locator("#models tbody td[translate=no]").first).to_have_text(first)
        expect(page.locator("#curl")).to_contain_text(f'"model":"{first}"')
        expect(page.locator("#view-overview")).to_contain_text("接入使用")
        assert english_in_shell(page) == []


def test_a_chinese_browser_signs_in_and_sets_the_first_password_in_chinese(
    browser: Browser, start_gateway: StartGateway
) -> None:
    gateway = start_gateway(None, {"IFLOW2API_API_KEYS": CLIENT_KEY, "IFLOW2API_OPEN_BROWSER": "false"})
    # The refused key is a 401 the browser logs: expected here.
    with watched_page(browser, locale="zh-CN", allowed="401") as page:
        # From loopback with keys and no admin password: the sign-in and the first password's offer.
        assert shown_at_once(page, gateway.url + "/", "#first-password-form") == []
        expect(page.locator("#signin-title")).to_have_text("登录")
        expect(page.locator("#signin-secret-label")).to_have_text("管理员密钥")
        page.check("input[name=signin-kind][value=password]")
        expect(page.locator("#signin-secret-label")).to_have_text("管理员密码")
        page.fill("#signin-secret", "not a key")
        page.check("input[name=signin-kind][value=key]")
        page.locator("#signin-form button[type=submit]").click()
        expect(page.locator("#signin-message")).to_have_text("该密钥不是此网关的管理员密钥。")

        page.fill("#first-password", "a long enough secret")
        page.fill("#first-password-again", "another long secret")
        page.locator("#first-password-form button[type=submit]").click()
        expect(page.locator("#first-password-message")).to_have_text("两次输入的密码不一致。")
        assert english_in_shell(page) == []


def test_an_english_browser_sees_english(browser: Browser, empty: GatewayProcess) -> None:
    with watched_page(browser, locale="en-US") as page:
        page.goto(empty.url + "/")
        expect(page.locator("#connect-title")).to_have_text("Connect a provider")
        expect(page.locator("html")).to_have_attribute("lang", "en")
        expect(page.locator("#badge")).to_have_text("not serving")
        expect(page.locator("#connect-providers button[data-provider=generic]")).to_have_text(
            "Any OpenAI-compatible server"
        )
        expect(page.locator("#account")).to_contain_text("not logged in (needed only for iFlow")
        assert page.locator("#language").input_value() == "en"
        # Numbers and times follow the page's language, not the browser's.
        assert page.evaluate(NUMBERS_ON_THE_PAGE, "en") == ["1,234,567", "1.2M", "in 6.5 h)"]
        assert page.evaluate(NUMBERS_ON_THE_PAGE, "zh-CN") == ["1,234,567", "123.5万", "6.5 小时后)"]


def test_the_switch_changes_the_words_at_once_and_is_remembered(
    browser: Browser, served: GatewayProcess
) -> None:
    with watched_page(browser, locale="zh-CN") as page:
        page.goto(served.url + "/")
        expect(page.locator("#badge")).to_have_text("服务中")
        page.evaluate("window.sameDocument = true")

        page.select_option("#language", "en")
        expect(page.locator("#badge")).to_have_text("serving")
        expect(page.locator("#badge")).to_have_attribute("title", "serving — 1 account: deepseek")
        expect(page.locator("html")).to_have_attribute("lang", "en")
        expect(page.locator("#tabs a[data-view=overview]")).to_have_text("Overview")
        expect(page.locator("#snippet-note")).to_contain_text("Put in any model from")
        assert page.evaluate("window.sameDocument") is True  # no reload

        # Remembered over the browser's own Chinese.
        page.reload()
        expect(page.locator("#badge")).to_have_text("serving")
        expect(page.locator("html")).to_have_attribute("lang", "en")
        assert page.locator("#language").input_value() == "en"

        page.select_option("#language", "zh-CN")
        expect(page.locator("#badge")).to_have_text("服务中")
        expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
        expect(page.locator("#account dt").first).to_have_text("状态")
        assert english_in_shell(page) == []


def test_an_english_browser_switched_to_chinese_shows_no_english(
    browser: Browser, empty: GatewayProcess
) -> None:
    with watched_page(browser, locale="en-US") as page:
        page.goto(empty.url + "/")
        expect(page.locator("#connect-providers button").last).to_have_text("iFlow login")
        page.select_option("#language", "zh-CN")
        expect(page.locator("#connect-providers button").last).to_have_text("iFlow 登录")
        expect(page.locator("#connect-title")).to_have_text("连接服务商")
        assert english_in_shell(page) == []


#: Pools as ``services.serving.serving`` takes them: (provider, shown state) per account.
POOLS: list[list[tuple[str, str]]] = [
    [],
    [("deepseek", "ok")],
    [("deepseek", "ok"), ("moonshot", "ok"), ("deepseek", "cooling")],
    [("deepseek", "disabled")],
    [("deepseek", "cooling"), ("zhipu", "failing"), ("moonshot", "disabled")],
]
SUMMARIES_IN_CHINESE = [
    "未在服务 — 尚未连接服务商",
    "服务中 — 1 个账号：deepseek",
    "服务中 — 2 个账号：deepseek、moonshot",
    "未在服务 — 已连接的 1 个账号目前都无法服务",
    "未在服务 — 已连接的 3 个账号目前都无法服务",
]
SUMMARY_ON_THE_PAGE = """async ([language, fields]) => {
  const i18n = await import("/static/i18n.js");
  const overview = await import("/static/overview.js");
  await i18n.choose(language);
  return fields.map((status) => overview.summary(status));
}"""


def status_fields(pool: list[tuple[str, str]]) -> dict[str, Any]:
    """What /api/status says of a pool: the fields the page composes its summary from."""
    ready = serving(pool)
    return {
        "serving": ready.serving,
        "serving_accounts": ready.accounts,
        "serving_providers": list(ready.providers),
        "connected_accounts": ready.connected,
    }


def test_the_badge_says_the_summary_in_both_languages(browser: Browser, served: GatewayProcess) -> None:
    with watched_page(browser, locale="en-US") as page:
        page.goto(served.url + "/")
        expect(page.locator("#badge")).to_have_text("serving")
        fields = [status_fields(pool) for pool in POOLS]
        # English word for word as the gateway's own summary (/health, `iflow2api status`).
        in_english = [serving(pool).summary() for pool in POOLS]
        assert page.evaluate(SUMMARY_ON_THE_PAGE, ["en", fields]) == in_english
        assert page.evaluate(SUMMARY_ON_THE_PAGE, ["zh-CN", fields]) == SUMMARIES_IN_CHINESE

        # And on the badge, from a real gateway whose one account is switched off.
        account_id = httpx.get(served.url + "/api/accounts", timeout=5).json()["accounts"][0]["id"]
        action = {"id": account_id, "action": "disable"}
        httpx.post(served.url + "/api/accounts/action", json=action, timeout=5).raise_for_status()
        health = httpx.get(served.url + "/health", timeout=5).json()
        page.reload()  # remembered: Chinese, chosen above
        expect(page.locator("#badge")).to_have_text("未在服务")
        expect(page.locator("#badge")).to_have_attribute("title", SUMMARIES_IN_CHINESE[3])
        page.select_option("#language", "en")
        expect(page.locator("#badge")).to_have_text("not serving")
        expect(page.locator("#badge")).to_have_attribute("title", health["summary"])
