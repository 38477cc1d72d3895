"""Chat completions through the real gateway, driven by the real openai SDK, against the fake iFlow."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionToolParam

from tests.conftest import GatewayProcess
from tests.fake_iflow import DEFAULT_KEY, Completion, FakeIflow, Stream


def client(gateway: GatewayProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key="unused", max_retries=0, timeout=20)


def test_non_stream_completion(gateway: GatewayProcess, fake: FakeIflow) -> None:
    fake.enqueue(
        Completion(content="Hi there", usage={"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7})
    )
    reply = client(gateway).chat.completions.create(
        model="glm-4.7", messages=[{"role": "user", "content": "Hello"}], max_tokens=100
    )
    assert reply.choices[0].message.content == "Hi there"
    assert reply.usage is not None and reply.usage.total_tokens == 7
    sent = fake.received[-1]
    assert sent.rejected is None
    assert sent.body is not None
    assert sent.body["max_new_tokens"] == 100
    assert "max_tokens" not in sent.body
    assert sent.body["messages"] == [{"role": "user", "content": "Hello"}]


def test_iflow_headers_are_exactly_the_clis(gateway: GatewayProcess, fake: FakeIflow) -> None:
    client(gateway).chat.completions.create(
        model="qwen3-coder-plus", messages=[{"role": "user", "content": "x"}]
    )
    headers = fake.received[-1].headers
    assert headers["user-agent"] == "iFlow-Cli"
    assert headers["authorization"] == f"Bearer {DEFAULT_KEY}"
    assert headers["session-id"].startswith("session-")
    message = f"iFlow-Cli:{headers['session-id']}:{headers['x-iflow-timestamp']}".encode()
    expected = hmac.new(DEFAULT_KEY.encode(), message, hashlib.sha256).hexdigest()
    assert headers["x-iflow-signature"] == expected
    assert abs(int(headers["x-iflow-timestamp"]) - time.time() * 1000) < 60_000
    # The client's own credentials never reach the upstream.
    assert "unused" not in json.dumps(headers)


def test_session_id_is_stable_and_conversation_id_fresh(gateway: GatewayProcess, fake: FakeIflow) -> None:
    for _ in range(2):
        client(gateway).chat.completions.create(model="glm-4.7", messages=[{"role": "user", "content": "x"}])
    first, second = fake.received[-2].headers, fake.received[-1].headers
    assert first["session-id"] == second["session-id"]
    assert first["conversation-id"] != second["conversation-id"]


def test_stream_delivers_text_reasoning_and_usage(gateway: GatewayProcess, fake: FakeIflow) -> None:
    fake.enqueue(Completion(content="The answer is 4", reasoning="2+2 is 4"))
    stream = client(gateway).chat.completions.create(
        model="glm-4.7",
        messages=[{"role": "user", "content": "2+2?"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    text, reasoning, usage = "", "", None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            text += choice.delta.content or ""
            reasoning += getattr(choice.delta, "reasoning_content", None) or ""
    assert text == "The answer is 4"
    assert reasoning == "2+2 is 4"
    assert usage is not None and usage.total_tokens > 0
    sent = fake.received[-1].body
    assert sent is not None
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}


def test_stream_without_include_usage_carries_no_usage(gateway: GatewayProcess, fake: FakeIflow) -> None:
    fake.enqueue(Completion(content="abc"))
    with httpx.stream(
        "POST",
        gateway.url + "/v1/chat/completions",
        json={"model": "glm-4.7", "messages": [{"role": "user", "content": "x"}], "stream": True},
        timeout=20,
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [line for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "data: [DONE]"
    chunks = [json.loads(event[6:]) for event in events[:-1]]
    assert chunks and all("usage" not in chunk for chunk in chunks)
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]) == "abc"
    # iFlow always gets include_usage (the CLI always asks); only the client's answer drops it.
    assert fake.received[-1].body is not None
    assert fake.received[-1].body["stream_options"] == {"include_usage": True}


def test_stream_tool_call_fragments_reassemble(gateway: GatewayProcess, fake: FakeIflow) -> None:
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
    }
    fake.enqueue(Completion(content="", tool_calls=[call], finish_reason="tool_calls"))
    tools: list[ChatCompletionToolParam] = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    stream = client(gateway).chat.completions.create(
        model="qwen3-coder-plus", messages=[{"role": "user", "content": "weather?"}], tools=tools, stream=True
    )
    name, arguments, finish = "", "", None
    for chunk in stream:
        for choice in chunk.choices:
            for fragment in choice.delta.tool_calls or []:
                if fragment.function and fragment.function.name:
                    name += fragment.function.name
                if fragment.function and fragment.function.arguments:
                    arguments += fragment.function.arguments
            finish = choice.finish_reason or finish
    assert name == "get_weather"
    assert json.loads(arguments) == {"city": "Paris"}
    assert finish == "tool_calls"
    assert fake.received[-1].body is not None
    assert fake.received[-1].body["tools"] == tools


def test_paths_without_v1_work(gateway: GatewayProcess, fake: FakeIflow) -> None:
    reply = openai.OpenAI(base_url=gateway.url, api_key="x", max_retries=0).chat.completions.create(
        model="glm-4.7", messages=[{"role": "user", "content": "x"}]
    )
    assert reply.choices[0].message.content
    assert httpx.get(gateway.url + "/models").json()["object"] == "list"


def test_stream_flows_before_the_upstream_finishes(gateway: GatewayProcess, fake: FakeIflow) -> None:
    """The first chunk reaches the client while the upstream is still generating the rest."""
    fake.enqueue(Stream.of_text(["first", " second", " third"], delay=0.6))
    began = time.monotonic()
    stream = client(gateway).chat.completions.create(
        model="glm-4.7", messages=[{"role": "user", "content": "x"}], stream=True
    )
    arrivals = []
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append(time.monotonic() - began)
    assert len(arrivals) == 3
    # Buffering would deliver all three together at the end (>= 1.2 s).
    assert arrivals[0] < arrivals[2] - 1.0


@pytest.mark.parametrize(
    ("effort", "expected"),
    [
        ("none", {"enable_thinking": False}),
        ("high", {"enable_thinking": True}),
        (None, {"enable_thinking": True}),  # the CLI's default: thinking on
    ],
)
def test_reasoning_effort_drives_the_thinking_switch(
    gateway: GatewayProcess, fake: FakeIflow, effort: str | None, expected: dict[str, bool]
) -> None:
    client(gateway).chat.completions.create(
        model="glm-4.7",
        messages=[{"role": "user", "content": "x"}],
        extra_body={"reasoning_effort": effort} if effort else None,
    )
    body = fake.received[-1].body
    assert body is not None
    assert body["chat_template_kwargs"] == expected
    assert "reasoning_effort" not in body


def test_other_parameters_pass_through(gateway: GatewayProcess, fake: FakeIflow) -> None:
    client(gateway).chat.completions.create(
        model="qwen3-coder-plus",
        messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "x"}],
        temperature=0.3,
        top_p=0.9,
        stop=["END"],
        seed=7,
        response_format={"type": "json_object"},
        tool_choice="none",
        tools=[{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
        user="someone",
    )
    body = fake.received[-1].body
    assert body is not None
    assert body["temperature"] == 0.3 and body["top_p"] == 0.9
    assert body["stop"] == ["END"] and body["seed"] == 7
    assert body["response_format"] == {"type": "json_object"}
    assert body["tool_choice"] == "none" and body["user"] == "someone"
    assert body["messages"][0] == {"role": "system", "content": "be brief"}


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_reasoning_dropped_by_the_client_goes_back_upstream(
    gateway: GatewayProcess, fake: FakeIflow, stream: bool
) -> None:
    """Thinking models need their earlier reasoning in a tool loop; OpenAI clients drop it."""
    call = {"id": f"call_{stream}", "type": "function", "function": {"name": "add", "arguments": '{"a": 2}'}}
    fake.enqueue(
        Completion(content="", reasoning="I should call add.", tool_calls=[call], finish_reason="tool_calls")
    )
    tools: list[ChatCompletionToolParam] = [
        {"type": "function", "function": {"name": "add", "parameters": {"type": "object"}}}
    ]
    first = [{"role": "user", "content": "2+2?"}]
    with client(gateway) as sdk:
        _two_turns(sdk, first, call, tools, stream)
    sent = fake.received[-1].body
    assert sent is not None
    assistant = next(m for m in sent["messages"] if m["role"] == "assistant")
    assert assistant["reasoning_content"] == "I should call add."


def _two_turns(
    sdk: openai.OpenAI,
    first: list[dict[str, Any]],
    call: dict[str, Any],
    tools: list[ChatCompletionToolParam],
    stream: bool,
) -> None:
    if stream:
        for _ in sdk.chat.completions.create(model="glm-4.7", messages=first, tools=tools, stream=True):  # type: ignore[arg-type]
            pass
    else:
        reply = sdk.chat.completions.create(model="glm-4.7", messages=first, tools=tools)  # type: ignore[arg-type]
        assert reply.choices[0].message.tool_calls
    # The client sends the history back the way OpenAI clients do: without reasoning_content.
    second = [
        *first,
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": "4"},
    ]
    sdk.chat.completions.create(model="glm-4.7", messages=second, tools=tools)  # type: ignore[arg-type]
