"""A SiliconFlow account through all three APIs, against the fake playing SiliconFlow: it refuses a
thinking tool loop of a DeepSeek or Kimi model whose reasoning was not sent back, and thinking off on
a model that always thinks."""

from __future__ import annotations

from typing import Any

import anthropic
import openai
import pytest

from tests.conftest import GatewayProcess
from tests.e2e.provider_accounts import account_state, last_body, provider_fixtures
from tests.e2e.provider_gateway import accepted, anthropic_tool_loop
from tests.fake_iflow import Completion, FakeIflow, HttpError
from tests.fake_iflow.hosts.siliconflow import out_of_credit

FLASH, PRO, KIMI, QWEN = (
    "deepseek-ai/DeepSeek-V4-Flash",
    "deepseek-ai/DeepSeek-V4-Pro",
    "Pro/moonshotai/Kimi-K2.5",
    "Qwen/Qwen3.5-27B",
)
CALL = {"id": "call_7", "type": "function", "function": {"name": "ls", "arguments": '{"dir": "."}'}}
TOOLS: Any = [
    {"type": "function", "function": {"name": "ls", "parameters": {"type": "object", "properties": {}}}}
]


upstream, running, gateway, sdk = provider_fixtures("siliconflow", [FLASH, PRO, KIMI, QWEN])


def two_turns(
    sdk: openai.OpenAI, upstream: FakeIflow, model: str, effort: Any, *, stream: bool
) -> dict[str, Any]:
    """A tool loop through Chat Completions, the reasoning left out of the history as most clients
    do; what the fake got on the second turn."""
    upstream.enqueue(
        Completion(content="", reasoning="List the folder.", tool_calls=[CALL], finish_reason="tool_calls"),
        Completion(content="Two files."),
    )
    messages: Any = [{"role": "user", "content": "What is here?"}]
    if stream:
        chunks = list(
            sdk.chat.completions.create(
                model=model, messages=messages, tools=TOOLS, reasoning_effort=effort, stream=True
            )
        )
        ids = [
            c.choices[0].delta.tool_calls[0].id for c in chunks if c.choices and c.choices[0].delta.tool_calls
        ]
        assert ids[0] == "call_7"
    else:
        first = sdk.chat.completions.create(
            model=model, messages=messages, tools=TOOLS, reasoning_effort=effort
        )
        assert first.choices[0].finish_reason == "tool_calls"
    messages += [
        {"role": "assistant", "content": None, "tool_calls": [CALL]},
        {"role": "tool", "tool_call_id": "call_7", "content": "a.txt b.txt"},
    ]
    second = sdk.chat.completions.create(model=model, messages=messages, tools=TOOLS, reasoning_effort=effort)
    assert second.choices[0].message.content == "Two files."
    return last_body(upstream)


@pytest.mark.parametrize("stream", [False, True])
def test_deepseek_tool_loop_thinking_on_gets_its_reasoning_back(
    sdk: openai.OpenAI, upstream: FakeIflow, stream: bool
) -> None:
    sent = two_turns(sdk, upstream, FLASH, "xhigh", stream=stream)
    assert sent["enable_thinking"] is True and sent["reasoning_effort"] == "max"
    assistant = next(m for m in sent["messages"] if m["role"] == "assistant")
    assert assistant["reasoning_content"] == "List the folder."


def test_kimi_tool_loop_thinking_off(sdk: openai.OpenAI, upstream: FakeIflow) -> None:
    sent = two_turns(sdk, upstream, KIMI, "none", stream=False)
    assert sent["enable_thinking"] is False and "reasoning_effort" not in sent


def test_the_header_says_what_was_sent(sdk: openai.OpenAI, upstream: FakeIflow) -> None:
    upstream.enqueue(Completion(content="ok", reasoning="hm"))
    raw = sdk.chat.completions.with_raw_response.create(
        model=QWEN, messages=[{"role": "user", "content": "hi"}], reasoning_effort="low"
    )
    reply = raw.parse()
    assert (reply.choices[0].message.model_extra or {})["reasoning_content"] == "hm"
    assert raw.headers["x-iflow2api-thinking"] == "enabled; thinking_budget=4096"
    assert last_body(upstream).get("stream") is not True  # SiliconFlow thinks on whole answers too


