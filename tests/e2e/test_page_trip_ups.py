"""Small things a user trips on, on the page (issue 12, item 7).

- Started without a terminal, the gateway shows no admin password; a person on this machine sets the
  first one on the sign-in screen (the real gateway, in headless Chromium).
- An OpenAI-compatible account never asks to "log in again"; "Add account" starts at a provider preset;
  the Recent requests table fits a 1280-px window (the page against the scripted management API of
  ``test_dashboard_ui``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, Route, expect

from tests.conftest import GatewayProcess, iflow_settings
from tests.e2e import test_dashboard_ui as ui
from tests.e2e.browser import TIMEOUT_MS
from tests.e2e.test_dashboard_ui import Dashboard, recent_row, usage_document
from tests.fake_iflow import FakeIflow

# The scripted management API's fixtures, used here as they are there.
assets, context, dashboard = ui.assets, ui.context, ui.dashboard
StartGateway = Callable[[dict[str, Any] | None, dict[str, str]], GatewayProcess]
CLIENT_KEY = "client-key-first-password"
PASSWORD = "a long enough secret"


@pytest.fixture
def new_page(browser: Browser) -> Iterator[Callable[[], Page]]:
    """Pages in fresh browser contexts (no cookie carries over), 1280 px wide."""
    contexts = []

    def make() -> Page:
        context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-US")
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        return context.new_page()

    yield make
    for made in contexts:
        made.close()


def test_a_loopback_visit_sets_the_first_admin_password_once(
    start_gateway: StartGateway, fake: FakeIflow, new_page: Callable[[], Page]
) -> None:
    gateway = start_gateway(iflow_settings(fake), {"IFLOW2API_API_KEYS": CLIENT_KEY})
    # Its stderr is a pipe, not a terminal: no password was made, so none was printed.
    assert "Admin password" not in gateway.log()

    page = new_page()
    page.goto(gateway.url + "/")
    expect(page.locator("#signin")).to_be_visible()
    offer = page.locator("#first-password-form")
    expect(offer).to_be_visible()
    page.fill("#first-password", PASSWORD)
    page.fill("#first-password-again", PASSWORD + "!")
    offer.locator("button[type=submit]").click()
    expect(page.locator("#first-password-message")).to_have_text("The two passwords differ.")
    page.fill("#first-password-again", PASSWORD)
    offer.locator("button[type=submit]").click()
    expect(page.locator("#tabs")).to_be_visible()  # signed in with it at once
    expect(page.locator("#signin")).to_be_hidden()
    expect(page.locator("#badge")).to_have_text("serving")

    # A password exists now: another visit is offered only the sign-in, and the password works there.
    later = new_page()
    later.goto(gateway.url + "/")
    expect(later.locator("#signin")).to_be_visible()
    expect(later.locator("#first-password-form")).to_be_hidden()
    later.check("input[name=signin-kind][value=password]")
    later.fill("#signin-secret", PASSWORD)
    later.locator("#signin-form button[type=submit]").click()
    expect(later.locator("#tabs")).to_be_visible()

    # And the route refuses to set another, even from loopback.
    again = httpx.post(gateway.url + "/api/admin-password", json={"password": "some other password"})
    assert again.status_code == 403
    assert "already set" in again.json()["error"]["message"]
    refused = httpx.post(gateway.url + "/api/session", json={"password": "some other password"})
    assert refused.status_code == 401


def test_a_forwarded_for_header_does_not_decide(start_gateway: StartGateway, fake: FakeIflow) -> None:
    """The route goes by the socket's address: a header naming another machine changes nothing
    here (and one naming loopback changes nothing elsewhere, see tests/unit/test_first_password.py)."""
    gateway = start_gateway(iflow_settings(fake), {"IFLOW2API_API_KEYS": CLIENT_KEY})
    forwarded = {"x-forwarded-for": "203.0.113.9"}
    status = httpx.get(gateway.url + "/api/status", headers=forwarded).json()
    assert status["admin"] == {"required": True, "signed_in": False, "first_password": True}
    answer = httpx.post(gateway.url + "/api/admin-password", json={"password": PASSWORD}, headers=forwarded)
    assert answer.status_code == 200
    assert "iflow2api_session=" in answer.headers["set-cookie"]


def test_an_openai_compatible_account_never_asks_to_log_in_again(dashboard: Dashboard) -> None:
    page = dashboard.page
    # settings.json points at an OpenAI-compatible server; an old iFlow login beside it was refused.
    dashboard.api.status.update(
        serving=False,
        upstream="openai-compatible",
        auth_type="openai-compatible",
        base_url="https://api.deepseek.com",
        oauth_login=False,
    )
    dashboard.api.status["login"]["state"] = "needs-login"
    for entry in dashboard.api.accounts["accounts"]:
        entry["state"] = "needs-login"  # were a pool ever to say so of any account
    dashboard.open()
    expect(page.locator("#badge")).to_have_text("not serving")
    expect(page.locator("#login")).to_have_text("Log in with iFlow")
    assert "log in again" not in page.locator("#view-overview").inner_text().lower()
    page.click("#tabs a[data-view=accounts]")
    rows = page.locator("#accounts-table tbody tr")
    expect(rows.first).to_be_visible()
    for n in range(rows.count()):
        row = rows.nth(n)
        iflow_login = "iFlow login" in row.inner_text()
        assert ("log in again" in row.inner_text().lower()) is iflow_login, row.inner_text()
    assert page.locator("#accounts-table tbody tr", has_text="OpenAI-compatible").count() > 0

    # The same status for an iFlow login does ask.
    dashboard.api.status.update(upstream="iflow", auth_type="oauth-iflow")
    dashboard.open()
    expect(page.locator("#badge")).to_have_text("log in again")
    expect(page.locator("#login")).to_have_text("Log in again")


def test_add_account_starts_at_a_provider_preset(dashboard: Dashboard) -> None:
    page = dashboard.page
    dashboard.open("accounts")
    expect(page.locator("#account-kind")).to_have_value("openai-compatible")
    provider = page.locator("#account-provider")
    expect(provider).to_have_value("deepseek")
    expect(page.locator("#account-base-url")).to_have_value("https://api.deepseek.com")
    # "By host" and any other server stay a choice away.
    expect(provider.locator("option").nth(0)).to_have_text("By its base URL's host (auto)")
    expect(provider.locator("option[value=generic]")).to_have_count(1)
    page.fill("#account-label", "ds")
    page.fill("#account-key", "ds-secret")
    sent = dashboard.post("/api/accounts", lambda: page.click("#account-form button[type=submit]"))
    assert (sent["kind"], sent["provider"], sent["base_url"]) == (
        "openai-compatible",
        "deepseek",
        "https://api.deepseek.com",
    )
    # Ready for the next one: the preset again.
    expect(page.locator("#account-label")).to_have_value("")
    expect(provider).to_have_value("deepseek")
    expect(page.locator("#account-base-url")).to_have_value("https://api.deepseek.com")


def long_rows() -> list[dict[str, Any]]:
    """Recent requests with the longest names and errors a gateway shows."""
    now = time.time()
    error = "upstream_unavailable: https://api.example-provider.com/v1/chat/completions did not answer"
    rows = [
        recent_row(now - 30, "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B-long-context-preview", 200, None),
        recent_row(now - 60, "moonshotai/Kimi-K2-Instruct-0905", 502, error),
    ]
    for row in rows:
        row.update(key="the build server's key for nightly runs", account="team-openrouter-account-number-2")
        row.update(prompt_tokens=1_234_567, completion_tokens=234_567, cached_tokens=1_000_000)
        row.update(latency_ms=123_456.0, ttft_ms=12_345.0, attempts=3)
    return rows


def test_recent_requests_fit_a_1280_px_window(dashboard: Dashboard) -> None:
    page = dashboard.page
    page.set_viewport_size({"width": 1280, "height": 800})

    def usage(route: Route) -> None:
        document = usage_document(7)
        document["recent"] = long_rows()
        route.fulfill(status=200, content_type="application/json", body=json.dumps(document))

    page.route("**/api/usage?*", usage)
    dashboard.open("usage")
    table = page.locator("#usage-recent")
    expect(table.locator("tbody tr")).to_have_count(2)
    expect(table).to_contain_text("did not answer")
    widths = table.evaluate("t => [t.scrollWidth, t.parentElement.clientWidth]")
    assert widths[0] <= widths[1], widths
    assert page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")
    dashboard.shot("usage-recent-1280.png")
