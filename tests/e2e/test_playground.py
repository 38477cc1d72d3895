"""The page's playground: a prompt to a served model, streamed back through the gateway's own chat
route (``/api/playground``), recorded in the usage like any request; and the route is the page's
alone: the admin session (or an admin key), same origin, while ``/v1/chat/completions`` still takes
client keys only.

The upstream is a fake OpenAI-compatible host on loopback, added as an account through the page's API.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.conftest import GatewayProcess
from tests.e2e.browser import watched_page
from tests.e2e.test_accounts import eventually
from tests.e2e.test_keys import bearer, create_key, start_with_keys
from tests.fake_iflow import Completion, FakeIflow, Stream

GOOD = "sk-good-0123456789"
MODELS = ["fake-small", "fake-large"]
CHAT = {"model": "glm-4.7", "messages": [{"role": "user", "content": "hi"}], "stream": True}


@pytest.fixture
def host() -> Iterator[FakeIflow]:
    with FakeIflow(mode="openai", api_keys=[GOOD], models=MODELS) as fake:
        yield fake


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    with watched_page(browser) as page:
        yield page


def connect(gateway: GatewayProcess, host: FakeIflow) -> None:
    form = {"kind": "openai-compatible", "provider": "generic", "base_url": host.base_url}
    added = httpx.post(
        gateway.url + "/api/accounts", json=form | {"label": "fake", "api_key": GOOD}, timeout=10
    )
    assert added.status_code == 201 and added.json()["check"]["ok"] is True, added.text


def recent(gateway: GatewayProcess, **headers: str) -> list[dict[str, Any]]:
    usage = httpx.get(gateway.url + "/api/usage?days=1", headers=headers, timeout=5)
    assert usage.status_code == 200, usage.text
    return list(usage.json()["recent"])


def test_the_playground_streams_an_answer_and_records_it(
    host: FakeIflow, start_gateway: Any, page: Page
) -> None:
    gateway: GatewayProcess = start_gateway(None)
    connect(gateway, host)
    host.enqueue(
        Stream.of_text(
            ["Hello ", "there, ", "friend."],
            reasoning=["Weighing ", "a greeting."],
            usage={"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
            model="fake-large",
            delay=0.4,
        )
    )
    page.goto(gateway.url + "/#playground")
    expect(page.locator("#tabs a[data-view=playground]")).to_have_attribute("aria-current", "page")
    expect(page.locator("#play-model option")).to_have_count(2)
    page.select_option("#play-model", "fake-large")
    page.fill("#play-prompt", "Greet me.")
    page.click("#play-send")

    answer = page.locator("#play-answer")
    expect(answer).to_contain_text("Hello")
    assert "friend." not in (answer.text_content() or "")  # the first words show before the last came
    expect(answer).to_have_text("Hello there, friend.")
    reasoning = page.locator("#play-reasoning")
    expect(reasoning).to_be_visible()
    expect(reasoning).not_to_have_attribute("open", "")  # folded above the answer
    expect(page.locator("#play-reasoning-text")).to_be_hidden()
    expect(page.locator("#play-reasoning-text")).to_have_text("Weighing a greeting.")
    expect(page.locator("#play-prompt-tokens")).to_have_text("11")
    expect(page.locator("#play-completion-tokens")).to_have_text("7")
    expect(page.locator("#play-ttft")).to_have_text(re.compile(r"^\d+ ms$|^\d\.\d\d s$"))
    expect(page.locator("#play-stop")).to_be_hidden()
    reasoning.locator("summary").click()
    expect(page.locator("#play-reasoning-text")).to_be_visible()

    # What the upstream got is the page's prompt, streamed, with usage asked for.
    body = host.received[-1].body
    assert body is not None and body["model"] == "fake-large" and body["stream"] is True
    assert body["messages"][-1] == {"role": "user", "content": "Greet me."}

    # Recorded like any request: in the usage (without a key name) and in the metrics.
    eventually(lambda: any(row["model"] == "fake-large" for row in recent(gateway)))
    [row] = [row for row in recent(gateway) if row["model"] == "fake-large"]
    assert (row["key"], row["dialect"], row["stream"], row["status"]) == (None, "chat", True, 200)
    assert (row["prompt_tokens"], row["completion_tokens"], row["account"]) == (11, 7, "fake")
    assert row["ttft_ms"] is not None
    metrics = httpx.get(gateway.url + "/metrics", timeout=5).text
    assert 'model="fake-large"' in metrics


def test_an_answer_without_reasoning_folds_nothing_and_stop_cancels(
    host: FakeIflow, start_gateway: Any, page: Page
) -> None:
    gateway: GatewayProcess = start_gateway(None)
    connect(gateway, host)
    page.goto(gateway.url + "/#playground")
    expect(page.locator("#play-model option")).to_have_count(2)
    page.fill("#play-prompt", "Greet me.")
    host.enqueue(Completion(content="Short.", reasoning=None))
    page.click("#play-send")
    expect(page.locator("#play-answer")).to_have_text("Short.")
    expect(page.locator("#play-reasoning")).to_be_hidden()  # no reasoning: nothing to fold

    # Stop cancels the request: the gateway sees its client leave and records that.
    host.enqueue(Stream.of_text(["One ", "two ", "three."], model="fake-small", delay=3))
    page.click("#play-send")
    expect(page.locator("#play-answer")).to_have_text("One ")
    page.click("#play-stop")
    expect(page.locator("#play-message")).to_have_text("Stopped.")
    expect(page.locator("#play-stop")).to_be_hidden()
    eventually(lambda: any(row["status"] == 499 for row in recent(gateway)))
    assert page.locator("#play-answer").text_content() == "One "


def test_only_the_page_may_use_the_playground(start_gateway: Any, fake: FakeIflow, tmp_path: Path) -> None:
    env, data = start_with_keys(tmp_path, fake)
    alice = create_key(data, "alice")
    boss = create_key(data, "boss", "--admin")
    gateway: GatewayProcess = start_gateway(None, env)
    url = gateway.url + "/api/playground"

    # Without a session or admin key: refused as the page's API refuses, and not recorded.
    anonymous = httpx.post(url, json=CHAT, timeout=10)
    assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "admin_required"
    client_key = httpx.post(url, json=CHAT, headers=bearer(alice), timeout=10)
    assert client_key.status_code == 401 and client_key.json()["error"]["code"] == "admin_required"

    assert httpx.get(gateway.url + "/api/models", headers=bearer(alice), timeout=5).status_code == 401

    with httpx.Client(base_url=gateway.url, timeout=10) as browser:
        assert browser.post("/api/session", json={"key": boss}).status_code == 200
        listed = browser.get("/api/models")
        assert listed.status_code == 200 and "glm-4.7" in [m["id"] for m in listed.json()["data"]]
        cookie = browser.cookies
        # Another site's page, with the admin's cookie: refused before anything runs.
        other_site = browser.post("/api/playground", json=CHAT, headers={"origin": "https://evil.example"})
        assert other_site.status_code == 403
        # A cross-site preflight is never granted (no CORS for the page's routes).
        preflight = browser.options("/api/playground", headers={"origin": "https://evil.example"})
        assert preflight.status_code == 403 and "access-control-allow-origin" not in preflight.headers
        same_site = browser.post("/api/playground", json=CHAT, headers={"origin": gateway.url})
        assert same_site.status_code == 200, same_site.text
        assert same_site.headers["content-type"].startswith("text/event-stream")
        assert "data: [DONE]" in same_site.text
        assert "access-control-allow-origin" not in same_site.headers

        # The session opens the playground only: the client API still wants a client key.
        sdk = openai.OpenAI(
            base_url=gateway.url + "/v1",
            api_key="not-a-key",
            max_retries=0,
            default_headers={
                "cookie": "; ".join(f"{k}={v}" for k, v in cookie.items()),
                "origin": gateway.url,
            },
        )
        with pytest.raises(openai.AuthenticationError):
            sdk.chat.completions.create(model="glm-4.7", messages=[{"role": "user", "content": "hi"}])

    # Only the request the page sent went upstream and into the usage, under no key name.
    rows = recent(gateway, authorization=f"Bearer {boss}")
    assert [(row["key"], row["dialect"], row["status"]) for row in rows] == [(None, "chat", 200)]
