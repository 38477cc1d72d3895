"""The page's copy-ready snippets work: on a real gateway whose one account is a (fake) DeepSeek key,
each snippet names a model that account serves, and the Python one, copied as it is, gets an answer;
with client keys, the snippets hold a placeholder where the key goes and never a stored secret."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import openai
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.conftest import GatewayProcess
from tests.e2e.browser import watched_page
from tests.e2e.provider_accounts import provider_gateway
from tests.e2e.test_keys import cli, create_key
from tests.fake_iflow import DEFAULT_KEY, FakeIflow

#: Served by the fake only: a snippet that names it took it from the gateway, not from the page's code.
SERVED = ("deepseek-snippet-test", "deepseek-other")
SNIPPETS = ("curl", "python", "claude-code", "codex", "chat-apps")
PLACEHOLDER = "sk-...your key..."
PASSWORD = "a long admin password"
StartGateway = Callable[..., GatewayProcess]


@pytest.fixture(scope="module")
def deepseek() -> Iterator[FakeIflow]:
    with FakeIflow(mode="deepseek", models=SERVED) as upstream:
        yield upstream


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    with watched_page(browser, allowed="401") as page:
        yield page


def texts(page: Page) -> dict[str, str]:
    return {name: page.locator("#" + name).inner_text() for name in SNIPPETS}


def run_python(snippet: str) -> str:
    """The Python snippet, run as a user would paste it into a file."""
    done = subprocess.run([sys.executable, "-c", snippet], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_snippets_name_a_served_model_and_work(page: Page, deepseek: FakeIflow, tmp_path: Path) -> None:
    deepseek.reset()
    with provider_gateway(tmp_path, deepseek, "deepseek") as gateway:
        status = httpx.get(gateway.url + "/api/status", timeout=10).json()
        assert [m["id"] for m in status["served_models"]] == list(SERVED)

        page.goto(gateway.url + "/")
        expect(page.locator("#curl")).to_contain_text(f'"model":"{SERVED[0]}"')
        shown = texts(page)
        for name, text in shown.items():
            assert SERVED[0] in text, name
            assert "glm-4.7" not in text and "<a model" not in text, name
            assert "sk-" not in text, name  # no keys: nothing stands for one
        assert f"export ANTHROPIC_BASE_URL={gateway.url}\n" in shown["claude-code"]
        codex = tomllib.loads(shown["codex"])
        assert codex["model"] == SERVED[0]
        assert codex["model_providers"]["iflow2api"]["base_url"] == gateway.url + "/v1"
        # The models table lists what the account serves, as /v1/models does.
        expect(page.locator("#models tbody tr")).to_have_count(len(SERVED))

        assert run_python(shown["python"]).strip()
        asked = deepseek.received[-1]
        assert asked.body is not None and asked.rejected is None
        assert asked.body["model"] == SERVED[0]


def test_with_client_keys_the_snippets_hold_a_placeholder(
    page: Page, deepseek: FakeIflow, tmp_path: Path
) -> None:
    deepseek.reset()
    data = tmp_path / "data"
    key = create_key(data, "alice")
    assert cli(data, "admin-password", "--password", PASSWORD).returncode == 0
    with provider_gateway(tmp_path, deepseek, "deepseek") as gateway:
        page.goto(gateway.url + "/")
        page.locator("input[name=signin-kind][value=password]").check()
        page.locator("#signin-secret").fill(PASSWORD)
        page.locator("#signin-form button[type=submit]").click()
        expect(page.locator("#curl")).to_contain_text("authorization: Bearer " + PLACEHOLDER)
        shown = texts(page)
        for name, text in shown.items():
            assert PLACEHOLDER in text, name
            assert SERVED[0] in text, name
            assert key not in text and DEFAULT_KEY not in text, name
        page_text = page.locator("body").inner_text()
        assert key not in page_text and DEFAULT_KEY not in page_text

        # With the placeholder swapped for a real key, the snippet gets its answer.
        assert run_python(shown["python"].replace(PLACEHOLDER, key)).strip()
        with openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0) as client:
            assert [m.id for m in client.models.list()][: len(SERVED)] == list(SERVED)


def test_with_nothing_served_the_snippets_say_where_the_models_are(
    page: Page, start_gateway: StartGateway
) -> None:
    gateway = start_gateway(None, {"IFLOW2API_OPEN_BROWSER": "false"})
    status = httpx.get(gateway.url + "/api/status", timeout=10).json()
    assert status["served_models"] == []
    page.goto(gateway.url + "/")
    expect(page.locator("#badge")).to_have_text("not serving")
    for name, text in texts(page).items():
        assert "<a model from /v1/models>" in text, name
        assert "glm-4.7" not in text, name
