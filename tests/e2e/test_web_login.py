"""The gateway's page in a real (headless) Chromium: log in with iFlow, by redirect and by pasted code,
log out, and use the key the login produced.

Each test starts a gateway with no credentials whose OAuth host and upstream are the fake, so the
whole round trip runs on loopback: page → fake consent page → ``/oauth2callback`` → page.

``IFLOW2API_SCREENSHOTS=1`` also saves the page, logged out and logged in, to ``docs/screenshots``
(off by default, so a test run never rewrites tracked files).
"""

from __future__ import annotations

import json
import os
import re
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import AuthenticationError, OpenAI
from playwright.sync_api import Browser, Page, ViewportSize, expect

from tests.conftest import GatewayProcess
from tests.e2e.browser import TIMEOUT_MS
from tests.fake_iflow import DEFAULT_CONTENT, FakeIflow

StartGateway = Callable[[dict[str, Any] | None, dict[str, str]], GatewayProcess]

EMAIL = "user@example.com"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
VIEWPORT: ViewportSize = {"width": 1100, "height": 800}


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(TIMEOUT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture
def web_gateway(start_gateway: StartGateway, fake: FakeIflow) -> GatewayProcess:
    """A gateway with no credentials at all, logging in against the fake."""
    return start_gateway(
        None,
        {
            "IFLOW2API_OAUTH_BASE_URL": fake.oauth_base_url,
            "IFLOW2API_UPSTREAM_BASE_URL": fake.base_url,
            "IFLOW2API_OPEN_BROWSER": "false",
        },
    )


def screenshot(page: Page, name: str) -> None:
    if os.environ.get("IFLOW2API_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / name))


def back_on_the_page(page: Page, gateway: GatewayProcess) -> None:
    """Wait for iFlow to send the browser back (the page then drops ``?login=...`` from the address)."""
    page.wait_for_url(re.compile("^" + re.escape(gateway.url + "/") + r"(\?.*)?$"))


def open_page(page: Page, gateway: GatewayProcess) -> None:
    page.goto(gateway.url + "/")
    expect(page.locator("#badge")).to_have_text("not serving")


def expect_logged_in(page: Page) -> None:
    expect(page.locator("#badge")).to_have_text("serving")
    expect(page.locator("#login-message")).to_have_text(f"Logged in as {EMAIL}.")
    expect(page.locator("#account")).to_contain_text(EMAIL)
    expect(page.locator("#logout")).to_be_visible()


def read_json(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text())
    assert isinstance(data, dict)
    return data


def test_log_in_with_the_browser_then_chat(page: Page, web_gateway: GatewayProcess, fake: FakeIflow) -> None:
    open_page(page, web_gateway)
    expect(page.locator("#account")).to_contain_text("not serving — no provider connected yet")
    expect(page.locator("#logout")).to_be_hidden()
    expect(page.locator("#login")).to_have_text("Log in with iFlow")
    expect(page.locator("#base-url")).to_have_text(web_gateway.url + "/v1")
    expect(page.locator("#curl")).to_contain_text(web_gateway.url + "/v1/chat/completions")
    expect(page.locator("#python")).to_contain_text(f'base_url="{web_gateway.url}/v1"')
    expect(page.locator("#models thead")).to_contain_text("max output")
    screenshot(page, "login-page.png")

    page.click("#login")
    page.wait_for_url(re.compile("^" + re.escape(fake.oauth_base_url + "/oauth?")))
    expect(page.locator("#email")).to_have_text(EMAIL)
    started = time.time()
    page.click("#allow")
    back_on_the_page(page, web_gateway)
    expect_logged_in(page)
    expect(page.locator("#login")).to_have_text("Log in again")
    expect(page.locator("#models tbody tr").first).to_be_visible()
    expect(page.locator("#models tbody")).to_contain_text("glm-4.7")

    creds_path = web_gateway.iflow_home / "oauth_creds.json"
    creds = read_json(creds_path)
    key = creds["apiKey"]
    assert re.fullmatch(r"sk-[0-9a-f]{32}", key)
    expect(page.locator("#account")).to_contain_text(f"{key[:4]}…{key[-4:]}")
    assert key not in page.content()
    assert key not in page.inner_text("body")
    assert key not in httpx.get(web_gateway.url + "/api/status").text
    screenshot(page, "logged-in.png")
    page.set_viewport_size({"width": 390, "height": 844})  # a phone: nothing sticks out sideways
    assert page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")

    assert stat.S_IMODE(creds_path.stat().st_mode) == 0o600
    expiry = creds["expiry_date"]
    assert isinstance(expiry, int)
    lifetime_ms = fake.oauth.token_lifetime * 1000
    assert (started * 1000 + lifetime_ms - 5000) < expiry < (time.time() * 1000 + lifetime_ms + 5000)
    assert creds["email"] == EMAIL
    assert creds["refresh_token"] and creds["access_token"]
    settings = read_json(web_gateway.iflow_home / "settings.json")
    assert settings["selectedAuthType"] == "oauth-iflow"
    assert settings["apiKey"] == key

    with OpenAI(base_url=web_gateway.url + "/v1", api_key="unused", max_retries=0) as client:
        reply = client.chat.completions.create(model="glm-4.7", messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content == DEFAULT_CONTENT
    assert fake.received[-1].headers["authorization"] == f"Bearer {key}"


def test_denied_consent_shows_the_error(page: Page, web_gateway: GatewayProcess, fake: FakeIflow) -> None:
    open_page(page, web_gateway)
    page.click("#login")
    page.click("#deny")
    back_on_the_page(page, web_gateway)
    message = page.locator("#login-message")
    expect(message).to_be_visible()
    expect(message).to_have_class(re.compile(r"\berror\b"))
    expect(message).to_contain_text("Login failed")
    expect(message).to_contain_text("You declined access")
    expect(page.locator("#badge")).to_have_text("not serving")
    assert not (web_gateway.iflow_home / "oauth_creds.json").exists()
    assert fake.oauth.token_requests == []


def test_log_in_with_a_pasted_code(page: Page, web_gateway: GatewayProcess, fake: FakeIflow) -> None:
    open_page(page, web_gateway)
    expect(page.locator("#code-start")).to_be_hidden()
    page.click("#code-flow summary")
    page.click("#code-start")
    link = page.locator("#code-link")
    expect(link).to_be_visible()
    expect(link).to_have_attribute("href", re.compile("^" + re.escape(fake.oauth_base_url + "/oauth?")))

    with page.context.expect_page() as opened:
        link.click()  # target=_blank: iFlow's page opens beside ours, as on another machine
    iflow_page = opened.value
    iflow_page.click("#allow")
    code = iflow_page.inner_text("#code").strip()
    assert code
    iflow_page.close()

    page.fill("#code-input", code)
    page.click("#code-form button[type=submit]")
    expect_logged_in(page)
    expect(page.locator("#code-step")).to_be_hidden()
    expect(page.locator("#code-input")).to_have_value("")
    assert (web_gateway.iflow_home / "oauth_creds.json").exists()
    assert read_json(web_gateway.iflow_home / "settings.json")["selectedAuthType"] == "oauth-iflow"


def test_log_out(page: Page, web_gateway: GatewayProcess, fake: FakeIflow) -> None:
    fake.oauth.auto_consent = True  # the consent page is covered above; straight back with a code
    open_page(page, web_gateway)
    page.click("#login")
    expect_logged_in(page)
    creds_path = web_gateway.iflow_home / "oauth_creds.json"
    key = read_json(creds_path)["apiKey"]

    page.click("#logout")
    expect(page.locator("#badge")).to_have_text("not serving")
    expect(page.locator("#login-message")).to_have_text("Logged out.")
    expect(page.locator("#logout")).to_be_hidden()
    expect(page.locator("#login")).to_have_text("Log in with iFlow")
    expect(page.locator("#models tbody tr")).to_have_text(["The models appear once a provider is connected."])
    assert not creds_path.exists()
    settings = read_json(web_gateway.iflow_home / "settings.json")
    assert "selectedAuthType" not in settings
    assert key not in json.dumps(settings)
    with (
        OpenAI(base_url=web_gateway.url + "/v1", api_key="unused", max_retries=0) as client,
        pytest.raises(AuthenticationError) as refused,
    ):
        client.chat.completions.create(model="glm-4.7", messages=[{"role": "user", "content": "hi"}])
    assert refused.value.code == "not_logged_in"
