"""The dashboard on a real gateway with real traffic, in headless Chromium.

Three accounts on the fake, client keys and an admin password; requests through the real SDKs with
failovers, a quarantine and an error; then the page is signed in to and must show exactly that.

``IFLOW2API_SCREENSHOTS=1`` saves the usage and accounts views to ``docs/screenshots``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.conftest import GatewayProcess, iflow_settings, write_settings
from tests.e2e.browser import watched_page
from tests.e2e.test_keys import cli, create_key
from tests.fake_iflow import BusinessError, Completion, FakeIflow, HttpError

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
KEYS = ["sk-" + c * 32 for c in "def"]
PASSWORD = "a long admin password"


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    # A 401 before signing in is expected; anything else in the console is a fault of the page.
    with watched_page(browser, allowed="401") as page:
        yield page


def screenshot(page: Page, name: str) -> None:
    if os.environ.get("IFLOW2API_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / name), full_page=True)


def traffic(gateway: GatewayProcess, fake: FakeIflow, keys: dict[str, str]) -> int:
    """Requests of several kinds; returns how many were made."""
    # Each spare account serves once, then the second request it gets fails over.
    fake.enqueue_for(KEYS[1], Completion(), BusinessError(status="449", msg="busy"))
    blocked = "Access to the current AK has been blocked due to unauthorized requests"
    fake.enqueue_for(KEYS[2], Completion(), BusinessError(status="434", msg=blocked))
    usage = {
        "prompt_tokens": 900,
        "completion_tokens": 300,
        "total_tokens": 1200,
        "completion_tokens_details": {"reasoning_tokens": 120},
    }
    fake.enqueue(Completion(reasoning="Let me think.", usage=usage))
    made = 0
    alice = openai.OpenAI(base_url=gateway.url + "/v1", api_key=keys["alice"], max_retries=0)
    for model in ("glm-4.7", "glm-4.7", "qwen3-coder-plus", "kimi-k2"):
        alice.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
        made += 1
    for chunk in alice.chat.completions.create(
        model="glm-4.7", messages=[{"role": "user", "content": "stream"}], stream=True
    ):
        assert chunk
    made += 1
    claude = anthropic.Anthropic(base_url=gateway.url, api_key=keys["claude-code"], max_retries=0)
    for _ in range(3):
        claude.messages.create(model="glm-4.7", max_tokens=50, messages=[{"role": "user", "content": "hi"}])
        made += 1
    fake.enqueue(HttpError(400, body={"error": {"message": "bad request", "type": "invalid_request_error"}}))
    with pytest.raises(openai.BadRequestError):
        alice.chat.completions.create(model="glm-4.7", messages=[{"role": "user", "content": "oops"}])
    made += 1
    return made


def test_the_dashboard_shows_the_real_accounts_keys_and_usage(
    start_gateway: Any, tmp_path: Path, page: Page
) -> None:
    with FakeIflow(api_keys=KEYS) as fake:
        home, data = tmp_path / "home", tmp_path / "data"
        write_settings(home, iflow_settings(fake, KEYS[0]))
        config = tmp_path / "config.toml"
        config.write_text(
            "".join(
                f'[[accounts]]\nlabel = "{label}"\nkind = "iflow-key"\nbase_url = "{fake.base_url}"\n'
                f'api_key = "{key}"\n\n'
                for label, key in (("team key", KEYS[1]), ("spare key", KEYS[2]))
            )
        )
        keys = {name: create_key(data, name) for name in ("alice", "claude-code")}
        assert cli(data, "admin-password", "--password", PASSWORD).returncode == 0
        gateway: GatewayProcess = start_gateway(
            None,
            {
                "IFLOW_HOME": str(home),
                "IFLOW2API_DATA_DIR": str(data),
                "IFLOW2API_CONFIG": str(config),
                "IFLOW2API_COOLDOWN_BASE": "600",
            },
        )
        made = traffic(gateway, fake, keys)

        page.goto(gateway.url + "/#usage")
        expect(page.locator("#signin")).to_be_visible()
        page.locator("input[name=signin-kind][value=password]").check()
        page.locator("#signin-secret").fill(PASSWORD)
        page.locator("#signin-form button[type=submit]").click()

        page.locator("#tabs a[data-view=usage]").click()
        expect(page.locator("#view-usage")).to_be_visible()
        expect(page.locator("[data-stat=requests] .value")).to_have_text(str(made))
        expect(page.locator("#usage-charts")).to_be_visible()
        # One bar per model that was asked for, per key, and per account that served something.
        models = page.locator("#chart-models svg g.bar title")
        expect(models).to_have_count(3)
        expect(page.locator("#chart-models")).to_contain_text("qwen3-coder-plus")
        expect(page.locator("#chart-keys svg g.bar")).to_have_count(2)
        expect(page.locator("#chart-keys")).to_contain_text("claude-code")
        expect(page.locator("#chart-accounts svg g.bar")).to_have_count(3)
        expect(page.locator("#usage-recent tbody tr")).to_have_count(made)
        expect(page.locator("#usage-csv")).to_have_attribute("href", "/api/usage.csv?days=7")
        screenshot(page, "dashboard.png")

        page.locator("#tabs a[data-view=accounts]").click()
        rows = page.locator("#accounts-table tbody tr")
        expect(rows).to_have_count(3)
        expect(page.locator("#accounts-table tr[data-state=cooling]")).to_contain_text("team key")
        quarantined = page.locator("#accounts-table tr[data-state=quarantined]")
        expect(quarantined).to_contain_text("spare key")
        expect(quarantined.locator("[data-testid=account-reason]")).to_contain_text("blocked")
        assert KEYS[0] not in page.content()
        expect(rows.locator("[data-testid=account-provider]")).to_have_text(["iflow"] * 3)
        screenshot(page, "accounts.png")

        quarantined.locator("button[data-action=reset]").click()
        expect(page.locator("#accounts-table tr[data-id=cfg-spare-key]")).to_have_attribute(
            "data-state", "ok"
        )
