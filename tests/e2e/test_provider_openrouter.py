"""Two OpenRouter accounts behind a gateway, through the real ``openai`` and ``anthropic`` SDKs.

The fake plays OpenRouter (``tests/fake_iflow/hosts/openrouter.py``): reasoning as ``reasoning`` and
``reasoning_details``, its ``reasoning`` object checked, errors in its shapes (a chunk with
``finish_reason: "error"`` too).
"""

from __future__ import annotations

from typing import Any

import anthropic
import openai
import pytest

from tests.conftest import GatewayProcess
from tests.e2e import provider_gateway as made
from tests.e2e.provider_gateway import (
    CALLS,
    THINKING,
    accepted,
    anthropic_tool_loop,
    openai_client,
    sent,
    served_by,
    states,
    streamed,
)
from tests.fake_iflow import Completion, FakeIflow, Stream
from tests.fake_iflow.hosts import openrouter as host
from tests.fake_iflow.replies import completion_chunks

KEYS = {"a": "sk-or-v1-" + "a" * 32, "b": "sk-or-v1-" + "b" * 32}
MODEL = "deepseek/deepseek-v4-flash"
MODELS = [MODEL, "z-ai/glm-5.3"]

fake_host = made.fake_fixture("openrouter", KEYS, MODELS)
gateway_process = made.gateway_fixture("openrouter", KEYS)
fake, gateway = made.fresh_fixture("fake_host"), made.fresh_fixture("gateway_process")


def test_whole_answer_with_reasoning(gateway: GatewayProcess, fake: FakeIflow) -> None:
    fake.enqueue(Completion(content="Four.", reasoning="2+2 is 4."))
    raw = openai_client(gateway).chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": "2+2?"}], reasoning_effort="high", max_tokens=50
    )
    message = raw.parse().choices[0].message
    assert message.content == "Four."
    assert getattr(message, "reasoning_content", None) == "2+2 is 4."
    assert raw.headers[THINKING] == "effort=high"
    body = sent(fake)
    assert body["reasoning"] == {"effort": "high"}
    assert "reasoning_effort" not in body and body["max_completion_tokens"] == 50


def test_streamed_reasoning_past_processing_comments(gateway: GatewayProcess, fake: FakeIflow) -> None:
    chunks = completion_chunks(
        Completion(content="Four.", reasoning="Two and two."), MODEL, include_usage=True
    )
    shaped = host.HOST().shape_chunks(chunks, {})  # type: ignore[arg-type]
    fake.enqueue(Stream([": OPENROUTER PROCESSING", *shaped]))
    stream = openai_client(gateway).chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "2+2?"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    got = list(stream)
    reasoning, content = streamed(got)
    assert (reasoning, content) == ("Two and two.", "Four.")
    assert got[-1].usage is not None


def chat_tool_loop(
    gateway: GatewayProcess, fake: FakeIflow, effort: Any, reasoning: str, call_id: str
) -> tuple[str | None, str | None, str | None]:
    """Two turns of a Chat Completions tool loop, the first streamed: the host thinks ``reasoning``
    and calls a tool; the client sends the call back without its reasoning, as most do. The thinking
    header, the reasoning the client saw in turn 1, and in turn 2's whole answer."""
    calls = [{**CALLS[0], "id": call_id}]
    tools: Any = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    fake.enqueue(Completion(content="", reasoning=reasoning, tool_calls=calls, finish_reason="tool_calls"))
    question: Any = [{"role": "user", "content": "Oslo?"}]
    sdk = openai_client(gateway)
    raw = sdk.chat.completions.with_raw_response.create(
        model=MODEL,
        messages=question,
        tools=tools,
        reasoning_effort=effort,
        stream=True,
    )
    chunks = list(raw.parse())
    seen, _ = streamed(chunks)
    ids = [call.id for c in chunks if c.choices for call in c.choices[0].delta.tool_calls or () if call.id]
    assert ids == [call_id]
    fake.enqueue(Completion(content="5C.", reasoning=reasoning and "Got it."))
    history: Any = [
        *question,
        {"role": "assistant", "content": None, "tool_calls": calls},
        {"role": "tool", "tool_call_id": call_id, "content": "5C"},
    ]
    second = sdk.chat.completions.create(
        model=MODEL,
        messages=history,
        tools=tools,
        reasoning_effort=effort,
    )
    assert second.choices[0].message.content == "5C."
    return (
        raw.headers.get(THINKING),
        seen or None,
        getattr(second.choices[0].message, "reasoning_content", None),
    )


def test_openai_tool_loop_with_thinking(gateway: GatewayProcess, fake: FakeIflow) -> None:
    header, first, second = chat_tool_loop(gateway, fake, "high", "Need Oslo.", "call_or_on")
    assert header == "effort=high"
    assert (first, second) == ("Need Oslo.", "Got it.")
    turns = accepted(fake)
    assert [body["reasoning"] for body in turns] == [{"effort": "high"}] * 2
    assert all("reasoning_effort" not in body for body in turns)
    assert host.replayed(sent(fake)) == ["Need Oslo."]  # back from the store, as ``reasoning``


