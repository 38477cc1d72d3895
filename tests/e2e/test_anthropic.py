"""Anthropic Messages through the gateway, driven by the real anthropic SDK, against the fake iFlow."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest

from tests.conftest import GatewayProcess
from tests.fake_iflow import BusinessError, Completion, FakeIflow, Stream

TOOLS: list[Any] = [
    {
        "name": "get_weather",
        "description": "Weather for a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    }
]


@pytest.fixture
def claude(gateway: GatewayProcess) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=gateway.url, api_key="unused", max_retries=0, timeout=20) as client:
        yield client


def test_text_and_thinking(claude: anthropic.Anthropic, fake: FakeIflow) -> None:
    fake.enqueue(Completion(content="Four.", reasoning="2+2=4"))
    message = claude.messages.create(
        model="claude-sonnet-4-5",
        max_tokens=512,
        system=[{"type": "text", "text": "Be brief."}],
        thinking={"type": "enabled", "budget_tokens": 2048},
        messages=[{"role": "user", "content": "2+2?"}],
    )
    assert [block.type for block in message.content] == ["thinking", "text"]
    assert message.content[0].thinking == "2+2=4"  # type: ignore[union-attr]
    assert message.content[1].text == "Four."  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn" and message.model == "claude-sonnet-4-5"
    sent = fake.received[-1].body
    assert sent is not None
    assert sent["model"] == "glm-4.7"  # Claude names map to iFlow models
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
    assert sent["chat_template_kwargs"] == {"enable_thinking": True}
    assert sent["max_new_tokens"] == 512


def test_stream_event_sequence(claude: anthropic.Anthropic, fake: FakeIflow) -> None:
    fake.enqueue(Completion(content="Hello world", reasoning="thinking it over"))
    with claude.messages.stream(
        model="claude-3-5-haiku-20241022", max_tokens=100, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        events = [event.type for event in stream]
        final = stream.get_final_message()
    assert events[0] == "message_start"
    assert events[-1] == "message_stop"
    assert "content_block_start" in events and "content_block_stop" in events and "message_delta" in events
    assert [block.type for block in final.content] == ["thinking", "text"]
    assert final.content[1].text == "Hello world"  # type: ignore[union-attr]
    assert fake.received[-1].body is not None and fake.received[-1].body["model"] == "qwen3-coder-plus"


def test_two_round_tool_loop_with_reasoning_replay(claude: anthropic.Anthropic, fake: FakeIflow) -> None:
    calls = [
        {
            "id": "call_a",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
        },
        {
            "id": "call_b",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
        },
    ]
    fake.enqueue(
        Completion(content="", reasoning="Need both cities.", tool_calls=calls, finish_reason="tool_calls")
    )
    first = claude.messages.create(
        model="claude-sonnet-4-5",
        max_tokens=256,
        tools=TOOLS,
        messages=[{"role": "user", "content": "Weather in Paris and Oslo?"}],
    )
    assert first.stop_reason == "tool_use"
    uses = [block for block in first.content if block.type == "tool_use"]
    assert [(u.id, u.input) for u in uses] == [("call_a", {"city": "Paris"}), ("call_b", {"city": "Oslo"})]
    # Round two: the client sends the tool_use blocks back without the thinking block.
    fake.enqueue(Completion(content="Paris 20C, Oslo 5C."))
    history: list[Any] = [
        {"role": "user", "content": "Weather in Paris and Oslo?"},
        {"role": "assistant", "content": [u.model_dump() for u in uses]},
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "call_a", "content": "20C"},
                {"type": "tool_result", "tool_use_id": "call_b", "content": "5C", "is_error": False},
            ],
        },
    ]
    second = claude.messages.create(model="claude-sonnet-4-5", max_tokens=256, tools=TOOLS, messages=history)
    assert second.content[0].text == "Paris 20C, Oslo 5C."  # type: ignore[union-attr]
    sent = fake.received[-1].body
    assert sent is not None
    assistant = next(m for m in sent["messages"] if m["role"] == "assistant")
    assert [c["id"] for c in assistant["tool_calls"]] == ["call_a", "call_b"]
    assert assistant["reasoning_content"] == "Need both cities."
    tool_messages = [m for m in sent["messages"] if m["role"] == "tool"]
    assert [(m["tool_call_id"], m["content"]) for m in tool_messages] == [("call_a", "20C"), ("call_b", "5C")]


def test_errors_in_anthropic_shape(
    gateway: GatewayProcess, claude: anthropic.Anthropic, fake: FakeIflow
) -> None:
    fake.enqueue(BusinessError(status="449", msg="busy"))
    with pytest.raises(anthropic.RateLimitError) as limited:
        claude.messages.create(
            model="claude-sonnet-4-5", max_tokens=10, messages=[{"role": "user", "content": "x"}]
        )
    assert limited.value.body["type"] == "error"  # type: ignore[index]
    assert limited.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
    bad = httpx.post(gateway.url + "/v1/messages", json={"model": "claude-x", "messages": []}, timeout=20)
    assert bad.status_code == 400
    assert bad.json()["type"] == "error" and bad.json()["error"]["type"] == "invalid_request_error"
    fake.enqueue(BusinessError(status="449", msg="busy"))
    streamed = httpx.post(
        gateway.url + "/v1/messages",
        json={
            "model": "claude-x",
            "max_tokens": 5,
            "stream": True,
            "messages": [{"role": "user", "content": "x"}],
        },
        timeout=20,
    )
    assert streamed.status_code == 429
    assert json.loads(streamed.text)["error"]["type"] == "rate_limit_error"


def test_client_keys_as_x_api_key(start_gateway: Any, fake: FakeIflow) -> None:
    from tests.conftest import iflow_settings

    gateway = start_gateway(iflow_settings(fake), {"IFLOW2API_API_KEYS": "client-key-123"})
    with anthropic.Anthropic(base_url=gateway.url, api_key="client-key-123", max_retries=0) as good:
        assert good.messages.create(
            model="claude-sonnet-4-5", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    with (
        anthropic.Anthropic(base_url=gateway.url, api_key="wrong-key-000", max_retries=0) as bad,
        pytest.raises(anthropic.AuthenticationError),
    ):
        bad.messages.create(
            model="claude-sonnet-4-5", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )


def test_count_tokens_uses_the_models_tokenizer(claude: anthropic.Anthropic) -> None:
    from iflow2api.dialects.token_count import counter_for

    text = "The quick brown fox jumps over the lazy dog. " * 40
    chinese = "你好世界,网关把请求翻译成上游的格式。" * 20
    small = claude.messages.count_tokens(
        model="claude-sonnet-4-5", messages=[{"role": "user", "content": "hi"}]
    )
    large = claude.messages.count_tokens(
        model="claude-sonnet-4-5", messages=[{"role": "user", "content": text}]
    )
    wide = claude.messages.count_tokens(
        model="claude-sonnet-4-5", messages=[{"role": "user", "content": chinese}]
    )
    with_tools = claude.messages.count_tokens(
        model="claude-sonnet-4-5", tools=TOOLS, messages=[{"role": "user", "content": text}]
    )
    count = counter_for("glm-4.7")  # what claude-sonnet-* maps to
    assert 1 <= small.input_tokens < 10
    assert large.input_tokens == count(text) + 4  # the text, plus one message's framing
    assert wide.input_tokens == count(chinese) + 4
    assert with_tools.input_tokens > large.input_tokens


def test_an_empty_stream_is_a_clear_error(claude: anthropic.Anthropic, fake: FakeIflow) -> None:
    fake.enqueue(Stream(chunks=[]))  # nothing but [DONE]
    request: Any = {"model": "glm-4.7", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    with pytest.raises(anthropic.APIStatusError) as caught, claude.messages.stream(**request) as stream:
        list(stream)
    # Anthropic's api_error (it has no 502), saying what happened rather than "internal error".
    assert caught.value.status_code == 500
    assert "without sending anything" in str(caught.value)
