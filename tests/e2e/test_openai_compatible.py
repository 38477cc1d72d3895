"""An ``openai-compatible`` upstream, configured the way the iFlow CLI configures one."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.fake_iflow import DEFAULT_KEY, Completion, FakeIflow

IFLOW_HEADERS = ("x-iflow-signature", "x-iflow-timestamp", "session-id", "conversation-id")


@pytest.fixture(scope="module")
def plain_upstream() -> Iterator[FakeIflow]:
    with FakeIflow(mode="openai", models=["deepseek-chat", "kimi-k2"]) as server:
        yield server


@pytest.fixture
def gateway(start_gateway: Any, plain_upstream: FakeIflow) -> Any:
    plain_upstream.reset()
    settings = {
        "selectedAuthType": "openai-compatible",
        "baseUrl": plain_upstream.base_url,
        "apiKey": DEFAULT_KEY,
        "modelName": "deepseek-chat",
    }
    return start_gateway(settings)


def test_plain_request_without_iflow_headers(gateway: Any, plain_upstream: FakeIflow) -> None:
    plain_upstream.enqueue(Completion(content="plain"))
    sdk = openai.OpenAI(base_url=gateway.url + "/v1", api_key="x", max_retries=0)
    reply = sdk.chat.completions.create(
        model="deepseek-chat",
        messages=[{"role": "user", "content": "x"}],
        max_tokens=50,
        reasoning_effort="low",
    )
    assert reply.choices[0].message.content == "plain"
    sent = plain_upstream.received[-1]
    assert sent.rejected is None
    assert not any(name in sent.headers for name in IFLOW_HEADERS)
    assert sent.headers["user-agent"] != "iFlow-Cli"
    assert sent.body == {
        "model": "deepseek-chat",
        "messages": [{"role": "user", "content": "x"}],
        "max_tokens": 50,
        "reasoning_effort": "low",
    }


def test_models_come_from_the_upstream(gateway: Any) -> None:
    listing = httpx.get(gateway.url + "/v1/models").json()
    assert [m["id"] for m in listing["data"]] == ["deepseek-chat", "kimi-k2"]


def test_unlisted_model_is_a_404_naming_the_available_ones(gateway: Any, plain_upstream: FakeIflow) -> None:
    response = httpx.post(
        gateway.url + "/v1/chat/completions",
        json={"model": "glm-4.7", "messages": [{"role": "user", "content": "x"}]},
    )
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "model_not_found"
    assert "deepseek-chat" in error["message"] and "kimi-k2" in error["message"]
    assert plain_upstream.received == []


def test_stream_usage_only_when_asked(gateway: Any, plain_upstream: FakeIflow) -> None:
    sdk = openai.OpenAI(base_url=gateway.url + "/v1", api_key="x", max_retries=0)
    chunks = list(
        sdk.chat.completions.create(
            model="kimi-k2",
            messages=[{"role": "user", "content": "x"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[-1].usage is not None
    assert plain_upstream.received[-1].body is not None
    assert plain_upstream.received[-1].body["stream_options"] == {"include_usage": True}