def test_openai_tool_loop_without_thinking(gateway: GatewayProcess, fake: FakeIflow) -> None:
    header, first, second = chat_tool_loop(gateway, fake, "none", "", "call_or_off")
    assert header == "disabled"
    assert (first, second) == (None, None)
    turns = accepted(fake)
    assert [body["reasoning"] for body in turns] == [{"enabled": False}] * 2
    assert host.replayed(sent(fake)) == [None]  # nothing to send back


def test_anthropic_tool_loop_with_a_budget(gateway: GatewayProcess, fake: FakeIflow) -> None:
    first, header, second = anthropic_tool_loop(
        gateway, fake, MODEL, {"type": "enabled", "budget_tokens": 2048}
    )
    assert header == "max_tokens=2048"
    assert [block.type for block in first.content] == ["thinking", "tool_use"]
    assert second.content[-1].type == "text" and second.content[-1].text == "5C."
    assert sent(fake)["reasoning"] == {"max_tokens": 2048}
    assert host.replayed(sent(fake)) == ["Need Oslo."]  # the text, as ``reasoning``


def test_anthropic_tool_loop_without_thinking(gateway: GatewayProcess, fake: FakeIflow) -> None:
    first, header, second = anthropic_tool_loop(gateway, fake, MODEL, {"type": "disabled"}, reasoning="")
    assert header == "disabled"
    assert [block.type for block in first.content] == ["tool_use"]
    assert second.content[-1].type == "text"
    assert sent(fake)["reasoning"] == {"enabled": False}


def test_responses_clients_get_reasoning_items(gateway: GatewayProcess, fake: FakeIflow) -> None:
    fake.enqueue(Completion(content="Four.", reasoning="2+2=4"))
    with openai_client(gateway).responses.stream(
        model=MODEL, input="2+2?", reasoning={"effort": "low"}
    ) as stream:
        final = stream.get_final_response()
    assert [item.type for item in final.output] == ["reasoning", "message"]
    assert final.output_text == "Four."
    assert sent(fake)["reasoning"] == {"effort": "low"}


def test_off_on_a_mandatory_model_is_clamped(gateway: GatewayProcess, fake: FakeIflow) -> None:
    raw = openai_client(gateway).chat.completions.with_raw_response.create(
        model="z-ai/glm-5.3", messages=[{"role": "user", "content": "hi"}], reasoning_effort="none"
    )
    assert raw.headers[THINKING] == "mandatory (not turned off)"
    assert "reasoning" not in sent(fake)


def test_an_error_chunk_before_content_fails_over(gateway: GatewayProcess, fake: FakeIflow) -> None:
    fake.enqueue_for(
        KEYS["a"], Stream([host.error_chunk(MODEL, 429, "Rate limited", error_type="rate_limit_exceeded")])
    )
    fake.enqueue_for(KEYS["b"], Completion(content="from b"))
    got = list(
        openai_client(gateway).chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}], stream=True
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in got if c.choices) == "from b"
    assert served_by(fake, KEYS) == ["a", "b"]
    assert states(gateway)["a"] == "cooling"


def test_an_error_after_content_reaches_the_client(gateway: GatewayProcess, fake: FakeIflow) -> None:
    chunks = completion_chunks(Completion(content="Half an"), MODEL, include_usage=False)[:-1]
    broken = host.error_chunk(MODEL, 502, "Provider returned error", error_type="provider_unavailable")
    fake.enqueue(Stream([*host.HOST().shape_chunks(chunks, {}), broken]))  # type: ignore[arg-type]
    claude = anthropic.Anthropic(base_url=gateway.url, api_key="unused", max_retries=0, timeout=20)
    with (
        pytest.raises(anthropic.APIStatusError, match="Provider returned error"),
        claude.messages.stream(
            model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "hi"}]
        ) as stream,
    ):
        for _ in stream:
            pass
    assert states(gateway)["a"] == "cooling"  # the host failed, even though the answer had begun


def test_spent_credits_are_out_of_credit(gateway: GatewayProcess, fake: FakeIflow) -> None:
    fake.enqueue_for(KEYS["a"], host.http_error(402, "Insufficient credits", error_type="payment_required"))
    fake.enqueue_for(KEYS["b"], Completion(content="from b"))
    reply = openai_client(gateway).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hi"}]
    )
    assert reply.choices[0].message.content == "from b"
    assert states(gateway)["a"] == "out-of-credit"


def test_the_routed_host_words_reach_the_client(gateway: GatewayProcess, fake: FakeIflow) -> None:
    raw = (
        '{"error":{"message":"The `reasoning_content` in the thinking mode must be passed back to the API."}}'
    )
    fake.enqueue(host.http_error(400, "Provider returned error", raw=raw, provider_name="DeepSeek"))
    with pytest.raises(openai.BadRequestError, match="DeepSeek: The `reasoning_content`"):
        openai_client(gateway).chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}]
        )
    assert states(gateway) == {"a": "ok", "b": "ok"}
