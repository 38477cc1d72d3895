"""A DashScope account through all three APIs, against the fake playing DashScope: it refuses
thinking on a call that does not stream, so a client that does not stream must still get one whole
answer with its reasoning, gathered from the stream the gateway asked for."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import openai
import pytest

from tests.conftest import GatewayProcess
from tests.e2e.provider_accounts import account_state, last_body, provider_fixtures
from tests.e2e.provider_gateway import accepted, anthropic_tool_loop
from tests.fake_iflow import Completion, FakeIflow, HttpError, Stream
from tests.fake_iflow.hosts.dashscope import arrearage

MODELS = ["qwen3.7-plus", "qwq-plus", "deepseek-v4-flash"]
TOOLS_CHAT: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "read",
            "parameters": {"type": "object", "properties": {"path": {"type": "string"}}},
        },
    }
]
CALL = {"id": "call_1", "type": "function", "function": {"name": "read", "arguments": '{"path": "a.txt"}'}}


# The setting's own form: pairs apart by commas, the items of one option by "|".
OPTIONS = "dashscope.effort_budgets=minimal=512|low=2048|medium=16384,dashscope.default_may_think=true"
upstream, running, gateway, sdk = provider_fixtures("dashscope", MODELS, OPTIONS)


def test_a_client_that_does_not_stream_gets_one_answer_with_its_reasoning(
    sdk: openai.OpenAI, upstream: FakeIflow
) -> None:
    upstream.enqueue(Completion(content="The answer is 4.", reasoning="Two and two make four."))
    raw = sdk.chat.completions.with_raw_response.create(
        model="qwen3.7-plus", messages=[{"role": "user", "content": "2+2?"}], reasoning_effort="low"
    )
    reply = raw.parse()
    assert reply.object == "chat.completion"
    message = reply.choices[0].message
    assert message.content == "The answer is 4."
    assert (message.model_extra or {})["reasoning_content"] == "Two and two make four."
    assert reply.usage is not None and reply.usage.total_tokens == 17  # the stream's own usage
    assert raw.headers["x-iflow2api-thinking"] == "enabled; thinking_budget=2048"
    sent = last_body(upstream)
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
    assert sent["enable_thinking"] is True and "reasoning_effort" not in sent


def test_a_streaming_client_reads_the_stream_itself(sdk: openai.OpenAI, upstream: FakeIflow) -> None:
    upstream.enqueue(Completion(content="Hi there", reasoning="Greet."))
    chunks = list(
        sdk.chat.completions.create(
            model="qwen3.7-plus",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            reasoning_effort="high",
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    thought = "".join(
        (c.choices[0].delta.model_extra or {}).get("reasoning_content") or "" for c in chunks if c.choices
    )
    assert (text, thought) == ("Hi there", "Greet.")
    assert last_body(upstream)["enable_thinking"] is True


def chat_tool_loop(sdk: openai.OpenAI, upstream: FakeIflow, model: str, effort: Any) -> dict[str, Any]:
    """Two turns of a tool loop through Chat Completions; what the fake got on the second."""
    upstream.enqueue(
        Completion(content="", reasoning="Read it first.", tool_calls=[CALL], finish_reason="tool_calls"),
        Completion(content="It says hello."),
    )
    messages: Any = [{"role": "user", "content": "What is in a.txt?"}]
    first = sdk.chat.completions.create(
        model=model,
        messages=messages,
        tools=TOOLS_CHAT,
        tool_choice="required",
        reasoning_effort=effort,
    )
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls is not None
    call = choice.message.tool_calls[0]
    assert call.type == "function"
    assert (call.id, call.function.name, json.loads(call.function.arguments)) == (
        "call_1",
        "read",
        {"path": "a.txt"},
    )
    # The client sends its turn back without the reasoning, as most do.
    messages += [
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": "call_1", "content": "hello"},
    ]
    second = sdk.chat.completions.create(
        model=model, messages=messages, tools=TOOLS_CHAT, reasoning_effort=effort
    )
    assert second.choices[0].message.content == "It says hello."
    return last_body(upstream)


def test_tool_loop_thinking_on(sdk: openai.OpenAI, upstream: FakeIflow) -> None:
    sent = chat_tool_loop(sdk, upstream, "deepseek-v4-flash", "high")
    first = upstream.received[-2].body
    assert first is not None and first["tool_choice"] == "auto"  # forced while thinking: refused upstream
    assert sent["enable_thinking"] is True and sent["stream"] is True
    assistant = next(m for m in sent["messages"] if m["role"] == "assistant")
    assert assistant["reasoning_content"] == "Read it first."  # from the reasoning store


def test_tool_loop_thinking_off(sdk: openai.OpenAI, upstream: FakeIflow) -> None:
    sent = chat_tool_loop(sdk, upstream, "qwen3.7-plus", "none")
    first = upstream.received[-2].body
    assert first is not None and first["tool_choice"] == "required" and first["enable_thinking"] is False
    assert sent.get("stream") is not True and sent["enable_thinking"] is False


def test_off_on_a_thinking_only_model_is_clamped_not_refused(sdk: openai.OpenAI, upstream: FakeIflow) -> None:
    upstream.enqueue(Completion(content="Hm, yes.", reasoning="Briefly."))
    raw = sdk.chat.completions.with_raw_response.create(
        model="qwq-plus", messages=[{"role": "user", "content": "ok?"}], reasoning_effort="none"
    )
    assert raw.parse().choices[0].message.content == "Hm, yes."
    assert raw.headers["x-iflow2api-thinking"] == "enabled (always on); thinking_budget=512"
    assert "enable_thinking" not in last_body(upstream)


def test_anthropic_tool_loop_with_thinking(gateway: GatewayProcess, upstream: FakeIflow) -> None:
    upstream.enqueue(
        Completion(content="", reasoning="Look at the file.", tool_calls=[CALL], finish_reason="tool_calls"),
        Completion(content="It says hello.", reasoning="Done."),
    )
    tools: list[Any] = [
        {"name": "read", "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}}}
    ]
    thinking: Any = {"type": "enabled", "budget_tokens": 2048}
    with anthropic.Anthropic(base_url=gateway.url, api_key="x", max_retries=0, timeout=20) as claude:
        first = claude.messages.create(
            model="qwen3.7-plus",
            max_tokens=4096,
            thinking=thinking,
            tools=tools,
            messages=[{"role": "user", "content": "What is in a.txt?"}],
        )
        assert [block.type for block in first.content] == ["thinking", "tool_use"]
        assert first.stop_reason == "tool_use"
        sent = last_body(upstream)
        assert sent["thinking_budget"] == 2048 and sent["stream"] is True
        use = first.content[1]
        assert use.type == "tool_use" and use.input == {"path": "a.txt"}
        second = claude.messages.create(
            model="qwen3.7-plus",
            max_tokens=4096,
            thinking=thinking,
            tools=tools,
            messages=[
                {"role": "user", "content": "What is in a.txt?"},
                {"role": "assistant", "content": [block.model_dump() for block in first.content]},  # type: ignore[list-item,misc]
                {
                    "role": "user",
                    "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "hello"}],
                },
            ],
        )
    assert [block.type for block in second.content] == ["thinking", "text"]
    assert second.content[1].text == "It says hello."  # type: ignore[union-attr]
    assistant = next(m for m in last_body(upstream)["messages"] if m["role"] == "assistant")
    assert assistant["reasoning_content"] == "Look at the file."


def test_anthropic_thinking_disabled_is_a_plain_call(gateway: GatewayProcess, upstream: FakeIflow) -> None:
    upstream.enqueue(Completion(content="Plain."))
    with anthropic.Anthropic(base_url=gateway.url, api_key="x", max_retries=0, timeout=20) as claude:
        reply = claude.messages.with_raw_response.create(
            model="qwen3.7-plus",
            max_tokens=256,
            thinking={"type": "disabled"},
            messages=[{"role": "user", "content": "hi"}],
        )
    assert [block.type for block in reply.parse().content] == ["text"]
    assert reply.headers["x-iflow2api-thinking"] == "disabled"
    sent = last_body(upstream)
    assert sent["enable_thinking"] is False and sent.get("stream") is not True


def test_anthropic_tool_loop_thinking_disabled(gateway: GatewayProcess, upstream: FakeIflow) -> None:
    first, header, second = anthropic_tool_loop(
        gateway, upstream, "qwen3.7-plus", {"type": "disabled"}, reasoning="", call_id="call_ds_off"
    )
    # Off both times, and no stream forced (DashScope refuses only thinking on a whole answer).
    turns = accepted(upstream)
    assert [(body["enable_thinking"], body.get("stream") is True) for body in turns] == [(False, False)] * 2
    assert turns[-1]["messages"][-1] == {"role": "tool", "tool_call_id": "call_ds_off", "content": "5C"}
    assert (header, first.stop_reason, [block.type for block in first.content]) == (
        "disabled",
        "tool_use",
        ["tool_use"],
    )
    assert second.content[-1].type == "text" and second.content[-1].text == "5C."


def test_responses_gets_a_reasoning_item_from_a_gathered_stream(
    sdk: openai.OpenAI, upstream: FakeIflow
) -> None:
    upstream.enqueue(
        Completion(content="", reasoning="Call the tool.", tool_calls=[CALL], finish_reason="tool_calls"),
        Completion(content="Hello it is."),
    )
    tools: Any = [{"type": "function", "name": "read", "parameters": {"type": "object", "properties": {}}}]
    first = sdk.responses.create(
        model="qwen3.7-plus", input="Read a.txt", tools=tools, reasoning={"effort": "medium"}, store=False
    )
    assert [item.type for item in first.output] == ["reasoning", "function_call"]
    assert last_body(upstream)["stream"] is True
    call = first.output[1]
    assert call.type == "function_call"
    items: Any = [
        {"role": "user", "content": "Read a.txt"},
        {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
        {"type": "function_call_output", "call_id": call.call_id, "output": "hello"},
    ]
    second = sdk.responses.create(
        model="qwen3.7-plus", input=items, tools=tools, reasoning={"effort": "medium"}, store=False
    )
    assert second.output_text == "Hello it is."
    assert last_body(upstream)["thinking_budget"] == 16_384


def test_out_of_credit_rests_the_account(
    sdk: openai.OpenAI, gateway: GatewayProcess, upstream: FakeIflow
) -> None:
    upstream.enqueue(HttpError(400, arrearage()))
    with pytest.raises(openai.RateLimitError) as caught:
        sdk.chat.completions.create(
            model="qwen3.7-plus", messages=[{"role": "user", "content": "hi"}], reasoning_effort="none"
        )
    assert caught.value.code == "insufficient_quota"
    account = account_state(gateway)
    assert account["state"] == "out-of-credit"
    assert "Arrearage" in account["reason"] or "good standing" in account["reason"]


def test_an_error_inside_the_gathered_stream_fails_the_request(
    sdk: openai.OpenAI, gateway: GatewayProcess, upstream: FakeIflow
) -> None:
    upstream.enqueue(Stream([{"error": arrearage()["error"]}]))
    with pytest.raises(openai.RateLimitError):
        sdk.chat.completions.create(
            model="qwen3.7-plus", messages=[{"role": "user", "content": "hi"}], reasoning_effort="high"
        )
    assert account_state(gateway)["state"] == "out-of-credit"


def test_a_stream_without_usage_is_estimated(sdk: openai.OpenAI, upstream: FakeIflow) -> None:
    upstream.enqueue(Stream.of_text(["Short", " answer"], reasoning=["Think."], model="qwen3.7-plus"))
    reply = sdk.chat.completions.create(
        model="qwen3.7-plus", messages=[{"role": "user", "content": "hi"}], reasoning_effort="high"
    )
    assert reply.choices[0].message.content == "Short answer"
    assert reply.usage is not None and reply.usage.completion_tokens > 0
