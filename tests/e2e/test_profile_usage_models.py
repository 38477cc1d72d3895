"""Models and usage across profiles, on a real gateway whose account names a provider profile.

The account's profile (``tests.e2e.profiled_gateway.CacheHost``) counts cache hits its own way,
documents one model's limits and says 402 when the balance is spent. Through the real ``openai``
and ``anthropic`` SDKs: every dialect's answer carries the cached tokens in its own field, the
usage records, the dashboard's API and ``/metrics`` count them, ``/v1/models`` shows the limits,
and the page shows an account whose credit is spent as "out of credit", with a Reset.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
from playwright.sync_api import Browser, Page, expect

from iflow2api.state import AccountHealth, AccountRecord, open_store
from tests.conftest import GatewayProcess
from tests.e2e.browser import watched_page
from tests.e2e.profiled_gateway import KNOWN, KNOWN_MODEL, OUT_OF_CREDIT
from tests.e2e.test_accounts import cli
from tests.fake_iflow import Completion, FakeIflow, HttpError

KEY = "sk-cachehost-0123456789abcdef"
OTHER_MODEL = "plain-model"
#: The host's own words for 768 of 1,000 prompt tokens read from its cache.
HOST_USAGE = {
    "prompt_tokens": 1000,
    "completion_tokens": 20,
    "total_tokens": 1020,
    "prompt_cache_hit_tokens": 768,
}
#: OpenAI's words for 512 of 600.
OPENAI_USAGE = {
    "prompt_tokens": 600,
    "completion_tokens": 10,
    "total_tokens": 610,
    "prompt_tokens_details": {"cached_tokens": 512},
}
HI = [{"role": "user", "content": "hi"}]


@pytest.fixture
def upstream() -> Iterator[FakeIflow]:
    with FakeIflow(mode="openai", api_keys=[KEY], models=[KNOWN_MODEL, OTHER_MODEL]) as fake:
        yield fake


@pytest.fixture
def gateway(tmp_path: Path, upstream: FakeIflow, start_gateway: Any) -> GatewayProcess:
    config = tmp_path / "config.toml"
    config.write_text(
        f'[[accounts]]\nlabel = "cache host"\nprovider = "cachehost"\napi_key = "{KEY}"\n'
        f'base_url = "{upstream.base_url}"\n'
    )
    root = str(Path(__file__).resolve().parents[2])
    env = {"IFLOW2API_CONFIG": str(config), "PYTHONPATH": root}
    process: GatewayProcess = start_gateway(None, env, module="tests.e2e.profiled_gateway")
    return process


@pytest.fixture
def chat(gateway: GatewayProcess) -> Iterator[openai.OpenAI]:
    # Closed when the test ends: a client left to the collector warns in whichever test runs then.
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key="unused", max_retries=0) as client:
        yield client


@pytest.fixture
def claude(gateway: GatewayProcess) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=gateway.url, api_key="unused", max_retries=0) as client:
        yield client


@contextmanager
def opened(browser: Browser, url: str) -> Iterator[Page]:
    with watched_page(browser) as page:
        page.goto(url)
        yield page


def usage_document(gateway: GatewayProcess, requests: int) -> dict[str, Any]:
    """``/api/usage`` once it holds ``requests`` rows (a row is written as its answer ends)."""
    deadline = time.monotonic() + 10
    while True:
        document: dict[str, Any] = httpx.get(gateway.url + "/api/usage?days=1", timeout=5).json()
        if document["totals"]["requests"] >= requests or time.monotonic() > deadline:
            return document
        time.sleep(0.1)


def test_cached_tokens_reach_every_dialect_the_usage_records_metrics_and_the_page(
    gateway: GatewayProcess,
    upstream: FakeIflow,
    chat: openai.OpenAI,
    claude: anthropic.Anthropic,
    browser: Browser,
) -> None:
    upstream.enqueue(Completion(content="one", usage=dict(HOST_USAGE)))
    answer = chat.chat.completions.create(model=KNOWN_MODEL, messages=HI)  # type: ignore[arg-type]
    assert answer.usage is not None and answer.usage.prompt_tokens_details is not None
    assert answer.usage.prompt_tokens_details.cached_tokens == 768

    upstream.enqueue(Completion(content="two", usage=dict(HOST_USAGE)))
    stream = chat.chat.completions.create(
        model=KNOWN_MODEL,
        messages=HI,
        stream=True,
        stream_options={"include_usage": True},
    )  # type: ignore[call-overload]
    usages = [chunk.usage for chunk in stream if chunk.usage is not None]
    assert [u.prompt_tokens_details.cached_tokens for u in usages if u.prompt_tokens_details] == [768]

    upstream.enqueue(Completion(content="three", usage=dict(HOST_USAGE)))
    message = claude.messages.create(model=KNOWN_MODEL, max_tokens=50, messages=HI)  # type: ignore[arg-type]
    # Anthropic counts the cache reads outside input_tokens.
    assert (message.usage.input_tokens, message.usage.cache_read_input_tokens) == (232, 768)

    upstream.enqueue(Completion(content="four", usage=dict(HOST_USAGE)))
    with claude.messages.stream(model=KNOWN_MODEL, max_tokens=50, messages=HI) as streamed:  # type: ignore[arg-type]
        final = streamed.get_final_message()
    assert (final.usage.input_tokens, final.usage.cache_read_input_tokens) == (232, 768)

    upstream.enqueue(Completion(content="five", usage=dict(OPENAI_USAGE)))
    response = chat.responses.create(model=KNOWN_MODEL, input="hi")
    assert response.usage is not None and response.usage.input_tokens_details.cached_tokens == 512

    document = usage_document(gateway, 5)
    assert document["totals"]["cached_tokens"] == 4 * 768 + 512
    assert document["totals"]["prompt_tokens"] == 4 * 1000 + 600
    assert sorted(row["cached_tokens"] for row in document["recent"]) == [512, 768, 768, 768, 768]
    assert sum(day["cached_tokens"] for day in document["per_day"]) == 4 * 768 + 512

    metrics = httpx.get(gateway.url + "/metrics", timeout=5).text
    cached = re.findall(
        rf'^iflow2api_tokens_total\{{type="cached",model="{KNOWN_MODEL}",[^}}]*\}} (\d+)$', metrics, re.M
    )
    assert [int(value) for value in cached] == [4 * 768 + 512]

    with opened(browser, gateway.url + "/#usage") as page:
        tokens = page.locator("#usage-totals [data-stat=tokens] .sub")
        expect(tokens).to_contain_text("prompt 4,600 (cached 3,584)")
        cells = page.locator("#usage-recent [data-testid=cached]")
        expect(cells).to_have_text([" (512 cached)", *[" (768 cached)"] * 4])


def test_models_show_the_limits_their_profile_documents(chat: openai.OpenAI) -> None:
    models = {model.id: model.model_dump() for model in chat.models.list()}
    assert set(models) == {KNOWN_MODEL, OTHER_MODEL}
    known = models[KNOWN_MODEL]
    assert (known["context_length"], known["max_output_tokens"]) == (KNOWN.context_window, KNOWN.max_output)
    assert known["object"] == "model" and known["owned_by"] == "upstream"
    assert "context_length" not in models[OTHER_MODEL]  # nothing documented: nothing made up
    one = chat.models.retrieve(KNOWN_MODEL).model_dump()
    assert one["context_length"] == KNOWN.context_window


def test_an_account_out_of_credit_shows_so_on_the_page_and_can_be_reset(
    gateway: GatewayProcess, upstream: FakeIflow, chat: openai.OpenAI, browser: Browser
) -> None:
    upstream.enqueue(HttpError(402, body={"error": {"message": "Insufficient Balance", "type": "unknown"}}))
    with pytest.raises(openai.RateLimitError) as refused:
        chat.chat.completions.create(model=KNOWN_MODEL, messages=HI)  # type: ignore[arg-type]
    assert refused.value.code == "insufficient_quota" and OUT_OF_CREDIT in refused.value.message
    accounts = httpx.get(gateway.url + "/api/accounts", timeout=5).json()["accounts"]
    assert [account["state"] for account in accounts] == ["out-of-credit"]
    reason = accounts[0]["reason"]
    assert reason

    with opened(browser, gateway.url + "/#accounts") as page:
        row = page.locator("#accounts-table tr[data-state=out-of-credit]")
        expect(row.locator("[data-testid=account-state]")).to_have_text("out of credit")
        expect(row.locator("[data-testid=account-reason]")).to_have_text(reason)
        row.locator("button[data-action=reset]").click()
        expect(page.locator("#accounts-table [data-testid=account-state]")).to_have_text(["ok"])
    upstream.enqueue(Completion(content="topped up"))
    answer = chat.chat.completions.create(model=KNOWN_MODEL, messages=HI)  # type: ignore[arg-type]
    assert answer.choices[0].message.content == "topped up"


def test_accounts_list_says_which_account_is_out_of_credit_and_why(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    spent = AccountRecord(
        id="acc-spent1", label="spent", kind="openai-compatible", base_url="http://127.0.0.1:9/v1", secret=KEY
    )
    reason = "out of credit: Insufficient Balance"

    async def seed() -> None:
        store = open_store(data)
        try:
            await store.put_account(spent)
            await store.put_account(dataclasses.replace(spent, id="acc-fine01", label="fine"))
            await store.put_health(
                spent.id, AccountHealth(state="quarantined", reason=reason, code="insufficient_quota")
            )
        finally:
            await store.close()

    # In a thread of its own: Playwright's sync API keeps an event loop running in this one.
    with ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, seed()).result()
    listed = cli(tmp_path / "home", data, "accounts", "list")
    assert listed.returncode == 0, listed.stderr
    rows = {line.split()[0]: line for line in listed.stdout.splitlines()[1:]}
    assert f"out-of-credit ({reason})" in rows["acc-spent1"]
    assert rows["acc-fine01"].endswith(" ok")  # no models: the state ends the line