def test_off_on_deepseek_v4_pro_is_clamped_not_refused(sdk: openai.OpenAI, upstream: FakeIflow) -> None:
    upstream.enqueue(Completion(content="Fine."))
    raw = sdk.chat.completions.with_raw_response.create(
        model=PRO, messages=[{"role": "user", "content": "hi"}], reasoning_effort="none"
    )
    assert raw.parse().choices[0].message.content == "Fine."
    assert raw.headers["x-iflow2api-thinking"] == "enabled (always on); thinking_budget=1024"


def test_anthropic_tool_loop_with_kimi_thinking(gateway: GatewayProcess, upstream: FakeIflow) -> None:
    upstream.enqueue(
        Completion(content="", reasoning="Use ls.", tool_calls=[CALL], finish_reason="tool_calls"),
        Completion(content="Two files.", reasoning="Counted."),
    )
    tools: Any = [{"name": "ls", "input_schema": {"type": "object", "properties": {}}}]
    thinking: Any = {"type": "enabled", "budget_tokens": 3000}
    with anthropic.Anthropic(base_url=gateway.url, api_key="x", max_retries=0, timeout=20) as claude:
        first = claude.messages.create(
            model=KIMI,
            max_tokens=8000,
            thinking=thinking,
            tools=tools,
            messages=[{"role": "user", "content": "What is here?"}],
        )
        assert [block.type for block in first.content] == ["thinking", "tool_use"]
        assert last_body(upstream)["thinking_budget"] == 3000
        use = first.content[1]
        assert use.type == "tool_use"
        history: Any = [
            {"role": "user", "content": "What is here?"},
            # Without the thinking block, as Claude Code sends it when it trimmed the history.
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": use.id, "name": "ls", "input": use.input}],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "a.txt b.txt"}],
            },
        ]
        second = claude.messages.create(
            model=KIMI, max_tokens=8000, thinking=thinking, tools=tools, messages=history
        )
    assert [block.type for block in second.content] == ["thinking", "text"]
    assistant = next(m for m in last_body(upstream)["messages"] if m["role"] == "assistant")
    assert assistant["reasoning_content"] == "Use ls."


def test_anthropic_tool_loop_with_kimi_thinking_disabled(
    gateway: GatewayProcess, upstream: FakeIflow
) -> None:
    # Kimi K2.5 thinks or not as asked (unlike DeepSeek-V4-Pro): off is sent as off, in both turns.
    first, header, second = anthropic_tool_loop(
        gateway, upstream, KIMI, {"type": "disabled"}, reasoning="", call_id="call_sf_off"
    )
    thinking = [
        {key: body.get(key) for key in ("enable_thinking", "thinking_budget")} for body in accepted(upstream)
    ]
    assert thinking == [{"enable_thinking": False, "thinking_budget": None}] * 2
    assert header == "disabled" and [block.type for block in first.content] == ["tool_use"]
    assert [block.text for block in second.content if block.type == "text"] == ["5C."]


def test_responses_with_reasoning(sdk: openai.OpenAI, upstream: FakeIflow) -> None:
    upstream.enqueue(Completion(content="Done.", reasoning="Quick."))
    response = sdk.responses.create(model=FLASH, input="hi", reasoning={"effort": "medium"})
    assert [item.type for item in response.output] == ["reasoning", "message"]
    assert response.output_text == "Done."
    assert last_body(upstream)["reasoning_effort"] == "high"


def test_a_spent_balance_rests_the_account(
    sdk: openai.OpenAI, gateway: GatewayProcess, upstream: FakeIflow
) -> None:
    upstream.enqueue(HttpError(403, out_of_credit()))
    with pytest.raises(openai.RateLimitError) as caught:
        sdk.chat.completions.create(model=QWEN, messages=[{"role": "user", "content": "hi"}])
    assert caught.value.code == "insufficient_quota"
    account = account_state(gateway)
    assert account["state"] == "out-of-credit" and "balance is insufficient" in account["reason"]


def test_an_unknown_model_is_a_404(sdk: openai.OpenAI, gateway: GatewayProcess, upstream: FakeIflow) -> None:
    upstream.enqueue(
        HttpError(
            400, {"code": 20012, "message": "Model does not exist. Please check it carefully.", "data": None}
        )
    )
    with pytest.raises(openai.NotFoundError):
        sdk.chat.completions.create(model=QWEN, messages=[{"role": "user", "content": "hi"}])
    assert account_state(gateway)["state"] == "ok"
