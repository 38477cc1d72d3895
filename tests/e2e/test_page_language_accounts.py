"""The accounts and client-keys sections in Chinese, and in English as before.

A gateway of the test's own in front of a fake OpenAI-compatible host (one good key), read by a
browser set to zh-CN: the accounts table with a working and a failing account, the Add-account form,
a check's verdict for a working key, a wrong key and a base URL without its ``/v1``, the keys table
and the new-key dialog each show Chinese and no English word but data (labels, models, URLs and the
host's own words are marked translate="no"). In en-US the same flows keep today's sentences, and the
header's switch turns them into Chinese in place.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from iflow2api.routes.web import load_assets
from iflow2api.routing import ROUTES
from tests.conftest import GatewayProcess
from tests.e2e.browser import english_words, watched_page
from tests.e2e.test_dashboard_ui import COOKIE, FakeManagementApi, handler_for
from tests.fake_iflow import FakeIflow

GOOD = "sk-good-0123456789"
WRONG = "sk-wrong-0123456789"
MODELS = ["fake-small", "fake-large"]


@pytest.fixture
def host() -> Iterator[FakeIflow]:
    with FakeIflow(mode="openai", api_keys=[GOOD], models=MODELS) as fake:
        yield fake


@pytest.fixture
def scripted() -> Iterator[str]:
    """The page's files before the scripted management API of test_dashboard_ui (one account in
    each state, a cooldown 95 s long): its address."""
    assets = {path: asset for path, asset in load_assets().items() if path in ROUTES}
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(FakeManagementApi(), assets))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def add_on_page(page: Page, label: str, base_url: str, key: str) -> None:
    page.select_option("#account-provider", "generic")
    page.fill("#account-label", label)
    page.fill("#account-base-url", base_url)
    page.fill("#account-key", key)
    page.click("#account-form button[type=submit]")


def add_by_api(gateway: GatewayProcess, label: str, base_url: str, key: str) -> None:
    body = {
        "kind": "openai-compatible",
        "provider": "generic",
        "label": label,
        "base_url": base_url,
        "api_key": key,
    }
    httpx.post(gateway.url + "/api/accounts", json=body, timeout=30).raise_for_status()


def row(page: Page, label: str) -> Any:
    return page.locator("#accounts-table tbody tr", has=page.locator(".strong", has_text=label))


def test_the_accounts_read_in_chinese(host: FakeIflow, start_gateway: Any, browser: Browser) -> None:
    gateway: GatewayProcess = start_gateway(None)
    add_by_api(gateway, "备用", host.base_url, WRONG)
    with watched_page(browser, locale="zh-CN") as page:
        page.goto(gateway.url + "/#accounts")
        failing = row(page, "备用")
        expect(failing.locator("[data-testid=account-state]")).to_have_text("检测未通过")
        expect(failing).to_have_attribute("data-state", "failing")
        expect(failing.locator("[data-testid=account-reason]")).to_contain_text(
            "原因：check: wrong key (401)"
        )
        expect(page.locator("#account-form")).to_contain_text("服务商")
        expect(page.locator("#account-provider option").first).to_have_text("按基础 URL 的主机自动识别")
        expect(page.locator("#account-provider option[value=generic]")).to_have_text(
            "任意 OpenAI 兼容服务 (generic)"
        )
        expect(page.locator("#accounts-policy")).to_have_text("调度策略：轮询 · 会话粘性：关")
        assert english_words(page, "#view-accounts") == []

        add_on_page(page, "主力", host.base_url, GOOD)
        box = page.locator("#accounts-message")
        expect(box).to_contain_text("已添加 主力。主力 可用：fake-small 在 ")
        expect(box).to_contain_text(" 毫秒内应答；列出 2 个模型")
        expect(box).to_have_class("message")
        working = row(page, "主力")
        expect(working.locator("[data-testid=account-state]")).to_have_text("正常")
        expect(working.locator("button[data-action=test]")).to_have_text("测试")
        expect(page.get_by_role("button", name="移除 主力")).to_be_visible()
        assert english_words(page, "#view-accounts") == []

        failing.locator("button[data-action=test]").click()
        expect(box).to_contain_text("备用 未通过测试：密钥无效：")
        expect(box).to_have_class("message error")
        assert english_words(page, "#accounts-message") == []

        bare = host.base_url.removesuffix("/v1")
        add_on_page(page, "裸地址", bare, GOOD)
        expect(box).to_contain_text("裸地址 未通过测试：基础 URL 有误：")
        expect(box).to_contain_text(f"（是不是漏了 /v1？试试 {bare}/v1）")
        assert english_words(page, "#view-accounts") == []

        failing.locator("button[data-action=remove]").click()
        expect(page.locator("#confirm-text")).to_have_text(
            "移除账号“备用”？网关将不再使用它，并删除它的密钥。"
        )
        page.click("#confirm-ok")
        expect(box).to_have_text("已移除 备用。")
        expect(failing).to_have_count(0)


def test_the_english_sentences_stay_and_the_switch_turns_them_chinese(
    host: FakeIflow, start_gateway: Any, browser: Browser
) -> None:
    gateway: GatewayProcess = start_gateway(None)
    with watched_page(browser) as page:
        page.goto(gateway.url + "/#accounts")
        expect(page.locator("#accounts-table tbody tr")).to_have_text(
            ["No accounts yet: log in with iFlow, or add a key below."]
        )
        add_on_page(page, "trial", host.base_url, WRONG)
        box = page.locator("#accounts-message")
        expect(box).to_have_text(
            "Added trial. trial failed its test — wrong key: "
            "Upstream answered 401: Incorrect API key provided"
        )
        expect(box).to_have_class("message error")
        expect(row(page, "trial").locator("[data-testid=account-state]")).to_have_text("failing")

        bare = host.base_url.removesuffix("/v1")
        add_on_page(page, "bare", bare, GOOD)
        expect(box).to_have_text(
            f"Added bare. bare failed its test — wrong base URL: {bare} answered 404 to /models "
            f"(did you forget /v1? try {bare}/v1)"
        )

        add_on_page(page, "good", host.base_url, GOOD)
        expect(box).to_have_text(
            re.compile(r"^Added good\. good works: fake-small answered in \d+ ms; 2 models listed$")
        )
        expect(page.locator("#accounts-policy")).to_have_text("Strategy: round-robin · Affinity: off")
        expect(page.locator("#accounts-table thead")).to_contain_text("in flight")

        # The switch says the same in Chinese, in place: the table, the form and the last verdict.
        page.select_option("#language", "zh-CN")
        expect(box).to_contain_text("已添加 good。good 可用：fake-small 在 ")
        expect(row(page, "good").locator("[data-testid=account-state]")).to_have_text("正常")
        expect(row(page, "trial").locator("[data-testid=account-state]")).to_have_text("检测未通过")
        expect(page.locator("#accounts-table thead")).to_contain_text("进行中")
        assert english_words(page, "#view-accounts") == []

        page.select_option("#language", "en")
        expect(box).to_contain_text("Added good. good works: fake-small answered in ")
        expect(row(page, "trial").locator("[data-testid=account-state]")).to_have_text("failing")


def test_the_client_keys_read_in_chinese(start_gateway: Any, browser: Browser) -> None:
    gateway: GatewayProcess = start_gateway(None)
    with watched_page(browser, locale="zh-CN") as page:
        page.goto(gateway.url + "/#keys")
        expect(page.locator("#keys-table tbody tr")).to_have_text(["还没有客户端密钥。"])
        expect(page.locator("#keys-hint")).to_contain_text("请先创建一个管理员密钥")
        assert english_words(page, "#view-keys") == []

        page.fill("#newkey-name", "笔记本")
        page.check("#newkey-admin")
        page.fill("#newkey-rpm", "60")
        page.fill("#newkey-tpd", "1000000")
        page.fill("#newkey-models", "fake-*")
        page.click("#newkey-form button[type=submit]")
        dialog = page.locator("#newkey-dialog")
        expect(dialog.locator("h2")).to_have_text("笔记本 的新密钥")
        expect(dialog).to_contain_text("请立即复制：它不会再次显示。")
        expect(dialog.locator("#newkey-close")).to_have_text("我已复制")
        assert english_words(page, "#newkey-dialog") == []
        page.click("#newkey-close")

        keys = page.locator("#keys-table tbody tr")
        expect(keys).to_have_count(1)
        expect(keys).to_contain_text("管理员")
        expect(keys).to_contain_text("每分钟 60 次请求 · 每天 1,000,000 tokens")
        expect(keys.locator("button[data-action=revoke]")).to_have_text("吊销")
        expect(page.get_by_role("button", name="吊销 笔记本")).to_be_visible()
        expect(page.locator("#keys-hint")).to_be_hidden()
        assert english_words(page, "#view-keys") == []

        keys.locator("button[data-action=revoke]").click()
        expect(page.locator("#confirm-text")).to_contain_text("吊销密钥“笔记本”？")
        page.click("#confirm-cancel")

        # Back in English by the switch: the same row in today's words.
        page.select_option("#language", "en")
        expect(keys).to_contain_text("60 requests/min · 1,000,000 tokens/day")
        expect(keys.locator("button[data-action=revoke]")).to_have_text("Revoke")
        expect(page.locator("#keys-table thead")).to_contain_text("requests today")


def test_every_state_and_countdown_reads_in_chinese(scripted: str, browser: Browser) -> None:
    with watched_page(browser, locale="zh-CN") as page:
        page.context.add_cookies([{"name": COOKIE, "value": "ok", "url": scripted}])
        page.goto(scripted + "/#accounts")
        states = page.locator("#accounts-table [data-testid=account-state]")
        expect(states).to_have_text(["正常", "冷却中", "已隔离", "已停用", "需重新登录"])
        cooling = page.locator("tr[data-id=acc-00cool]")
        expect(cooling).to_have_attribute("data-state", "cooling")
        expect(cooling.locator("[data-testid=countdown]")).to_have_text(re.compile(r"^剩余 1:[0-3]\d$"))
        expect(cooling.locator("[data-testid=account-reason]")).to_have_text("原因：rate limited (429)")
        expect(page.locator("tr[data-id=acc-00old1]")).to_contain_text("iFlow 拒绝了它的登录：请重新登录。")
        expect(page.locator("tr[data-id=acc-00old1] button[data-action=login]")).to_have_text("重新登录")
        expect(page.locator("tr[data-id=acc-00off1] button[data-action=enable]")).to_have_text("启用")
        expect(page.locator("#accounts-policy")).to_have_text("调度策略：轮询 · 会话粘性：开")
        assert english_words(page, "#view-accounts") == []
